//! Node samples: what the node collectors read from /proc and /sys, typed. Data only.

use crate::parse::Psi;

/// The modes of a /proc/stat `cpuN` line, in file order. `guest` and `guest_nice` are reported separately
/// (node_cpu_guest_seconds_total), as node_exporter does.
pub(crate) const MODES: [&str; 10] = [
    "user",
    "nice",
    "system",
    "idle",
    "iowait",
    "irq",
    "softirq",
    "steal",
    "guest",
    "guest_nice",
];

/// Seconds spent in each mode by one CPU. A mode the kernel does not report is `None`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CpuTimes {
    pub cpu: String,
    pub seconds: [Option<f64>; 10],
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CpuSample {
    pub cpus: Vec<CpuTimes>,
}

/// Sector size used by /proc/diskstats, whatever the device's real sector size.
pub(crate) const SECTOR_BYTES: f64 = 512.0;

/// One device's fields after major, minor and name, in file order. Kernels print 11 (2.6+), 15 (4.18+)
/// or 17 (5.5+) of them; only those present are kept.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct DiskStat {
    pub device: String,
    pub fields: Vec<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct DiskstatsSample {
    pub disks: Vec<DiskStat>,
}

/// One line of /proc/<pid>/mountinfo, with the octal escapes (`\040` for a space) decoded.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Mount {
    pub device: String,
    pub mountpoint: String,
    pub fstype: String,
    pub read_only: bool,
}

/// statvfs figures of one filesystem, in bytes and inodes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct FsUsage {
    pub size: f64,
    pub free: f64,
    pub avail: f64,
    pub files: f64,
    pub files_free: f64,
    pub read_only: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FsStat {
    pub mount: Mount,
    /// `None`: statvfs failed or timed out (device_error).
    pub usage: Option<FsUsage>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FilesystemSample {
    pub filesystems: Vec<FsStat>,
    /// /proc/diskstats of the block devices these filesystems are on, by kernel name (`vda1`).
    pub disks: Vec<DiskStat>,
    /// Running containers' writable layers, as last measured in the background.
    pub layers: Vec<LayerRow>,
    /// The allowlisted runtime-label columns of `layers`' identities.
    pub layer_columns: Vec<(String, String)>,
}

/// One writable layer's figures at its last measurement.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LayerUsage {
    /// Bytes allocated to the layer's files.
    pub bytes: f64,
    /// Inodes the layer uses (files, directories, links), each once.
    pub inodes: f64,
    /// The filesystem holding it, as cAdvisor labels it: `/dev/<name>`, else `major:minor`.
    pub device: String,
    /// That filesystem's size and inodes (statvfs), at the same moment.
    pub fs: Option<FsUsage>,
}

/// A container's writable layer with the container's identity.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LayerRow {
    pub identity: crate::identity::Identity,
    pub usage: std::sync::Arc<LayerUsage>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct LoadavgSample {
    pub load1: f64,
    pub load5: f64,
    pub load15: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct MachineSample {
    pub cpu_cores: Option<f64>,
    pub memory_bytes: Option<f64>,
    pub boot_id: String,
    pub machine_id: String,
    pub system_uuid: String,
}

/// `(metric name suffix, value)`: `MemTotal_bytes`, `Active_anon_bytes`, `HugePages_Total`, ...
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct MeminfoSample {
    pub fields: Vec<(String, f64)>,
}

impl MeminfoSample {
    pub(crate) fn get(&self, name: &str) -> Option<f64> {
        self.fields.iter().find(|(n, _)| n == name).map(|(_, v)| *v)
    }
}

/// The /proc/net/dev columns in file order, named as node_exporter's `node_network_<name>_total`.
pub(crate) const FIELDS: [&str; 16] = [
    "receive_bytes",
    "receive_packets",
    "receive_errs",
    "receive_drop",
    "receive_fifo",
    "receive_frame",
    "receive_compressed",
    "receive_multicast",
    "transmit_bytes",
    "transmit_packets",
    "transmit_errs",
    "transmit_drop",
    "transmit_fifo",
    "transmit_colls",
    "transmit_carrier",
    "transmit_compressed",
];

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct NetDev {
    pub device: String,
    pub values: [f64; 16],
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct NetdevSample {
    pub devices: Vec<NetDev>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct PressureSample {
    pub cpu: Psi,
    pub io: Psi,
    pub memory: Psi,
    /// Only on kernels with CONFIG_IRQ_TIME_ACCOUNTING and PSI irq (6.1+).
    pub irq: Option<Psi>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct StatSample {
    pub intr: Option<f64>,
    pub ctxt: Option<f64>,
    pub btime: Option<f64>,
    pub forks: Option<f64>,
    pub procs_running: Option<f64>,
    pub procs_blocked: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ClockSource {
    /// The N of clocksourceN.
    pub device: String,
    pub available: Vec<String>,
    pub current: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TimeSample {
    pub now: f64,
    pub zone: Option<(String, f64)>,
    pub clocksources: Vec<ClockSource>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct UnameSample {
    pub sysname: String,
    pub release: String,
    pub version: String,
    pub machine: String,
    pub nodename: String,
    pub domainname: String,
}
