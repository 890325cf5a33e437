//! An executable model: a [`Model`] with its parameters materialized from a seed, a fast forward
//! pass (accel's matrix multiply for linear layers, convolutions with one group through im2col, and
//! attention projections; the reference kernels without counting for the rest), a counting
//! reference forward pass, and a profiled forward pass.

use crate::error::ProfilingError;
use crate::layer::{AttentionMode, Layer, LayerSpec, Model};
use crate::profiler::Profiler;
use crate::reference::{self, NoCount, OpCounter};
use accel::MatmulConfig;
use ndarray::{ArrayView2, ArrayViewMut2};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// One projection: a row-major `in × out` weight and an optional bias.
#[derive(Debug, Clone)]
struct Projection {
    weight: Vec<f32>,
    bias: Option<Vec<f32>>,
}

/// The storage one layer owns.
#[derive(Debug, Clone)]
enum Params {
    Dense(Projection),
    Attention {
        query: Projection,
        key: Projection,
        value: Projection,
        output: Projection,
        cache_keys: Vec<f32>,
        cache_values: Vec<f32>,
    },
    LayerNorm {
        gamma: Vec<f32>,
        beta: Vec<f32>,
    },
    Embedding {
        table: Vec<f32>,
    },
    None,
}

impl Params {
    /// Parameter buffers (state such as a KV cache excluded).
    fn parameter_buffers(&self) -> Vec<&[f32]> {
        fn projection(p: &Projection) -> Vec<&[f32]> {
            let mut buffers = vec![p.weight.as_slice()];
            buffers.extend(p.bias.as_deref());
            buffers
        }
        match self {
            Params::Dense(p) => projection(p),
            Params::Attention {
                query,
                key,
                value,
                output,
                ..
            } => [query, key, value, output]
                .into_iter()
                .flat_map(projection)
                .collect(),
            Params::LayerNorm { gamma, beta } => vec![gamma, beta],
            Params::Embedding { table } => vec![table],
            Params::None => Vec::new(),
        }
    }

    fn state_buffers(&self) -> Vec<&[f32]> {
        match self {
            Params::Attention {
                cache_keys,
                cache_values,
                ..
            } => vec![cache_keys, cache_values],
            _ => Vec::new(),
        }
    }
}

fn uniform(rng: &mut StdRng, len: usize, bound: f32) -> Vec<f32> {
    (0..len).map(|_| rng.random_range(-bound..bound)).collect()
}

fn projection(rng: &mut StdRng, fan_in: usize, fan_out: usize, bias: bool) -> Projection {
    let bound = 1.0 / (fan_in as f32).sqrt();
    Projection {
        weight: uniform(rng, fan_in * fan_out, bound),
        bias: bias.then(|| uniform(rng, fan_out, bound)),
    }
}

fn materialize(layer: &Layer, rng: &mut StdRng, cache_batch: usize) -> Params {
    match *layer.spec() {
        LayerSpec::Linear(s) => {
            Params::Dense(projection(rng, s.in_features, s.out_features, s.bias))
        }
        LayerSpec::Conv2d(s) => {
            let fan_in = (s.in_channels / s.groups) * s.kernel.0 * s.kernel.1;
            Params::Dense(projection(rng, fan_in, s.out_channels, s.bias))
        }
        LayerSpec::Attention(s) => {
            let cached = match s.mode {
                AttentionMode::Prefill { .. } => 0,
                AttentionMode::Decode { context_len } => {
                    cache_batch * (context_len - 1) * s.d_model
                }
            };
            Params::Attention {
                query: projection(rng, s.d_model, s.d_model, s.bias),
                key: projection(rng, s.d_model, s.d_model, s.bias),
                value: projection(rng, s.d_model, s.d_model, s.bias),
                output: projection(rng, s.d_model, s.d_model, s.bias),
                cache_keys: uniform(rng, cached, 1.0),
                cache_values: uniform(rng, cached, 1.0),
            }
        }
        LayerSpec::LayerNorm(s) => Params::LayerNorm {
            gamma: (0..s.features)
                .map(|_| 1.0 + rng.random_range(-0.1..0.1))
                .collect(),
            beta: uniform(rng, s.features, 0.1),
        },
        LayerSpec::Embedding(s) => Params::Embedding {
            table: uniform(rng, s.vocab_size * s.dim, 1.0),
        },
        LayerSpec::Activation(_) | LayerSpec::Pool2d(_) => Params::None,
    }
}

