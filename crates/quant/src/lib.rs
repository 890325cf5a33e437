//! quant: INT8, f16 and bf16 quantization with real 1-byte storage and an integer GEMM (not built yet).
