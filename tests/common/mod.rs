//! Helpers shared by the integration tests: fixtures, the real binary on an ephemeral port, an exposition
//! parser, and promtool.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub mod browser;
pub mod firefox;
pub mod kube;
pub mod prometheus;
pub mod registry;
pub mod vm;

#[path = "../../src/testutil/fixtures.rs"]
mod fixtures;
#[allow(unused_imports)]
pub use fixtures::*;

/// The real exporter binary, started on an ephemeral loopback port; killed on drop.
pub struct Exporter {
    pub child: Child,
    pub addr: String,
    pub log: mpsc::Receiver<String>,
    /// Lines logged up to and including "listening", returned by the first drain_log().
    startup: std::cell::RefCell<Vec<String>>,
}

impl Exporter {
    pub fn start(args: &[&str]) -> Exporter {
        // STEVEDORE_TEST_BIN: run the tests against another build (e.g. to show a regression test fails
        // on the build before a fix).
        let bin = std::env::var("STEVEDORE_TEST_BIN")
            .ok()
            .filter(|b| !b.is_empty())
            .unwrap_or_else(|| env!("CARGO_BIN_EXE_stevedore").to_string());
        Exporter::start_binary(Path::new(&bin), args)
    }

    /// As `start`, with this binary (the static release build, say).
    pub fn start_binary(bin: &Path, args: &[&str]) -> Exporter {
        let mut child = Command::new(bin)
            .arg("--web.listen-address=127.0.0.1:0")
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start stevedore");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut addr = None;
        let mut startup = Vec::new();
        while addr.is_none() {
            let line = rx
                .recv_timeout(Duration::from_secs(20))
                .expect("stevedore did not log 'listening' within 20s");
            startup.push(line.clone());
            if line.contains("message=listening") {
                addr = line
                    .split_whitespace()
                    .find_map(|kv| kv.strip_prefix("address="))
                    .map(|a| a.trim_matches('"').to_string());
            }
        }
        Exporter {
            child,
            addr: addr.unwrap(),
            log: rx,
            startup: std::cell::RefCell::new(startup),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn get(&self, path: &str) -> reqwest::blocking::Response {
        reqwest::blocking::Client::new()
            .get(self.url(path))
            .timeout(Duration::from_secs(30))
            .send()
            .expect("GET")
    }

    /// The exposition, checked by [`strict_problems`] (every test that scrapes checks it).
    pub fn metrics(&self) -> String {
        let r = self.get("/metrics");
        assert_eq!(r.status(), 200);
        let body = r.text().unwrap();
        assert_eq!(strict_problems(&body), Vec::<String>::new());
        body
    }

    /// The OpenMetrics exposition, checked by [`strict_problems`].
    pub fn openmetrics(&self) -> String {
        let body = reqwest::blocking::Client::new()
            .get(self.url("/metrics"))
            .header("Accept", "application/openmetrics-text; version=1.0.0")
            .timeout(Duration::from_secs(30))
            .send()
            .expect("GET")
            .text()
            .unwrap();
        assert_eq!(strict_problems(&body), Vec::<String>::new());
        body
    }

    /// Log lines printed so far.
    pub fn drain_log(&self) -> Vec<String> {
        let mut lines = std::mem::take(&mut *self.startup.borrow_mut());
        lines.extend(self.log.try_iter());
        lines
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One parsed sample.
#[derive(Debug, Clone)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// What a strict reader of either format refuses, and promtool's lint does not catch: a family declared
/// twice or whose samples are not together (out of order), a sample of no declared family, a series
/// given twice, a label named twice, a negative or non-finite counter, and for OpenMetrics a missing
/// `# EOF` or anything after it.
pub fn strict_problems(body: &str) -> Vec<String> {
    let openmetrics = body.ends_with("# EOF\n") || body.contains("\n# EOF\n");
    let mut problems = Vec::new();
    let mut declared = std::collections::HashSet::new();
    let mut family: Option<(String, String)> = None; // (name, type)
    let mut series = std::collections::HashSet::new();
    let mut after_eof = false;
    for line in body.lines() {
        if after_eof {
            problems.push(format!("after # EOF: {line}"));
            continue;
        }
        if line == "# EOF" {
            after_eof = true;
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.rsplit_once(' ').unwrap_or((rest, ""));
            if !declared.insert(name.to_string()) {
                problems.push(format!("family {name} declared twice"));
            }
            family = Some((name.to_string(), kind.to_string()));
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let s = &parse_exposition(line)[0];
        let Some((fam, kind)) = &family else {
            problems.push(format!("sample before any # TYPE: {line}"));
            continue;
        };
        let belongs = s.name == *fam
            || (openmetrics && kind == "counter" && s.name == format!("{fam}_total"))
            || (openmetrics && kind == "info" && s.name == format!("{fam}_info"));
        if !belongs {
            problems.push(format!("{} outside its family (in {fam})", s.name));
        }
        let key = format!("{}{:?}", s.name, s.labels);
        if !series.insert(key) {
            problems.push(format!("series given twice: {line}"));
        }
        let names = label_names(line);
        if names.len() != s.labels.len() {
            problems.push(format!("a label named twice: {line}"));
        }
        if kind == "counter" && !(s.value.is_finite() && s.value >= 0.0) {
            problems.push(format!("counter not a finite non-negative value: {line}"));
        }
    }
    if openmetrics && !after_eof {
        problems.push("no # EOF".into());
    }
    problems
}

/// The label names of a sample line, in order (values skipped with their escapes).
fn label_names(line: &str) -> Vec<String> {
    let Some(start) = line
        .find('{')
        .filter(|&i| i < line.find(' ').unwrap_or(usize::MAX))
    else {
        return Vec::new();
    };
    let b = line.as_bytes();
    let (mut i, mut names) = (start + 1, Vec::new());
    while i < b.len() && b[i] != b'}' {
        let eq = i + line[i..].find('=').expect("label =");
        names.push(line[i..eq].to_string());
        i = eq + 2; // past ="
        while b[i] != b'"' {
            i += if b[i] == b'\\' { 2 } else { 1 };
        }
        i += 1; // past the closing quote
        if b[i] == b',' {
            i += 1;
        }
    }
    names
}

/// Parses the sample lines of a text exposition (both formats), unescaping label values.
pub fn parse_exposition(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let (name_end, mut labels) = (line.find(['{', ' ']).expect("sample line"), BTreeMap::new());
        let name = line[..name_end].to_string();
        let mut rest = &line[name_end..];
        if rest.starts_with('{') {
            let b = rest.as_bytes();
            let mut i = 1;
            loop {
                if b[i] == b'}' {
                    i += 1;
                    break;
                }
                if b[i] == b',' {
                    i += 1;
                    continue;
                }
                let eq = i + rest[i..].find('=').unwrap();
                let key = rest[i..eq].to_string();
                i = eq + 2; // skip ="
                let mut val = Vec::new();
                while b[i] != b'"' {
                    if b[i] == b'\\' {
                        i += 1;
                        val.push(match b[i] {
                            b'n' => b'\n',
                            c => c,
                        });
                    } else {
                        val.push(b[i]);
                    }
                    i += 1;
                }
                i += 1;
                labels.insert(key, String::from_utf8(val).unwrap());
            }
            rest = &rest[i..];
        }
        let value_str = rest.split_whitespace().next().expect("value");
        let value = match value_str {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {line:?}")),
        };
        out.push(Sample {
            name,
            labels,
            value,
        });
    }
    out
}

/// The value of the one sample with this name whose labels include `with`.
/// `stevedore_scrape_collector_success` of one collector.
pub fn collector_success(s: &[Sample], collector: &str) -> Option<f64> {
    value(
        s,
        "stevedore_scrape_collector_success",
        &[("collector", collector)],
    )
}

pub fn value(samples: &[Sample], name: &str, with: &[(&str, &str)]) -> Option<f64> {
    let found: Vec<&Sample> = samples
        .iter()
        .filter(|s| {
            s.name == name
                && with
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .collect();
    assert!(
        found.len() <= 1,
        "{name}{with:?} matches {} samples",
        found.len()
    );
    found.first().map(|s| s.value)
}

/// Runs `promtool check metrics` and returns its complaints, less the lints the metric contract forces on
/// us because the names are the established ones: camelCase in `node_memory_<Field>` names (promtool
/// flags node_exporter's own output the same way), and cAdvisor's `container_memory_failcnt` counter
/// without `_total` and `container_fs_inodes_total` gauge with it (promtool flags the kubelet's recorded
/// /metrics/cadvisor for both).
pub fn promtool_problems(body: &str) -> Vec<String> {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool not found: install Debian's prometheus package (the README's test command does)");
    let mut stdin = child.stdin.take().unwrap();
    let body = body.to_string();
    let writer = std::thread::spawn(move || stdin.write_all(body.as_bytes()));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .filter(|l| {
            !(l.starts_with("node_memory_")
                && l.contains("should be written in 'snake_case' not 'camelCase'"))
        })
        .filter(|l| *l != "container_memory_failcnt counter metrics should have \"_total\" suffix")
        // cAdvisor's own name for a gauge (the root cgroup's inodes per filesystem).
        .filter(|l| {
            *l != "container_fs_inodes_total non-counter metrics should not have \"_total\" suffix"
        })
        .map(str::to_string)
        .collect()
}

/// The test image: a root filesystem of Debian's busybox-static with its applet links, imported with
/// `docker import` (no registry needed). Built once per test process.
pub const IMAGE: &str = "stevedore-test/busybox:latest";
/// The label `ensure_image` puts on the image it builds, and its value: bump it when the rootfs changes.
const IMAGE_LABEL: &str = "io.stevedore.test-image";
const IMAGE_VERSION: &str = "2";

pub fn docker(args: &[&str]) -> String {
    stdout_of(Command::new("docker").args(args))
}

/// Runs a command that must succeed; its standard output, trimmed. A failure names the command and
/// shows its standard error.
pub fn stdout_of(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e} (is it installed? scripts/test installs it)"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The series of `metric` whose `id` label is `id`.
pub fn by_id<'a>(s: &'a [Sample], metric: &str, id: &str) -> Option<&'a Sample> {
    s.iter()
        .find(|x| x.name == metric && x.labels.get("id").map(String::as_str) == Some(id))
}

/// `du -sx --block-size=1` of a directory (GNU du: allocated bytes, each inode once).
pub fn du_bytes(dir: &str) -> f64 {
    let out = stdout_of(Command::new("du").args(["-sx", "--block-size=1", dir]));
    out.split_whitespace().next().unwrap().parse().unwrap()
}

/// Cgroups a runtime made for a test (parents of `--cgroup-parent`, containerd's namespace folder),
/// removed on drop in every hierarchy. rmdir only removes empty cgroups.
pub struct RemoveCgroups(pub Vec<String>);

impl Drop for RemoveCgroups {
    fn drop(&mut self) {
        let Ok(hierarchies) = std::fs::read_dir("/sys/fs/cgroup") else {
            return;
        };
        for h in hierarchies.flatten() {
            for d in &self.0 {
                let _ = std::fs::remove_dir(h.path().join(d.trim_start_matches('/')));
            }
        }
    }
}

pub fn ensure_image() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // An image of this tag from elsewhere (an older suite, a hand-made one without /tmp) is replaced:
        // only one carrying this suite's label is used as it is.
        let label = Command::new("docker")
            .args(["image", "inspect", "-f", &format!("{{{{index .Config.Labels \"{IMAGE_LABEL}\"}}}}"), IMAGE])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
        if label.is_ok_and(|l| l == IMAGE_VERSION) {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::create_dir_all(dir.path().join("tmp")).unwrap();
        std::fs::copy("/bin/busybox", bin.join("busybox"))
            .expect("/bin/busybox (Debian's busybox-static)");
        let list = Command::new("/bin/busybox").arg("--list").output().unwrap();
        for applet in String::from_utf8_lossy(&list.stdout).lines() {
            if applet != "busybox" {
                let _ = std::os::unix::fs::symlink("busybox", bin.join(applet));
            }
        }
        let status = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "tar -C {} -c . | docker import --change 'LABEL {IMAGE_LABEL}={IMAGE_VERSION}' - {IMAGE} >/dev/null",
                dir.path().display()
            ))
            .status()
            .unwrap();
        assert!(
            status.success(),
            "docker import of the busybox image failed"
        );
    });
}

