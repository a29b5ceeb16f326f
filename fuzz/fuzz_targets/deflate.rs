#![no_main]
//! `cargo fuzz run deflate`: see `edgews_fuzz::oracles::deflate` for what is checked.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| edgews_fuzz::oracles::deflate(data));
