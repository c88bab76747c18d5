//! Debian's docker-registry (the CNCF distribution registry) on a free loopback port, storing in a
//! temporary folder; killed on drop. Docker and helm (`--plain-http`) push to 127.0.0.1 without TLS.

use std::process::{Child, Command, Stdio};

pub struct Registry {
    child: Child,
    /// host:port
    pub addr: String,
    _dir: tempfile::TempDir,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn start_registry() -> Registry {
    let dir = tempfile::tempdir().unwrap();
    let port = super::prometheus::free_port();
    let addr = format!("127.0.0.1:{port}");
    let config = dir.path().join("config.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let child = Command::new("docker-registry")
        .arg("serve")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("docker-registry (Debian's package; ./scripts/test installs it)");
    super::prometheus::wait_ok(&format!("http://{addr}/v2/"), "docker-registry");
    Registry {
        child,
        addr,
        _dir: dir,
    }
}
