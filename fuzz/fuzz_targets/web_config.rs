#![no_main]
//! Fuzz target: see `stevedore::fuzz::web_config`.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| stevedore::fuzz::web_config(data));
