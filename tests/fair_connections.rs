//! A normal client (Prometheus, the kubelet's probe) is served within a second while hostile or
//! long-lived connections fill the server past `--web.max-connections` (256 by default), plain and with
//! TLS: 300 stalled handshakes renewed as they are closed, 2000 idle keep-alive connections renewed (the
//! exporter under systemd's soft limit of 1024 open files), and 10 live views held open. Figures printed:
//! the probes' latencies, failures, and how many hostile connections were renewed. The attacker connects
//! from 127.0.0.1, the normal client from 127.0.0.2 (another peer, as Prometheus and the kubelet are).

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::kube::make_certs;
use common::*;

/// One scenario at a time: they measure latency and share the machine's ports and CPU.
static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// How long the hostile connections are held: past the default 10 s header timeout, so that the ones the
/// server times out are renewed too.
const HOLD: Duration = Duration::from_secs(12);

struct Server {
    e: Exporter,
    /// The CA to check the server's certificate with, when it serves TLS.
    ca: Option<PathBuf>,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start(tls: bool) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let mut args = vec![
            "--collector.disable-defaults".to_string(),
            "--collector.meminfo".to_string(),
            "--collector.cgroup".to_string(),
        ];
        let mut ca = None;
        if tls {
            let (ca_path, cert, key) = make_certs(dir.path());
            let config = dir.path().join("web.yml");
            std::fs::write(
                &config,
                format!(
                    "tls_server_config:\n  cert_file: {}\n  key_file: {}\n",
                    cert.display(),
                    key.display()
                ),
            )
            .unwrap();
            args.push(format!("--web.config.file={}", config.display()));
            ca = Some(ca_path);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Server {
            e: Exporter::start(&args),
            ca,
            _dir: dir,
        }
    }

    fn url(&self, path: &str) -> String {
        let scheme = if self.ca.is_some() { "https" } else { "http" };
        format!("{scheme}://{}{path}", self.e.addr)
    }

    fn curl(&self) -> Command {
        let mut c = Command::new("curl");
        c.args(["-s", "--max-time", "5"]);
        if let Some(ca) = &self.ca {
            c.arg("--cacert").arg(ca);
        }
        c
    }

    /// One request on a new connection from 127.0.0.2, as a probe or a scrape makes it: status and
    /// seconds taken.
    fn probe(&self, path: &str) -> (u16, f64) {
        let out = self
            .curl()
            .args([
                "--interface",
                "127.0.0.2",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code} %{time_total}",
            ])
            .arg(self.url(path))
            .output()
            .expect("curl");
        let text = String::from_utf8_lossy(&out.stdout);
        let mut it = text.split_whitespace();
        let code = it.next().and_then(|c| c.parse().ok()).unwrap_or(0);
        let secs = it.next().and_then(|s| s.parse().ok()).unwrap_or(f64::NAN);
        (code, secs)
    }
}

