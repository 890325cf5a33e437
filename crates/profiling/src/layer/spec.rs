//! What a layer is, before it is checked: the per-kind specifications (linear, convolution, attention,
//! normalization, activation, embedding, pooling) and their output shapes.

use serde::{Deserialize, Serialize};

/// An elementwise activation function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Activation {
    /// max(x, 0).
    Relu,
    /// tanh(x).
    Tanh,
    /// 1 / (1 + e^−x).
    Sigmoid,
    /// x · sigmoid(x).
    Silu,
    /// The tanh approximation 0.5 · x · (1 + tanh(√(2/π) · (x + 0.044715 · x³))).
    Gelu,
}

impl Activation {
    /// Floating-point operations per element (see the module's convention).
    pub fn ops_per_element(self) -> u64 {
        match self {
            Activation::Relu | Activation::Tanh => 1,
            Activation::Sigmoid => 3,
            Activation::Silu => 4,
            Activation::Gelu => 9,
        }
    }
}

/// Max or average pooling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum PoolKind {
    /// Maximum over the window (padding taps read as −∞).
    Max,
    /// Mean over the window, padding taps included as zeros in the divisor.
    Average,
}

/// A fully connected layer applied to each of `positions` rows of every batch item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinearSpec {
    /// Input features.
    pub in_features: usize,
    /// Output features.
    pub out_features: usize,
    /// Rows per batch item (tokens; 1 for an MLP on flat vectors).
    pub positions: usize,
    /// Whether a bias is added.
    pub bias: bool,
}

/// A 2-D convolution over NCHW activations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conv2dSpec {
    /// Input channels.
    pub in_channels: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Input (height, width).
    pub input: (usize, usize),
    /// Kernel (height, width).
    pub kernel: (usize, usize),
    /// Stride (height, width).
    pub stride: (usize, usize),
    /// Zero padding (height, width), each side.
    pub padding: (usize, usize),
    /// Dilation (height, width).
    pub dilation: (usize, usize),
    /// Groups; `groups == in_channels` is a depthwise convolution.
    pub groups: usize,
    /// Whether a bias is added.
    pub bias: bool,
}

impl Conv2dSpec {
    /// A convolution with stride 1, no padding, dilation 1, one group and a bias.
    pub fn new(
        in_channels: usize,
        out_channels: usize,
        input: (usize, usize),
        kernel: (usize, usize),
    ) -> Self {
        Self {
            in_channels,
            out_channels,
            input,
            kernel,
            stride: (1, 1),
            padding: (0, 0),
            dilation: (1, 1),
            groups: 1,
            bias: true,
        }
    }

    /// The same with another stride.
    pub fn with_stride(self, stride: (usize, usize)) -> Self {
        Self { stride, ..self }
    }

    /// The same with another padding.
    pub fn with_padding(self, padding: (usize, usize)) -> Self {
        Self { padding, ..self }
    }

    /// The same with another dilation.
    pub fn with_dilation(self, dilation: (usize, usize)) -> Self {
        Self { dilation, ..self }
    }

    /// The same with another number of groups.
    pub fn with_groups(self, groups: usize) -> Self {
        Self { groups, ..self }
    }

    /// The same without a bias.
    pub fn without_bias(self) -> Self {
        Self {
            bias: false,
            ..self
        }
    }

    /// Output (height, width); `None` when the kernel does not fit (checked when a layer is built).
    pub fn output(&self) -> Option<(usize, usize)> {
        let axis = |input: usize, kernel: usize, stride: usize, padding: usize, dilation: usize| {
            let extent = dilation
                .checked_mul(kernel.checked_sub(1)?)?
                .checked_add(1)?;
            let padded = input.checked_add(padding.checked_mul(2)?)?;
            if extent > padded || stride == 0 {
                return None;
            }
            Some((padded - extent) / stride + 1)
        };
        Some((
            axis(
                self.input.0,
                self.kernel.0,
                self.stride.0,
                self.padding.0,
                self.dilation.0,
            )?,
            axis(
                self.input.1,
                self.kernel.1,
                self.stride.1,
                self.padding.1,
                self.dilation.1,
            )?,
        ))
    }
}

/// Which phase of autoregressive inference an attention layer runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum AttentionMode {
    /// Every position attends to every position of the sequence (no mask: the full score matrix
    /// is computed, as dense implementations do before masking).
    Prefill {
        /// Sequence length.
        seq_len: usize,
    },
    /// One new token attends to `context_len` positions: `context_len − 1` cached keys and values
    /// plus its own.
    Decode {
        /// Positions attended, the new token included.
        context_len: usize,
    },
}

