//! Fixture helpers shared by the unit tests (`crate::testutil`) and the integration tests
//! (`tests/common`, which includes this file by path): the recorded fixtures under `../shared/fixtures`,
//! the procfs ttar archive, and facts of this machine read independently of the exporter.
#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// `../shared/fixtures` beside the repository (override with STEVEDORE_FIXTURES).
pub fn fixtures_dir() -> PathBuf {
    if let Ok(p) = std::env::var("STEVEDORE_FIXTURES") {
        return PathBuf::from(p);
    }
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures");
    assert!(
        p.is_dir(),
        "fixtures not found at {} (set STEVEDORE_FIXTURES)",
        p.display()
    );
    p
}

/// One member of a ttar archive.
pub enum TtarEntry {
    Dir(String),
    File(String, Vec<u8>),
    Symlink(String, String),
}

/// Parses prometheus/procfs's ttar format: `Path:`/`Lines:` records with `NULLBYTE` for \0 and a trailing
/// `EOF` marking a file without a final newline; `Directory:` and `SymlinkTo:` records.
pub fn parse_ttar(text: &str) -> Vec<TtarEntry> {
    let lines: Vec<&str> = text.split('\n').collect();
    let mut out = Vec::new();
    let mut i = 0;
    let mut path: Option<String> = None;
    while i < lines.len() {
        let line = lines[i];
        i += 1;
        if let Some(p) = line.strip_prefix("Directory: ") {
            out.push(TtarEntry::Dir(p.to_string()));
        } else if let Some(p) = line.strip_prefix("Path: ") {
            path = Some(p.to_string());
        } else if let Some(target) = line.strip_prefix("SymlinkTo: ") {
            out.push(TtarEntry::Symlink(
                path.take().expect("SymlinkTo without Path"),
                target.to_string(),
            ));
        } else if let Some(n) = line.strip_prefix("Lines: ") {
            let n: usize = n.trim().parse().expect("Lines: N");
            let mut content = String::new();
            for k in 0..n {
                let l = lines[i + k];
                if k == n - 1 && l.ends_with("EOF") {
                    content.push_str(&l[..l.len() - 3]);
                } else {
                    content.push_str(l);
                    content.push('\n');
                }
            }
            i += n;
            let bytes = content.replace("NULLBYTE", "\0").into_bytes();
            out.push(TtarEntry::File(
                path.take().expect("Lines without Path"),
                bytes,
            ));
        }
    }
    out
}

fn procfs_ttar() -> String {
    std::fs::read_to_string(fixtures_dir().join("procfs/fixtures.ttar"))
        .expect("procfs/fixtures.ttar")
}

/// The content of one file of the procfs fixture archive, e.g. `fixtures/proc/meminfo`.
pub fn procfs_member(path: &str) -> String {
    for e in parse_ttar(&procfs_ttar()) {
        if let TtarEntry::File(p, bytes) = e
            && p == path
        {
            return String::from_utf8(bytes).expect("utf-8 member");
        }
    }
    panic!("{path} is not in fixtures.ttar");
}

/// Extracts the procfs fixture archive under `dest` (creating `dest/fixtures/proc`, `dest/fixtures/sys`).
pub fn extract_procfs(dest: &Path) {
    for e in parse_ttar(&procfs_ttar()) {
        match e {
            TtarEntry::Dir(p) => std::fs::create_dir_all(dest.join(p)).unwrap(),
            TtarEntry::File(p, bytes) => {
                let target = dest.join(p);
                std::fs::create_dir_all(target.parent().unwrap()).unwrap();
                std::fs::write(target, bytes).unwrap();
            }
            TtarEntry::Symlink(p, to) => {
                let target = dest.join(p);
                std::fs::create_dir_all(target.parent().unwrap()).unwrap();
                let _ = std::os::unix::fs::symlink(to, target);
            }
        }
    }
}

/// USER_HZ as the system reports it (getconf), independent of the exporter.
pub fn clk_tck() -> f64 {
    let out = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .expect("getconf");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("CLK_TCK")
}

/// The whitespace-separated fields of the first line of `text` that starts with `prefix`.
pub fn fields_of<'a>(text: &'a str, prefix: &str) -> Vec<&'a str> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line starting {prefix:?}"))
        .split_whitespace()
        .collect()
}

/// A number from fixture text.
pub fn f(s: &str) -> f64 {
    s.parse().unwrap()
}

// cgroup trees recorded on real hosts (elastic-cgroup) and helpers to read them independently.

pub const V1_ID: &str = "b29faf21b7eff959f64b4192c34d5d67a707fe8561e9eaa608cb27693fba4242";

pub fn file_num(path: &Path) -> f64 {
    std::fs::read_to_string(path)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

pub fn keyed(path: &Path, key: &str) -> Option<f64> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .find_map(|l| {
            l.strip_prefix(&format!("{key} "))
                .map(|v| v.trim().parse().unwrap())
        })
}

pub fn user_hz() -> f64 {
    clk_tck()
}

/// A --path.sysfs root whose fs/cgroup is the given tree.
pub fn sysfs_for(tree: &Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("fs")).unwrap();
    std::os::unix::fs::symlink(tree, dir.path().join("fs/cgroup")).unwrap();
    dir
}

pub fn v1_tree() -> PathBuf {
    fixtures_dir().join("elastic-cgroup/docker/sys/fs/cgroup")
}

pub fn v2_tree() -> PathBuf {
    fixtures_dir().join("elastic-cgroup/docker2/sys/fs/cgroup")
}

pub fn v2_container_tree() -> (tempfile::TempDir, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("fs/cgroup");
    let src = fixtures_dir().join("telegraf/cgroup/v2");
    let uid = "081d040e-c94b-41ea-8278-eb12903ddd99";
    let pod = format!(
        "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice",
        uid.replace('-', "_")
    );
    let container = format!("{pod}/cri-containerd-{V1_ID}.scope");
    for cg in [&pod, &container] {
        let d = root.join(cg.trim_start_matches('/'));
        std::fs::create_dir_all(&d).unwrap();
        for f in std::fs::read_dir(&src).unwrap().flatten() {
            std::fs::copy(f.path(), d.join(f.file_name())).unwrap();
        }
        std::fs::copy(
            v2_tree().join("user.slice/user-1000.slice/session-520.scope/cgroup.controllers"),
            d.join("cgroup.controllers"),
        )
        .unwrap();
    }
    std::fs::copy(
        v2_tree().join("user.slice/user-1000.slice/session-520.scope/cgroup.controllers"),
        root.join("cgroup.controllers"),
    )
    .unwrap();
    (dir, pod, container)
}
