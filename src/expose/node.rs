//! Node families: node_exporter's names, types, labels and HELP, plus cAdvisor's `machine_*`.
//! Every node metric's name lives here and only here.

use std::fmt;

use super::{Exposable, Out};
use crate::sample::node::FilesystemSample;
use crate::sample::node::LoadavgSample;
use crate::sample::node::MachineSample;
use crate::sample::node::MeminfoSample;
use crate::sample::node::PressureSample;
use crate::sample::node::StatSample;
use crate::sample::node::TimeSample;
use crate::sample::node::UnameSample;
use crate::sample::node::{CpuSample, MODES};
use crate::sample::node::{DiskstatsSample, SECTOR_BYTES};
use crate::sample::node::{FIELDS as NETDEV_FIELDS, NetdevSample};

impl Exposable for CpuSample {
    fn expose(&self, out: &mut Out<'_, '_>) -> fmt::Result {
        let mut f = out.counter("node_cpu_seconds", "Seconds the CPUs spent in each mode.")?;
        for c in &self.cpus {
            for (mode, v) in MODES[..8].iter().zip(&c.seconds[..8]) {
                if let Some(v) = v {
                    f.sample(&[("cpu", c.cpu.as_str()), ("mode", mode)][..], *v)?;
                }
            }
        }
        let mut f = out.counter(
            "node_cpu_guest_seconds",
            "Seconds the CPUs spent in guests (VMs) for each mode.",
        )?;
        for c in &self.cpus {
            for (mode, v) in ["user", "nice"].iter().zip(&c.seconds[8..]) {
                if let Some(v) = v {
                    f.sample(&[("cpu", c.cpu.as_str()), ("mode", mode)][..], *v)?;
                }
            }
        }
        Ok(())
    }
}

impl Exposable for MeminfoSample {
    fn expose(&self, out: &mut Out<'_, '_>) -> fmt::Result {
        for (name, v) in &self.fields {
            let metric = format!("node_memory_{name}");
            let help = format!("Memory information field {name}.");
            out.single_gauge(&metric, &help, *v)?;
        }
        Ok(())
    }
}

impl Exposable for LoadavgSample {
    fn expose(&self, out: &mut Out<'_, '_>) -> fmt::Result {
        out.single_gauge("node_load1", "1m load average.", self.load1)?;
        out.single_gauge("node_load5", "5m load average.", self.load5)?;
        out.single_gauge("node_load15", "15m load average.", self.load15)
    }
}

