//! Real headless Firefox (Debian's `firefox-esr`) driven over Marionette, its built-in remote protocol:
//! messages `<length>:<json>` on a TCP port that Firefox picks (`marionette.port` 0) and writes into the
//! profile as `MarionetteActivePort`. Commands are `[0, id, name, params]`, answers `[1, id, error,
//! result]`. Killed on drop.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub struct Firefox {
    child: Child,
    conn: BufReader<TcpStream>,
    next: u64,
    _profile: tempfile::TempDir,
}

fn read_message(r: &mut BufReader<TcpStream>) -> Value {
    let mut len = Vec::new();
    r.read_until(b':', &mut len).expect("read from firefox");
    len.pop();
    let n: usize = std::str::from_utf8(&len).unwrap().parse().unwrap();
    let mut body = vec![0u8; n];
    r.read_exact(&mut body).unwrap();
    serde_json::from_slice(&body).unwrap()
}

impl Firefox {
    pub fn start(width: u32, height: u32) -> Firefox {
        let profile = tempfile::tempdir().unwrap();
        std::fs::write(
            profile.path().join("user.js"),
            "user_pref(\"marionette.port\", 0);\n\
             user_pref(\"browser.shell.checkDefaultBrowser\", false);\n\
             user_pref(\"datareporting.policy.dataSubmissionEnabled\", false);\n\
             user_pref(\"app.update.auto\", false);\n",
        )
        .unwrap();
        let child = Command::new("firefox-esr")
            .args(["--headless", "--marionette", "--no-remote", "--profile"])
            .arg(profile.path())
            .arg(format!("--width={width}"))
            .arg(format!("--height={height}"))
            .env("MOZ_HEADLESS_WIDTH", width.to_string())
            .env("MOZ_HEADLESS_HEIGHT", height.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start firefox-esr (Debian's firefox-esr package)");
        let port_file = profile.path().join("MarionetteActivePort");
        let deadline = Instant::now() + Duration::from_secs(60);
        let port: u16 = loop {
            if let Some(p) = std::fs::read_to_string(&port_file)
                .ok()
                .and_then(|s| s.trim().parse().ok())
            {
                break p;
            }
            assert!(
                Instant::now() < deadline,
                "firefox did not open Marionette in 60 s"
            );
            std::thread::sleep(Duration::from_millis(200));
        };
        let tcp = TcpStream::connect(("127.0.0.1", port)).expect("connect to marionette");
        tcp.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let mut conn = BufReader::new(tcp);
        let hello = read_message(&mut conn);
        assert_eq!(hello["marionetteProtocol"], 3, "{hello}");
        let mut f = Firefox {
            child,
            conn,
            next: 0,
            _profile: profile,
        };
        f.call(
            "WebDriver:NewSession",
            json!({"capabilities": {"alwaysMatch": {"acceptInsecureCerts": true}}}),
        );
        f.call(
            "WebDriver:SetWindowRect",
            json!({"width": width, "height": height}),
        );
        f
    }

    pub fn call(&mut self, name: &str, params: Value) -> Value {
        self.next += 1;
        let id = self.next;
        let body = serde_json::to_vec(&json!([0, id, name, params])).unwrap();
        let tcp = self.conn.get_mut();
        tcp.write_all(format!("{}:", body.len()).as_bytes())
            .unwrap();
        tcp.write_all(&body).unwrap();
        loop {
            let m = read_message(&mut self.conn);
            if m[0] == 1 && m[1] == id {
                if !m[2].is_null() {
                    panic!("firefox {name}: {}", m[2]);
                }
                return m[3].clone();
            }
        }
    }

    pub fn goto(&mut self, url: &str) {
        self.call("WebDriver:Navigate", json!({"url": url}));
    }

    /// The value of the expression `expr` in the page.
    pub fn eval(&mut self, expr: &str) -> Value {
        let r = self.call(
            "WebDriver:ExecuteScript",
            json!({"script": format!("return ({expr});"), "args": []}),
        );
        r["value"].clone()
    }

    /// Evaluates `expr` every 100 ms until it is true, at most `secs`.
    pub fn wait_for(&mut self, secs: u64, what: &str, expr: &str) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while self.eval(expr) != Value::Bool(true) {
            assert!(
                Instant::now() < deadline,
                "timed out after {secs} s waiting in Firefox for {what} ({expr})"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn screenshot(&mut self, path: &Path) {
        let r = self.call(
            "WebDriver:TakeScreenshot",
            json!({"full": false, "hash": false}),
        );
        super::browser::save_png(path, r["value"].as_str().unwrap());
    }
}

impl Drop for Firefox {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
