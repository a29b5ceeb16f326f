#![no_main]
//! `cargo fuzz run forwarded`: see `edgews_fuzz::oracles::forwarded` for what is checked.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| edgews_fuzz::oracles::forwarded(data));
