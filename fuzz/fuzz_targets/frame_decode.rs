#![no_main]
//! `cargo fuzz run frame_decode`: see `edgews_fuzz::oracles::frame_decode` for what is checked.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| edgews_fuzz::oracles::frame_decode(data));
