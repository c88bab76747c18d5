//! The container image, built from the top-level Dockerfile on the real engine and run with the README's
//! `docker run` line, with the host mounted.
//!
//! No registry is reachable here and build containers cannot reach crates.io, so the Dockerfile's build
//! stage takes the static binary built on the host (PREBUILT, as `./scripts/test` builds it), on a
//! busybox base instead of the Rust image, and the runtime stage gets a local base with what
//! distroless/static holds (CA certificates, /etc/passwd and /etc/group, /tmp). The Dockerfile and its
//! stages are the ones users build.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Container, docker, ensure_image, parse_exposition, value};

const TAG: &str = "sdtest-stevedore:latest";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The static release binary `./scripts/test` builds (crt-static on the gnu target).
fn static_binary() -> PathBuf {
    let p = root().join("target/x86_64-unknown-linux-gnu/release/stevedore");
    assert!(
        p.exists(),
        "{} missing: build it with RUSTFLAGS=\"-C target-feature=+crt-static\" cargo build --release \
         --target x86_64-unknown-linux-gnu (./scripts/test does)",
        p.display()
    );
    p
}

/// `docker import` of a folder.
fn import(dir: &Path, tag: &str) {
    let tar = Command::new("tar")
        .args(["-C", dir.to_str().unwrap(), "-c", "."])
        .output()
        .unwrap();
    let mut import = Command::new("docker")
        .args(["import", "-", tag])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    use std::io::Write;
    import.stdin.take().unwrap().write_all(&tar.stdout).unwrap();
    assert!(import.wait().unwrap().success());
}

/// A runtime base with what distroless/static has that the exporter uses.
fn runtime_base() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("etc/ssl/certs")).unwrap();
    std::fs::create_dir_all(d.join("tmp")).unwrap();
    std::fs::copy(
        "/etc/ssl/certs/ca-certificates.crt",
        d.join("etc/ssl/certs/ca-certificates.crt"),
    )
    .expect("the host's CA bundle (Debian's ca-certificates)");
    std::fs::write(d.join("etc/passwd"), "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n").unwrap();
    std::fs::write(d.join("etc/group"), "root:x:0:\nnonroot:x:65532:\n").unwrap();
    import(d, "sdtest-static-base:latest");
}

fn build_image() -> String {
    ensure_image(); // busybox: sh and cp for the build stage
    runtime_base();
    let prebuilt = root().join("target/docker/stevedore");
    std::fs::create_dir_all(prebuilt.parent().unwrap()).unwrap();
    std::fs::copy(static_binary(), &prebuilt).unwrap();
    let out = Command::new("docker")
        .current_dir(root())
        .args([
            "build",
            "-t",
            TAG,
            "--build-arg",
            &format!("BUILD_IMAGE={}", common::IMAGE),
            "--build-arg",
            "RUNTIME_IMAGE=sdtest-static-base",
            "--build-arg",
            "PREBUILT=target/docker/stevedore",
            "--build-arg",
            "REVISION=test",
            ".",
        ])
        .output()
        .unwrap();
    let log =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "docker build: {log}");
    log
}

/// The README's `docker run` line, as written (continuation lines joined).
fn readme_run_line() -> Vec<String> {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let mut words = Vec::new();
    let mut inside = false;
    for line in readme.lines() {
        let t = line.trim();
        if t.starts_with("docker run -d --name stevedore") {
            inside = true;
        }
        if inside {
            words.extend(
                t.trim_end_matches('\\')
                    .split_whitespace()
                    .map(str::to_string),
            );
            if !t.ends_with('\\') {
                break;
            }
        }
    }
    assert!(!words.is_empty(), "no docker run line in the README");
    words
}

