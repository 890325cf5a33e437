//! Seeded workloads: realistic shapes (transformer FFN and attention, MLPerf-Tiny layers, square
//! matmul grids), each with its size and FLOP count declared, and seeded input data.
//!
//! FLOPs count 2 per multiply–add (the convention of every GFLOP/s figure in TorchPerf).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// The shape of one workload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum WorkloadShape {
    /// C (m × n) = A (m × k) · B (k × n).
    Matmul {
        /// Rows of A and C.
        m: usize,
        /// Inner dimension.
        k: usize,
        /// Columns of B and C.
        n: usize,
    },
    /// Transformer feed-forward block: tokens × d_model → d_ff → d_model.
    TransformerFfn {
        /// Tokens in the batch (batch × sequence).
        tokens: usize,
        /// Model width.
        d_model: usize,
        /// Hidden width.
        d_ff: usize,
    },
    /// Multi-head attention core (scores and weighted sum), no projections.
    Attention {
        /// Batch size.
        batch: usize,
        /// Heads.
        heads: usize,
        /// Query positions.
        query_len: usize,
        /// Key/value positions (the context).
        key_len: usize,
        /// Width of one head.
        head_dim: usize,
    },
    /// 2-D convolution (NCHW), `groups` = channels for depthwise.
    Conv2d {
        /// Batch size.
        batch: usize,
        /// Input channels.
        in_channels: usize,
        /// Output channels.
        out_channels: usize,
        /// Input height.
        height: usize,
        /// Input width.
        width: usize,
        /// Kernel height.
        kernel_h: usize,
        /// Kernel width.
        kernel_w: usize,
        /// Stride (both axes).
        stride: usize,
        /// Zero padding (both axes).
        padding: usize,
        /// Groups.
        groups: usize,
    },
}

/// A named workload with its declared cost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Workload {
    /// Name, e.g. `ffn.gpt2-small.tokens128`.
    pub name: String,
    /// Where the shape comes from.
    pub source: String,
    /// The shape.
    pub shape: WorkloadShape,
    /// Floating-point operations (2 per multiply–add).
    pub flops: u64,
    /// Elements of all inputs and outputs (a lower bound on memory traffic in elements).
    pub elements: u64,
}

impl WorkloadShape {
    /// Multiply–adds performed by a direct implementation.
    pub fn multiply_adds(&self) -> u64 {
        let product = |values: &[usize]| values.iter().map(|&v| v as u64).product::<u64>();
        match *self {
            WorkloadShape::Matmul { m, k, n } => product(&[m, k, n]),
            WorkloadShape::TransformerFfn {
                tokens,
                d_model,
                d_ff,
            } => 2 * product(&[tokens, d_model, d_ff]),
            WorkloadShape::Attention {
                batch,
                heads,
                query_len,
                key_len,
                head_dim,
            } => 2 * product(&[batch, heads, query_len, key_len, head_dim]),
            WorkloadShape::Conv2d { .. } => {
                let (out_h, out_w) = self.conv_output().unwrap_or((0, 0));
                let WorkloadShape::Conv2d {
                    batch,
                    in_channels,
                    out_channels,
                    kernel_h,
                    kernel_w,
                    groups,
                    ..
                } = *self
                else {
                    return 0;
                };
                product(&[
                    batch,
                    out_channels,
                    out_h,
                    out_w,
                    in_channels / groups.max(1),
                    kernel_h,
                    kernel_w,
                ])
            }
        }
    }

    /// Output height and width of a convolution, `None` for other shapes or an invalid one.
    pub fn conv_output(&self) -> Option<(usize, usize)> {
        let WorkloadShape::Conv2d {
            height,
            width,
            kernel_h,
            kernel_w,
            stride,
            padding,
            ..
        } = *self
        else {
            return None;
        };
        if stride == 0 || height + 2 * padding < kernel_h || width + 2 * padding < kernel_w {
            return None;
        }
        Some((
            (height + 2 * padding - kernel_h) / stride + 1,
            (width + 2 * padding - kernel_w) / stride + 1,
        ))
    }

    /// Elements of inputs, weights and outputs.
    pub fn elements(&self) -> u64 {
        let product = |values: &[usize]| values.iter().map(|&v| v as u64).product::<u64>();
        match *self {
            WorkloadShape::Matmul { m, k, n } => {
                product(&[m, k]) + product(&[k, n]) + product(&[m, n])
            }
            WorkloadShape::TransformerFfn {
                tokens,
                d_model,
                d_ff,
            } => {
                2 * product(&[tokens, d_model])
                    + 2 * product(&[d_model, d_ff])
                    + product(&[tokens, d_ff])
            }
            WorkloadShape::Attention {
                batch,
                heads,
                query_len,
                key_len,
                head_dim,
            } => {
                product(&[batch, heads, query_len, head_dim]) * 2
                    + product(&[batch, heads, key_len, head_dim]) * 2
                    + product(&[batch, heads, query_len, key_len])
            }
            WorkloadShape::Conv2d {
                batch,
                in_channels,
                out_channels,
                height,
                width,
                kernel_h,
                kernel_w,
                groups,
                ..
            } => {
                let (out_h, out_w) = self.conv_output().unwrap_or((0, 0));
                product(&[batch, in_channels, height, width])
                    + product(&[
                        out_channels,
                        in_channels / groups.max(1),
                        kernel_h,
                        kernel_w,
                    ])
                    + product(&[batch, out_channels, out_h, out_w])
            }
        }
    }
}