/// A model with its parameters (and decode KV caches) materialized.
///
/// The KV cache of a decode attention layer is sized for `cache_batch` items; forward passes with
/// a larger batch are refused.
#[derive(Debug, Clone)]
pub struct Network {
    model: Model,
    params: Vec<Params>,
    cache_batch: usize,
    matmul: MatmulConfig,
}

impl Network {
    /// Materialize `model` with parameters drawn from `seed`, KV caches for `cache_batch` items,
    /// and single-threaded matrix products (so per-layer figures compare with one core's ceilings).
    ///
    /// # Errors
    /// [`ProfilingError::ZeroDimension`] for a zero `cache_batch`.
    pub fn new(model: Model, seed: u64, cache_batch: usize) -> Result<Self, ProfilingError> {
        if cache_batch == 0 {
            return Err(ProfilingError::ZeroDimension {
                layer: model.name().to_string(),
                field: "cache_batch",
            });
        }
        let params = model
            .layers()
            .iter()
            .enumerate()
            .map(|(index, layer)| {
                let mut rng = StdRng::seed_from_u64(seed.wrapping_add(index as u64));
                materialize(layer, &mut rng, cache_batch)
            })
            .collect();
        Ok(Self {
            model,
            params,
            cache_batch,
            matmul: MatmulConfig {
                threads: Some(1),
                ..MatmulConfig::default()
            },
        })
    }

    /// The same network with another matrix-multiply configuration (threads, kernel).
    pub fn with_matmul_config(self, matmul: MatmulConfig) -> Self {
        Self { matmul, ..self }
    }

    /// The description.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// Parameter values that exist in storage (counted from the buffers, not from the description).
    pub fn stored_parameters(&self) -> u64 {
        self.params
            .iter()
            .flat_map(Params::parameter_buffers)
            .map(|buffer| buffer.len() as u64)
            .sum()
    }

    /// Bytes of parameter storage that exists (the buffers' sizes, f32 here; never parameters × an
    /// assumed width).
    pub fn parameter_storage_bytes(&self) -> u64 {
        self.params
            .iter()
            .flat_map(Params::parameter_buffers)
            .map(|buffer| std::mem::size_of_val(buffer) as u64)
            .sum()
    }

    /// Bytes of non-parameter state (decode KV caches).
    pub fn state_bytes(&self) -> u64 {
        self.params
            .iter()
            .flat_map(Params::state_buffers)
            .map(|buffer| std::mem::size_of_val(buffer) as u64)
            .sum()
    }

    /// A seeded input for the first layer: token ids for an embedding, values in [−1, 1) otherwise.
    pub fn example_input(&self, batch: usize, seed: u64) -> Vec<f32> {
        let mut rng = StdRng::seed_from_u64(seed);
        let first = &self.model.layers()[0];
        let len = batch * first.input_elements();
        match *first.spec() {
            LayerSpec::Embedding(s) => (0..len)
                .map(|_| rng.random_range(0..s.vocab_size) as f32)
                .collect(),
            _ => uniform(&mut rng, len, 1.0),
        }
    }

