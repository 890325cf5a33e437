//! Every integer GEMM kernel, forced in turn, against the i64 reference over the shared shape table, with a
//! sentinel-prefilled output, strided A, the saturation worst case, and shape errors.

use ndarray::{s, Array2};
use quant::{
    gemm_reference_i64, gemm_u8i8_i32, GemmBlocking, GemmConfig, GemmKernel, PackedB, QuantError,
};
use rand::{rngs::StdRng, Rng, SeedableRng};

const SEED: u64 = 0x09a4_71e8;

/// This GEMM's own edges, tested beside perf-core's shared shape table (STYLE.md): the register tile is 12 × 32,
/// k goes in groups of 4 and (by default) blocks of up to 1024, A in blocks of 48 rows. Small enough for debug
/// builds. Other blockings are tested on their own below.
const OWN_EDGES: &[(usize, usize, usize)] = &[
    (12, 4, 32),
    (13, 3, 31),
    (11, 5, 33),
    (13, 511, 33),
    (3, 512, 5),
    (2, 513, 40),
    (191, 13, 9),
    (193, 17, 34),
    (25, 1027, 65),
    (8, 4, 32),
    (9, 3, 31),
];

fn random(rng: &mut StdRng, m: usize, k: usize, n: usize) -> (Array2<u8>, Array2<i8>) {
    let a = Array2::from_shape_simple_fn((m, k), || rng.random::<u8>());
    let b = Array2::from_shape_simple_fn((k, n), || rng.random::<i8>());
    (a, b)
}

fn available_kernels() -> Vec<GemmKernel> {
    GemmKernel::ALL
        .into_iter()
        .filter(|kernel| kernel.is_available())
        .collect()
}

#[test]
fn every_kernel_matches_the_i64_reference_on_the_shape_table() {
    let mut rng = StdRng::seed_from_u64(SEED);
    for &(m, k, n) in perf_core::workloads::SHARED_MATMUL_SHAPES
        .iter()
        .chain(OWN_EDGES)
    {
        let (a, b) = random(&mut rng, m, k, n);
        let expected = gemm_reference_i64(a.view(), b.view());
        let packed = PackedB::pack(b.view()).unwrap();
        for kernel in available_kernels() {
            // A sentinel in every cell shows a missed write (and exact equality shows a stray one).
            let mut c = Array2::<i32>::from_elem((m, n), i32::MIN);
            let ran = gemm_u8i8_i32(
                a.view(),
                &packed,
                c.view_mut(),
                &GemmConfig {
                    kernel: Some(kernel),
                    ..GemmConfig::default()
                },
            )
            .unwrap();
            assert_eq!(ran, kernel);
            // Integer arithmetic is exact: no tolerance.
            assert_eq!(c.mapv(i64::from), expected, "{kernel} on {m}×{k}×{n}");
        }
    }
}

#[test]
fn every_blocking_gives_the_same_exact_product() {
    // k blocks of 4, 8, 40 and 1024 values (1, 2, 3 … blocks, equal-split, a ragged k), A blocks of 1, 12, 13 and
    // 200 rows (rounded to whole tiles): each accumulates across k blocks into C differently.
    let mut rng = StdRng::seed_from_u64(SEED + 2);
    let blockings = [(4, 1), (8, 12), (40, 13), (1024, 200), (3, 7)];
    for &(m, k, n) in &[(25, 103, 65), (37, 9, 31), (12, 1030, 32), (1, 1, 1)] {
        let (a, b) = random(&mut rng, m, k, n);
        let expected = gemm_reference_i64(a.view(), b.view());
        let packed = PackedB::pack(b.view()).unwrap();
        for kernel in available_kernels() {
            for &(kc, mc) in &blockings {
                let mut c = Array2::<i32>::from_elem((m, n), i32::MIN);
                let config = GemmConfig {
                    kernel: Some(kernel),
                    blocking: GemmBlocking { kc, mc },
                };
                gemm_u8i8_i32(a.view(), &packed, c.view_mut(), &config).unwrap();
                assert_eq!(
                    c.mapv(i64::from),
                    expected,
                    "{kernel} kc={kc} mc={mc} on {m}×{k}×{n}"
                );
            }
        }
    }
}

#[test]
fn no_kernel_saturates_on_the_worst_case_operands() {
    // 255 · (−128) in every product: vpmaddubsw would saturate its 16-bit pair sum (−65 280 < −32 768).
    let (m, k, n) = (9, 1030, 33);
    let a = Array2::<u8>::from_elem((m, k), 255);
    let mut b = Array2::<i8>::from_elem((k, n), -128);
    b.slice_mut(s![.., 1]).fill(127);
    let packed = PackedB::pack(b.view()).unwrap();
    for kernel in available_kernels() {
        let mut c = Array2::<i32>::zeros((m, n));
        gemm_u8i8_i32(
            a.view(),
            &packed,
            c.view_mut(),
            &GemmConfig {
                kernel: Some(kernel),
                ..GemmConfig::default()
            },
        )
        .unwrap();
        assert!(
            c.column(0).iter().all(|&v| v == -255 * 128 * k as i32),
            "{kernel}"
        );
        assert!(
            c.column(1).iter().all(|&v| v == 255 * 127 * k as i32),
            "{kernel}"
        );
    }
}

