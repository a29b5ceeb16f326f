#![no_main]
//! `cargo fuzz run pubsub_control`: see `edgews_fuzz::oracles::pubsub_control` for what is checked.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| edgews_fuzz::oracles::pubsub_control(data));
