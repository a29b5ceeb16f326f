#![no_main]
//! `cargo fuzz run redis_envelope`: see `edgews_fuzz::oracles::redis_envelope` for what is checked.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| edgews_fuzz::oracles::redis_envelope(data));
