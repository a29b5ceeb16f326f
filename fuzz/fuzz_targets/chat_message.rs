#![no_main]
//! `cargo fuzz run chat_message`: see `edgews_fuzz::oracles::chat_message` for what is checked.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| edgews_fuzz::oracles::chat_message(data));
