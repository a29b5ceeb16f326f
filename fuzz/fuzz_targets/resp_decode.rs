#![no_main]
//! `cargo fuzz run resp_decode`: see `edgews_fuzz::oracles::resp_decode` for what is checked.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| edgews_fuzz::oracles::resp_decode(data));
