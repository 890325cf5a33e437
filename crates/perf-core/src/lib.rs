//! perf-core: the measurement engine.
