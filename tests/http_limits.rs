//! Limits of the server: a hung collector times out and the rest is served, concurrent scrapes share
//! one collection and the excess gets 503, SIGTERM shuts down gracefully.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

/// A FIFO in place of /proc/meminfo blocks every read until a writer appears: a real hung file.
fn procfs_with_blocking_meminfo() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    extract_procfs(dir.path());
    let proc = dir.path().join("fixtures/proc");
    std::fs::remove_file(proc.join("meminfo")).unwrap();
    let status = Command::new("mkfifo")
        .arg(proc.join("meminfo"))
        .status()
        .unwrap();
    assert!(status.success());
    (dir, proc)
}

#[test]
fn a_hung_collector_times_out_and_the_rest_is_served() {
    let (_dir, proc) = procfs_with_blocking_meminfo();
    let e = Exporter::start(&[
        &format!("--path.procfs={}", proc.display()),
        "--collect.timeout=1s",
        "--collect.min-age=0",
        "--no-collector.machine",
    ]);
    let start = Instant::now();
    let s = parse_exposition(&e.metrics());
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "{took:?}"
    );
    assert_eq!(collector_success(&s, "meminfo"), Some(0.0));
    assert_eq!(collector_success(&s, "cpu"), Some(1.0));
    // The hung read is still in flight: the next scrape skips it at once instead of waiting again.
    let start = Instant::now();
    let s = parse_exposition(&e.metrics());
    assert!(
        start.elapsed() < Duration::from_millis(900),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(collector_success(&s, "meminfo"), Some(0.0));
}

#[test]
fn concurrent_scrapes_share_one_collection_and_excess_gets_503() {
    let (_dir, proc) = procfs_with_blocking_meminfo();
    let e = Exporter::start(&[
        &format!("--path.procfs={}", proc.display()),
        "--collect.timeout=2s",
        "--collect.min-age=0",
        "--web.max-requests=2",
        "--no-collector.machine",
    ]);
    // Wait until the start-up collection (blocked on the FIFO for 2s) has timed out, then let its hung read
    // finish (a writer opens and closes the FIFO) so the next collection blocks on the FIFO anew.
    std::thread::sleep(Duration::from_millis(2500));
    drop(
        std::fs::OpenOptions::new()
            .write(true)
            .open(proc.join("meminfo"))
            .unwrap(),
    );
    std::thread::sleep(Duration::from_millis(200));
    let url = e.url("/metrics");
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || {
                let r = reqwest::blocking::get(url).unwrap();
                (r.status().as_u16(), r.text().unwrap())
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    // Two scrapes are in flight (waiting on the hung meminfo): a third is refused.
    let third = e.get("/metrics");
    assert_eq!(third.status(), 503);
    assert!(third.text().unwrap().contains("--web.max-requests"));
    let results: Vec<(u16, String)> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert!(results.iter().all(|(code, _)| *code == 200));
    // Both got the same collection: identical duration samples.
    let dur = |body: &str| {
        value(
            &parse_exposition(body),
            "stevedore_scrape_collector_duration_seconds",
            &[("collector", "cpu")],
        )
    };
    assert_eq!(dur(&results[0].1), dur(&results[1].1));
}

/// Sends SIGTERM and waits up to `secs` for a clean exit.
fn terminate(e: &mut Exporter, secs: u64) {
    let pid = e.child.id() as i32;
    Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(status) = e.child.try_wait().unwrap() {
            assert!(status.success(), "{status:?}");
            return;
        }
        assert!(Instant::now() < deadline, "did not exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn sigterm_shuts_down_gracefully() {
    let mut e = Exporter::start(&[]);
    let _ = e.metrics();
    terminate(&mut e, 5);
}

/// A read blocked for good (a FIFO in place of /proc/meminfo) does not hold the process after SIGTERM:
/// Kubernetes would otherwise kill it after the grace period, every time.
#[test]
fn sigterm_completes_while_a_read_is_blocked() {
    let (_dir, proc) = procfs_with_blocking_meminfo();
    let mut e = Exporter::start(&[
        &format!("--path.procfs={}", proc.display()),
        "--collect.timeout=1s",
    ]);
    // The scrape is served after the timeout, with meminfo's read still hanging on a blocking thread.
    let s = parse_exposition(&e.metrics());
    assert_eq!(collector_success(&s, "meminfo"), Some(0.0));
    terminate(&mut e, 5);
}
