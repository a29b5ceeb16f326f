#![no_main]
//! `cargo fuzz run relay_scan`: see `edgews_fuzz::oracles::relay_scan` for what is checked.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| edgews_fuzz::oracles::relay_scan(data));
