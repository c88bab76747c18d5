//! The exporter's own metrics: `stevedore_build_info` and the standard `process_*` families, read from
//! this process's /proc/self (always the real /proc, whatever --path.procfs says).

use std::fmt;

use super::Out;

pub(crate) fn expose_self(out: &mut Out<'_, '_>) -> fmt::Result {
    out.gauge(
        "stevedore_build_info",
        "A metric with a constant '1' value labeled by version, revision, and rustc from which stevedore was built.",
    )?
    .sample(
        &[
            ("version", env!("CARGO_PKG_VERSION")),
            ("revision", env!("STEVEDORE_REVISION")),
            ("rustc", env!("STEVEDORE_RUSTC_VERSION")),
        ][..],
        1.0,
    )?;

    // Each family is emitted only when its value could be read: omit, never zero.
    let me = procfs::process::Process::myself().ok();
    let stat = me.as_ref().and_then(|p| p.stat().ok());
    let tps = procfs::ticks_per_second() as f64;
    if let Some(stat) = &stat {
        out.single_counter(
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds.",
            (stat.utime + stat.stime) as f64 / tps,
        )?;
    }
    if let Some(p) = &me
        && let Ok(n) = p.fd_count()
    {
        out.single_gauge(
            "process_open_fds",
            "Number of open file descriptors.",
            n as f64,
        )?;
    }
    if let Some(p) = &me
        && let Ok(limits) = p.limits()
        && let procfs::process::LimitValue::Value(max) = limits.max_open_files.soft_limit
    {
        out.single_gauge(
            "process_max_fds",
            "Maximum number of open file descriptors.",
            max as f64,
        )?;
    }
    if let Some(stat) = &stat {
        out.single_gauge(
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes.",
            stat.vsize as f64,
        )?;
        out.single_gauge(
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
            (stat.rss * procfs::page_size()) as f64,
        )?;
        if let Ok(boot) = procfs::boot_time_secs() {
            out.single_gauge(
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds.",
                boot as f64 + stat.starttime as f64 / tps,
            )?;
        }
    }
    Ok(())
}
