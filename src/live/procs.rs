//! A container's process table, as cAdvisor's web UI shows it (pid, user, CPU %, RSS, command), read from
//! `/proc/<pid>` for the pids in the container's cgroup. Read only when a container's page asks for it;
//! CPU % is over the time since that page's last read (the first read: since the process started, as
//! `ps` computes it).

use std::collections::HashMap;
use std::time::Instant;

use serde::Serialize;

use crate::cgroup::{Files, Layout};
use crate::collector::Paths;

/// At most this many processes are listed (the busiest first), so a fork bomb costs a bounded read.
pub(crate) const MAX_PROCESSES: usize = 200;

#[derive(Debug, Serialize, Clone, PartialEq)]
pub(crate) struct Process {
    pub pid: u32,
    pub user: String,
    /// Percent of one core.
    pub cpu: Option<f64>,
    pub rss: f64,
    pub threads: Option<f64>,
    pub state: String,
    /// The command line (arguments joined by spaces, at most 512 characters), or `[comm]` for a process
    /// without one.
    pub command: String,
}

/// What one stat line says: CPU ticks, start ticks, RSS pages, threads, state.
struct Stat {
    ticks: f64,
    start: f64,
    rss_pages: f64,
    threads: f64,
    state: char,
    comm: String,
}

/// Fields after the command's last `)`: state is field 3, utime 14, stime 15, num_threads 20, starttime
/// 22, rss 24 (1-based, as proc(5) numbers them).
fn parse_stat(text: &str) -> Option<Stat> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text.get(open + 1..close)?.to_string();
    let rest: Vec<&str> = text.get(close + 1..)?.split_whitespace().collect();
    let f = |n: usize| rest.get(n - 3).and_then(|v| v.parse::<f64>().ok());
    Some(Stat {
        state: rest.first()?.chars().next()?,
        ticks: f(14)? + f(15)?,
        threads: f(20)?,
        start: f(22)?,
        rss_pages: f(24)?,
        comm,
    })
}

fn uid_of(status: &str) -> Option<u32> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// uid → name from the host's `/etc/passwd` (under --path.rootfs); a uid it lacks is shown as a number.
fn users(paths: &Paths) -> HashMap<u32, String> {
    let text = crate::sys::read_capped(&paths.rootfs_path("/etc/passwd")).unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let mut f = l.split(':');
            let name = f.next()?;
            let uid = f.nth(1)?.parse().ok()?;
            Some((uid, name.to_string()))
        })
        .collect()
}

fn command(cmdline: &[u8], comm: &str) -> String {
    let args: Vec<String> = cmdline
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let line = if args.is_empty() {
        format!("[{comm}]")
    } else {
        args.join(" ")
    };
    line.chars().take(512).collect()
}

/// The CPU ticks each process had at the last read of one container's table, by (pid, start ticks).
#[derive(Default)]
pub(crate) struct Previous {
    pub(crate) at: Option<Instant>,
    pub(crate) ticks: HashMap<(u32, u64), f64>,
}

/// The processes of the cgroup `rel` (an id the collection has just reported, never a client's path).
pub(crate) fn read(paths: &Paths, layout: &Layout, rel: &str, prev: &mut Previous) -> Vec<Process> {
    let mut buf = Vec::new();
    let pids = layout.procs(rel, &mut Files::plain(&mut buf));
    let hz = clock_ticks();
    let page = page_size();
    let uptime = crate::sys::read_capped(&paths.proc("uptime"))
        .ok()
        .and_then(|t| t.split_whitespace().next()?.parse::<f64>().ok());
    let users = users(paths);
    let now = Instant::now();
    let dt = prev.at.map(|at| now.duration_since(at).as_secs_f64());
    let mut ticks = HashMap::new();
    let mut out = Vec::new();
    for pid in pids {
        let Ok(stat) = std::fs::read_to_string(paths.proc(&format!("{pid}/stat"))) else {
            continue; // gone meanwhile
        };
        let Some(s) = parse_stat(&stat) else { continue };
        let key = (pid, s.start as u64);
        let cpu = match (prev.ticks.get(&key), dt) {
            (Some(before), Some(dt)) if dt > 0.0 => Some((s.ticks - before) / hz / dt * 100.0),
            _ => uptime
                .map(|up| up - s.start / hz)
                .filter(|age| *age > 0.0)
                .map(|age| s.ticks / hz / age * 100.0),
        };
        ticks.insert(key, s.ticks);
        let status =
            std::fs::read_to_string(paths.proc(&format!("{pid}/status"))).unwrap_or_default();
        let user = match uid_of(&status) {
            Some(uid) => users.get(&uid).cloned().unwrap_or_else(|| uid.to_string()),
            None => String::new(),
        };
        let cmdline = std::fs::read(paths.proc(&format!("{pid}/cmdline"))).unwrap_or_default();
        out.push(Process {
            pid,
            user,
            cpu: cpu.map(|c| (c.max(0.0) * 10.0).round() / 10.0),
            rss: s.rss_pages * page,
            threads: Some(s.threads),
            state: s.state.to_string(),
            command: command(&cmdline[..cmdline.len().min(4096)], &s.comm),
        });
    }
    prev.at = Some(now);
    prev.ticks = ticks;
    out.sort_by(|a, b| {
        b.cpu
            .unwrap_or(0.0)
            .total_cmp(&a.cpu.unwrap_or(0.0))
            .then(a.pid.cmp(&b.pid))
    });
    out.truncate(MAX_PROCESSES);
    out
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let v = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if v > 0 { v as f64 } else { 100.0 }
}

fn page_size() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let v = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if v > 0 { v as f64 } else { 4096.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_with_odd_commands() {
        let line = "42 (a (b) c) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0 1000 123456 77 \
                    18446744073709551615";
        let s = parse_stat(line).unwrap();
        assert_eq!(
            (s.state, s.ticks, s.threads, s.start, s.rss_pages),
            ('S', 300.0, 3.0, 1000.0, 77.0)
        );
        assert_eq!(s.comm, "a (b) c");
        assert!(parse_stat("42 (x) S 1").is_none());
        assert_eq!(command(b"sh\0-c\0sleep 1\0", "sh"), "sh -c sleep 1");
        assert_eq!(command(b"", "kworker/0:1"), "[kworker/0:1]");
        assert_eq!(
            uid_of("Name:\tx\nUid:\t1000\t1000\t1000\t1000\n"),
            Some(1000)
        );
    }

    #[test]
    fn reads_this_process() {
        // This test's own process, through the host's cgroup of it (/proc/self/cgroup names it).
        let paths = Paths::default();
        let Ok(layout) = Layout::detect(&paths.sys("fs/cgroup")) else {
            return;
        };
        let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
        let rel = own
            .lines()
            .find_map(|l| {
                let (_, rest) = l.split_once(':')?;
                let (ctrl, path) = rest.split_once(':')?;
                (ctrl.split(',').any(|c| c == "pids" || c == "memory") || ctrl.is_empty())
                    .then(|| path.to_string())
            })
            .unwrap();
        let mut prev = Previous::default();
        let procs = read(&paths, &layout, &rel, &mut prev);
        let me = procs.iter().find(|p| p.pid == std::process::id());
        let me = me.unwrap_or_else(|| panic!("pid {} not in {rel}: {procs:?}", std::process::id()));
        assert!(me.rss > 1e6, "{me:?}");
        assert!(me.command.contains("stevedore"), "{me:?}");
    }
}
