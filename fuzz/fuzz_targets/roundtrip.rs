#![no_main]
//! `cargo fuzz run roundtrip`: see `edgews_fuzz::oracles::roundtrip` for what is checked.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| edgews_fuzz::oracles::roundtrip(data));
