#![no_main]
//! Fuzz target: see `stevedore::fuzz::cgroup_path`.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| stevedore::fuzz::cgroup_path(data));
