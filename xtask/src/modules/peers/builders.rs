//! Each event's model as the peers receive it: the olympics module's trained models (zoo's, or the small
//! MLPs it trains), the event they are refereed on, and the Rust field they are judged beside.

use anyhow::{Context, Result};
use datasets::{FsddSplit, MfccConfig};
use olympics::reference;
use olympics::submissions::{
    cnn_storage_bytes, ds_cnn_storage_bytes, InputTransform, ZooClassifier,
};
use olympics::{Event, Submission};
use peers::{GreyPooling, OnnxHead};
use zoo::{
    train_or_load, Classifier, Mlp, ReferenceModel, Standardizer, TrainedWeights, ZooConfig,
};

use super::super::olympics::{train_small_mlp, train_vww_model, VwwModel};
use super::{Built, EventModel, ModuleContext, PeerModel};

pub(super) fn mlp_field(
    mlp: &Mlp,
    transform: &InputTransform,
    quick: bool,
) -> Result<Vec<Box<dyn Submission>>> {
    Ok(
        reference::mlp_classifiers(mlp, transform, &reference::mlp_recipes(quick))?
            .into_iter()
            .map(|submission| Box::new(submission) as Box<dyn Submission>)
            .collect(),
    )
}

pub(super) fn image_classification(
    context: &ModuleContext,
    zoo_config: &ZooConfig,
) -> Result<Built> {
    // As the olympics module: Fashion-MNIST when its MLP is cached (quick) or trainable (full), else the
    // embedded digits.
    let fashion = if context.quick {
        zoo::load_cached(ReferenceModel::FashionMlp, zoo_config)
            .ok()
            .flatten()
    } else {
        train_or_load(ReferenceModel::FashionMlp, zoo_config).ok()
    };
    let (trained, model_name) = match fashion {
        Some(trained) => (trained, "fashion-mlp"),
        None => (
            train_or_load(ReferenceModel::DigitsMlp, zoo_config).context("digits MLP")?,
            "digits-mlp",
        ),
    };
    let TrainedWeights::Mlp(mlp) = &trained.weights else {
        anyhow::bail!("zoo returned a non-MLP model for {model_name}");
    };
    let event = olympics::events::image_classification(
        &trained.test,
        &trained.report.dataset,
        &trained.report.split,
    )?;
    let rust_field = mlp_field(mlp, &InputTransform::Identity, context.quick)?;
    Ok(Built::Model(Box::new(EventModel {
        label: event.spec.name.clone(),
        event,
        model: PeerModel::Mlp {
            network: mlp.clone(),
            standardizer: None,
            grey_pooling: None,
            head: OnnxHead::Logits,
        },
        rust_field,
        baseline: reference::BASELINE.into(),
        model_name,
    })))
}

/// The command that trains and caches zoo's reference models (the CNN and DS-CNN rows read the cache).
pub(super) const ZOO_TRAIN_COMMAND: &str = "cargo xtask validate --module zoo";

/// zoo's `model` from the weight cache, or the SKIPPED build that says why not (`what` names the model
/// in the reason).
pub(super) fn cached_zoo_model(
    model: ReferenceModel,
    what: &str,
    zoo_config: &ZooConfig,
) -> std::result::Result<zoo::TrainedModel, Built> {
    match zoo::load_cached(model, zoo_config) {
        Ok(Some(trained)) => Ok(trained),
        Ok(None) => Err(Built::Skipped {
            reason: format!("zoo's {what} is not in the weight cache"),
            command: ZOO_TRAIN_COMMAND.into(),
        }),
        Err(error) => Err(Built::Skipped {
            reason: format!("zoo's {what} could not be read from the cache ({error})"),
            command: ZOO_TRAIN_COMMAND.into(),
        }),
    }
}

