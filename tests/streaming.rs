//! A large exposition (many real cgroups) streams whole and identical in every format, and clients that
//! hang up mid-body free their slot.

mod common;

use std::io::Read;
use std::time::{Duration, Instant};

use common::*;

/// Empty cgroups made with mkdir under the v1 hierarchies (a folder this test owns), removed on drop.
struct ManyCgroups(Vec<std::path::PathBuf>);

impl ManyCgroups {
    fn make(n: usize) -> ManyCgroups {
        let mut made = Vec::new();
        for c in ["cpu", "cpuacct", "memory", "pids", "blkio"] {
            let base = std::path::Path::new("/sys/fs/cgroup")
                .join(c)
                .join("sdtest-stream");
            for i in 0..n {
                let dir = base
                    .join("docker")
                    .join(format!("{:064x}", 0xabc0_0000u64 + i as u64));
                std::fs::create_dir_all(&dir)
                    .unwrap_or_else(|e| panic!("mkdir {}: {e} (root, cgroup v1)", dir.display()));
                made.push(dir);
            }
            made.push(base.join("docker"));
            made.push(base);
        }
        ManyCgroups(made)
    }
}

impl Drop for ManyCgroups {
    fn drop(&mut self) {
        for d in &self.0 {
            let _ = std::fs::remove_dir(d);
        }
    }
}

/// Asserts two expositions of the same collection are the same, but for the exporter's own process_*
/// figures (read as each response is rendered); names the first line that differs.
fn assert_same_collection(a: &str, b: &str, what: &str) {
    let lines = |t: &str| {
        t.lines()
            .filter(|l| !l.starts_with("process_"))
            .map(String::from)
            .collect::<Vec<_>>()
    };
    let (a, b) = (lines(a), lines(b));
    if let Some((x, y)) = a.iter().zip(&b).find(|(x, y)| x != y) {
        panic!("{what}: first difference:\n{x}\n{y}");
    }
    assert_eq!(a.len(), b.len(), "{what}: line counts");
}

#[test]
fn a_large_exposition_streams_whole_in_every_format_and_a_client_may_hang_up() {
    use std::io::Write;
    let _cgroups = ManyCgroups::make(150);
    // One collection, served again to every request below (min-age), so the bodies can be compared.
    let e = Exporter::start(&[
        "--collect.min-age=1h",
        "--collector.disable-defaults",
        "--collector.cgroup",
        "--web.max-requests=1",
    ]);
    let client = reqwest::blocking::Client::new();
    let plain = client
        .get(e.url("/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let containers = plain
        .lines()
        .filter(|l| l.starts_with("container_cpu_usage_seconds_total{id=\"/sdtest-stream/"))
        .count();
    assert_eq!(containers, 150);
    // Many chunks of 64 KiB.
    assert!(plain.len() > 8 * 64 * 1024, "{} bytes", plain.len());
    assert_eq!(promtool_problems(&plain), Vec::<String>::new());

    let (_, unzipped) = get_gzip(&client, &e.url("/metrics"));
    assert_same_collection(&unzipped, &plain, "gzip body against the plain one");

    let om = client
        .get(e.url("/metrics"))
        .header("Accept", "application/openmetrics-text;version=1.0.0")
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(om.ends_with("# EOF\n"));
    let samples = |t: &str| t.lines().filter(|l| !l.starts_with('#')).count();
    assert_eq!(samples(&om), samples(&plain));

    // A client that reads a little and hangs up: the rendering stops, and the only in-flight slot
    // (--web.max-requests=1) is free again for the next scrape, within seconds.
    let slot_free = || {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let r = client.get(e.url("/metrics")).send().unwrap();
            if r.status() == 200 {
                return r.text().unwrap();
            }
            assert_eq!(r.status(), 503);
            assert!(Instant::now() < deadline, "the slot stayed taken");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    for _ in 0..3 {
        slot_free();
        let mut s = std::net::TcpStream::connect(&e.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(s, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut first = [0u8; 12];
        s.read_exact(&mut first).unwrap();
        assert_eq!(&first, b"HTTP/1.1 200");
        drop(s);
    }
    assert_same_collection(&slot_free(), &plain, "after the hang-ups");
}
