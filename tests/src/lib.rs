//! The cross-crate integration tests live in `tests/tests/` (the whole chain through both functions' builders and
//! handlers). Cargo wants a library or binary target in every package, so this one has an empty library; it holds
//! no code on purpose: shared test helpers belong in `tb_devkit`.
