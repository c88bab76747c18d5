#![no_main]
//! Fuzz target: see `stevedore::fuzz::http_request`.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| stevedore::fuzz::http_request(data));
