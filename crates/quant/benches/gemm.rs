//! Integer GEMM vs accel's f32 GEMM over sizes (placeholder while the crate is built).
fn main() {}
