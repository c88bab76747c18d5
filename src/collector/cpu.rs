//! `cpu`: per-CPU time by mode from /proc/stat.

use std::collections::HashMap;
use std::sync::Mutex;

use super::{Paths, num, read, user_hz};
use crate::expose::Exposable;
use crate::scrape::{CollectError, Collector};

/// The modes of a /proc/stat `cpuN` line, in file order. `guest` and `guest_nice` are reported separately
/// (node_cpu_guest_seconds_total), as node_exporter does.
pub const MODES: [&str; 10] = [
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
pub struct CpuTimes {
    pub cpu: String,
    pub seconds: [Option<f64>; 10],
}

#[derive(Debug, Clone, PartialEq)]
pub struct CpuSample {
    pub cpus: Vec<CpuTimes>,
}

/// Parses the `cpuN` lines of /proc/stat (the aggregate `cpu` line is skipped).
pub fn parse(text: &str, hz: f64) -> Result<CpuSample, String> {
    let mut cpus = Vec::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("cpu") else {
            continue;
        };
        if rest.starts_with(char::is_whitespace) {
            continue; // the aggregate "cpu  ..." line
        }
        let mut fields = rest.split_whitespace();
        let id = fields.next().unwrap_or_default();
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("unexpected line {line:?}"));
        }
        let mut seconds = [None; 10];
        let mut n = 0;
        for (slot, field) in seconds.iter_mut().zip(fields) {
            let v = num(field).ok_or_else(|| format!("bad value {field:?} in line {line:?}"))?;
            *slot = Some(v / hz);
            n += 1;
        }
        if n < 4 {
            return Err(format!("truncated line {line:?}"));
        }
        cpus.push(CpuTimes {
            cpu: id.to_string(),
            seconds,
        });
    }
    if cpus.is_empty() {
        return Err("no cpuN lines".to_string());
    }
    Ok(CpuSample { cpus })
}

/// Some kernels let idle and iowait jump back a little; node_exporter keeps the previous value when a
/// counter goes back by less than this many seconds, so rates never see a negative step.
const JUMP_BACK_SECONDS: f64 = 3.0;

pub struct CpuCollector {
    paths: Paths,
    hz: f64,
    previous: Mutex<HashMap<String, [Option<f64>; 10]>>,
}

impl CpuCollector {
    pub fn new(paths: Paths) -> Self {
        CpuCollector {
            paths,
            hz: user_hz(),
            previous: Mutex::new(HashMap::new()),
        }
    }

    fn keep_monotonic(&self, sample: &mut CpuSample) {
        let mut prev = self.previous.lock().unwrap_or_else(|p| p.into_inner());
        let mut next = HashMap::with_capacity(sample.cpus.len());
        for cpu in &mut sample.cpus {
            if let Some(old) = prev.get(&cpu.cpu) {
                for (new, old) in cpu.seconds.iter_mut().zip(old) {
                    if let (Some(n), Some(o)) = (*new, *old)
                        && n < o
                        && o - n < JUMP_BACK_SECONDS
                    {
                        *new = Some(o);
                    }
                }
            }
            next.insert(cpu.cpu.clone(), cpu.seconds);
        }
        *prev = next;
    }
}

impl Collector for CpuCollector {
    fn name(&self) -> &'static str {
        "cpu"
    }
    fn collect(&self) -> Result<Box<dyn Exposable>, CollectError> {
        let path = self.paths.proc("stat");
        let mut sample =
            parse(&read(&path)?, self.hz).map_err(|e| CollectError::parse(&path, e))?;
        self.keep_monotonic(&mut sample);
        Ok(Box::new(sample))
    }
}
