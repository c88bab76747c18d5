//! `--web.config.file` against the real binary, with certificates made by `openssl` in each test and
//! curl, openssl s_client, Debian's Prometheus and Debian's node_exporter as the peers.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::Exporter;
use common::prometheus::{free_port, query, start_prometheus_with};

/// A test PKI: two CAs, a server certificate for 127.0.0.1, and client certificates.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Pki {
        let pki = Pki {
            dir: tempfile::tempdir().unwrap(),
        };
        for ca in ["ca", "other-ca"] {
            pki.openssl(&[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                &format!("{ca}.key"),
                "-out",
                &format!("{ca}.crt"),
                "-subj",
                &format!("/CN={ca}"),
                "-days",
                "2",
            ]);
        }
        pki.issue("server", "ca", "DNS:localhost,IP:127.0.0.1", "serverAuth");
        pki.issue(
            "client",
            "ca",
            "DNS:prometheus.example,email:scraper@example.org",
            "clientAuth",
        );
        pki.issue("intruder", "ca", "DNS:intruder.example", "clientAuth");
        pki.issue(
            "stranger",
            "other-ca",
            "DNS:prometheus.example",
            "clientAuth",
        );
        pki
    }

    fn openssl(&self, args: &[&str]) {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .expect("openssl (Debian's openssl package; the README's test command installs it)");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A certificate `name` signed by `ca`, with its own new key.
    fn issue(&self, name: &str, ca: &str, sans: &str, usage: &str) {
        self.openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.crt"),
            "-subj",
            &format!("/CN={name}"),
            "-days",
            "2",
            "-CA",
            &format!("{ca}.crt"),
            "-CAkey",
            &format!("{ca}.key"),
            "-addext",
            &format!("subjectAltName={sans}"),
            "-addext",
            &format!("extendedKeyUsage={usage}"),
            "-addext",
            "basicConstraints=critical,CA:FALSE",
        ]);
    }

    fn path(&self, file: &str) -> String {
        self.dir.path().join(file).display().to_string()
    }

    fn config(&self, text: &str) -> String {
        let p = self.dir.path().join("web.yml");
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    }

    /// The serial number of a certificate file, as openssl prints it.
    fn serial(&self, file: &str) -> String {
        let out = Command::new("openssl")
            .args(["x509", "-noout", "-serial", "-in", &self.path(file)])
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }
}

/// What curl got: the status (0 when no HTTP answer came), the HTTP version, the body and headers.
#[derive(Debug)]
struct Got {
    code: u16,
    version: String,
    body: String,
    headers: String,
}

fn curl(url: &str, args: &[&str]) -> Got {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "20", "-D", "/dev/stderr", "-o", "-"])
        .args(["-w", "\n%{http_code} %{http_version}"])
        .args(args)
        .arg(url)
        .output()
        .expect("curl");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, status) = stdout.rsplit_once('\n').unwrap_or(("", &stdout));
    let mut status = status.split_whitespace();
    Got {
        code: status.next().and_then(|c| c.parse().ok()).unwrap_or(0),
        version: status.next().unwrap_or("").to_string(),
        body: body.to_string(),
        headers: String::from_utf8_lossy(&out.stderr).to_string(),
    }
}

fn https(e: &Exporter, path: &str) -> String {
    format!("https://{}{}", e.addr, path)
}

fn start(config: &str) -> Exporter {
    Exporter::start(&[
        &format!("--web.config.file={config}"),
        "--collector.disable-defaults",
        "--collector.meminfo",
    ])
}

const TLS: &str = "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n";

