#![no_main]
//! `cargo fuzz run server_connection`: see `edgews_fuzz::oracles::server_connection` for what is checked.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| edgews_fuzz::oracles::server_connection(data));