impl Exposable for FilesystemSample {
    fn expose(&self, out: &mut Out<'_, '_>) -> fmt::Result {
        type Get = fn(&crate::sample::node::FsUsage) -> f64;
        let families: [(&str, &str, Get); 5] = [
            (
                "node_filesystem_size_bytes",
                "Filesystem size in bytes.",
                |u| u.size,
            ),
            (
                "node_filesystem_free_bytes",
                "Filesystem free space in bytes.",
                |u| u.free,
            ),
            (
                "node_filesystem_avail_bytes",
                "Filesystem space available to non-root users in bytes.",
                |u| u.avail,
            ),
            (
                "node_filesystem_files",
                "Filesystem total file nodes.",
                |u| u.files,
            ),
            (
                "node_filesystem_files_free",
                "Filesystem total free file nodes.",
                |u| u.files_free,
            ),
        ];
        fn labels(fs: &crate::sample::node::FsStat) -> [(&'static str, &str); 3] {
            [
                ("device", fs.mount.device.as_str()),
                ("fstype", fs.mount.fstype.as_str()),
                ("mountpoint", fs.mount.mountpoint.as_str()),
            ]
        }
        for (name, help, get) in families {
            let mut f = out.gauge(name, help)?;
            for fs in &self.filesystems {
                if let Some(u) = &fs.usage {
                    f.sample(&labels(fs)[..], get(u))?;
                }
            }
        }
        let mut f = out.gauge("node_filesystem_readonly", "Filesystem read-only status.")?;
        for fs in &self.filesystems {
            let ro = fs.mount.read_only || fs.usage.is_some_and(|u| u.read_only);
            f.sample(&labels(fs)[..], if ro { 1.0 } else { 0.0 })?;
        }
        let mut f = out.gauge(
            "node_filesystem_device_error",
            "Whether an error occurred while getting statistics for the given device.",
        )?;
        for fs in &self.filesystems {
            f.sample(&labels(fs)[..], if fs.usage.is_none() { 1.0 } else { 0.0 })?;
        }
        self.expose_root(out)
    }
}

/// The label set of a root-cgroup (`id="/"`) series for one filesystem, as the cgroup collector writes
/// the root's identity.
fn root_labels(device: &str) -> [(&'static str, &str); 7] {
    [
        ("container", ""),
        ("device", device),
        ("id", "/"),
        ("image", ""),
        ("name", ""),
        ("namespace", ""),
        ("pod", ""),
    ]
}

/// cAdvisor's I/O detail of the root cgroup's filesystems, from /proc/diskstats: (name, HELP, whether a
/// counter, field index, scale). Times are in milliseconds there; cAdvisor divides them by 1e9 (its
/// values are a million times too small), Stevedore by 1e3.
const ROOT_IO: [(&str, &str, bool, usize, f64); 9] = [
    (
        "container_fs_reads_merged",
        "Cumulative count of reads merged",
        true,
        1,
        1.0,
    ),
    (
        "container_fs_sector_reads",
        "Cumulative count of sector reads completed",
        true,
        2,
        1.0,
    ),
    (
        "container_fs_read_seconds",
        "Cumulative count of seconds spent reading",
        true,
        3,
        1e-3,
    ),
    (
        "container_fs_writes_merged",
        "Cumulative count of writes merged",
        true,
        5,
        1.0,
    ),
    (
        "container_fs_sector_writes",
        "Cumulative count of sector writes completed",
        true,
        6,
        1.0,
    ),
    (
        "container_fs_write_seconds",
        "Cumulative count of seconds spent writing",
        true,
        7,
        1e-3,
    ),
    (
        "container_fs_io_current",
        "Number of I/Os currently in progress",
        false,
        8,
        1.0,
    ),
    (
        "container_fs_io_time_seconds",
        "Cumulative count of seconds spent doing I/Os",
        true,
        9,
        1e-3,
    ),
    (
        "container_fs_io_time_weighted_seconds",
        "Cumulative weighted I/O time in seconds",
        true,
        10,
        1e-3,
    ),
];

impl FilesystemSample {
    /// The diskstats figures of each block-backed filesystem of `devices` (`/dev/<name>`; a device
    /// reached through a symlink, such as /dev/mapper/*, has no line of that name and is left out).
    fn expose_root_io(
        &self,
        out: &mut Out<'_, '_>,
        devices: &[(&str, &crate::sample::node::FsUsage)],
    ) -> fmt::Result {
        let disks: Vec<(&str, &crate::sample::node::DiskStat)> = (devices.iter())
            .filter_map(|(device, _)| {
                let name = device.strip_prefix("/dev/")?;
                Some((*device, self.disks.iter().find(|d| d.device == name)?))
            })
            .collect();
        for (name, help, is_counter, field, scale) in ROOT_IO {
            let mut f = if is_counter {
                out.counter(name, help)?
            } else {
                out.gauge(name, help)?
            };
            for (device, d) in &disks {
                if let Some(v) = d.fields.get(field) {
                    f.sample(&root_labels(device)[..], v * scale)?;
                }
            }
        }
        Ok(())
    }

    /// cAdvisor's filesystem figures of the root cgroup (`id="/"`), one series per filesystem, labelled
    /// as cAdvisor labels them: the device for block-backed mounts, the mount point for the others
    /// (tmpfs). A device mounted at several places is reported once, at its first mount.
    fn expose_root(&self, out: &mut Out<'_, '_>) -> fmt::Result {
        type Get = fn(&crate::sample::node::FsUsage) -> f64;
        let families: [(&str, &str, Get); 4] = [
            (
                "container_fs_limit_bytes",
                "Number of bytes that can be consumed by the container on this filesystem.",
                |u| u.size,
            ),
            (
                "container_fs_usage_bytes",
                "Number of bytes that are consumed by the container on this filesystem.",
                |u| u.size - u.free,
            ),
            ("container_fs_inodes_total", "Number of Inodes", |u| u.files),
            (
                "container_fs_inodes_free",
                "Number of available Inodes",
                |u| u.files_free,
            ),
        ];
        let mut seen = std::collections::HashSet::new();
        let devices: Vec<(&str, &crate::sample::node::FsUsage)> = (self.filesystems.iter())
            .filter_map(|fs| {
                let m = &fs.mount;
                let device = if m.device.starts_with("/dev/") {
                    m.device.as_str()
                } else {
                    m.mountpoint.as_str()
                };
                Some((device, fs.usage.as_ref()?))
            })
            .filter(|(device, _)| seen.insert(*device))
            .collect();
        self.expose_root_io(out, &devices)?;
        // Each running container's label set, built once for the five families below.
        let layer_labels: Vec<_> = (self.layers.iter())
            .map(|row| row.identity.labels(&self.layer_columns))
            .collect();
        for (name, help, get) in families {
            let mut f = out.gauge(name, help)?;
            for (device, u) in &devices {
                f.sample(&root_labels(device)[..], get(u))?;
            }
            // Each running container's writable layer: its usage, and its filesystem's size and inodes.
            for (row, labels) in self.layers.iter().zip(&layer_labels) {
                let v = match &row.usage.fs {
                    _ if name == "container_fs_usage_bytes" => row.usage.bytes,
                    Some(fs) => get(fs),
                    None => continue,
                };
                f.sample_with(labels, &["device"], &[&row.usage.device], v)?;
            }
        }
        if !self.layers.is_empty() {
            let mut f = out.gauge(
                "stevedore_container_fs_inodes_used",
                "Inodes used by the container's writable layer (files, directories, links).",
            )?;
            for (row, labels) in self.layers.iter().zip(&layer_labels) {
                f.sample_with(labels, &["device"], &[&row.usage.device], row.usage.inodes)?;
            }
        }
        Ok(())
    }
}

impl Exposable for NetdevSample {
    fn expose(&self, out: &mut Out<'_, '_>) -> fmt::Result {
        for (i, field) in NETDEV_FIELDS.iter().enumerate() {
            let name = format!("node_network_{field}");
            let help = format!("Network device statistic {field}.");
            let mut f = out.counter(&name, &help)?;
            for d in &self.devices {
                f.sample(&[("device", d.device.as_str())][..], d.values[i])?;
            }
        }
        Ok(())
    }
}

/// /proc/diskstats fields by position: (name, help, kind, scale).
enum Kind {
    Counter,
    Gauge,
}
const DISK_FIELDS: [(&str, &str, Kind, f64); 17] = [
    (
        "node_disk_reads_completed",
        "The total number of reads completed successfully.",
        Kind::Counter,
        1.0,
    ),
    (
        "node_disk_reads_merged",
        "The total number of reads merged.",
        Kind::Counter,
        1.0,
    ),
    (
        "node_disk_read_bytes",
        "The total number of bytes read successfully.",
        Kind::Counter,
        SECTOR_BYTES,
    ),
    (
        "node_disk_read_time_seconds",
        "The total number of seconds spent by all reads.",
        Kind::Counter,
        0.001,
    ),
    (
        "node_disk_writes_completed",
        "The total number of writes completed successfully.",
        Kind::Counter,
        1.0,
    ),
    (
        "node_disk_writes_merged",
        "The number of writes merged.",
        Kind::Counter,
        1.0,
    ),
    (
        "node_disk_written_bytes",
        "The total number of bytes written successfully.",
        Kind::Counter,
        SECTOR_BYTES,
    ),
    (
        "node_disk_write_time_seconds",
        "This is the total number of seconds spent by all writes.",
        Kind::Counter,
        0.001,
    ),
    (
        "node_disk_io_now",
        "The number of I/Os currently in progress.",
        Kind::Gauge,
        1.0,
    ),
    (
        "node_disk_io_time_seconds",
        "Total seconds spent doing I/Os.",
        Kind::Counter,
        0.001,
    ),
    (
        "node_disk_io_time_weighted_seconds",
        "The weighted # of seconds spent doing I/Os.",
        Kind::Counter,
        0.001,
    ),
    (
        "node_disk_discards_completed",
        "The total number of discards completed successfully.",
        Kind::Counter,
        1.0,
    ),
    (
        "node_disk_discards_merged",
        "The total number of discards merged.",
        Kind::Counter,
        1.0,
    ),
    (
        "node_disk_discarded_sectors",
        "The total number of sectors discarded successfully.",
        Kind::Counter,
        1.0,
    ),
    (
        "node_disk_discard_time_seconds",
        "This is the total number of seconds spent by all discards.",
        Kind::Counter,
        0.001,
    ),
    (
        "node_disk_flush_requests",
        "The total number of flush requests completed successfully",
        Kind::Counter,
        1.0,
    ),
    (
        "node_disk_flush_requests_time_seconds",
        "This is the total number of seconds spent by all flush requests.",
        Kind::Counter,
        0.001,
    ),
];

impl Exposable for DiskstatsSample {
    fn expose(&self, out: &mut Out<'_, '_>) -> fmt::Result {
        for (i, (name, help, kind, scale)) in DISK_FIELDS.iter().enumerate() {
            if !self.disks.iter().any(|d| d.fields.len() > i) {
                continue;
            }
            let mut f = match kind {
                Kind::Counter => out.counter(name, help)?,
                Kind::Gauge => out.gauge(name, help)?,
            };
            for d in &self.disks {
                if let Some(v) = d.fields.get(i) {
                    f.sample(&[("device", d.device.as_str())][..], v * scale)?;
                }
            }
        }
        Ok(())
    }
}

impl Exposable for StatSample {
    fn expose(&self, out: &mut Out<'_, '_>) -> fmt::Result {
        if let Some(v) = self.intr {
            out.single_counter("node_intr", "Total number of interrupts serviced.", v)?;
        }
        if let Some(v) = self.ctxt {
            out.single_counter(
                "node_context_switches",
                "Total number of context switches.",
                v,
            )?;
        }
        if let Some(v) = self.forks {
            out.single_counter("node_forks", "Total number of forks.", v)?;
        }
        if let Some(v) = self.btime {
            out.single_gauge("node_boot_time_seconds", "Node boot time, in unixtime.", v)?;
        }
        if let Some(v) = self.procs_running {
            out.single_gauge(
                "node_procs_running",
                "Number of processes in runnable state.",
                v,
            )?;
        }
        if let Some(v) = self.procs_blocked {
            out.single_gauge(
                "node_procs_blocked",
                "Number of processes blocked waiting for I/O to complete.",
                v,
            )?;
        }
        Ok(())
    }
}

impl Exposable for TimeSample {
    fn expose(&self, out: &mut Out<'_, '_>) -> fmt::Result {
        out.single_gauge(
            "node_time_seconds",
            "System time in seconds since epoch (1970).",
            self.now,
        )?;
        if let Some((zone, offset)) = &self.zone {
            out.gauge(
                "node_time_zone_offset_seconds",
                "System time zone offset in seconds.",
            )?
            .sample(&[("time_zone", zone.as_str())][..], *offset)?;
        }
        if self.clocksources.iter().any(|c| !c.available.is_empty()) {
            let mut f = out.gauge(
                "node_time_clocksource_available_info",
                "Available clocksources read from '/sys/devices/system/clocksource'.",
            )?;
            for c in &self.clocksources {
                for a in &c.available {
                    f.sample(
                        &[("clocksource", a.as_str()), ("device", c.device.as_str())][..],
                        1.0,
                    )?;
                }
            }
        }
        if self.clocksources.iter().any(|c| c.current.is_some()) {
            let mut f = out.gauge(
                "node_time_clocksource_current_info",
                "Current clocksource read from '/sys/devices/system/clocksource'.",
            )?;
            for c in &self.clocksources {
                if let Some(cur) = &c.current {
                    f.sample(
                        &[("clocksource", cur.as_str()), ("device", c.device.as_str())][..],
                        1.0,
                    )?;
                }
            }
        }
        Ok(())
    }
}

impl Exposable for PressureSample {
    fn expose(&self, out: &mut Out<'_, '_>) -> fmt::Result {
        // The system-wide cpu "full" line is undefined (always 0 since 5.13): omitted, as node_exporter does.
        let rows = [
            (
                "node_pressure_cpu_waiting_seconds",
                "Total time in seconds that processes have waited for CPU time",
                self.cpu.some,
            ),
            (
                "node_pressure_io_waiting_seconds",
                "Total time in seconds that processes have waited due to IO congestion",
                self.io.some,
            ),
            (
                "node_pressure_io_stalled_seconds",
                "Total time in seconds no process could make progress due to IO congestion",
                self.io.full,
            ),
            (
                "node_pressure_memory_waiting_seconds",
                "Total time in seconds that processes have waited for memory",
                self.memory.some,
            ),
            (
                "node_pressure_memory_stalled_seconds",
                "Total time in seconds no process could make progress due to memory congestion",
                self.memory.full,
            ),
            (
                "node_pressure_irq_stalled_seconds",
                "Total time in seconds no process could make progress due to IRQ congestion",
                self.irq.and_then(|p| p.full),
            ),
        ];
        for (name, help, v) in rows {
            if let Some(v) = v {
                out.single_counter(name, help, v)?;
            }
        }
        Ok(())
    }
}

impl Exposable for UnameSample {
    fn expose(&self, out: &mut Out<'_, '_>) -> fmt::Result {
        out.gauge(
            "node_uname_info",
            "Labeled system information as provided by the uname system call.",
        )?
        .sample(
            &[
                ("domainname", self.domainname.as_str()),
                ("machine", self.machine.as_str()),
                ("nodename", self.nodename.as_str()),
                ("release", self.release.as_str()),
                ("sysname", self.sysname.as_str()),
                ("version", self.version.as_str()),
            ][..],
            1.0,
        )
    }
}

impl Exposable for MachineSample {
    fn expose(&self, out: &mut Out<'_, '_>) -> fmt::Result {
        let labels = [
            ("boot_id", self.boot_id.as_str()),
            ("machine_id", self.machine_id.as_str()),
            ("system_uuid", self.system_uuid.as_str()),
        ];
        if let Some(v) = self.cpu_cores {
            out.gauge("machine_cpu_cores", "Number of logical CPU cores.")?
                .sample(&labels[..], v)?;
        }
        if let Some(v) = self.memory_bytes {
            out.gauge(
                "machine_memory_bytes",
                "Amount of memory installed on the machine.",
            )?
            .sample(&labels[..], v)?;
        }
        Ok(())
    }
}