#[test]
fn tls_serves_the_metrics_and_negotiates_http2() {
    let pki = Pki::new();
    let e = start(&pki.config(TLS));
    let ca = pki.path("ca.crt");
    let got = curl(&https(&e, "/metrics"), &["--cacert", &ca, "--http2"]);
    assert_eq!((got.code, got.version.as_str()), (200, "2"), "{got:?}");
    let kernel = std::fs::read_to_string("/proc/meminfo").unwrap();
    let total: f64 = kernel
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let served = common::value(
        &common::parse_exposition(&got.body),
        "node_memory_MemTotal_bytes",
        &[],
    );
    assert_eq!(served, Some(total * 1024.0));
    assert_eq!(common::strict_problems(&got.body), Vec::<String>::new());
    // HTTP/1.1 over TLS too, and no plain HTTP on a TLS port.
    let got = curl(&https(&e, "/metrics"), &["--cacert", &ca, "--http1.1"]);
    assert_eq!((got.code, got.version.as_str()), (200, "1.1"));
    assert_eq!(curl(&e.url("/metrics"), &[]).code, 0);
    // A certificate the client does not trust is refused by the client.
    assert_eq!(
        curl(
            &https(&e, "/metrics"),
            &["--cacert", &pki.path("other-ca.crt")]
        )
        .code,
        0
    );

    // http2: false offers only HTTP/1.1 through ALPN.
    let pki = Pki::new();
    let e = start(&pki.config(&format!("{TLS}http_server_config:\n  http2: false\n")));
    let got = curl(
        &https(&e, "/metrics"),
        &["--cacert", &pki.path("ca.crt"), "--http2"],
    );
    assert_eq!((got.code, got.version.as_str()), (200, "1.1"), "{got:?}");
}

#[test]
fn min_version_tls13_refuses_tls12() {
    let pki = Pki::new();
    let e = start(&pki.config(&format!("{TLS}  min_version: TLS13\n")));
    let ca = pki.path("ca.crt");
    assert_eq!(
        curl(
            &https(&e, "/healthz"),
            &["--cacert", &ca, "--tls-max", "1.2"]
        )
        .code,
        0
    );
    assert_eq!(
        curl(&https(&e, "/healthz"), &["--cacert", &ca, "--tlsv1.3"]).code,
        200
    );
    // And the default (TLS12 to TLS13) takes both.
    let pki = Pki::new();
    let e = start(&pki.config(TLS));
    let ca = pki.path("ca.crt");
    let v12 = curl(
        &https(&e, "/healthz"),
        &["--cacert", &ca, "--tls-max", "1.2", "-v"],
    );
    assert_eq!(v12.code, 200);
    // Only the suites listed are offered for TLS 1.2.
    let pki = Pki::new();
    let e = start(&pki.config(&format!(
        "{TLS}  max_version: TLS12\n  cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384]\n"
    )));
    let ca = pki.path("ca.crt");
    let ok = curl(
        &https(&e, "/healthz"),
        &[
            "--cacert",
            &ca,
            "--ciphers",
            "ECDHE-ECDSA-AES256-GCM-SHA384",
        ],
    );
    assert_eq!(ok.code, 200);
    let other = curl(
        &https(&e, "/healthz"),
        &[
            "--cacert",
            &ca,
            "--ciphers",
            "ECDHE-ECDSA-AES128-GCM-SHA256",
        ],
    );
    assert_eq!(other.code, 0);
}

#[test]
fn mutual_tls_checks_the_client_ca_and_its_sans() {
    let pki = Pki::new();
    let e = start(&pki.config(&format!(
        "{TLS}  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n  \
         client_allowed_sans: [prometheus.example]\n"
    )));
    let ca = pki.path("ca.crt");
    let with = |who: &str| {
        let (crt, key) = (
            pki.path(&format!("{who}.crt")),
            pki.path(&format!("{who}.key")),
        );
        curl(
            &https(&e, "/metrics"),
            &["--cacert", &ca, "--cert", &crt, "--key", &key],
        )
        .code
    };
    assert_eq!(
        with("client"),
        200,
        "a client of the CA with an allowed SAN"
    );
    assert_eq!(
        with("intruder"),
        0,
        "a client of the CA without an allowed SAN"
    );
    assert_eq!(with("stranger"), 0, "a client of another CA");
    assert_eq!(
        curl(&https(&e, "/metrics"), &["--cacert", &ca]).code,
        0,
        "no client certificate"
    );
}

