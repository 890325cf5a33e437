//! olympics: MLPerf-Tiny-style events, the referee, compliance and Pareto analysis (not built yet).
