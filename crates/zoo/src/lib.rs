//! zoo: reference models (in progress).
