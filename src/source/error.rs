//! What can go wrong talking to a daemon, typed: each message says what failed and what to do, and
//! the variant (with what failed) is the failure's class for the one-line-per-change log.

use std::time::Duration;

use crate::health::Failure;

#[derive(Debug, thiserror::Error)]
pub(crate) enum SourceError {
    #[error("{what}: 401 Unauthorized: the token was rejected or has expired; {hint}")]
    Unauthorized { what: String, hint: &'static str },
    #[error("{what}: 403 Forbidden ({message}); the exporter needs {rbac}")]
    Forbidden {
        what: String,
        message: String,
        rbac: &'static str,
    },
    #[error("{what} unreachable ({detail}); {hint}")]
    Unreachable {
        what: String,
        detail: String,
        hint: &'static str,
    },
    #[error("{what}: no answer within {after:?} ({flag})")]
    Timeout {
        what: String,
        after: Duration,
        flag: &'static str,
    },
    #[error("{what}: invalid JSON ({detail}); {hint}")]
    BadPayload {
        what: String,
        detail: String,
        hint: &'static str,
    },
    #[error("{what}: answer larger than {limit_mib} MiB, not read further; {hint}")]
    TooLarge {
        what: String,
        limit_mib: u64,
        hint: &'static str,
    },
    #[error("{what}: HTTP {code} {message}")]
    Http {
        what: String,
        code: u16,
        message: String,
    },
    #[error("{what}: {detail}")]
    Other { what: String, detail: String },
}

impl SourceError {
    fn parts(&self) -> (&'static str, &str) {
        match self {
            SourceError::Unauthorized { what, .. } => ("unauthorized", what),
            SourceError::Forbidden { what, .. } => ("forbidden", what),
            SourceError::Unreachable { what, .. } => ("unreachable", what),
            SourceError::Timeout { what, .. } => ("timeout", what),
            SourceError::BadPayload { what, .. } => ("bad payload", what),
            SourceError::TooLarge { what, .. } => ("too large", what),
            SourceError::Http { what, .. } => ("http", what),
            SourceError::Other { what, .. } => ("other", what),
        }
    }

    /// Explains a failed Kubernetes API or kubelet call: what happened and what to fix.
    pub(crate) fn from_kube(
        e: &kube::Error,
        what: &str,
        rbac: &'static str,
        auth_hint: &'static str,
    ) -> SourceError {
        let what = what.to_string();
        match e {
            kube::Error::Api(s) if s.code == 401 => SourceError::Unauthorized {
                what,
                hint: auth_hint,
            },
            kube::Error::Api(s) if s.code == 403 => SourceError::Forbidden {
                what,
                message: s.message.clone(),
                rbac,
            },
            kube::Error::Api(s) => SourceError::Http {
                what,
                code: s.code,
                message: s.message.clone(),
            },
            kube::Error::HyperError(_) | kube::Error::Service(_) => SourceError::Unreachable {
                what,
                detail: e.to_string(),
                hint: "check the address and network policy",
            },
            other => SourceError::Other {
                what,
                detail: other.to_string(),
            },
        }
    }
}

impl Failure for SourceError {
    fn class(&self) -> String {
        let (kind, what) = self.parts();
        format!("{kind} {what}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_ignores_the_changing_detail() {
        let a = SourceError::BadPayload {
            what: "kubelet /stats/summary".into(),
            detail: "EOF at line 1 column 300".into(),
            hint: "is --kubelet.url a kubelet?",
        };
        let b = SourceError::BadPayload {
            what: "kubelet /stats/summary".into(),
            detail: "EOF at line 1 column 9000".into(),
            hint: "is --kubelet.url a kubelet?",
        };
        assert_eq!(a.class(), b.class());
        assert!(a.to_string().contains("column 300"), "{a}");
        let c = SourceError::Timeout {
            what: "kubelet /stats/summary".into(),
            after: Duration::from_secs(1),
            flag: "--kubelet.timeout",
        };
        assert_ne!(a.class(), c.class());
        assert!(c.to_string().contains("--kubelet.timeout"), "{c}");
    }
}
