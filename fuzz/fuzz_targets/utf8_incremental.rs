#![no_main]
//! `cargo fuzz run utf8_incremental`: see `edgews_fuzz::oracles::utf8_incremental` for what is checked.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| edgews_fuzz::oracles::utf8_incremental(data));