/// Multi-head self-attention with Q, K, V and output projections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttentionSpec {
    /// Model width.
    pub d_model: usize,
    /// Heads (must divide `d_model`).
    pub heads: usize,
    /// Prefill or decode.
    pub mode: AttentionMode,
    /// Whether the projections have biases.
    pub bias: bool,
}

impl AttentionSpec {
    /// Query positions per batch item.
    pub fn query_len(&self) -> usize {
        match self.mode {
            AttentionMode::Prefill { seq_len } => seq_len,
            AttentionMode::Decode { .. } => 1,
        }
    }

    /// Key positions each query attends to.
    pub fn key_len(&self) -> usize {
        match self.mode {
            AttentionMode::Prefill { seq_len } => seq_len,
            AttentionMode::Decode { context_len } => context_len,
        }
    }

    /// Width of one head.
    pub fn head_dim(&self) -> usize {
        self.d_model / self.heads.max(1)
    }
}

/// Layer normalization over the last axis, with a learned scale and shift.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerNormSpec {
    /// Width of the normalized axis.
    pub features: usize,
    /// Rows per batch item.
    pub positions: usize,
}

/// An elementwise activation over `elements` values per batch item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivationSpec {
    /// The function.
    pub function: Activation,
    /// Elements per batch item.
    pub elements: usize,
}

/// A token-embedding lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmbeddingSpec {
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Embedding width.
    pub dim: usize,
    /// Tokens per batch item.
    pub positions: usize,
}

/// 2-D max or average pooling over NCHW activations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pool2dSpec {
    /// Max or average.
    pub kind: PoolKind,
    /// Channels.
    pub channels: usize,
    /// Input (height, width).
    pub input: (usize, usize),
    /// Window (height, width).
    pub kernel: (usize, usize),
    /// Stride (height, width).
    pub stride: (usize, usize),
    /// Padding (height, width), each side; at most half the window.
    pub padding: (usize, usize),
}

impl Pool2dSpec {
    /// Global average pooling: one window covering the whole input.
    pub fn global_average(channels: usize, input: (usize, usize)) -> Self {
        Self {
            kind: PoolKind::Average,
            channels,
            input,
            kernel: input,
            stride: (1, 1),
            padding: (0, 0),
        }
    }

    /// Output (height, width); `None` when the window does not fit.
    pub fn output(&self) -> Option<(usize, usize)> {
        Conv2dSpec {
            in_channels: self.channels,
            out_channels: self.channels,
            input: self.input,
            kernel: self.kernel,
            stride: self.stride,
            padding: self.padding,
            dilation: (1, 1),
            groups: 1,
            bias: false,
        }
        .output()
    }
}

/// What a layer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum LayerSpec {
    /// Fully connected.
    Linear(LinearSpec),
    /// 2-D convolution.
    Conv2d(Conv2dSpec),
    /// Multi-head self-attention.
    Attention(AttentionSpec),
    /// Layer normalization.
    LayerNorm(LayerNormSpec),
    /// Elementwise activation.
    Activation(ActivationSpec),
    /// Embedding lookup.
    Embedding(EmbeddingSpec),
    /// Pooling.
    Pool2d(Pool2dSpec),
}

impl LayerSpec {
    /// Short name of the kind (`linear`, `conv2d`, `depthwise_conv2d`, ...).
    pub fn kind_name(&self) -> &'static str {
        match self {
            LayerSpec::Linear(_) => "linear",
            LayerSpec::Conv2d(spec) if spec.groups > 1 && spec.groups == spec.in_channels => {
                "depthwise_conv2d"
            }
            LayerSpec::Conv2d(spec) if spec.groups > 1 => "grouped_conv2d",
            LayerSpec::Conv2d(_) => "conv2d",
            LayerSpec::Attention(AttentionSpec {
                mode: AttentionMode::Prefill { .. },
                ..
            }) => "attention_prefill",
            LayerSpec::Attention(_) => "attention_decode",
            LayerSpec::LayerNorm(_) => "layer_norm",
            LayerSpec::Activation(_) => "activation",
            LayerSpec::Embedding(_) => "embedding",
            LayerSpec::Pool2d(Pool2dSpec {
                kind: PoolKind::Max,
                ..
            }) => "max_pool2d",
            LayerSpec::Pool2d(_) => "avg_pool2d",
        }
    }
}
