//! The web configuration file's format and every check that needs no other file: exporter-toolkit's
//! field names, defaults and strictness (unknown fields are errors, so a typo never silently turns TLS
//! or authentication off).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    tls_server_config: Option<TlsFile>,
    http_server_config: Option<HttpFile>,
    basic_auth_users: Option<BTreeMap<String, String>>,
    rate_limit: Option<RateLimitFile>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsFile {
    cert: Option<String>,
    key: Option<String>,
    client_ca: Option<String>,
    cert_file: Option<String>,
    key_file: Option<String>,
    client_auth_type: Option<String>,
    client_ca_file: Option<String>,
    cipher_suites: Option<Vec<String>>,
    curve_preferences: Option<Vec<String>>,
    min_version: Option<String>,
    max_version: Option<String>,
    prefer_server_cipher_suites: Option<bool>,
    client_allowed_sans: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpFile {
    http2: Option<bool>,
    headers: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RateLimitFile {
    interval: Option<String>,
    burst: Option<u32>,
}

/// A validated configuration; the files it names are read by [`super::tls`].
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Settings {
    pub(crate) tls: Option<TlsSettings>,
    pub(crate) http2: bool,
    /// Response headers, names as exporter-toolkit allows them.
    pub(crate) headers: Vec<(String, String)>,
    /// User name → bcrypt hash; empty means no authentication.
    pub(crate) users: BTreeMap<String, String>,
    /// One request per interval, with bursts of this many.
    pub(crate) rate_limit: Option<(Duration, u32)>,
}

/// Where a PEM block comes from: a file (relative to the configuration file) or the file itself.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Pem {
    File(PathBuf),
    Inline(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClientAuth {
    None,
    Request,
    RequireAny,
    VerifyIfGiven,
    RequireAndVerify,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TlsSettings {
    pub(crate) cert: Pem,
    pub(crate) key: Pem,
    pub(crate) client_ca: Option<Pem>,
    pub(crate) client_auth: ClientAuth,
    pub(crate) allowed_sans: Option<Vec<String>>,
    /// The lowest and highest protocol version, as 12 or 13 (rustls speaks no older one).
    pub(crate) min_version: u8,
    pub(crate) max_version: u8,
    /// Go's names, in preference order; `None` means the defaults.
    pub(crate) cipher_suites: Option<Vec<String>>,
    pub(crate) curves: Option<Vec<String>>,
    pub(crate) prefer_server_cipher_suites: bool,
}

/// The response headers exporter-toolkit lets a file set, with the values it accepts (none: any).
const HEADERS: &[(&str, &[&str])] = &[
    ("Strict-Transport-Security", &[]),
    ("X-Content-Type-Options", &["nosniff"]),
    ("X-Frame-Options", &["deny", "sameorigin"]),
    ("X-XSS-Protection", &[]),
    ("Content-Security-Policy", &[]),
];

/// Parses and checks a configuration file's text. `dir` is the file's directory: relative paths in it
/// are relative to the file, as in exporter-toolkit.
pub(crate) fn parse(text: &str, dir: &Path) -> Result<Settings, ConfigError> {
    let file: File = match serde_yaml_ng::from_str::<Option<File>>(text) {
        Ok(f) => f.unwrap_or_default(),
        Err(e) => return Err(ConfigError::new("", e.to_string())),
    };
    let http = file.http_server_config.unwrap_or_default();
    let headers = headers(http.headers.unwrap_or_default())?;
    let users = file.basic_auth_users.unwrap_or_default();
    for (user, hash) in &users {
        if hash.parse::<bcrypt::HashParts>().is_err() {
            return Err(ConfigError::new(
                format!("basic_auth_users.{user}"),
                "not a bcrypt hash (make one with `htpasswd -nBC 10 \"\" | tr -d ':\\n'`)",
            ));
        }
    }
    Ok(Settings {
        tls: tls(file.tls_server_config.unwrap_or_default(), dir)?,
        http2: http.http2.unwrap_or(true),
        headers,
        users,
        rate_limit: rate_limit(file.rate_limit.unwrap_or_default())?,
    })
}

fn headers(map: BTreeMap<String, String>) -> Result<Vec<(String, String)>, ConfigError> {
    let mut out = Vec::new();
    for (name, value) in map {
        let field = format!("http_server_config.headers.{name}");
        let Some((_, allowed)) = HEADERS.iter().find(|(n, _)| *n == name) else {
            let names: Vec<&str> = HEADERS.iter().map(|(n, _)| *n).collect();
            return Err(ConfigError::new(
                field,
                format!(
                    "this header can not be configured; allowed: {}",
                    names.join(", ")
                ),
            ));
        };
        if !allowed.is_empty() && !allowed.contains(&value.as_str()) {
            return Err(ConfigError::new(
                field,
                format!("{value:?} is not one of {allowed:?}"),
            ));
        }
        if http::HeaderValue::from_str(&value).is_err() {
            return Err(ConfigError::new(field, "not a valid header value"));
        }
        if !value.is_empty() {
            out.push((name, value));
        }
    }
    Ok(out)
}

fn rate_limit(r: RateLimitFile) -> Result<Option<(Duration, u32)>, ConfigError> {
    let interval = match &r.interval {
        Some(s) => {
            crate::cli::parse_duration(s).map_err(|e| ConfigError::new("rate_limit.interval", e))?
        }
        None => Duration::ZERO,
    };
    Ok((!interval.is_zero()).then(|| (interval, r.burst.unwrap_or(0))))
}

fn pem(inline: Option<String>, file: Option<String>, dir: &Path) -> Option<Pem> {
    match (
        file.filter(|f| !f.is_empty()),
        inline.filter(|s| !s.is_empty()),
    ) {
        (Some(f), _) => Some(Pem::File(dir.join(f))),
        (None, Some(s)) => Some(Pem::Inline(s)),
        (None, None) => None,
    }
}

fn tls(t: TlsFile, dir: &Path) -> Result<Option<TlsSettings>, ConfigError> {
    let auth_name = t.client_auth_type.clone().unwrap_or_default();
    let cert = pem(t.cert, t.cert_file, dir);
    let key = pem(t.key, t.key_file, dir);
    let client_ca = pem(t.client_ca, t.client_ca_file, dir);
    // exporter-toolkit serves plain HTTP unless one of these is set.
    if cert.is_none() && key.is_none() && client_ca.is_none() && auth_name.is_empty() {
        return Ok(None);
    }
    let cert = cert.ok_or_else(|| {
        ConfigError::new(
            "tls_server_config.cert_file",
            "missing one of cert or cert_file",
        )
    })?;
    let key = key.ok_or_else(|| {
        ConfigError::new(
            "tls_server_config.key_file",
            "missing one of key or key_file",
        )
    })?;
    let client_auth = client_auth(&auth_name)?;
    check_client_auth(
        client_auth,
        client_ca.is_some(),
        t.client_allowed_sans.is_some(),
    )?;
    let min_version = version("min_version", t.min_version.as_deref(), 12)?;
    let max_version = version("max_version", t.max_version.as_deref(), 13)?;
    if max_version < 12 {
        return Err(ConfigError::new(
            "tls_server_config.max_version",
            "TLS 1.0 and 1.1 are not supported (rustls speaks TLS 1.2 and 1.3)",
        ));
    }
    if min_version > max_version {
        return Err(ConfigError::new(
            "tls_server_config.min_version",
            "is above max_version",
        ));
    }
    let settings = TlsSettings {
        cert,
        key,
        client_ca,
        client_auth,
        allowed_sans: t.client_allowed_sans,
        min_version: min_version.max(12),
        max_version,
        cipher_suites: t.cipher_suites,
        curves: t.curve_preferences,
        prefer_server_cipher_suites: t.prefer_server_cipher_suites.unwrap_or(true),
    };
    super::tls::check_names(&settings)?;
    Ok(Some(settings))
}

fn client_auth(name: &str) -> Result<ClientAuth, ConfigError> {
    Ok(match name {
        "" | "NoClientCert" => ClientAuth::None,
        "RequestClientCert" => ClientAuth::Request,
        "RequireAnyClientCert" | "RequireClientCert" => ClientAuth::RequireAny,
        "VerifyClientCertIfGiven" => ClientAuth::VerifyIfGiven,
        "RequireAndVerifyClientCert" => ClientAuth::RequireAndVerify,
        other => {
            return Err(ConfigError::new(
                "tls_server_config.client_auth_type",
                format!(
                    "unknown value {other:?}; one of NoClientCert, RequestClientCert, \
                     RequireAnyClientCert, VerifyClientCertIfGiven, RequireAndVerifyClientCert"
                ),
            ));
        }
    })
}

fn check_client_auth(auth: ClientAuth, has_ca: bool, has_sans: bool) -> Result<(), ConfigError> {
    let field = "tls_server_config.client_auth_type";
    if has_ca && auth == ClientAuth::None {
        return Err(ConfigError::new(
            field,
            "client_ca_file is set but no client certificate is asked for; set client_auth_type \
             (RequireAndVerifyClientCert for mTLS)",
        ));
    }
    if matches!(
        auth,
        ClientAuth::VerifyIfGiven | ClientAuth::RequireAndVerify
    ) && !has_ca
    {
        return Err(ConfigError::new(
            "tls_server_config.client_ca_file",
            "client certificates are verified, so a client CA is needed (client_ca_file or client_ca)",
        ));
    }
    if has_sans && !matches!(auth, ClientAuth::RequireAny | ClientAuth::RequireAndVerify) {
        return Err(ConfigError::new(
            field,
            "client_allowed_sans needs client_auth_type RequireAnyClientCert or \
             RequireAndVerifyClientCert",
        ));
    }
    Ok(())
}

fn version(field: &str, name: Option<&str>, default: u8) -> Result<u8, ConfigError> {
    Ok(match name {
        None => default,
        Some("TLS10") => 10,
        Some("TLS11") => 11,
        Some("TLS12") => 12,
        Some("TLS13") => 13,
        Some(other) => {
            return Err(ConfigError::new(
                format!("tls_server_config.{field}"),
                format!("unknown TLS version {other:?}; one of TLS10, TLS11, TLS12, TLS13"),
            ));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        parse(text, Path::new("/etc/x")).unwrap_err().to_string()
    }

    #[test]
    fn empty_files_serve_plain_http() {
        for text in ["", "# nothing\n", "tls_server_config:\n", "{}"] {
            let s = parse(text, Path::new("/")).unwrap();
            assert!(s.tls.is_none() && s.users.is_empty() && s.http2, "{text:?}");
        }
    }

    #[test]
    fn relative_paths_are_relative_to_the_file() {
        let s = parse(
            "tls_server_config:\n  cert_file: a.crt\n  key_file: /abs/a.key\n",
            Path::new("/etc/x"),
        )
        .unwrap();
        let t = s.tls.unwrap();
        assert_eq!(t.cert, Pem::File("/etc/x/a.crt".into()));
        assert_eq!(t.key, Pem::File("/abs/a.key".into()));
        assert_eq!((t.min_version, t.max_version), (12, 13));
    }

    #[test]
    fn errors_name_the_field() {
        assert!(err("tls_server_config:\n  cert_fil: a\n").contains("cert_fil"));
        assert!(
            err("tls_server_config:\n  key_file: a\n").starts_with("tls_server_config.cert_file")
        );
        assert!(
            err("tls_server_config:\n  cert_file: a\n  key_file: b\n  min_version: TLS14\n")
                .starts_with("tls_server_config.min_version")
        );
        assert!(
            err("tls_server_config:\n  cert_file: a\n  key_file: b\n  client_ca_file: c\n")
                .starts_with("tls_server_config.client_auth_type")
        );
        assert!(
            err("tls_server_config:\n  cert_file: a\n  key_file: b\n  client_auth_type: RequireAndVerifyClientCert\n")
                .starts_with("tls_server_config.client_ca_file")
        );
        assert!(
            err("tls_server_config:\n  cert_file: a\n  key_file: b\n  cipher_suites: [TLS_FAKE]\n")
                .starts_with("tls_server_config.cipher_suites")
        );
        assert!(err("basic_auth_users:\n  alice: secret\n").starts_with("basic_auth_users.alice"));
        assert!(
            err("http_server_config:\n  headers:\n    Server: x\n")
                .starts_with("http_server_config.headers.Server")
        );
        assert!(
            err("http_server_config:\n  headers:\n    X-Frame-Options: allow\n")
                .starts_with("http_server_config.headers.X-Frame-Options")
        );
        assert!(err("rate_limit:\n  interval: soon\n").starts_with("rate_limit.interval"));
    }

    #[test]
    fn settings_as_exporter_toolkit_reads_them() {
        let s = parse(
            "tls_server_config:\n  cert_file: a\n  key_file: b\n  min_version: TLS10\n  \
             client_auth_type: RequireClientCert\n  client_allowed_sans: [x.example]\n\
             http_server_config:\n  http2: false\n  headers:\n    X-Frame-Options: deny\n\
             basic_auth_users:\n  alice: $2y$10$X0h1gDsPszWURQaxFh.zoubFi6DXncSjhoQNJgRrnGs7EsimhC7zG\n\
             rate_limit:\n  interval: 1s\n  burst: 5\n",
            Path::new("/"),
        )
        .unwrap();
        let t = s.tls.unwrap();
        assert_eq!(t.client_auth, ClientAuth::RequireAny);
        assert_eq!(t.min_version, 12, "TLS 1.0 and 1.1 are raised to 1.2");
        assert!(!s.http2);
        assert_eq!(s.headers, [("X-Frame-Options".into(), "deny".into())]);
        assert_eq!(s.rate_limit, Some((Duration::from_secs(1), 5)));
        assert!(s.users.contains_key("alice"));
    }
}
