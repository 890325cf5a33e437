//! profiling: parameter, FLOP, memory, latency and roofline profiles, measured rather than estimated (not built yet).