    fn check_input(&self, index: usize, input: &[f32], batch: usize) -> Result<(), ProfilingError> {
        let layers = self.model.layers();
        let layer = layers.get(index).ok_or(ProfilingError::LayerIndex {
            index,
            layers: layers.len(),
        })?;
        if batch == 0 {
            return Err(ProfilingError::ZeroDimension {
                layer: layer.name().to_string(),
                field: "batch",
            });
        }
        if matches!(layer.spec(), LayerSpec::Attention(s) if matches!(s.mode, AttentionMode::Decode { .. }))
            && batch > self.cache_batch
        {
            return Err(ProfilingError::InvalidConfig(format!(
                "layer {}: batch {batch} exceeds the KV cache's {} items",
                layer.name(),
                self.cache_batch
            )));
        }
        let expected =
            batch
                .checked_mul(layer.input_elements())
                .ok_or_else(|| ProfilingError::Overflow {
                    layer: layer.name().to_string(),
                    what: "batch × input elements",
                })?;
        if input.len() != expected {
            return Err(ProfilingError::InputLength {
                layer: layer.name().to_string(),
                expected,
                found: input.len(),
            });
        }
        if let LayerSpec::Embedding(s) = layer.spec() {
            if let Some(&value) = input
                .iter()
                .find(|&&v| !(v >= 0.0 && v < s.vocab_size as f32 && v.fract() == 0.0))
            {
                return Err(ProfilingError::InvalidTokenId {
                    layer: layer.name().to_string(),
                    value,
                    vocab_size: s.vocab_size,
                });
            }
        }
        Ok(())
    }

    fn fast_linear(
        &self,
        input: &[f32],
        rows: usize,
        projection: &Projection,
        in_features: usize,
        out_features: usize,
    ) -> Result<Vec<f32>, ProfilingError> {
        let mut output = vec![0.0f32; rows * out_features];
        let a = ArrayView2::from_shape((rows, in_features), input)
            .map_err(|e| ProfilingError::InvalidConfig(format!("input view: {e}")))?;
        let b = ArrayView2::from_shape((in_features, out_features), &projection.weight)
            .map_err(|e| ProfilingError::InvalidConfig(format!("weight view: {e}")))?;
        let c = ArrayViewMut2::from_shape((rows, out_features), &mut output)
            .map_err(|e| ProfilingError::InvalidConfig(format!("output view: {e}")))?;
        accel::matmul_into_with(a, b, c, false, &self.matmul)?;
        if let Some(bias) = &projection.bias {
            for row in output.chunks_exact_mut(out_features) {
                for (slot, &b) in row.iter_mut().zip(bias) {
                    *slot += b;
                }
            }
        }
        Ok(output)
    }

    /// Run layer `index` on `input` (`batch` items) with the fast kernels.
    ///
    /// # Errors
    /// [`ProfilingError::LayerIndex`] when `index` is not a layer of the model,
    /// [`ProfilingError::InputLength`] for a wrong-sized input, [`ProfilingError::InvalidTokenId`]
    /// for a bad embedding input, [`ProfilingError::Accel`] if a product is refused.
    pub fn forward_layer(
        &self,
        index: usize,
        input: &[f32],
        batch: usize,
    ) -> Result<Vec<f32>, ProfilingError> {
        self.check_input(index, input, batch)?;
        let layer = &self.model.layers()[index];
        let counter = &mut NoCount;
        Ok(match (layer.spec(), &self.params[index]) {
            (LayerSpec::Linear(s), Params::Dense(p)) => {
                self.fast_linear(input, batch * s.positions, p, s.in_features, s.out_features)?
            }
            (LayerSpec::Conv2d(s), Params::Dense(p)) if s.groups == 1 => {
                self.fast_conv2d(s, input, batch, p)?
            }
            (LayerSpec::Attention(s), Params::Attention { .. }) => {
                self.fast_attention(s, index, input, batch)?
            }
            _ => self.reference_layer_with(index, input, batch, counter),
        })
    }

