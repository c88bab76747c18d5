#![no_main]
//! Fuzz target: see `stevedore::fuzz::procfs`.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| stevedore::fuzz::procfs(data));
