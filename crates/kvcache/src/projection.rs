//! The transformer's weight matrices behind one trait, [`Projection`]: `y = x · W + b` with `W`
//! (`in × out`) stored however the implementation likes. kvcache implements it for dense f32
//! ([`DenseProjection`]); other crates implement it for their own storage (olympics: int8, f16 and
//! CSR), so the same forward pass, cache and decoder run every variant.

use crate::error::KvCacheError;
use crate::ops::add_bias;
use accel::{Backend, MatmulConfig};
use ndarray::{Array1, Array2, ArrayView1, ArrayView2, ArrayViewMut2};

/// Products with at most this many rows (a decode step of a batch of up to four sequences) run on
/// accel's matrix–vector kernel (`accel::gemv_into`), which reads the weights, the cached keys
/// (as `Kᵀ`, column-contiguous) and the cached values in place; the packed GEMM would first copy
/// them into panels, which so few rows cannot amortise. Products with more rows (a prefill, every
/// step of the full recompute) run on accel's packed GEMM. Each side gets the best kernel for its
/// shapes; a kernel forced through the model's `MatmulConfig` or `ACCEL_KERNEL` is used for every
/// product instead.
pub(crate) const FEW_QUERIES: usize = 4;

/// One weight matrix of the transformer (with its bias): `y = x · W + b`, `W` of shape
/// `in_features × out_features`.
///
/// The forward pass calls [`Projection::forward_into`] for the fused query–key–value projection,
/// the attention output, the MLP's up and down projections and the language-model head. An
/// implementation must treat rows independently (row `i` of the output depends on row `i` of the
/// input alone): a cached decode step projects one token where the full recompute projects the
/// whole prefix, and only row independence makes the two agree. (Activation quantization with one
/// scale per call over all rows would break it; per-row scales keep it.)
pub trait Projection: std::fmt::Debug + Send + Sync {
    /// Input width (`W`'s rows).
    fn in_features(&self) -> usize;

    /// Output width (`W`'s columns).
    fn out_features(&self) -> usize;

    /// Bytes of the buffers that really hold the weight and the bias.
    fn storage_bytes(&self) -> usize;

    /// Which storage and kernel compute it, in a few words (recorded with results).
    fn kind(&self) -> &'static str;

    /// `output = input · W + b` (or `output += input · W + b` with `accumulate`), for `input`
    /// (`rows × in_features`) and `output` (`rows × out_features`). `matmul` is the model's accel
    /// configuration (thread count, forced kernel), which implementations on accel should honour.
    ///
    /// # Errors
    /// [`KvCacheError::ShapeMismatch`] for mismatched shapes; [`KvCacheError::Matmul`] or
    /// [`KvCacheError::Projection`] when the kernel fails.
    fn forward_into(
        &self,
        input: ArrayView2<'_, f32>,
        output: ArrayViewMut2<'_, f32>,
        accumulate: bool,
        matmul: &MatmulConfig,
    ) -> Result<(), KvCacheError>;
}

/// A dense f32 weight and bias on accel: the matrix–vector kernel for at most four rows, the
/// packed GEMM for more (see [`dense_forward_into`]).
#[derive(Debug, Clone, PartialEq)]
pub struct DenseProjection {
    weight: Array2<f32>,
    bias: Array1<f32>,
}

impl DenseProjection {
    /// `weight` (`in × out`) and `bias` (`out`).
    ///
    /// # Errors
    /// [`KvCacheError::ShapeMismatch`] when the bias length differs from the weight's columns;
    /// [`KvCacheError::InvalidConfig`] for a NaN or infinite value.
    pub fn new(weight: Array2<f32>, bias: Array1<f32>) -> Result<Self, KvCacheError> {
        if bias.len() != weight.ncols() {
            return Err(KvCacheError::ShapeMismatch {
                what: "projection bias (one per output column)",
                expected: vec![weight.ncols()],
                actual: vec![bias.len()],
            });
        }
        if !weight.iter().chain(&bias).all(|value| value.is_finite()) {
            return Err(KvCacheError::InvalidConfig {
                what: "a weight is NaN or infinite".into(),
            });
        }
        Ok(DenseProjection { weight, bias })
    }

