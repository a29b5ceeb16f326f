//! Replays the fuzzing corpus through the fuzz targets' oracles on every
//! `cargo test`, so the seeds keep passing and a crash found once (kept in
//! `fuzz/corpus/<target>/`, or still in `fuzz/artifacts/<target>/`) stays
//! fixed. The oracles are the same file the fuzz targets call; see
//! `fuzz/run.sh` for the fuzzing itself.

#[path = "../fuzz/src/oracles.rs"]
mod oracles;

use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};

/// The connection oracles check the engine's heap use through this.
#[global_allocator]
static ALLOC: oracles::CountingAlloc = oracles::CountingAlloc;

type Oracle = fn(&[u8]);

const TARGETS: &[(&str, Oracle)] = &[
    ("frame_decode", oracles::frame_decode),
    ("handshake_request", oracles::handshake_request),
    ("handshake_response", oracles::handshake_response),
    ("server_connection", oracles::server_connection),
    ("client_connection", oracles::client_connection),
    ("utf8_incremental", oracles::utf8_incremental),
    ("roundtrip", oracles::roundtrip),
    ("pubsub_control", oracles::pubsub_control),
    ("chat_message", oracles::chat_message),
    ("deflate", oracles::deflate),
    ("tls", oracles::tls),
    ("resp_decode", oracles::resp_decode),
    ("redis_envelope", oracles::redis_envelope),
    ("forwarded", oracles::forwarded),
    ("relay_scan", oracles::relay_scan),
];

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// The regular files in `dir`, sorted, skipping dotfiles; none if it is absent.
fn files_in(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .filter(|p| {
            !p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    files.sort();
    files
}

/// Runs every file of `target` in the corpus and artifacts directories;
/// returns how many ran and the failures.
fn replay(target: &str, oracle: Oracle) -> (usize, Vec<String>) {
    let mut ran = 0;
    let mut failures = Vec::new();
    for kind in ["corpus", "artifacts"] {
        for file in files_in(&fuzz_dir().join(kind).join(target)) {
            let data = std::fs::read(&file).expect("read corpus file");
            ran += 1;
            if let Err(e) = panic::catch_unwind(AssertUnwindSafe(|| oracle(&data))) {
                let msg = e
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                failures.push(format!("{}: {msg}", file.display()));
            }
        }
    }
    (ran, failures)
}

#[test]
fn every_target_has_a_seed_corpus() {
    for (target, _) in TARGETS {
        let dir = fuzz_dir().join("corpus").join(target);
        assert!(!files_in(&dir).is_empty(), "no seeds in {}", dir.display());
    }
}

#[test]
fn fuzz_corpus_and_artifacts_replay_cleanly() {
    let mut failures = Vec::new();
    for (target, oracle) in TARGETS {
        let (ran, mut failed) = replay(target, *oracle);
        eprintln!("{target}: replayed {ran} inputs, {} failed", failed.len());
        failures.append(&mut failed);
    }
    assert!(
        failures.is_empty(),
        "{} fuzz input(s) fail:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The oracles themselves accept trivial and hand-made inputs (a guard
/// against an oracle that panics on everything, which would make the
/// fuzzers useless).
#[test]
fn oracles_accept_simple_inputs() {
    for (target, oracle) in TARGETS {
        for data in [&b""[..], b"\x00", b"\x00\x00", b"\x01\x05abcdef"] {
            let result = panic::catch_unwind(AssertUnwindSafe(|| oracle(data)));
            assert!(result.is_ok(), "{target} panics on {data:?}");
        }
    }
}