#[test]
fn basic_auth_and_headers() {
    let pki = Pki::new();
    // Cost 10 as htpasswd -B makes them; made by the bcrypt crate the exporter uses to check them.
    let hash = bcrypt_hash("s3cret");
    let e = start(&pki.config(&format!(
        "basic_auth_users:\n  alice: {hash}\nhttp_server_config:\n  headers:\n    \
         X-Frame-Options: deny\n    Strict-Transport-Security: max-age=31536000\n"
    )));
    let url = e.url("/metrics");
    let right = curl(&url, &["-u", "alice:s3cret"]);
    assert_eq!(right.code, 200);
    assert!(right.body.contains("node_memory_MemTotal_bytes "));
    assert!(
        right
            .headers
            .to_ascii_lowercase()
            .contains("x-frame-options: deny"),
        "{}",
        right.headers
    );
    let wrong = curl(&url, &["-u", "alice:guess"]);
    assert_eq!(wrong.code, 401);
    assert!(
        wrong.headers.contains("WWW-Authenticate: Basic")
            || wrong.headers.contains("www-authenticate: Basic")
    );
    assert!(
        wrong
            .headers
            .to_ascii_lowercase()
            .contains("strict-transport-security: max-age=31536000")
    );
    assert_eq!(curl(&url, &[]).code, 401);
    assert_eq!(curl(&url, &["-u", "bob:s3cret"]).code, 401);
    assert_eq!(
        curl(&e.url("/"), &[]).code,
        401,
        "the landing page is behind the password too"
    );
    // Probes answer without a password.
    assert_eq!(curl(&e.url("/healthz"), &[]).code, 200);
    assert_eq!(curl(&e.url("/readyz"), &[]).code, 200);
    // The verified result is cached: the second right answer takes no bcrypt.
    let t = Instant::now();
    for _ in 0..20 {
        assert_eq!(
            curl(&url, &["-u", "alice:s3cret", "-o", "/dev/null"]).code,
            200
        );
    }
    println!("20 authenticated scrapes in {:?}", t.elapsed());
}

fn bcrypt_hash(password: &str) -> String {
    // htpasswd (apache2-utils) is not on a fresh machine: the bcrypt crate makes the same $2b$ hashes.
    bcrypt::hash(password, 10).unwrap()
}

#[test]
fn certificates_and_file_are_read_again_when_they_change() {
    let pki = Pki::new();
    let e = start(&pki.config(TLS));
    let served = || {
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "openssl s_client -connect {} -servername localhost </dev/null 2>/dev/null | openssl x509 -noout -serial",
                e.addr
            ))
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    assert_eq!(served(), pki.serial("server.crt"));
    // Rotated as cert-manager and kubelet secret mounts do: new files in place.
    pki.issue("server", "ca", "DNS:localhost,IP:127.0.0.1", "serverAuth");
    assert_eq!(
        served(),
        pki.serial("server.crt"),
        "the new certificate on the next connection"
    );
    // A broken file later: the last good configuration stays, and the log says so once.
    let config =
        pki.config("tls_server_config:\n  cert_file: missing.crt\n  key_file: server.key\n");
    for _ in 0..3 {
        assert_eq!(served(), pki.serial("server.crt"));
    }
    std::thread::sleep(Duration::from_millis(300));
    let said: Vec<String> = e
        .drain_log()
        .into_iter()
        .filter(|l| l.contains("keeping the last good"))
        .collect();
    assert_eq!(said.len(), 1, "{said:?}");
    assert!(
        said[0].contains("tls_server_config.cert_file"),
        "{}",
        said[0]
    );
    // Fixed again: used again.
    std::fs::write(&config, TLS).unwrap();
    assert_eq!(
        curl(&https(&e, "/healthz"), &["--cacert", &pki.path("ca.crt")]).code,
        200
    );
    assert!(
        e.drain_log()
            .iter()
            .any(|l| l.contains("web configuration reloaded"))
    );
}

