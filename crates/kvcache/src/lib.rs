//! kvcache: decoder-only transformer generation with a correct KV cache (not built yet).