    /// `in × out`.
    pub fn weight(&self) -> ArrayView2<'_, f32> {
        self.weight.view()
    }

    /// `out`.
    pub fn bias(&self) -> ArrayView1<'_, f32> {
        self.bias.view()
    }

    /// The weight and the bias, by value.
    pub fn into_parts(self) -> (Array2<f32>, Array1<f32>) {
        (self.weight, self.bias)
    }
}

impl Projection for DenseProjection {
    fn in_features(&self) -> usize {
        self.weight.nrows()
    }

    fn out_features(&self) -> usize {
        self.weight.ncols()
    }

    fn storage_bytes(&self) -> usize {
        (self.weight.len() + self.bias.len()) * std::mem::size_of::<f32>()
    }

    fn kind(&self) -> &'static str {
        "f32 dense (accel GEMV ≤ 4 rows, packed GEMM above)"
    }

    fn forward_into(
        &self,
        input: ArrayView2<'_, f32>,
        output: ArrayViewMut2<'_, f32>,
        accumulate: bool,
        matmul: &MatmulConfig,
    ) -> Result<(), KvCacheError> {
        dense_forward_into(
            self.weight.view(),
            self.bias.view(),
            input,
            output,
            accumulate,
            matmul,
        )
    }
}

/// What [`DenseProjection`] computes, on borrowed arrays, for other implementations that hold a
/// dense f32 weight of their own: `output (+)= input · weight + bias` on accel (the matrix–vector
/// kernel for at most four rows under accel's automatic choice, else the configured kernel), then
/// the bias.
///
/// # Errors
/// [`KvCacheError::ShapeMismatch`] for a bias that does not fit; [`KvCacheError::Matmul`].
pub fn dense_forward_into(
    weight: ArrayView2<'_, f32>,
    bias: ArrayView1<'_, f32>,
    input: ArrayView2<'_, f32>,
    mut output: ArrayViewMut2<'_, f32>,
    accumulate: bool,
    matmul: &MatmulConfig,
) -> Result<(), KvCacheError> {
    if bias.len() != weight.ncols() {
        return Err(KvCacheError::ShapeMismatch {
            what: "projection bias (one per output column)",
            expected: vec![weight.ncols()],
            actual: vec![bias.len()],
        });
    }
    auto_product(input, weight, output.view_mut(), accumulate, matmul)?;
    add_bias(output, bias);
    Ok(())
}

/// Whether products run on accel's automatic choice: no backend configured and none forced
/// through `ACCEL_KERNEL`. Only then do the few-row paths (matrix–vector kernels) replace the
/// configured kernel; a forced kernel runs every product.
pub(crate) fn runs_automatic_choice(matmul: &MatmulConfig) -> bool {
    matmul.backend == Backend::Auto && matches!(Backend::from_env(), Ok(None))
}

/// `c (+)= a · b`: a product with few rows (see [`FEW_QUERIES`]) on accel's matrix–vector kernel
/// when `matmul` is accel's automatic choice; every other product on the configured kernel.
pub(crate) fn auto_product(
    a: ArrayView2<'_, f32>,
    b: ArrayView2<'_, f32>,
    c: ArrayViewMut2<'_, f32>,
    accumulate: bool,
    matmul: &MatmulConfig,
) -> Result<(), KvCacheError> {
    if a.nrows() <= FEW_QUERIES && runs_automatic_choice(matmul) {
        accel::gemv_into(a, b, c, accumulate)?;
        return Ok(());
    }
    accel::matmul_into_with(a, b, c, accumulate, matmul)?;
    Ok(())
}