    fn fast_conv2d(
        &self,
        spec: &crate::layer::Conv2dSpec,
        input: &[f32],
        batch: usize,
        projection: &Projection,
    ) -> Result<Vec<f32>, ProfilingError> {
        let (out_h, out_w) = spec.output().unwrap_or((0, 0));
        let (in_h, in_w) = spec.input;
        let (kernel_h, kernel_w) = spec.kernel;
        let taps = spec.in_channels * kernel_h * kernel_w;
        let positions = out_h * out_w;
        let mut columns = vec![0.0f32; taps * positions];
        let mut output = vec![0.0f32; batch * spec.out_channels * positions];
        // The weight is stored out_channels × taps, row-major: the left operand as it is.
        let weight = ArrayView2::from_shape((spec.out_channels, taps), &projection.weight)
            .map_err(|e| ProfilingError::InvalidConfig(format!("weight view: {e}")))?;
        for item in 0..batch {
            let image =
                &input[item * spec.in_channels * in_h * in_w..][..spec.in_channels * in_h * in_w];
            for channel in 0..spec.in_channels {
                for ky in 0..kernel_h {
                    for kx in 0..kernel_w {
                        let row = (channel * kernel_h + ky) * kernel_w + kx;
                        let target = &mut columns[row * positions..(row + 1) * positions];
                        for out_y in 0..out_h {
                            let y = (out_y * spec.stride.0 + ky * spec.dilation.0) as isize
                                - spec.padding.0 as isize;
                            for out_x in 0..out_w {
                                let x = (out_x * spec.stride.1 + kx * spec.dilation.1) as isize
                                    - spec.padding.1 as isize;
                                let inside =
                                    0 <= y && y < in_h as isize && 0 <= x && x < in_w as isize;
                                target[out_y * out_w + out_x] = if inside {
                                    image[(channel * in_h + y as usize) * in_w + x as usize]
                                } else {
                                    0.0
                                };
                            }
                        }
                    }
                }
            }
            let b = ArrayView2::from_shape((taps, positions), &columns)
                .map_err(|e| ProfilingError::InvalidConfig(format!("column view: {e}")))?;
            let slice = &mut output[item * spec.out_channels * positions..]
                [..spec.out_channels * positions];
            let c = ArrayViewMut2::from_shape((spec.out_channels, positions), slice)
                .map_err(|e| ProfilingError::InvalidConfig(format!("output view: {e}")))?;
            accel::matmul_into_with(weight, b, c, false, &self.matmul)?;
            if let Some(bias) = &projection.bias {
                for (plane, &b) in slice.chunks_exact_mut(positions).zip(bias) {
                    for slot in plane {
                        *slot += b;
                    }
                }
            }
        }
        Ok(output)
    }

    fn fast_attention(
        &self,
        spec: &crate::layer::AttentionSpec,
        index: usize,
        input: &[f32],
        batch: usize,
    ) -> Result<Vec<f32>, ProfilingError> {
        let Params::Attention {
            query,
            key,
            value,
            output,
            cache_keys,
            cache_values,
        } = &self.params[index]
        else {
            unreachable!("attention layers own attention parameters");
        };
        let d = spec.d_model;
        let rows = batch * spec.query_len();
        let queries = self.fast_linear(input, rows, query, d, d)?;
        let new_keys = self.fast_linear(input, rows, key, d, d)?;
        let new_values = self.fast_linear(input, rows, value, d, d)?;
        let context = self.fast_attention_core(
            spec,
            batch,
            &queries,
            (cache_keys, &new_keys),
            (cache_values, &new_values),
        )?;
        self.fast_linear(&context, rows, output, d, d)
    }