/// zoo's Fashion CNN (from the weight cache) against its ONNX Runtime and PyTorch peers on the Fashion
/// image-classification event.
pub(super) fn image_classification_cnn(
    _context: &ModuleContext,
    zoo_config: &ZooConfig,
) -> Result<Built> {
    let trained = match cached_zoo_model(ReferenceModel::FashionCnn, "Fashion CNN", zoo_config) {
        Ok(trained) => trained,
        Err(skipped) => return Ok(skipped),
    };
    let TrainedWeights::Cnn(cnn) = trained.weights else {
        anyhow::bail!("zoo returned a non-CNN model for the Fashion CNN");
    };
    let event = olympics::events::image_classification(
        &trained.test,
        &trained.report.dataset,
        &trained.report.split,
    )?;
    Ok(zoo_network_model(
        event,
        "cnn",
        "fashion_cnn_f32",
        cnn_storage_bytes(&cnn),
        Box::new(cnn.clone()),
        PeerModel::Cnn(Box::new(cnn)),
        "fashion-cnn",
    ))
}

/// A zoo network from the weight cache as the peers receive it: the Rust field is its one f32 submission
/// `baseline` (which the exported file must reproduce), under the namespace `<event>_<suffix>`.
fn zoo_network_model(
    event: Event,
    suffix: &str,
    baseline: &str,
    storage_bytes: usize,
    classifier: Box<dyn Classifier + Send + Sync>,
    model: PeerModel,
    model_name: &'static str,
) -> Built {
    let rust_field: Vec<Box<dyn Submission>> = vec![Box::new(ZooClassifier {
        name: baseline.into(),
        storage_bytes,
        model: classifier,
    })];
    Built::Model(Box::new(EventModel {
        label: format!("{}_{suffix}", event.spec.name),
        event,
        model,
        rust_field,
        baseline: baseline.into(),
        model_name,
    }))
}

pub(super) fn anomaly_detection(context: &ModuleContext, zoo_config: &ZooConfig) -> Result<Built> {
    let trained = train_or_load(ReferenceModel::DigitsAutoencoder, zoo_config)
        .context("digits autoencoder")?;
    let TrainedWeights::Autoencoder(autoencoder) = &trained.weights else {
        anyhow::bail!("zoo returned a non-autoencoder model");
    };
    let event = olympics::events::anomaly_detection(
        &trained.test,
        &trained.report.dataset,
        &trained.report.split,
    )?;
    let rust_field =
        reference::anomaly_scorers(autoencoder, &reference::mlp_recipes(context.quick))?
            .into_iter()
            .map(|submission| Box::new(submission) as Box<dyn Submission>)
            .collect();
    Ok(Built::Model(Box::new(EventModel {
        label: event.spec.name.clone(),
        event,
        model: PeerModel::Mlp {
            network: autoencoder.network.clone(),
            standardizer: None,
            grey_pooling: None,
            head: OnnxHead::ReconstructionError,
        },
        rust_field,
        baseline: reference::BASELINE.into(),
        model_name: "digits-autoencoder",
    })))
}

/// The keyword-spotting event as the olympics module builds it (FSDD MFCC windows, or its synthetic set
/// when FSDD is not installed) and whether the data is real.
pub(super) fn keyword_data(
    context: &ModuleContext,
    zoo_config: &ZooConfig,
) -> Result<(datasets::LabeledDataset, bool)> {
    let dir = datasets::fsdd_dir(zoo_config.data.fsdd_dir.as_deref());
    match datasets::load_fsdd_clips(&dir) {
        Ok(clips) => Ok((
            datasets::fsdd_features(
                &clips,
                &FsddSplit::Conventional,
                &MfccConfig::default(),
                &dir,
            )?,
            true,
        )),
        Err(error) if error.is_not_found() => {
            eprintln!("peers: FSDD not installed ({error}); SYNTHETIC keyword set instead");
            let (train, test, info) =
                olympics::events::synthetic_keywords(2_700, 300, context.seed)?;
            Ok((
                datasets::LabeledDataset {
                    train,
                    test,
                    info,
                    split: "SYNTHETIC: generated train 2,700 / test 300".to_string(),
                },
                false,
            ))
        }
        Err(error) => Err(error).context("FSDD"),
    }
}