#[test]
fn image_builds_and_runs_as_the_readme_says() {
    let log = build_image();
    let size: f64 = docker(&["image", "inspect", "-f", "{{.Size}}", TAG])
        .trim()
        .parse()
        .unwrap();
    let base: f64 = docker(&["image", "inspect", "-f", "{{.Size}}", "sdtest-static-base"])
        .trim()
        .parse()
        .unwrap();
    println!(
        "image {:.1} MB, of which the base {:.1} MB",
        size / 1e6,
        base / 1e6
    );
    // 19.2 MB before containerd's gRPC client (tonic, prost) came in, 20.2 MB with it; symbols are
    // kept, so a panic's backtrace names functions.
    assert!(
        size - base < 22e6,
        "the binary layer is {} bytes",
        size - base
    );
    assert!(log.contains("stevedore"), "{log}");
    let labels = docker(&["image", "inspect", "-f", "{{json .Config.Labels}}", TAG]);
    assert!(
        labels.contains("\"org.opencontainers.image.revision\":\"test\""),
        "{labels}"
    );

    // A sibling container with a memory limit, as another user.
    let sibling = Container::run(
        "image-sibling",
        &["--memory=64m", "--user=1234"],
        "sleep 600",
    );

    // The README's line, with this test's names.
    let _ = docker(&["rm", "-f", "sdtest-image"]);
    let mut args = readme_run_line();
    assert_eq!(&args[..2], ["docker", "run"]);
    for a in args.iter_mut() {
        if a == "stevedore" {
            *a = TAG.into(); // the image name (the first "stevedore" word after the options)
        }
    }
    let name_at = args.iter().position(|a| a == "--name").unwrap();
    args[name_at + 1] = "sdtest-image".into();
    let out = Command::new("docker").args(&args[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _cleanup = Cleanup("sdtest-image");

    let body = scrape_until_named("http://127.0.0.1:9777/metrics", &sibling.name);
    let samples = parse_exposition(&body);
    // The host's names, not the container's.
    let nodename = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let uname = samples
        .iter()
        .find(|s| s.name == "node_uname_info")
        .expect("node_uname_info");
    assert_eq!(
        uname.labels.get("nodename").map(String::as_str),
        Some(nodename.trim())
    );
    let mut host_devices: Vec<String> = std::fs::read_to_string("/proc/net/dev")
        .unwrap()
        .lines()
        .skip(2)
        .map(|l| l.split(':').next().unwrap().trim().to_string())
        .collect();
    let mut served: Vec<String> = samples
        .iter()
        .filter(|s| s.name == "node_network_receive_bytes_total")
        .map(|s| s.labels["device"].clone())
        .collect();
    host_devices.sort();
    served.sort();
    assert_eq!(served, host_devices);
    // The sibling, by name, with its limit as the kernel has it.
    let limit = common::read_num(&sibling.v1_file("memory", "memory.limit_in_bytes"), None);
    let name = sibling.name.clone();
    assert_eq!(
        value(
            &samples,
            "container_spec_memory_limit_bytes",
            &[("name", &name)]
        ),
        Some(limit)
    );
    // Its file descriptors and network namespace were readable (another user's process).
    assert!(
        value(&samples, "container_file_descriptors", &[("name", &name)]).unwrap_or(0.0) >= 3.0
    );
    // The exporter runs as root with exactly the two capabilities.
    let pid = docker(&["inspect", "-f", "{{.State.Pid}}", "sdtest-image"]);
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid.trim())).unwrap();
    let field = |k: &str| {
        status
            .lines()
            .find(|l| l.starts_with(k))
            .unwrap()
            .split_whitespace()
            .nth(1)
            .unwrap()
            .to_string()
    };
    assert_eq!(field("Uid:"), "0");
    // CAP_DAC_READ_SEARCH is bit 2, CAP_SYS_PTRACE bit 19.
    assert_eq!(
        field("CapEff:"),
        format!("{:016x}", (1u64 << 2) | (1u64 << 19))
    );
    assert_eq!(field("NoNewPrivs:"), "1");
}

struct Cleanup(&'static str);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rm", "-f", self.0]).output();
    }
}

/// The exposition, once the sibling container is served under its name (the Docker source has it).
fn scrape_until_named(url: &str, name: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = reqwest::blocking::get(url)
            && r.status() == 200
        {
            let body = r.text().unwrap();
            if body.contains(&format!("name=\"{name}\"")) {
                return body;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the image did not serve container series within 30 s"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The image pushed to a local OCI registry (Debian's docker-registry) and run from it by digest, as the
/// chart's `image.digest` and the GitOps manifests pin it.
#[test]
fn image_is_pushed_to_a_registry_and_runs_from_it_by_digest() {
    build_image();
    let registry = common::registry::start_registry();
    let remote = format!("{}/stevedore:test", registry.addr);
    docker(&["tag", TAG, &remote]);
    let pushed = docker(&["push", &remote]);
    let digest = pushed
        .split_whitespace()
        .find(|w| w.starts_with("sha256:"))
        .unwrap_or_else(|| panic!("no digest in: {pushed}"))
        .to_string();
    // Forget the tag, so that the digest is resolved by the registry, then run by digest.
    docker(&["rmi", &remote]);
    let by_digest = format!("{}/stevedore@{digest}", registry.addr);
    let pulled = docker(&["pull", &by_digest]);
    assert!(pulled.contains(&digest), "{pulled}");
    let version = docker(&["run", "--rm", &by_digest, "--version"]);
    assert!(version.contains(env!("CARGO_PKG_VERSION")), "{version}");
    let id = |r: &str| docker(&["image", "inspect", "-f", "{{.Id}}", r]);
    assert_eq!(id(&by_digest), id(TAG));
    let _ = Command::new("docker").args(["rmi", &by_digest]).output();
}
