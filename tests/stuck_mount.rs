//! A mount whose statfs never answers (a FUSE filesystem that sleeps in statfs, as a dead NFS server
//! would) must not hang the scrape: it is reported with device_error 1 within the mount timeout, the
//! other mounts are still reported, and later scrapes do not wait on it again.

mod common;

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use common::{Exporter, collector_success, parse_exposition, promtool_problems, value};

struct StuckMount {
    server: Child,
    dir: tempfile::TempDir,
}

impl StuckMount {
    fn new() -> StuckMount {
        let dir = tempfile::tempdir().unwrap();
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/stuck_fs.py");
        let server = Command::new("/usr/bin/python3")
            .arg(script)
            .arg(dir.path())
            .spawn()
            .expect("python3 with fusepy (Debian's python3-fusepy; the README's test command installs it)");
        let mountpoint = dir.path().to_string_lossy().to_string();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .contains(&format!(" {mountpoint} "))
        {
            assert!(Instant::now() < deadline, "FUSE mount did not appear");
            std::thread::sleep(Duration::from_millis(50));
        }
        StuckMount { server, dir }
    }

    fn mountpoint(&self) -> String {
        self.dir.path().to_string_lossy().to_string()
    }
}

impl Drop for StuckMount {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
        let _ = Command::new("fusermount")
            .args(["-u", "-z"])
            .arg(self.dir.path())
            .status();
    }
}

#[test]
fn a_stuck_mount_does_not_hang_the_scrape() {
    let stuck = std::cell::RefCell::new(Some(StuckMount::new()));
    let mp = stuck.borrow().as_ref().unwrap().mountpoint();
    // A healthy tmpfs mounted after the stuck one, so it queues behind it: it must still be reported.
    let healthy = tempfile::tempdir().unwrap();
    let ok = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=8m", "stevedore-test"])
        .arg(healthy.path())
        .status()
        .unwrap();
    assert!(ok.success(), "mount tmpfs (the test runs as root)");
    let healthy_mp = healthy.path().to_string_lossy().to_string();
    struct Unmount(String);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(healthy_mp.clone());
    let e = Exporter::start(&[
        "--collect.min-age=0",
        "--collector.filesystem.mount-timeout=1s",
        "--collector.disable-defaults",
        "--collector.filesystem",
    ]);
    // If an assertion fails, the mount must go before the exporter: a statvfs thread still waiting on
    // it keeps the killed exporter from exiting, and the exporter's drop would wait forever.
    struct ReleaseFirst<'a>(&'a std::cell::RefCell<Option<StuckMount>>);
    impl Drop for ReleaseFirst<'_> {
        fn drop(&mut self) {
            self.0.borrow_mut().take();
        }
    }
    let _release = ReleaseFirst(&stuck);
    // The start-up collection met the stuck mount already; each scrape answers within the mount timeout.
    for round in 0..3 {
        let start = Instant::now();
        let body = e.metrics();
        let took = start.elapsed();
        assert!(
            took < Duration::from_millis(1800),
            "round {round}: scrape took {took:?}"
        );
        assert_eq!(promtool_problems(&body), Vec::<String>::new());
        let s = parse_exposition(&body);
        assert_eq!(collector_success(&s, "filesystem"), Some(1.0));
        assert_eq!(
            value(
                &s,
                "node_filesystem_device_error",
                &[("mountpoint", mp.as_str())]
            ),
            Some(1.0),
            "round {round}"
        );
        assert!(
            value(
                &s,
                "node_filesystem_size_bytes",
                &[("mountpoint", mp.as_str())]
            )
            .is_none()
        );
        assert!(value(&s, "node_filesystem_size_bytes", &[("mountpoint", "/")]).is_some());
        assert_eq!(
            value(
                &s,
                "node_filesystem_size_bytes",
                &[("mountpoint", healthy_mp.as_str())]
            ),
            Some(8.0 * 1024.0 * 1024.0),
            "round {round}: the mount queued behind the stuck one"
        );
    }
    let log = e.drain_log();
    let warned = log
        .iter()
        .filter(|l| l.contains("statvfs did not answer") && l.contains(&mp))
        .count();
    assert_eq!(warned, 1, "{log:#?}");
    // Once the mount is gone, so is its series.
    stuck.borrow_mut().take();
    std::thread::sleep(Duration::from_millis(300));
    let s = parse_exposition(&e.metrics());
    assert!(
        value(
            &s,
            "node_filesystem_device_error",
            &[("mountpoint", mp.as_str())]
        )
        .is_none()
    );
}
