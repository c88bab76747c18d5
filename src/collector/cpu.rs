//! `cpu`: per-CPU time by mode from /proc/stat.

use crate::sample::node::{CpuSample, CpuTimes};
use std::collections::HashMap;
use std::sync::Mutex;

use super::{Built, Context, Decl, Paths, read};
use crate::parse::{num, user_hz};
use std::sync::Arc;

use crate::expose::Exposable;
use crate::scrape::{CollectError, Collector};

pub(crate) const DECL: Decl = Decl {
    name: "cpu",
    default_enabled: true,
    build,
};

fn build(cx: &Context<'_>) -> Result<Built, String> {
    Ok(Built::Run(Arc::new(CpuCollector::new(cx.paths.clone()))))
}

/// Parses the `cpuN` lines of /proc/stat (the aggregate `cpu` line is skipped).
pub(crate) fn parse(text: &str, hz: f64) -> Result<CpuSample, String> {
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
    crate::parse::first_of_each(&mut cpus, |c| c.cpu.clone());
    Ok(CpuSample { cpus })
}

/// Some kernels let idle and iowait jump back a little; node_exporter keeps the previous value when a
/// counter goes back by less than this many seconds, so rates never see a negative step.
const JUMP_BACK_SECONDS: f64 = 3.0;

pub(crate) struct CpuCollector {
    paths: Paths,
    hz: f64,
    previous: Mutex<HashMap<String, [Option<f64>; 10]>>,
}

impl CpuCollector {
    pub(crate) fn new(paths: Paths) -> Self {
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
    fn collect(&self) -> Result<Box<dyn Exposable>, CollectError> {
        let path = self.paths.proc("stat");
        let mut sample =
            parse(&read(&path)?, self.hz).map_err(|e| CollectError::parse(&path, e))?;
        self.keep_monotonic(&mut sample);
        Ok(Box::new(sample))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{clk_tck, procfs_member, fields_of, f};
    use crate::sample::node::MODES;

    #[test]
    fn cpu_per_mode_seconds_from_fixture() {
        let text = procfs_member("fixtures/proc/stat");
        let hz = clk_tck();
        let s = parse(&text, hz).unwrap();
        let cpu_lines = text
            .lines()
            .filter(|l| l.starts_with("cpu") && !l.starts_with("cpu "))
            .count();
        assert_eq!(s.cpus.len(), cpu_lines);
        for c in &s.cpus {
            let raw = fields_of(&text, &format!("cpu{} ", c.cpu));
            for (i, mode) in MODES.iter().enumerate() {
                assert_eq!(
                    c.seconds[i],
                    Some(f(raw[i + 1]) / hz),
                    "cpu{} {mode}",
                    c.cpu
                );
            }
        }
    }

    #[test]
    fn cpu_hostile() {
        let text = procfs_member("fixtures/proc/stat");
        // Older kernels print only 4 to 8 fields: the missing modes are absent, not zero.
        let short = text.replace(
            "cpu0 44490 19 21045 1087069 220 1 3410 0 0 0",
            "cpu0 44490 19 21045 1087069",
        );
        let s = parse(&short, 100.0).unwrap();
        assert_eq!(s.cpus[0].seconds[4], None);
        assert_eq!(s.cpus[0].seconds[3], Some(10870.69));
        // Truncated line, garbage value, empty file: errors that say what is wrong, never a panic.
        let truncated: String = text
            .lines()
            .map(|l| {
                if l.starts_with("cpu1 ") {
                    "cpu1 47869\n".to_string()
                } else {
                    format!("{l}\n")
                }
            })
            .collect();
        let err = parse(&truncated, 100.0).unwrap_err();
        assert!(err.contains("cpu1"), "{err}");
        assert!(
            parse(&text.replace("cpu2 46504", "cpu2 46x04"), 100.0)
                .unwrap_err()
                .contains("46x04")
        );
        assert!(parse("", 100.0).is_err());
        // Unexpected trailing fields are ignored; huge counters are kept.
        let extra = text.replace(
            "cpu3 47054 102 15683 1113230 533 0 60 0 0 0",
            "cpu3 18446744073709551616 102 15683 1113230 533 0 60 0 0 0 7 7",
        );
        let s = parse(&extra, 100.0).unwrap();
        assert_eq!(s.cpus[3].seconds[0], Some(18446744073709551616.0 / 100.0));
    }
}
