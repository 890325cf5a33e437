//! accel: f32 matrix multiply from naive loops to a multi-threaded SIMD kernel (in progress).