/// A container started for a test, removed (with its cgroup) on drop.
pub struct Container {
    pub id: String,
    pub name: String,
}

impl Container {
    /// `docker run -d --name <unique> <opts> IMAGE sh -c <script>`.
    pub fn run(tag: &str, opts: &[&str], script: &str) -> Container {
        ensure_image();
        let name = format!("sdtest-{tag}-{}", std::process::id());
        let mut args = vec!["run", "-d", "--name", &name];
        args.extend_from_slice(opts);
        args.extend_from_slice(&[IMAGE, "sh", "-c", script]);
        let out = Command::new("docker")
            .args(&args)
            .output()
            .expect("docker CLI");
        if !out.status.success() {
            // `docker run` can fail after creating the container: leave nothing behind.
            let _ = Command::new("docker").args(["rm", "-f", &name]).output();
            panic!(
                "docker {args:?} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
        Container { id, name }
    }

    pub fn cgroup(&self) -> String {
        format!("/docker/{}", self.id)
    }

    /// A file of this container's cgroup in a v1 hierarchy (this machine: cgroupfs driver, v1 or hybrid).
    pub fn v1_file(&self, controller: &str, file: &str) -> PathBuf {
        PathBuf::from(format!(
            "/sys/fs/cgroup/{controller}/docker/{}/{file}",
            self.id
        ))
    }

    pub fn inspect(&self, format: &str) -> String {
        docker(&["inspect", "-f", format, &self.id])
    }

    pub fn exec(&self, script: &str) -> String {
        docker(&["exec", &self.id, "sh", "-c", script])
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rm", "-f", &self.id]).output();
    }
}

/// Scrapes with `scrape` until `pred` holds, at most `secs`.
pub fn poll_until(
    secs: u64,
    what: &str,
    scrape: impl Fn() -> Vec<Sample>,
    pred: impl Fn(&[Sample]) -> bool,
) -> Vec<Sample> {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let s = scrape();
        if pred(&s) {
            return s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Scrapes until `pred` holds (identity arrives through Docker's events, asynchronously), at most `secs`.
pub fn scrape_until(
    e: &Exporter,
    secs: u64,
    what: &str,
    pred: impl Fn(&[Sample]) -> bool,
) -> Vec<Sample> {
    poll_until(secs, what, || parse_exposition(&e.metrics()), pred)
}

/// Reads a number from a file (a cgroup file), or the value of `key` in a `key value` file.
pub fn read_num(path: &Path, key: Option<&str>) -> f64 {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    match key {
        None => text.trim().parse().unwrap(),
        Some(k) => text
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{k} ")))
            .unwrap_or_else(|| panic!("{k} not in {}", path.display()))
            .trim()
            .parse()
            .unwrap(),
    }
}

// Docker test helpers: an exporter with the cgroup and docker collectors only, and series by container name.

pub fn docker_exporter(extra: &[&str]) -> Exporter {
    let mut args = vec![
        "--collect.min-age=0",
        "--collector.disable-defaults",
        "--collector.cgroup",
        "--collector.docker",
    ];
    args.extend_from_slice(extra);
    Exporter::start(&args)
}

pub fn named<'a>(s: &'a [Sample], metric: &str, name: &str) -> Vec<&'a Sample> {
    s.iter()
        .filter(|x| x.name == metric && x.labels.get("name").map(String::as_str) == Some(name))
        .collect()
}

pub fn one(s: &[Sample], metric: &str, name: &str) -> Option<f64> {
    let v = named(s, metric, name);
    assert!(v.len() <= 1, "{metric} for {name}: {} series", v.len());
    v.first().map(|x| x.value)
}

pub fn known(c: &Container) -> impl Fn(&[Sample]) -> bool + '_ {
    move |s: &[Sample]| one(s, "container_cpu_usage_seconds_total", &c.name).is_some()
}

/// GET with `Accept-Encoding: gzip`: the compressed body, and it decompressed.
pub fn get_gzip(client: &reqwest::blocking::Client, url: &str) -> (Vec<u8>, String) {
    let mut r = client
        .get(url)
        .header("Accept-Encoding", "gzip")
        .send()
        .unwrap();
    assert_eq!(r.headers()["content-encoding"], "gzip");
    let mut compressed = Vec::new();
    r.read_to_end(&mut compressed).unwrap();
    let mut plain = String::new();
    flate2::read::GzDecoder::new(&compressed[..])
        .read_to_string(&mut plain)
        .unwrap();
    (compressed, plain)
}

/// A v1 tree with `n` copies of the recorded Docker container, as a --path.sysfs root.
pub fn many_cgroups(n: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for c in ["cpu", "cpuacct", "memory", "blkio"] {
        let src = v1_tree().join(c).join("docker").join(V1_ID);
        for i in 0..n {
            let dst = dir.path().join(format!("fs/cgroup/{c}/docker/{i:064x}"));
            std::fs::create_dir_all(&dst).unwrap();
            for f in std::fs::read_dir(&src).unwrap().flatten() {
                std::fs::copy(f.path(), dst.join(f.file_name())).unwrap();
            }
        }
    }
    dir
}

/// Starts a support server (`tests/support/<script>`) and returns it with the first line it prints (its
/// port, as it announces it).
pub fn start_support(script: &str, args: &[&str]) -> (Child, String) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/support")
        .join(script);
    let mut child = Command::new("/usr/bin/python3")
        .arg(path)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("python3");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    (child, line.trim().to_string())
}

/// The static release binary the image ships (`./scripts/test` builds it before `cargo test`).
#[allow(dead_code)]
pub fn release_binary() -> std::path::PathBuf {
    let bin = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/x86_64-unknown-linux-gnu/release/stevedore");
    assert!(
        bin.exists(),
        "{} is missing: RUSTFLAGS=\"-C target-feature=+crt-static\" cargo build --release --locked \
         --target x86_64-unknown-linux-gnu (./scripts/test does)",
        bin.display()
    );
    bin
}
