#![no_main]
//! Fuzz target: see `stevedore::fuzz::docker_stats`.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| stevedore::fuzz::docker_stats(data));