impl Workload {
    /// A workload with its cost computed from the shape.
    pub fn new(name: impl Into<String>, source: impl Into<String>, shape: WorkloadShape) -> Self {
        Self {
            name: name.into(),
            source: source.into(),
            flops: 2 * shape.multiply_adds(),
            elements: shape.elements(),
            shape,
        }
    }
}

/// The shared shape table of STYLE.md, as (m, k, n), for testing every kernel against its reference:
/// zero, one, one lane below / at / above the AVX2 (8) and AVX-512 (16) widths, register-tile edges ± 1
/// (6 × 64, 6 × 16, 4 × 4), primes, tall-skinny and short-wide. Kept small: tests run in debug builds.
/// Kernel crates add their own block edges beside it.
pub const SHARED_MATMUL_SHAPES: &[(usize, usize, usize)] = &[
    (0, 0, 0),
    (0, 5, 3),
    (4, 0, 3),
    (4, 5, 0),
    (1, 1, 1),
    (1, 9, 1),
    (7, 8, 9),
    (15, 16, 17),
    (16, 16, 16),
    (17, 17, 17),
    (5, 6, 7),
    (11, 12, 13),
    (12, 7, 32),
    (6, 5, 64),
    (7, 9, 65),
    (5, 3, 63),
    (6, 2, 128),
    (13, 31, 33),
    (24, 3, 64),
    (31, 33, 31),
    (37, 41, 43),
    (97, 5, 3),
    (3, 5, 97),
    (2, 131, 2),
    (1, 64, 50),
    (50, 64, 1),
];

/// Square matmuls n × n × n for each n.
/// A known amount of work: a dependent chain of `steps` 64-bit multiply–adds (an LCG step) that the
/// compiler cannot shorten or vectorize, so its cost is linear in `steps` — the workload of the
/// referee's self-tests (A/A, a known 2× ratio, injected slowdowns, ranking). Never inlined, so
/// every caller runs the very same machine code: inlined copies can differ by 10–20% through code
/// alignment alone, a real difference that is not the one under test.
#[inline(never)]
pub fn known_work(steps: u64) -> u64 {
    let mut state = std::hint::black_box(0x9E37_79B9_7F4A_7C15u64);
    for _ in 0..std::hint::black_box(steps) {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
    }
    state
}

pub fn square_matmul_grid(sizes: &[usize]) -> Vec<Workload> {
    sizes
        .iter()
        .map(|&n| {
            Workload::new(
                format!("matmul.square.{n}"),
                "square grid",
                WorkloadShape::Matmul { m: n, k: n, n },
            )
        })
        .collect()
}

/// Feed-forward blocks of common transformer widths at several token counts.
pub fn transformer_ffn_shapes() -> Vec<Workload> {
    let widths = [
        ("tiny-char", 128, 512),
        ("gpt2-small", 768, 3072),
        ("bert-base", 768, 3072),
    ];
    let mut workloads = Vec::new();
    for (model, d_model, d_ff) in widths {
        for tokens in [1, 32, 128] {
            workloads.push(Workload::new(
                format!("ffn.{model}.tokens{tokens}"),
                format!("{model} feed-forward block"),
                WorkloadShape::TransformerFfn {
                    tokens,
                    d_model,
                    d_ff,
                },
            ));
        }
    }
    workloads
}

/// Attention cores: prefill (query = key length) and single-token decode at several contexts.
pub fn attention_shapes() -> Vec<Workload> {
    let mut workloads = Vec::new();
    for (model, heads, head_dim) in [("tiny-char", 4, 32), ("gpt2-small", 12, 64)] {
        for context in [128, 512] {
            workloads.push(Workload::new(
                format!("attention.{model}.prefill{context}"),
                format!("{model} attention, prefill"),
                WorkloadShape::Attention {
                    batch: 1,
                    heads,
                    query_len: context,
                    key_len: context,
                    head_dim,
                },
            ));
            workloads.push(Workload::new(
                format!("attention.{model}.decode_ctx{context}"),
                format!("{model} attention, one decode step"),
                WorkloadShape::Attention {
                    batch: 1,
                    heads,
                    query_len: 1,
                    key_len: context,
                    head_dim,
                },
            ));
        }
    }
    workloads
}

