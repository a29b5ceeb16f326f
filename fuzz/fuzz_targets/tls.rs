#![no_main]
//! `cargo fuzz run tls`: see `edgews_fuzz::oracles::tls` for what is checked.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| edgews_fuzz::oracles::tls(data));