#[test]
fn a_bad_file_at_start_exits_2_naming_the_field() {
    let pki = Pki::new();
    for (text, field) in [
        (
            "tls_server_config:\n  cert_file: server.crt\n",
            "tls_server_config.key_file",
        ),
        (
            "tls_server_config:\n  cert_file: nope.crt\n  key_file: server.key\n",
            "tls_server_config.cert_file",
        ),
        (
            "tls_server_config:\n  cert_file: server.crt\n  key_file: client.key\n",
            "tls_server_config.key_file",
        ),
        (
            &format!("{TLS}  client_auth_type: Sometimes\n"),
            "tls_server_config.client_auth_type",
        ),
        (
            &format!("{TLS}  min_version: TLS99\n"),
            "tls_server_config.min_version",
        ),
        (
            &format!("{TLS}  cipher_suites: [TLS_RSA_WITH_RC4_128_SHA]\n"),
            "tls_server_config.cipher_suites",
        ),
        (&format!("{TLS}  sni: x\n"), "unknown field `sni`"),
        (
            "basic_auth_users:\n  alice: plaintext\n",
            "basic_auth_users.alice",
        ),
    ] {
        let config = pki.config(text);
        let out = Command::new(env!("CARGO_BIN_EXE_stevedore"))
            .args([
                "--web.listen-address=127.0.0.1:0",
                &format!("--web.config.file={config}"),
            ])
            .stdout(Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{text}: {stderr}");
        assert!(stderr.contains(field), "{text}: wanted {field} in {stderr}");
    }
}

#[test]
fn prometheus_scrapes_over_mutual_tls_with_basic_auth() {
    let pki = Pki::new();
    let hash = bcrypt_hash("scrape-pass");
    let e = start(&pki.config(&format!(
        "{TLS}  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n\
         basic_auth_users:\n  prometheus: {hash}\n"
    )));
    let p = start_prometheus_with(&format!(
        "scheme: https\n    tls_config:\n      ca_file: {ca}\n      cert_file: {crt}\n      \
         key_file: {key}\n    basic_auth:\n      username: prometheus\n      password: scrape-pass\n    \
         static_configs:\n      - targets: ['{target}']\n",
        ca = pki.path("ca.crt"),
        crt = pki.path("client.crt"),
        key = pki.path("client.key"),
        target = e.addr,
    ));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mem = query(&p, "node_memory_MemTotal_bytes{job=\"stevedore\"}");
        let up = query(&p, "up{job=\"stevedore\"}");
        if up.first().map(|u| u.1) == Some(1.0) && !mem.is_empty() {
            let kernel = std::fs::read_to_string("/proc/meminfo").unwrap();
            let kib: f64 = kernel
                .lines()
                .next()
                .unwrap()
                .split_whitespace()
                .nth(1)
                .unwrap()
                .parse()
                .unwrap();
            assert_eq!(mem[0].1, kib * 1024.0);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "prometheus did not scrape over mTLS: up={up:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The same file, byte for byte, is accepted by Debian's node_exporter (exporter-toolkit) and by
/// Stevedore, and both answer the same client the same way.
#[test]
fn the_same_file_works_for_node_exporter() {
    let pki = Pki::new();
    let hash = bcrypt_hash("shared");
    // node_exporter 1.5 (Debian 12) predates client_allowed_sans; everything else is here.
    let config = pki.config(&format!(
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  \
         client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n  \
         min_version: TLS12\n  max_version: TLS13\n  \
         cipher_suites:\n    - TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256\n    - TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384\n  \
         curve_preferences: [X25519, CurveP256]\n  prefer_server_cipher_suites: true\n\
         http_server_config:\n  http2: true\n  headers:\n    X-Content-Type-Options: nosniff\n\
         basic_auth_users:\n  prometheus: {hash}\n"
    ));
    let port = free_port();
    let mut node = Command::new("prometheus-node-exporter")
        .args([
            &format!("--web.listen-address=127.0.0.1:{port}"),
            &format!("--web.config.file={config}"),
            "--collector.disable-defaults",
            "--collector.meminfo",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect(
            "prometheus-node-exporter (Debian's package; the README's test command installs it)",
        );
    let e = start(&config);
    let node_url = format!("https://127.0.0.1:{port}/metrics");
    let ca = pki.path("ca.crt");
    let (crt, key) = (pki.path("client.crt"), pki.path("client.key"));
    let client = [
        "--cacert",
        &ca,
        "--cert",
        &crt,
        "--key",
        &key,
        "-u",
        "prometheus:shared",
    ];
    let deadline = Instant::now() + Duration::from_secs(20);
    while curl(&node_url, &client).code != 200 {
        assert!(
            Instant::now() < deadline,
            "node_exporter did not serve with the file"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    for url in [node_url.as_str(), &https(&e, "/metrics")] {
        let got = curl(url, &client);
        assert_eq!((got.code, got.version.as_str()), (200, "2"), "{url}");
        assert!(got.body.contains("node_memory_MemTotal_bytes "), "{url}");
        assert!(
            got.headers
                .to_ascii_lowercase()
                .contains("x-content-type-options: nosniff")
        );
        assert_eq!(curl(url, &client[..6]).code, 401, "{url}: no password");
        assert_eq!(
            curl(url, &["--cacert", &ca]).code,
            0,
            "{url}: no client certificate"
        );
    }
    let _ = node.kill();
    let _ = node.wait();
}

/// Connections that never finish the TLS handshake are closed after --web.read-header-timeout and do
/// not keep others out.
#[test]
fn stalled_tls_handshakes_are_closed() {
    use std::io::{Read, Write};
    let pki = Pki::new();
    let e = Exporter::start(&[
        &format!("--web.config.file={}", pki.config(TLS)),
        "--web.read-header-timeout=1s",
        "--collector.disable-defaults",
        "--collector.meminfo",
    ]);
    let start = Instant::now();
    let mut stalled: Vec<std::net::TcpStream> = (0..100)
        .map(|i| {
            let mut s = std::net::TcpStream::connect(&e.addr).unwrap();
            if i % 2 == 0 {
                // Half send the first bytes of a ClientHello record, then nothing.
                s.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01]).unwrap();
            }
            s
        })
        .collect();
    let ca = pki.path("ca.crt");
    assert_eq!(curl(&https(&e, "/healthz"), &["--cacert", &ca]).code, 200);
    for s in &mut stalled {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buf = [0; 64];
        let closed = match s.read(&mut buf) {
            Ok(n) => n == 0 || s.read(&mut buf).map(|n| n == 0).unwrap_or(true),
            Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
        };
        assert!(closed, "a stalled handshake was not closed");
    }
    let took = start.elapsed();
    println!("100 stalled handshakes closed after {took:?}");
    assert!(took < Duration::from_secs(8), "{took:?}");
    assert_eq!(curl(&https(&e, "/metrics"), &["--cacert", &ca]).code, 200);
}

/// Many concurrent scrapes multiplexed on HTTP/2 connections past --web.max-requests: 503 for the
/// excess (never a crash), at most 16 streams at once per connection, and /healthz still answers.
#[test]
fn http2_streams_past_the_request_limit_get_503() {
    let pki = Pki::new();
    let e = Exporter::start(&[
        &format!("--web.config.file={}", pki.config(TLS)),
        "--web.max-requests=2",
        "--collect.min-age=0",
        "--collector.disable-defaults",
        "--collector.meminfo",
        "--collector.filesystem",
    ]);
    let url = https(&e, "/metrics");
    let mut args: Vec<String> = [
        "-sS",
        "--http2",
        "--parallel",
        "--parallel-max",
        "60",
        "--cacert",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.push(pki.path("ca.crt"));
    args.extend([
        "-w".to_string(),
        "%{http_code} %{http_version}\n".to_string(),
    ]);
    // One -o per URL: curl applies an -o to one URL only, and the other bodies would be mixed into the
    // status lines.
    for _ in 0..120 {
        args.extend(["-o".to_string(), "/dev/null".to_string(), url.clone()]);
    }
    let out = Command::new("curl").args(&args).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let codes: Vec<&str> = text.lines().collect();
    let ok = codes.iter().filter(|l| **l == "200 2").count();
    let busy = codes.iter().filter(|l| **l == "503 2").count();
    println!("120 scrapes over HTTP/2: {ok} answered, {busy} refused with 503");
    assert_eq!(ok + busy, 120, "{text}");
    assert!(ok > 0);
    let ca = pki.path("ca.crt");
    assert_eq!(
        curl(&https(&e, "/healthz"), &["--cacert", &ca, "--http2"]).code,
        200
    );
    assert_eq!(curl(&url, &["--cacert", &ca, "--http2"]).code, 200);
}