pub(super) fn keyword_spotting(context: &ModuleContext, zoo_config: &ZooConfig) -> Result<Built> {
    let (dataset, _) = keyword_data(context, zoo_config)?;
    let event = olympics::events::keyword_spotting(&dataset.test, &dataset.info, &dataset.split)?;
    let standardizer = Standardizer::fit(dataset.train.features().view());
    let standardized = standardizer.apply(dataset.train.features().view())?;
    // The olympics module's small MLP: the same recipe and seed, so the peers serve the model the
    // Olympics field is built from.
    let mlp = train_small_mlp(
        standardized.view(),
        dataset.train.labels(),
        dataset.train.n_classes(),
        128,
        context.seed,
    )?;
    let rust_field = mlp_field(
        &mlp,
        &InputTransform::Standardize(standardizer.clone()),
        context.quick,
    )?;
    Ok(Built::Model(Box::new(EventModel {
        label: event.spec.name.clone(),
        event,
        model: PeerModel::Mlp {
            network: mlp,
            standardizer: Some(standardizer),
            grey_pooling: None,
            head: OnnxHead::Logits,
        },
        rust_field,
        baseline: reference::BASELINE.into(),
        model_name: "kws-mlp",
    })))
}

/// zoo's DS-CNN (from the weight cache; trained on FSDD) against its peers on the keyword-spotting event.
pub(super) fn keyword_spotting_ds_cnn(
    context: &ModuleContext,
    zoo_config: &ZooConfig,
) -> Result<Built> {
    let trained = match cached_zoo_model(ReferenceModel::KwsDsCnn, "DS-CNN", zoo_config) {
        Ok(trained) => trained,
        Err(skipped) => return Ok(skipped),
    };
    let TrainedWeights::DsCnn(network) = trained.weights else {
        anyhow::bail!("zoo returned a non-DS-CNN model for the DS-CNN");
    };
    let (dataset, real) = keyword_data(context, zoo_config)?;
    if !real {
        return Ok(Built::Skipped {
            reason: "FSDD is not installed (the DS-CNN is trained and tested on it)".into(),
            command: "export TORCHPERF_FSDD_DIR=<free-spoken-digit-dataset>/recordings".into(),
        });
    }
    let event = olympics::events::keyword_spotting(&dataset.test, &dataset.info, &dataset.split)?;
    Ok(zoo_network_model(
        event,
        "ds_cnn",
        "ds_cnn_f32",
        ds_cnn_storage_bytes(&network),
        Box::new(network.clone()),
        PeerModel::DsCnn(Box::new(network)),
        "kws-ds-cnn",
    ))
}

pub(super) fn visual_wake_words(context: &ModuleContext, zoo_config: &ZooConfig) -> Result<Built> {
    let dataset = match datasets::load_fashion_mnist(zoo_config.data.fashion_mnist_dir.as_deref()) {
        Ok(dataset) => dataset,
        Err(error) if error.is_not_found() => {
            return Ok(Built::Skipped {
                reason: format!("Fashion-MNIST is not installed ({error})"),
                command: error
                    .enable_command()
                    .unwrap_or("apt-get install dataset-fashion-mnist")
                    .into(),
            })
        }
        Err(error) => return Err(error).context("Fashion-MNIST"),
    };
    let event = olympics::events::visual_wake_words(&dataset.test, &dataset.info)?;
    let VwwModel { mlp, transform, .. } = train_vww_model(&dataset.train, context.seed)?;
    let rust_field = mlp_field(&mlp, &transform, context.quick)?;
    Ok(Built::Model(Box::new(EventModel {
        label: event.spec.name.clone(),
        event,
        model: PeerModel::Mlp {
            network: mlp,
            standardizer: None,
            grey_pooling: Some(GreyPooling {
                side: olympics::events::VWW_SIDE,
                channels: 3,
                factor: 4,
            }),
            head: OnnxHead::Logits,
        },
        rust_field,
        baseline: reference::BASELINE.into(),
        model_name: "vww-mlp",
    })))
}