#[test]
fn strided_a_and_packing_accessors() {
    let mut rng = StdRng::seed_from_u64(SEED + 1);
    let (a, b) = random(&mut rng, 20, 37, 45);
    let a_strided = a.slice(s![..;2, ..]);
    let expected = gemm_reference_i64(a_strided, b.view());
    let packed = PackedB::pack(b.view()).unwrap();
    assert_eq!(packed.storage_bytes(), 40 * 45);
    let sums: Vec<i32> = (0..45)
        .map(|j| b.column(j).iter().map(|&v| i32::from(v)).sum())
        .collect();
    assert_eq!(packed.column_sums(), sums);
    assert!((0..37).all(|r| (0..45).all(|c| packed.get(r, c) == b[[r, c]])));
    let mut c = Array2::<i32>::zeros((10, 45));
    gemm_u8i8_i32(a_strided, &packed, c.view_mut(), &GemmConfig::default()).unwrap();
    assert_eq!(c.mapv(i64::from), expected);
}

#[test]
fn shape_errors_are_typed() {
    let packed = PackedB::pack(Array2::<i8>::zeros((4, 3)).view()).unwrap();
    let a = Array2::<u8>::zeros((2, 5));
    let mut c = Array2::<i32>::zeros((2, 3));
    assert!(matches!(
        gemm_u8i8_i32(a.view(), &packed, c.view_mut(), &GemmConfig::default()),
        Err(QuantError::ShapeMismatch { .. })
    ));
    let a = Array2::<u8>::zeros((2, 4));
    let mut c = Array2::<i32>::zeros((3, 3));
    assert!(gemm_u8i8_i32(a.view(), &packed, c.view_mut(), &GemmConfig::default()).is_err());
    assert!(PackedB::pack(Array2::<i8>::zeros((quant::gemm::MAX_K + 1, 0)).view()).is_err());
    assert_eq!(
        GemmKernel::detected(),
        GemmKernel::ALL
            .into_iter()
            .find(|k| k.is_available())
            .unwrap()
    );
}

#[test]
fn repack_into_a_used_buffer_equals_a_fresh_pack() {
    let mut rng = StdRng::seed_from_u64(SEED + 2);
    // Start from a buffer full of non-zero bytes, then shapes whose k is not a multiple of 4 (padding lanes
    // must be rewritten as zeros), shorter, longer and equal in length.
    let mut reused = PackedB::pack(Array2::<i8>::from_elem((40, 70), -7).view()).unwrap();
    for &(m, k, n) in &[
        (5, 5, 20),
        (13, 7, 33),
        (3, 40, 70),
        (12, 13, 64),
        (2, 1, 3),
    ] {
        let (a, b) = random(&mut rng, m, k, n);
        reused.repack(b.view()).unwrap();
        assert_eq!(reused, PackedB::pack(b.view()).unwrap(), "{k}×{n}");
        let mut c = Array2::<i32>::from_elem((m, n), i32::MIN);
        gemm_u8i8_i32(a.view(), &reused, c.view_mut(), &GemmConfig::default()).unwrap();
        assert_eq!(c.mapv(i64::from), gemm_reference_i64(a.view(), b.view()));
    }
}

/// `QUANT_KERNEL=<level> cargo test -p quant` forces that level of accel's ladder for every kernel family: the
/// integer GEMM and the f16 GEMV resolve to their kernel of that level, or say it cannot run here.
#[test]
fn quant_kernel_forces_one_level_for_every_family() {
    use quant::{HalfGemvKernel, IsaKernel};
    let forced = quant::forced_level().expect("QUANT_KERNEL must name a level or a kernel");
    fn check<K: IsaKernel + std::fmt::Debug>(
        resolved: Result<K, QuantError>,
        detected: K,
        forced: Option<accel::Isa>,
    ) {
        match (forced, resolved) {
            (None, Ok(kernel)) => assert_eq!(kernel, detected),
            (Some(isa), Ok(kernel)) => assert_eq!(kernel.isa(), isa),
            (Some(isa), Err(QuantError::KernelUnavailable { kernel })) => {
                let wanted = K::ALL.into_iter().find(|k| k.isa() == isa).unwrap();
                assert_eq!(kernel, wanted.name());
                assert!(!isa.is_available() || !wanted.has_extra_features());
            }
            (forced, Err(error)) => panic!("QUANT_KERNEL={forced:?}: {error}"),
        }
    }
    check(
        GemmConfig::default().resolve(),
        GemmKernel::detected(),
        forced,
    );
    check(
        HalfGemvKernel::resolve(None),
        HalfGemvKernel::detected(),
        forced,
    );
}
