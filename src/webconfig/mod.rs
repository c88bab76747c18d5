//! `--web.config.file`: exporter-toolkit's web configuration (TLS, client certificates, HTTP/2, response
//! headers, basic authentication, rate limit), read at start-up and again whenever the file or a file
//! it names changes, so certificates rotate without a restart.
//!
//! A bad file at start-up stops the exporter (exit 2, naming the field); a bad file later keeps the last
//! good configuration and says so once. Whether TLS is on is fixed at start-up, as in exporter-toolkit.

mod auth;
pub(crate) mod file;
pub(crate) mod tls;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

pub(crate) use auth::{BasicAuth, RateLimit, credentials};

/// What is wrong with a configuration, and in which field.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ConfigError {
    field: String,
    message: String,
}

impl ConfigError {
    pub(crate) fn new(field: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.field, self.message)
        }
    }
}

/// Files larger than this are refused (a configuration, a certificate chain, a CA bundle).
const MAX_FILE: u64 = 1 << 20;

fn read_capped(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut buf = Vec::new();
    std::fs::File::open(path)?
        .take(MAX_FILE + 1)
        .read_to_end(&mut buf)?;
    if buf.len() as u64 > MAX_FILE {
        return Err(std::io::Error::other("larger than 1 MiB"));
    }
    Ok(buf)
}

/// One configuration in force.
pub(crate) struct Active {
    pub(crate) tls: Option<Arc<rustls::ServerConfig>>,
    pub(crate) headers: Vec<(http::HeaderName, http::HeaderValue)>,
    pub(crate) users: BTreeMap<String, String>,
    pub(crate) rate_limit: Option<RateLimit>,
    http2: bool,
}

impl Active {
    pub(crate) fn http2(&self) -> bool {
        self.tls.is_some() && self.http2
    }
}

/// A file's identity and version: a rotation (rewrite, rename, symlink swap) changes one of these.
type Stamp = Option<(u64, u64, u64, i64, i64, i64, i64)>;

fn stamp(path: &Path) -> Stamp {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some((
        m.dev(),
        m.ino(),
        m.size(),
        m.mtime(),
        m.mtime_nsec(),
        m.ctime(),
        m.ctime_nsec(),
    ))
}

struct State {
    /// The files watched and their stamps when last read.
    seen: Vec<(PathBuf, Stamp)>,
    active: Arc<Active>,
}

/// The web configuration, kept current with its files.
pub(crate) struct Live {
    path: PathBuf,
    state: Mutex<State>,
    pub(crate) auth: BasicAuth,
}

/// Reads and checks the file and every file it names.
fn build(path: &Path) -> Result<(Active, Vec<PathBuf>), ConfigError> {
    let bytes = read_capped(path).map_err(|e| {
        ConfigError::new(
            "",
            format!("cannot read --web.config.file {}: {e}", path.display()),
        )
    })?;
    let text = String::from_utf8(bytes)
        .map_err(|_| ConfigError::new("", format!("{} is not UTF-8 text", path.display())))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let settings = file::parse(&text, dir)?;
    let mut watched = vec![path.to_path_buf()];
    let tls = match &settings.tls {
        None => None,
        Some(t) => {
            for w in tls::warnings(t) {
                tracing::warn!(file = %path.display(), "{w}");
            }
            for pem in [Some(&t.cert), Some(&t.key), t.client_ca.as_ref()]
                .into_iter()
                .flatten()
            {
                if let file::Pem::File(p) = pem {
                    watched.push(p.clone());
                }
            }
            Some(tls::server_config(t, settings.http2)?)
        }
    };
    let headers = settings
        .headers
        .iter()
        .filter_map(|(n, v)| Some((n.parse().ok()?, v.parse().ok()?)))
        .collect();
    let active = Active {
        tls,
        headers,
        users: settings.users,
        rate_limit: settings.rate_limit.map(|(i, b)| RateLimit::new(i, b)),
        http2: settings.http2,
    };
    Ok((active, watched))
}

impl Live {
    /// Reads the configuration at start-up.
    pub(crate) fn load(path: &Path) -> Result<Live, ConfigError> {
        let before = stamp(path);
        let (active, watched) = build(path)?;
        let seen = watched
            .into_iter()
            .map(|p| {
                let s = if p == path { before } else { stamp(&p) };
                (p, s)
            })
            .collect();
        Ok(Live {
            path: path.to_path_buf(),
            state: Mutex::new(State {
                seen,
                active: Arc::new(active),
            }),
            auth: BasicAuth::default(),
        })
    }

    /// The configuration in force, read again first if one of its files changed since.
    pub(crate) fn current(&self) -> Arc<Active> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let now: Vec<(PathBuf, Stamp)> = state
            .seen
            .iter()
            .map(|(p, _)| (p.clone(), stamp(p)))
            .collect();
        if now == state.seen {
            return state.active.clone();
        }
        state.seen = now;
        match build(&self.path) {
            Ok((active, watched)) if active.tls.is_some() == state.active.tls.is_some() => {
                tracing::info!(file = %self.path.display(), "web configuration reloaded");
                for p in watched {
                    if !state.seen.iter().any(|(q, _)| *q == p) {
                        let s = stamp(&p);
                        state.seen.push((p, s));
                    }
                }
                state.active = Arc::new(active);
            }
            Ok(_) => tracing::error!(
                file = %self.path.display(),
                "TLS cannot be switched on or off without a restart; keeping the last good web configuration"
            ),
            Err(e) => tracing::error!(
                file = %self.path.display(),
                error = %e,
                "invalid web configuration; keeping the last good one"
            ),
        }
        state.active.clone()
    }
}
