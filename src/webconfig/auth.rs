//! Basic authentication against bcrypt hashes, with exporter-toolkit's cache of verified results
//! (bcrypt at cost 10 takes tens of milliseconds) and one check at a time (bcrypt is the CPU a password
//! guesser would spend), and the `rate_limit` token bucket.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use base64::Engine;

/// How many (user, hash, password) results are remembered; a full cache forgets one at random.
const CACHE_SIZE: usize = 100;

#[derive(Default)]
pub(crate) struct BasicAuth {
    /// SHA-256 of (user, hash, password) → whether they matched; the password itself is not kept.
    cache: Mutex<HashMap<[u8; 32], bool>>,
    bcrypt: tokio::sync::Mutex<()>,
}

impl BasicAuth {
    /// Whether an `Authorization` header names a user of `users` with the right password.
    pub(crate) async fn allows(
        &self,
        users: &BTreeMap<String, String>,
        header: Option<&[u8]>,
    ) -> bool {
        let Some((user, pass)) = header.and_then(credentials) else {
            return false;
        };
        let known = users.get(&user);
        // An unknown user is checked against a decoy hash, so timing does not tell users apart.
        let hash = known.cloned().unwrap_or_else(|| decoy().to_string());
        let key = cache_key(&user, &hash, &pass);
        if let Some(ok) = self
            .cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return *ok && known.is_some();
        }
        let ok = {
            let _one = self.bcrypt.lock().await;
            tokio::task::spawn_blocking(move || bcrypt::verify(pass, &hash).unwrap_or(false))
                .await
                .unwrap_or(false)
        };
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= CACHE_SIZE
            && let Some(k) = cache.keys().next().copied()
        {
            cache.remove(&k);
        }
        cache.insert(key, ok);
        ok && known.is_some()
    }
}

fn decoy() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| bcrypt::hash("stevedore decoy password", 10).unwrap_or_default())
}

fn cache_key(user: &str, hash: &str, pass: &str) -> [u8; 32] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for part in [user, hash, pass] {
        ctx.update(&(part.len() as u64).to_le_bytes());
        ctx.update(part.as_bytes());
    }
    let mut key = [0; 32];
    key.copy_from_slice(ctx.finish().as_ref());
    key
}

/// User and password of a `Basic` authorization header.
pub(crate) fn credentials(header: &[u8]) -> Option<(String, String)> {
    let header = std::str::from_utf8(header).ok()?.trim();
    let (scheme, rest) = header.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, pass) = text.split_once(':')?;
    Some((user.to_string(), pass.to_string()))
}

/// `rate_limit`: one request per `interval`, bursts of `burst` (Go's `rate.Limiter`).
pub(crate) struct RateLimit {
    interval: Duration,
    burst: u32,
    state: Mutex<(f64, Instant)>,
}

impl RateLimit {
    pub(crate) fn new(interval: Duration, burst: u32) -> RateLimit {
        RateLimit {
            interval,
            burst,
            state: Mutex::new((f64::from(burst), Instant::now())),
        }
    }

    pub(crate) fn allow(&self) -> bool {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let earned = now.duration_since(state.1).as_secs_f64() / self.interval.as_secs_f64();
        let tokens = (state.0 + earned).min(f64::from(self.burst));
        let allowed = tokens >= 1.0;
        *state = (if allowed { tokens - 1.0 } else { tokens }, now);
        allowed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_basic_credentials() {
        assert_eq!(
            credentials(b"Basic YWxpY2U6czNjcjN0Og=="),
            Some(("alice".into(), "s3cr3t:".into()))
        );
        assert_eq!(credentials(b"basic  YTpi "), Some(("a".into(), "b".into())));
        for bad in [
            &b"Bearer YTpi"[..],
            b"Basic",
            b"Basic !!!",
            b"Basic YWI=",
            b"\xff",
        ] {
            assert_eq!(credentials(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn rate_limit_allows_bursts_then_one_per_interval() {
        let r = RateLimit::new(Duration::from_secs(3600), 2);
        assert!(r.allow() && r.allow());
        assert!(!r.allow());
    }

    #[tokio::test]
    async fn verifies_and_caches() {
        let hash = bcrypt::hash("right", 4).unwrap();
        let users = BTreeMap::from([("alice".to_string(), hash)]);
        let auth = BasicAuth::default();
        let basic = |u: &str, p: &str| {
            let b64 = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
            format!("Basic {b64}")
        };
        assert!(
            auth.allows(&users, Some(basic("alice", "right").as_bytes()))
                .await
        );
        assert!(
            !auth
                .allows(&users, Some(basic("alice", "wrong").as_bytes()))
                .await
        );
        assert!(
            !auth
                .allows(&users, Some(basic("bob", "right").as_bytes()))
                .await
        );
        assert!(!auth.allows(&users, None).await);
        assert_eq!(auth.cache.lock().unwrap().len(), 3);
        // Cached results give the same answers.
        assert!(
            auth.allows(&users, Some(basic("alice", "right").as_bytes()))
                .await
        );
        assert!(
            !auth
                .allows(&users, Some(basic("alice", "wrong").as_bytes()))
                .await
        );
    }
}