    /// Per item and head: scores = Q_h · K_hᵀ and context_h = softmax(scores / √d_head) · V_h,
    /// both products through accel on strided views (a head is a column block of width d_head).
    /// Keys and values are (cached rows, new rows): the cache is read in place, never copied, and
    /// the two parts fill the two column blocks of the scores.
    fn fast_attention_core(
        &self,
        spec: &crate::layer::AttentionSpec,
        batch: usize,
        queries: &[f32],
        (cached_keys, new_keys): (&[f32], &[f32]),
        (cached_values, new_values): (&[f32], &[f32]),
    ) -> Result<Vec<f32>, ProfilingError> {
        use ndarray::{Axis, ShapeBuilder};
        let d = spec.d_model;
        let head_dim = spec.head_dim();
        let (query_len, key_len) = (spec.query_len(), spec.key_len());
        let cached = key_len - query_len;
        let scale = 1.0 / (head_dim as f32).sqrt();
        let view_error =
            |e: ndarray::ShapeError| ProfilingError::InvalidConfig(format!("head view: {e}"));
        // Head `offset / head_dim` of item `item` in a `batch × rows × d` buffer.
        fn view(
            buffer: &[f32],
            (rows, head_dim, d): (usize, usize, usize),
            item: usize,
            offset: usize,
        ) -> Result<ArrayView2<'_, f32>, ProfilingError> {
            ArrayView2::from_shape(
                (rows, head_dim).strides((d, 1)),
                &buffer[item * rows * d + offset..(item + 1) * rows * d],
            )
            .map_err(|e| ProfilingError::InvalidConfig(format!("head view: {e}")))
        }
        let head_view =
            |buffer, rows, item, offset| view(buffer, (rows, head_dim, d), item, offset);
        let mut context = vec![0.0f32; batch * query_len * d];
        let mut scores = ndarray::Array2::<f32>::zeros((query_len, key_len));
        for item in 0..batch {
            for head in 0..spec.heads {
                let offset = head * head_dim;
                let q = head_view(queries, query_len, item, offset)?;
                let new_k = head_view(new_keys, query_len, item, offset)?;
                let new_v = head_view(new_values, query_len, item, offset)?;
                let (cached_scores, new_scores) = scores.view_mut().split_at(Axis(1), cached);
                if cached > 0 {
                    let cached_k = head_view(cached_keys, cached, item, offset)?;
                    accel::matmul_into_with(q, cached_k.t(), cached_scores, false, &self.matmul)?;
                }
                accel::matmul_into_with(q, new_k.t(), new_scores, false, &self.matmul)?;
                for mut row in scores.rows_mut() {
                    let mut maximum = f32::NEG_INFINITY;
                    for score in row.iter_mut() {
                        *score *= scale;
                        maximum = maximum.max(*score);
                    }
                    let mut sum = 0.0f32;
                    for score in row.iter_mut() {
                        *score = (*score - maximum).exp();
                        sum += *score;
                    }
                    for score in row.iter_mut() {
                        *score /= sum;
                    }
                }
                let mut out = ArrayViewMut2::from_shape(
                    (query_len, head_dim).strides((d, 1)),
                    &mut context[item * query_len * d + offset..(item + 1) * query_len * d],
                )
                .map_err(view_error)?;
                let (cached_probabilities, new_probabilities) =
                    scores.view().split_at(Axis(1), cached);
                if cached > 0 {
                    let cached_v = head_view(cached_values, cached, item, offset)?;
                    accel::matmul_into_with(
                        cached_probabilities,
                        cached_v,
                        out.view_mut(),
                        false,
                        &self.matmul,
                    )?;
                }
                accel::matmul_into_with(new_probabilities, new_v, out, cached > 0, &self.matmul)?;
            }
        }
        Ok(context)
    }

    fn reference_layer_with<C: reference::Arithmetic>(
        &self,
        index: usize,
        input: &[f32],
        batch: usize,
        counter: &mut C,
    ) -> Vec<f32> {
        let layer = &self.model.layers()[index];
        match (layer.spec(), &self.params[index]) {
            (LayerSpec::Linear(s), Params::Dense(p)) => {
                reference::linear_layer(counter, s, input, batch, &p.weight, p.bias.as_deref())
            }
            (LayerSpec::Conv2d(s), Params::Dense(p)) => {
                reference::conv2d(counter, s, input, batch, &p.weight, p.bias.as_deref())
            }
            (
                LayerSpec::Attention(s),
                Params::Attention {
                    query,
                    key,
                    value,
                    output,
                    cache_keys,
                    cache_values,
                },
            ) => {
                let d = s.d_model;
                let rows = batch * s.query_len();
                let project = |counter: &mut C, x: &[f32], p: &Projection| {
                    reference::linear(counter, x, rows, d, d, &p.weight, p.bias.as_deref())
                };
                let queries = project(counter, input, query);
                let new_keys = project(counter, input, key);
                let new_values = project(counter, input, value);
                let keys = reference::attended_rows(s, batch, &new_keys, cache_keys);
                let values = reference::attended_rows(s, batch, &new_values, cache_values);
                let context =
                    reference::attention_core(counter, s, batch, &queries, &keys, &values);
                project(counter, &context, output)
            }
            (LayerSpec::LayerNorm(s), Params::LayerNorm { gamma, beta }) => {
                reference::layer_norm(counter, s, input, batch, gamma, beta)
            }
            (LayerSpec::Activation(s), _) => reference::activation(counter, s, input),
            (LayerSpec::Embedding(s), Params::Embedding { table }) => {
                let mut output = Vec::with_capacity(input.len() * s.dim);
                for &token in input {
                    let row = token as usize;
                    output.extend_from_slice(&table[row * s.dim..(row + 1) * s.dim]);
                }
                output
            }
            (LayerSpec::Pool2d(s), _) => reference::pool2d(counter, s, input, batch),
            _ => unreachable!("parameters are materialized from the same spec"),
        }
    }

    /// Run layer `index` with the naive reference kernel, counting every operation it performs.
    ///
    /// # Errors
    /// As [`Network::forward_layer`].
    pub fn reference_layer(
        &self,
        index: usize,
        input: &[f32],
        batch: usize,
    ) -> Result<(Vec<f32>, OpCounter), ProfilingError> {
        self.check_input(index, input, batch)?;
        let mut counter = OpCounter::default();
        let output = self.reference_layer_with(index, input, batch, &mut counter);
        Ok((output, counter))
    }

    /// The whole model with the reference kernels; the output and each layer's executed counts.
    ///
    /// # Errors
    /// As [`Network::forward_layer`].
    pub fn reference_forward(
        &self,
        input: &[f32],
        batch: usize,
    ) -> Result<(Vec<f32>, Vec<OpCounter>), ProfilingError> {
        let mut activation = input.to_vec();
        let mut counts = Vec::with_capacity(self.params.len());
        for index in 0..self.params.len() {
            let (output, counter) = self.reference_layer(index, &activation, batch)?;
            counts.push(counter);
            activation = output;
        }
        Ok((activation, counts))
    }

    /// The whole model with the fast kernels.
    ///
    /// # Errors
    /// As [`Network::forward_layer`].
    pub fn forward(&self, input: &[f32], batch: usize) -> Result<Vec<f32>, ProfilingError> {
        let mut activation = self.forward_layer(0, input, batch)?;
        for index in 1..self.params.len() {
            activation = self.forward_layer(index, &activation, batch)?;
        }
        Ok(activation)
    }

    /// The whole model with the fast kernels, each layer recorded in `profiler` (time and
    /// allocations); `profiler` must come from [`Profiler::for_model`] on this model.
    ///
    /// # Errors
    /// As [`Network::forward_layer`].
    pub fn forward_profiled(
        &self,
        input: &[f32],
        batch: usize,
        profiler: &mut Profiler,
    ) -> Result<Vec<f32>, ProfilingError> {
        let mut activation = profiler.record(0, || self.forward_layer(0, input, batch))?;
        for index in 1..self.params.len() {
            activation =
                profiler.record(index, || self.forward_layer(index, &activation, batch))?;
        }
        Ok(activation)
    }

    /// Inputs of every layer for one forward pass (index 0 is `input` itself), for measuring
    /// layers one at a time on realistic activations.
    ///
    /// # Errors
    /// As [`Network::forward_layer`].
    pub fn layer_inputs(
        &self,
        input: &[f32],
        batch: usize,
    ) -> Result<Vec<Vec<f32>>, ProfilingError> {
        let mut inputs = vec![input.to_vec()];
        for index in 0..self.params.len() - 1 {
            let next = self.forward_layer(index, &inputs[index], batch)?;
            inputs.push(next);
        }
        Ok(inputs)
    }
}
