//! The one error type of the profiling crate.

/// Everything that can go wrong while describing, executing or measuring a model.
///
/// Errors are `Send + Sync + 'static`; messages are lowercase with the layer's name for context.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProfilingError {
    /// A size that must be positive is zero (channels, features, kernel, stride, heads, batch, ...).
    #[error("layer {layer}: {field} must be positive")]
    ZeroDimension {
        /// The layer's name.
        layer: String,
        /// Which field is zero.
        field: &'static str,
    },
    /// The (dilated) kernel does not fit in the padded input along one axis.
    #[error("layer {layer}: kernel extent {kernel_extent} along {axis} exceeds the padded input {padded_input}")]
    KernelLargerThanInput {
        /// The layer's name.
        layer: String,
        /// `height` or `width`.
        axis: &'static str,
        /// Dilation × (kernel − 1) + 1.
        kernel_extent: usize,
        /// Input + 2 × padding.
        padded_input: usize,
    },
    /// Channels are not divisible by the number of groups.
    #[error("layer {layer}: groups {groups} must divide in_channels {in_channels} and out_channels {out_channels}")]
    GroupsMismatch {
        /// The layer's name.
        layer: String,
        /// Input channels.
        in_channels: usize,
        /// Output channels.
        out_channels: usize,
        /// Groups.
        groups: usize,
    },
    /// The model width is not divisible by the number of heads.
    #[error("layer {layer}: heads {heads} must divide d_model {d_model}")]
    HeadsMismatch {
        /// The layer's name.
        layer: String,
        /// Model width.
        d_model: usize,
        /// Heads.
        heads: usize,
    },
    /// Pooling padding larger than half the kernel (every window would be padding on one side).
    #[error("layer {layer}: padding {padding} exceeds half the kernel {kernel}")]
    PaddingTooLarge {
        /// The layer's name.
        layer: String,
        /// Padding.
        padding: usize,
        /// Kernel size along the same axis.
        kernel: usize,
    },
    /// Consecutive layers of a model disagree on the activation size of one batch item.
    #[error("layer {layer} expects {expected} input elements per item, the previous layer produces {found}")]
    ShapeMismatch {
        /// The layer's name.
        layer: String,
        /// Elements it expects.
        expected: usize,
        /// Elements the previous layer produces.
        found: usize,
    },
    /// A model with no layers.
    #[error("a model needs at least one layer")]
    EmptyModel,
    /// A layer index beyond the model's layers.
    #[error("layer index {index} is out of range: the model has {layers} layers")]
    LayerIndex {
        /// The index asked for.
        index: usize,
        /// Layers in the model.
        layers: usize,
    },
    /// An input buffer of the wrong length was passed to a layer.
    #[error("layer {layer}: input has {found} elements, expected {expected}")]
    InputLength {
        /// The layer's name.
        layer: String,
        /// Elements expected (batch × per-item elements).
        expected: usize,
        /// Elements found.
        found: usize,
    },
    /// A token id fed to an embedding is not an integer in `0..vocab_size`.
    #[error("layer {layer}: token id {value} is not an integer in 0..{vocab_size}")]
    InvalidTokenId {
        /// The layer's name.
        layer: String,
        /// The value found.
        value: f32,
        /// Vocabulary size.
        vocab_size: usize,
    },
    /// A count does not fit in 64 bits.
    #[error("layer {layer}: {what} overflows u64")]
    Overflow {
        /// The layer's name.
        layer: String,
        /// Which count.
        what: &'static str,
    },
    /// A configuration value is out of its domain.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// perf-core could not measure (bad configuration, non-finite timings, allocator not installed).
    #[error("measurement failed: {0}")]
    Measurement(#[from] perf_core::PerfError),
    /// accel refused a product.
    #[error("matrix multiply failed: {0}")]
    Accel(#[from] accel::AccelError),
}
