#![no_main]
//! `cargo fuzz run handshake_response`: see `edgews_fuzz::oracles::handshake_response` for what is checked.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| edgews_fuzz::oracles::handshake_response(data));