/// What a hostile connection sends before it goes quiet.
#[derive(Clone)]
enum Opening {
    /// These bytes, in the clear.
    Bytes(&'static [u8]),
    /// A whole TLS handshake and one request (its response read away later), then nothing: a TLS
    /// keep-alive connection gone idle.
    TlsRequest(Arc<rustls::ClientConfig>),
}

const REQUEST: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";

fn open_one(addr: &SocketAddr, how: &Opening) -> Option<TcpStream> {
    let mut c = TcpStream::connect_timeout(addr, Duration::from_secs(1)).ok()?;
    match how {
        Opening::Bytes(b) => c.write_all(b).ok()?,
        Opening::TlsRequest(config) => {
            c.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
            let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
            let conn = rustls::ClientConnection::new(config.clone(), name).ok()?;
            let mut tls = rustls::StreamOwned::new(conn, c);
            tls.write_all(REQUEST).ok()?;
            tls.flush().ok()?;
            c = tls.sock;
        }
    }
    c.set_nonblocking(true).ok()?;
    Some(c)
}

fn tls_client(ca: &std::path::Path) -> Arc<rustls::ClientConfig> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

/// Connections that open as `how` says and then go quiet, each reopened as soon as the server closes it.
struct Hostile {
    stop: Arc<AtomicBool>,
    renewed: Arc<AtomicUsize>,
    open: Arc<AtomicUsize>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Hostile {
    fn start(addr: &str, n: usize, how: Opening) -> Hostile {
        let addr: SocketAddr = addr.parse().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let renewed = Arc::new(AtomicUsize::new(0));
        let open = Arc::new(AtomicUsize::new(0));
        let (s, r, o) = (stop.clone(), renewed.clone(), open.clone());
        let thread = std::thread::spawn(move || {
            let connect = || open_one(&addr, &how);
            let mut slots: Vec<Option<TcpStream>> = (0..n).map(|_| connect()).collect();
            let mut first = true;
            while !s.load(Ordering::Relaxed) {
                let mut held = 0;
                for slot in slots.iter_mut() {
                    if slot.as_mut().is_some_and(is_closed) {
                        *slot = None;
                    }
                    if slot.is_none() {
                        *slot = connect();
                        if !first {
                            r.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    held += usize::from(slot.is_some());
                }
                first = false;
                o.store(held, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        Hostile {
            stop,
            renewed,
            open,
            thread: Some(thread),
        }
    }
}

impl Drop for Hostile {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Whether the server closed this (non-blocking) connection; data it sent (a response) is read away.
fn is_closed(s: &mut TcpStream) -> bool {
    let mut b = [0u8; 4096];
    loop {
        match s.read(&mut b) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
            Err(_) => return true,
        }
    }
}

/// The normal client for `HOLD`: /healthz and /metrics in turn, each on a new connection, every 200 ms.
/// Prints and returns the latencies; asserts every probe answered 200 within a second.
fn normal_client(s: &Server, what: &str) -> Vec<f64> {
    let start = Instant::now();
    let mut took = Vec::new();
    let mut failures = Vec::new();
    let mut i = 0;
    while start.elapsed() < HOLD {
        let path = if i % 2 == 0 { "/healthz" } else { "/metrics" };
        let (code, secs) = s.probe(path);
        took.push(secs);
        if code != 200 || secs.is_nan() || secs >= 1.0 {
            failures.push(format!(
                "{path} at {:?}: {code} in {secs} s",
                start.elapsed()
            ));
        }
        i += 1;
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut sorted = took.clone();
    sorted.sort_by(f64::total_cmp);
    let q = |p: f64| sorted[((sorted.len() - 1) as f64 * p).round() as usize] * 1000.0;
    println!(
        "{what}: {} probes, {} failed; latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        took.len(),
        failures.len(),
        q(0.5),
        q(0.99),
        q(1.0)
    );
    assert!(failures.is_empty(), "{what}: {failures:#?}");
    took
}

fn set_nofile(pid: u32, soft: u64) {
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    let new = libc::rlimit {
        rlim_cur: soft,
        rlim_max: soft.max(4096),
    };
    let rc = unsafe { libc::prlimit(pid as i32, libc::RLIMIT_NOFILE, &new, &mut old) };
    assert_eq!(rc, 0, "prlimit: {}", std::io::Error::last_os_error());
}

fn stalled_handshakes(tls: bool) {
    let _turn = TURN.lock().unwrap_or_else(|p| p.into_inner());
    let s = Server::start(tls);
    // The first 3 bytes of a TLS ClientHello record; plain HTTP gets the first 3 bytes of a request.
    let prefix: &'static [u8] = if tls { &[0x16, 0x03, 0x01] } else { b"GET" };
    let h = Hostile::start(&s.e.addr, 300, Opening::Bytes(prefix));
    std::thread::sleep(Duration::from_millis(500));
    let what = format!(
        "{} with 300 stalled {} renewed",
        if tls { "TLS" } else { "plain" },
        if tls { "handshakes" } else { "request lines" }
    );
    normal_client(&s, &what);
    println!(
        "  hostile connections open at the end: {}, renewed: {}",
        h.open.load(Ordering::Relaxed),
        h.renewed.load(Ordering::Relaxed)
    );
    assert!(
        h.open.load(Ordering::Relaxed) >= 250,
        "the attack did not hold its connections"
    );
    let log = s.e.drain_log();
    let lines = log
        .iter()
        .filter(|l| l.contains("too many open connections"))
        .count();
    assert!(lines >= 1, "the cap was never reached: {log:#?}");
}

fn idle_keep_alives(tls: bool) {
    let _turn = TURN.lock().unwrap_or_else(|p| p.into_inner());
    let s = Server::start(tls);
    set_nofile(s.e.child.id(), 1024);
    // A whole request, answered, then the connection kept alive and idle.
    let how = match &s.ca {
        Some(ca) => Opening::TlsRequest(tls_client(ca)),
        None => Opening::Bytes(REQUEST),
    };
    let h = Hostile::start(&s.e.addr, 2000, how);
    std::thread::sleep(Duration::from_millis(500));
    let what = format!(
        "{} with 2000 idle keep-alive connections renewed, exporter at 1024 open files",
        if tls { "TLS" } else { "plain" }
    );
    normal_client(&s, &what);
    let fds = std::fs::read_dir(format!("/proc/{}/fd", s.e.child.id()))
        .unwrap()
        .count();
    println!(
        "  hostile connections open at the end: {}, renewed: {}; exporter fds {fds}",
        h.open.load(Ordering::Relaxed),
        h.renewed.load(Ordering::Relaxed)
    );
    assert!(fds <= 256 + 32, "fds {fds}");
}

/// `n` live views: `curl -N` on the event stream, each writing what it gets to a file.
fn live_views(s: &Server, n: usize, dir: &std::path::Path) -> Vec<(Child, PathBuf)> {
    (0..n)
        .map(|i| {
            let out = dir.join(format!("view{i}.txt"));
            let child = s
                .curl()
                .args(["-N", "--max-time", "60", "-o"])
                .arg(&out)
                .arg(s.url("/api/v1/live/stream"))
                .stdout(Stdio::null())
                .spawn()
                .unwrap();
            (child, out)
        })
        .collect()
}

fn ten_live_views(tls: bool) {
    let _turn = TURN.lock().unwrap_or_else(|p| p.into_inner());
    let s = Server::start(tls);
    let dir = tempfile::tempdir().unwrap();
    let mut views = live_views(&s, 10, dir.path());
    std::thread::sleep(Duration::from_millis(500));
    let what = format!(
        "{} with 10 live views open",
        if tls { "TLS" } else { "plain" }
    );
    normal_client(&s, &what);
    let mut frames = Vec::new();
    for (child, out) in &mut views {
        let _ = child.kill();
        let _ = child.wait();
        let text = std::fs::read_to_string(out).unwrap_or_default();
        frames.push(text.matches("\ndata: ").count() + usize::from(text.starts_with("data: ")));
    }
    println!("  frames each view received over {HOLD:?}: {frames:?}");
    // A frame a second while the probes ran (the first collections may take a moment).
    assert!(frames.iter().all(|&f| f >= 8), "{frames:?}");
}

#[test]
fn plain_300_stalled_request_lines_renewed() {
    stalled_handshakes(false);
}

#[test]
fn tls_300_stalled_handshakes_renewed() {
    stalled_handshakes(true);
}

#[test]
fn plain_2000_idle_keep_alives_renewed() {
    idle_keep_alives(false);
}

#[test]
fn tls_2000_idle_connections_renewed() {
    idle_keep_alives(true);
}

#[test]
fn plain_10_live_views() {
    ten_live_views(false);
}

#[test]
fn tls_10_live_views() {
    ten_live_views(true);
}
