//! Real headless Chromium (Debian's `chromium`) driven over the DevTools protocol on a pipe
//! (`--remote-debugging-pipe`: commands on fd 3, replies on fd 4, each message JSON ended by a NUL).
//! One page per Browser; killed on drop.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

#[derive(Default)]
struct Inbox {
    replies: HashMap<u64, Value>,
    /// Exceptions thrown by the page's scripts and console errors, as text.
    errors: Vec<String>,
    closed: bool,
}

pub struct Browser {
    child: Child,
    to: std::io::PipeWriter,
    inbox: Arc<(Mutex<Inbox>, Condvar)>,
    next: u64,
    session: String,
    _profile: tempfile::TempDir,
}

/// Moves `fd` to `target` in the child, without close-on-exec (a dup to a high number first, so a pipe
/// that already sits on 3 or 4 is not closed by its own dup2).
unsafe fn place(fd: i32, target: i32) -> std::io::Result<()> {
    let high = unsafe { libc::fcntl(fd, libc::F_DUPFD, 10) };
    if high < 0 || unsafe { libc::dup2(high, target) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    unsafe { libc::close(high) };
    Ok(())
}

impl Browser {
    /// Chromium with a fresh profile and one page of `width`x`height`.
    pub fn start(width: u32, height: u32) -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let (cmd_r, cmd_w) = std::io::pipe().unwrap();
        let (rep_r, rep_w) = std::io::pipe().unwrap();
        let (cr, rw) = (cmd_r.as_raw_fd(), rep_w.as_raw_fd());
        let mut cmd = Command::new("chromium");
        cmd.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            "--disable-background-networking",
            "--hide-scrollbars",
            "--remote-debugging-pipe",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--window-size={width},{height}"))
        .arg("about:blank")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        unsafe {
            cmd.pre_exec(move || {
                place(cr, 3)?;
                place(rw, 4)
            });
        }
        let child = cmd
            .spawn()
            .expect("start chromium (Debian's chromium package)");
        drop::<OwnedFd>(cmd_r.into());
        drop::<OwnedFd>(rep_w.into());
        let inbox = Arc::new((Mutex::new(Inbox::default()), Condvar::new()));
        let reader = inbox.clone();
        std::thread::spawn(move || read_messages(rep_r, reader));
        let mut b = Browser {
            child,
            to: cmd_w,
            inbox,
            next: 0,
            session: String::new(),
            _profile: profile,
        };
        let target = b.call_browser("Target.createTarget", json!({"url": "about:blank"}));
        let id = target["targetId"].as_str().unwrap().to_string();
        let attached = b.call_browser(
            "Target.attachToTarget",
            json!({"targetId": id, "flatten": true}),
        );
        b.session = attached["sessionId"].as_str().unwrap().to_string();
        b.call("Page.enable", json!({}));
        b.call("Runtime.enable", json!({}));
        b.call("Network.enable", json!({}));
        b.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": false}),
        );
        // Before any script of the page: record Content-Security-Policy violations (the hook itself is
        // DevTools', outside the page's policy).
        b.call(
            "Page.addScriptToEvaluateOnNewDocument",
            json!({"source": "window.__csp = []; document.addEventListener('securitypolicyviolation', e => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));"}),
        );
        b
    }

    fn send(&mut self, method: &str, params: Value, session: bool) -> Value {
        self.next += 1;
        let id = self.next;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if session {
            msg["sessionId"] = json!(self.session);
        }
        let mut bytes = serde_json::to_vec(&msg).unwrap();
        bytes.push(0);
        self.to.write_all(&bytes).expect("write to chromium");
        let (lock, cv) = &*self.inbox;
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut inbox = lock.lock().unwrap();
        loop {
            if let Some(reply) = inbox.replies.remove(&id) {
                if let Some(err) = reply.get("error") {
                    panic!("chromium {method}: {err}");
                }
                return reply["result"].clone();
            }
            assert!(!inbox.closed, "chromium closed its pipe during {method}");
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "chromium did not answer {method} in 30 s");
            inbox = cv.wait_timeout(inbox, left).unwrap().0;
        }
    }

    fn call_browser(&mut self, method: &str, params: Value) -> Value {
        self.send(method, params, false)
    }

    /// A DevTools command to the page.
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        self.send(method, params, true)
    }

    /// Sends `Authorization: Basic` with every request of the page (documents, fetches, event streams).
    pub fn basic_auth(&mut self, user: &str, password: &str) {
        use base64::Engine;
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        self.call(
            "Network.setExtraHTTPHeaders",
            json!({"headers": {"Authorization": format!("Basic {token}")}}),
        );
    }

    /// Navigates and waits for the document to have loaded.
    pub fn goto(&mut self, url: &str) {
        if let Err(e) = self.try_goto(url) {
            panic!("navigate {url}: {e}");
        }
    }

    /// Navigates; the browser's error (`net::ERR_...`) if the page could not be loaded.
    pub fn try_goto(&mut self, url: &str) -> Result<(), String> {
        let r = self.call("Page.navigate", json!({"url": url}));
        if let Some(e) = r.get("errorText").and_then(Value::as_str) {
            return Err(e.to_string());
        }
        self.wait_for(
            10,
            "the document loaded",
            "document.readyState === 'complete'",
        );
        Ok(())
    }

    /// Evaluates `expr` in the page and returns its value (promises awaited).
    pub fn eval(&mut self, expr: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({"expression": expr, "returnByValue": true, "awaitPromise": true}),
        );
        if let Some(ex) = r.get("exceptionDetails") {
            panic!("{expr}: {ex}");
        }
        r["result"].get("value").cloned().unwrap_or(Value::Null)
    }

    /// Evaluates `expr` every 100 ms until it is true, at most `secs`.
    pub fn wait_for(&mut self, secs: u64, what: &str, expr: &str) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while self.eval(expr) != Value::Bool(true) {
            assert!(
                Instant::now() < deadline,
                "timed out after {secs} s waiting in the browser for {what} ({expr}); errors: {:?}",
                self.errors()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A PNG of the page's viewport, written to `path`.
    pub fn screenshot(&mut self, path: &Path) {
        let r = self.call("Page.captureScreenshot", json!({"format": "png"}));
        save_png(path, r["data"].as_str().unwrap());
    }

    /// Script exceptions and console errors seen so far.
    pub fn errors(&self) -> Vec<String> {
        self.inbox.0.lock().unwrap().errors.clone()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn read_messages(from: std::io::PipeReader, inbox: Arc<(Mutex<Inbox>, Condvar)>) {
    let mut r = BufReader::new(from);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        if r.read_until(0, &mut buf).unwrap_or(0) == 0 {
            break;
        }
        buf.pop_if(|b| *b == 0);
        let Ok(msg) = serde_json::from_slice::<Value>(&buf) else {
            continue;
        };
        let (lock, cv) = &*inbox;
        let mut i = lock.lock().unwrap();
        if let Some(id) = msg.get("id").and_then(Value::as_u64) {
            i.replies.insert(id, msg);
        } else if let Some(text) = page_error(&msg) {
            i.errors.push(text);
        }
        cv.notify_all();
    }
    inbox.0.lock().unwrap().closed = true;
    inbox.1.notify_all();
}

fn page_error(msg: &Value) -> Option<String> {
    let p = &msg["params"];
    match msg["method"].as_str()? {
        "Runtime.exceptionThrown" => Some(p["exceptionDetails"].to_string()),
        "Runtime.consoleAPICalled" if p["type"] == "error" => Some(p["args"].to_string()),
        _ => None,
    }
}

/// Writes a PNG that a browser sent in base64 to `path`, making its folder.
pub fn save_png(path: &Path, base64: &str) {
    use base64::Engine;
    let png = base64::engine::general_purpose::STANDARD
        .decode(base64)
        .expect("a base64 PNG");
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).unwrap();
    }
    std::fs::write(path, png).unwrap();
}
