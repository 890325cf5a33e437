//! The peak probe's loop: `CHAINS` independent fused multiply–add chains, written once over [`Vector`] and
//! compiled per instruction set by [`isa_dispatch!`] (so the probe runs exactly the FMA the GEMM kernels run).

use super::isa_kernel::isa_dispatch;
use super::vector::Vector;

/// Independent accumulator chains per iteration: more than FMA latency × issue width on any current core, so
/// the FMA units, not the latency, are the limit.
pub(crate) const CHAINS: usize = 16;

isa_dispatch! {
    /// `iterations` rounds of [`CHAINS`] FMAs on `isa` (which the caller checked is available), summed so that
    /// no work can be elided.
    pub(crate) fn dispatch(isa, args: u64) -> f32 = chains;
}

/// The chains on `V`: each accumulator goes `value ← value · scale + offset` (a contraction, so it stays finite),
/// then every lane of every chain is summed.
///
/// # Safety
/// `V`'s instruction set must be available.
#[inline(always)]
unsafe fn chains<V: Vector>(iterations: u64) -> f32 {
    let (one, scale, offset) = (
        1.0f32,
        std::hint::black_box(0.999_999_f32),
        std::hint::black_box(1e-7_f32),
    );
    let mut lanes = [0.0f32; 16];
    // SAFETY: the caller guarantees `V`'s instruction set; the splats read locals, and the store writes
    // `V::LANES ≤ 16` floats into `lanes`.
    unsafe {
        let (scale, offset) = (V::splat_from(&scale), V::splat_from(&offset));
        let mut acc = [V::splat_from(&one); CHAINS];
        for _ in 0..iterations {
            for value in acc.iter_mut() {
                *value = V::mul_add(*value, scale, offset);
            }
        }
        let mut sum = V::zero();
        for value in acc {
            sum = V::add(sum, value);
        }
        V::store(lanes.as_mut_ptr(), sum);
    }
    lanes[..V::LANES].iter().sum()
}
