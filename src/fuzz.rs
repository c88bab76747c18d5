//! Entry points for the fuzz targets under `fuzz/` (cargo fuzz): every parser of untrusted input, fed
//! arbitrary bytes. Not part of the program; kept here so the parsers stay private. Each function must
//! return for any input: a panic is a bug the fuzzer reports.

use crate::{cgroup, collector, expose, http, parse, source, webconfig};

/// Keeps a result from being optimized away.
fn keep<T>(x: T) {
    std::hint::black_box(x);
}

/// The first byte picks the parser, the rest is its input.
fn split(data: &[u8]) -> Option<(u8, &str)> {
    let (&pick, rest) = data.split_first()?;
    Some((pick, std::str::from_utf8(rest).ok()?))
}

/// /proc and /sys text files: stat (cpu lines and counters), meminfo, loadavg, net/dev, diskstats,
/// pressure, mountinfo, cpuinfo, a process's stat line.
pub fn procfs(data: &[u8]) {
    let Some((pick, text)) = split(data) else {
        return;
    };
    match pick % 9 {
        0 => keep(collector::cpu::parse(text, 100.0)),
        1 => keep(collector::stat::parse(text)),
        2 => keep(collector::meminfo::parse(text)),
        3 => keep(collector::loadavg::parse(text)),
        4 => keep(collector::netdev::parse(text)),
        5 => keep(collector::diskstats::parse(text)),
        6 => keep(parse::parse_psi(text)),
        7 => keep(collector::filesystem::parse_mountinfo(text)),
        _ => {
            keep(collector::machine::count_processors(text));
            keep(collector::cgroup::stat_start_ticks(text));
            keep(collector::cgroup::stat_state(text));
            keep(collector::cgroup::soft_open_files(text));
        }
    }
}

/// cgroup v1 and v2 files: memory.stat, blkio, io.stat, cpu.stat, cpu.max, `key value` files.
pub fn cgroup_files(data: &[u8]) {
    let Some((pick, text)) = split(data) else {
        return;
    };
    match pick % 6 {
        0 => keep(cgroup::v1::parse_memory_stat(Some(1.0), text)),
        1 => keep(cgroup::v1::parse_blkio(text)),
        2 => keep(cgroup::v2::parse_io_stat(text)),
        3 => keep(cgroup::v2::parse_cpu_stat(text)),
        4 => keep(cgroup::v2::parse_cpu_max(text)),
        _ => keep(cgroup::v2::parse_memory(None, text)),
    }
}

/// A cgroup path, as discovery finds it: which container, pod or runtime it is.
pub fn cgroup_path(data: &[u8]) {
    if let Ok(path) = std::str::from_utf8(data) {
        keep(cgroup::classify(path));
    }
}

/// The kubelet's /stats/summary and /pods answers.
pub fn kubelet(data: &[u8]) {
    let Some((pick, text)) = split(data) else {
        return;
    };
    if pick % 2 == 0 {
        keep(serde_json::from_str::<crate::sample::kubelet::Summary>(
            text,
        ));
    } else if let Ok((pods, _)) = source::kubernetes::parse_pod_list(text) {
        // What the collectors make of them.
        keep(source::kubernetes::PodIndex::build(
            &pods
                .into_iter()
                .map(std::sync::Arc::new)
                .collect::<Vec<_>>(),
        ));
    }
}

/// Docker's stats API answer (stats mode) and its timestamps.
pub fn docker_stats(data: &[u8]) {
    let Some((pick, text)) = split(data) else {
        return;
    };
    if pick % 2 == 0 {
        if let Ok(r) = serde_json::from_str::<bollard::models::ContainerStatsResponse>(text) {
            keep(source::docker::from_stats(&r));
        }
    } else {
        keep(source::docker::parse_time(text));
    }
}

/// A scrape's query string (`collect[]`, `exclude[]`) and `Accept` header.
pub fn http_request(data: &[u8]) {
    let Some((pick, text)) = split(data) else {
        return;
    };
    if pick % 2 == 0 {
        keep(http::select(Some(text), &["cpu", "meminfo", "cgroup"]));
    } else {
        keep(expose::Format::negotiate(Some(text)));
    }
}

/// The web configuration file (`--web.config.file`), a basic `Authorization` header, and the subject
/// alternative names of a client certificate (DER, not yet verified with `RequireAnyClientCert`).
pub fn web_config(data: &[u8]) {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    match pick % 3 {
        0 => {
            if let Ok(text) = std::str::from_utf8(rest) {
                keep(webconfig::file::parse(
                    text,
                    std::path::Path::new("/etc/stevedore"),
                ));
            }
        }
        1 => keep(webconfig::credentials(rest)),
        _ => keep(webconfig::tls::subject_alt_names(rest)),
    }
}