/// Representative layers of the four MLPerf Tiny reference models (batch 1).
pub fn mlperf_tiny_layers() -> Vec<Workload> {
    let conv = |name: &str,
                source: &str,
                c_in,
                c_out,
                h,
                w,
                k: (usize, usize),
                stride,
                padding,
                groups| {
        Workload::new(
            name,
            source,
            WorkloadShape::Conv2d {
                batch: 1,
                in_channels: c_in,
                out_channels: c_out,
                height: h,
                width: w,
                kernel_h: k.0,
                kernel_w: k.1,
                stride,
                padding,
                groups,
            },
        )
    };
    vec![
        conv(
            "kws.dscnn.conv1",
            "DS-CNN keyword spotting, first conv (49×10 MFCC)",
            1,
            64,
            49,
            10,
            (10, 4),
            2,
            1,
            1,
        ),
        conv(
            "kws.dscnn.depthwise",
            "DS-CNN depthwise 3×3",
            64,
            64,
            25,
            5,
            (3, 3),
            1,
            1,
            64,
        ),
        conv(
            "kws.dscnn.pointwise",
            "DS-CNN pointwise 1×1",
            64,
            64,
            25,
            5,
            (1, 1),
            1,
            0,
            1,
        ),
        conv(
            "ic.resnet8.conv1",
            "ResNet-8 image classification, first conv (32×32×3)",
            3,
            16,
            32,
            32,
            (3, 3),
            1,
            1,
            1,
        ),
        conv(
            "ic.resnet8.stage3",
            "ResNet-8 last stage 3×3",
            64,
            64,
            8,
            8,
            (3, 3),
            1,
            1,
            1,
        ),
        conv(
            "vww.mobilenet.conv1",
            "MobileNetV1 0.25 visual wake words, first conv (96×96×3)",
            3,
            8,
            96,
            96,
            (3, 3),
            2,
            1,
            1,
        ),
        conv(
            "vww.mobilenet.depthwise",
            "MobileNetV1 depthwise 3×3",
            8,
            8,
            48,
            48,
            (3, 3),
            1,
            1,
            8,
        ),
        Workload::new(
            "ad.autoencoder.dense1",
            "FC autoencoder anomaly detection, 640 → 128",
            WorkloadShape::Matmul {
                m: 1,
                k: 640,
                n: 128,
            },
        ),
        Workload::new(
            "ad.autoencoder.bottleneck",
            "FC autoencoder anomaly detection, 128 → 8",
            WorkloadShape::Matmul { m: 1, k: 128, n: 8 },
        ),
    ]
}

/// Seeded data generator; the seed is recorded with every result that uses it.
#[derive(Debug, Clone)]
pub struct WorkloadGenerator {
    seed: u64,
    rng: StdRng,
}

impl WorkloadGenerator {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            seed,
            rng: StdRng::seed_from_u64(seed),
        }
    }

    /// The seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// `rows × cols` row-major values uniform in [−1, 1).
    pub fn matrix_f32(&mut self, rows: usize, cols: usize) -> Vec<f32> {
        (0..rows * cols)
            .map(|_| self.rng.random_range(-1.0f32..1.0))
            .collect()
    }

    /// `len` values uniform in [−1, 1).
    pub fn vector_f32(&mut self, len: usize) -> Vec<f32> {
        self.matrix_f32(1, len)
    }

    /// `len` keys uniform over all of `u32` (sorting, hashing and search workloads).
    pub fn vector_u32(&mut self, len: usize) -> Vec<u32> {
        (0..len).map(|_| self.rng.random::<u32>()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_work_is_the_lcg_iterated() {
        // The value is a pure function of `steps`: the plain loop reproduces it.
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        for steps in 0..50u64 {
            assert_eq!(known_work(steps), state, "steps = {steps}");
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
        }
    }

    #[test]
    fn declared_flops_match_hand_counts() {
        let matmul = Workload::new("m", "t", WorkloadShape::Matmul { m: 2, k: 3, n: 4 });
        assert_eq!(matmul.flops, 48);
        assert_eq!(matmul.elements, 6 + 12 + 8);
        let ffn = Workload::new(
            "f",
            "t",
            WorkloadShape::TransformerFfn {
                tokens: 2,
                d_model: 4,
                d_ff: 8,
            },
        );
        assert_eq!(ffn.flops, 2 * 2 * (2 * 4 * 8));
        // 3×3 depthwise on 8 channels of 4×4 with padding 1: 8 · 16 · 9 multiply–adds.
        let depthwise = WorkloadShape::Conv2d {
            batch: 1,
            in_channels: 8,
            out_channels: 8,
            height: 4,
            width: 4,
            kernel_h: 3,
            kernel_w: 3,
            stride: 1,
            padding: 1,
            groups: 8,
        };
        assert_eq!(depthwise.conv_output(), Some((4, 4)));
        assert_eq!(depthwise.multiply_adds(), 8 * 16 * 9);
    }

    #[test]
    fn catalogues_are_nonempty_and_consistent() {
        for workload in transformer_ffn_shapes()
            .into_iter()
            .chain(attention_shapes())
            .chain(mlperf_tiny_layers())
            .chain(square_matmul_grid(&[64, 128]))
        {
            assert!(workload.flops > 0, "{}", workload.name);
            assert_eq!(workload.flops, 2 * workload.shape.multiply_adds());
        }
    }

    #[test]
    fn generator_is_deterministic() {
        let a = WorkloadGenerator::new(9).matrix_f32(3, 5);
        let b = WorkloadGenerator::new(9).matrix_f32(3, 5);
        assert_eq!(a, b);
        assert!(a.iter().all(|v| (-1.0..1.0).contains(v)));
    }
}
