#![no_main]
//! Fuzz target: see `stevedore::fuzz::kubelet`.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| stevedore::fuzz::kubelet(data));
