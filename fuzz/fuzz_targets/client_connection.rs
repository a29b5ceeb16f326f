#![no_main]
//! `cargo fuzz run client_connection`: see `edgews_fuzz::oracles::client_connection` for what is checked.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| edgews_fuzz::oracles::client_connection(data));
