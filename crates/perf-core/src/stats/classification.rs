//! Per-row statistics of a classifier's outputs: the predicted class ([`argmax`]) and the cross-entropy
//! of its logits against the label ([`cross_entropy`]).

use crate::error::PerfError;

/// Index of the largest value, the first one on ties; NaN values are never chosen. `None` when there is
/// no value other than NaN (an empty row).
pub fn argmax<I: IntoIterator<Item = f32>>(values: I) -> Option<usize> {
    let mut best: Option<(usize, f32)> = None;
    for (index, value) in values.into_iter().enumerate() {
        let better = match best {
            None => !value.is_nan(),
            Some((_, best_value)) => value > best_value,
        };
        if better {
            best = Some((index, value));
        }
    }
    best.map(|(index, _)| index)
}

/// Cross-entropy in nats of the softmax of `logits` against the class `target`:
/// `log Σ exp(logit) − logit[target]`, computed as log-sum-exp around the largest logit in f64 so that no
/// exponential overflows. The iterator is walked twice (it is cloned), so a row is never copied.
///
/// # Errors
/// `Empty` for no logits, `NonFinite` for a NaN or infinite logit, `InvalidInput` when `target` is not a
/// class of the row.
pub fn cross_entropy<I>(logits: I, target: usize) -> Result<f64, PerfError>
where
    I: IntoIterator<Item = f32>,
    I::IntoIter: Clone,
{
    let logits = logits.into_iter();
    let mut max = f64::NEG_INFINITY;
    let mut target_logit = None;
    let mut n_logits = 0usize;
    for (index, logit) in logits.clone().enumerate() {
        let logit = f64::from(logit);
        if !logit.is_finite() {
            return Err(PerfError::NonFinite {
                what: "cross-entropy logits".into(),
                index,
                value: logit,
            });
        }
        max = max.max(logit);
        if index == target {
            target_logit = Some(logit);
        }
        n_logits += 1;
    }
    if n_logits == 0 {
        return Err(PerfError::Empty {
            what: "cross-entropy logits".into(),
        });
    }
    let Some(target_logit) = target_logit else {
        return Err(PerfError::InvalidInput(format!(
            "cross-entropy: class {target} of a row with {n_logits} logits"
        )));
    };
    let sum_exp: f64 = logits.map(|logit| (f64::from(logit) - max).exp()).sum();
    Ok(max + sum_exp.ln() - target_logit)
}
