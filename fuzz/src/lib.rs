//! Shared oracles for the edgews fuzz targets.
//!
//! Every oracle is a plain `fn(&[u8])` in [`oracles`] that panics when the
//! engine misbehaves. The same module (`src/oracles.rs` and the files in
//! `src/oracles/`) is compiled into the main crate's `tests/fuzz_corpus.rs`,
//! which replays `fuzz/corpus/*/` and `fuzz/artifacts/*/` through it on every
//! `cargo test`.

pub mod oracles;

/// Counts this thread's live heap bytes, so the connection oracles can check
/// that the engine's memory stays within the configured limits.
#[global_allocator]
static ALLOC: oracles::CountingAlloc = oracles::CountingAlloc;
