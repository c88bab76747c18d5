//! The HTTP layer: routes, format negotiation, gzip, collector filters and the in-flight limit.
//! It knows no metric: it asks the scraper for a snapshot and the expose module for its text, and the
//! live view's hub for its frames (`live`).

pub(crate) mod conn;
pub(crate) mod live;

use std::sync::Arc;

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use tokio::sync::Semaphore;
use tower_http::compression::CompressionLayer;

use crate::expose::{self, Format};
use crate::scrape::Scraper;
use crate::webconfig::Live;

#[derive(Clone)]
pub(crate) struct AppState {
    pub scraper: Arc<Scraper>,
    /// `None` when --web.max-requests is 0 (no limit).
    pub limit: Option<Arc<Semaphore>>,
    pub telemetry_path: String,
    /// Background sources, for `stevedore_source_up`.
    pub sources: Arc<crate::health::Sources>,
    /// The live view, unless --web.disable-ui.
    pub live: Option<live::LiveState>,
}

pub(crate) fn router(state: AppState, web: Option<Arc<Live>>) -> Router {
    let metrics = Router::new()
        .route(&state.telemetry_path, get(metrics))
        .layer(
            CompressionLayer::new()
                .gzip(true)
                .no_br()
                .no_deflate()
                .no_zstd(),
        );
    let mut app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .merge(metrics);
    let ui = state.live.clone();
    if ui.is_none() && state.telemetry_path != "/" {
        app = app.route(
            "/",
            get(landing).layer(axum::middleware::map_response(live::secure)),
        );
    }
    let mut app = app
        .fallback(|| async { (StatusCode::NOT_FOUND, "404 page not found\n") })
        .with_state(state);
    if let Some(ui) = ui {
        app = app.merge(live::routes(ui));
    }
    match web {
        Some(web) => app.layer(axum::middleware::from_fn_with_state(web, guard)),
        None => app,
    }
}

/// The web configuration's rules for every request: rate limit, basic authentication, response headers.
/// The probes `/healthz` and `/readyz` need no password and are not rate limited: they tell nothing but
/// "alive" and "ready", and a kubelet probe should not carry a password or fail under a scrape storm.
async fn guard(
    State(web): State<Arc<Live>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let active = web.current();
    let probe = matches!(req.uri().path(), "/healthz" | "/readyz");
    let mut resp = if probe {
        next.run(req).await
    } else if active.rate_limit.as_ref().is_some_and(|r| !r.allow()) {
        (StatusCode::TOO_MANY_REQUESTS, "Too Many Requests\n").into_response()
    } else if active.users.is_empty()
        || web
            .auth
            .allows(
                &active.users,
                req.headers()
                    .get(header::AUTHORIZATION)
                    .map(|v| v.as_bytes()),
            )
            .await
    {
        next.run(req).await
    } else {
        let mut r = (StatusCode::UNAUTHORIZED, "Unauthorized\n").into_response();
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic"));
        r
    };
    for (name, value) in &active.headers {
        resp.headers_mut().insert(name.clone(), value.clone());
    }
    resp
}

async fn readyz(State(s): State<AppState>) -> Response {
    if s.scraper.is_ready() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: no collection has succeeded yet\n",
        )
            .into_response()
    }
}

async fn landing(State(s): State<AppState>) -> Html<String> {
    let collectors = s.scraper.collector_names().join(", ");
    Html(format!(
        "<!DOCTYPE html>\n<html><head><title>Stevedore</title></head><body>\n\
         <h1>Stevedore</h1>\n<p>Container, pod and node resource metrics for Prometheus.</p>\n\
         <p>Version: {version}</p>\n<ul>\n\
         <li><a href=\"{path}\">{path}</a>: metrics</li>\n\
         <li><a href=\"/healthz\">/healthz</a>: liveness</li>\n\
         <li><a href=\"/readyz\">/readyz</a>: readiness</li>\n</ul>\n\
         <p>Enabled collectors: {collectors}</p>\n</body></html>\n",
        version = crate::cli::VERSION_LINE,
        path = html_escape(&s.telemetry_path),
    ))
}

pub(crate) fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn bad_request(msg: String) -> Response {
    (StatusCode::BAD_REQUEST, msg + "\n").into_response()
}

/// Which collectors a scrape asked for through `collect[]` / `exclude[]`.
pub(crate) fn select(
    query: Option<&str>,
    known: &[&'static str],
) -> Result<Vec<&'static str>, String> {
    let mut collect = Vec::new();
    let mut exclude = Vec::new();
    for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match k.as_ref() {
            "collect[]" => collect.push(v.into_owned()),
            "exclude[]" => exclude.push(v.into_owned()),
            _ => {}
        }
    }
    if !collect.is_empty() && !exclude.is_empty() {
        return Err("Combined collect and exclude queries are not allowed.".to_string());
    }
    for name in collect.iter().chain(&exclude) {
        if !known.contains(&name.as_str()) {
            // The client's text is not echoed back whole: at most 64 characters, escaped.
            let shown: String = name.chars().take(64).collect();
            let more = if shown.len() < name.len() { "…" } else { "" };
            return Err(format!(
                "unknown or disabled collector {shown:?}{more}; enabled collectors: {}",
                known.join(", ")
            ));
        }
    }
    Ok(known
        .iter()
        .copied()
        .filter(|k| {
            (collect.is_empty() || collect.iter().any(|c| c == k))
                && !exclude.iter().any(|e| e == k)
        })
        .collect())
}

async fn metrics(
    State(s): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let _permit = match &s.limit {
        Some(sem) => match sem.clone().try_acquire_owned() {
            Ok(p) => Some(p),
            Err(_) => {
                return (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "too many concurrent scrapes (--web.max-requests)\n",
                )
                    .into_response();
            }
        },
        None => None,
    };
    let selected = match select(query.as_deref(), &s.scraper.collector_names()) {
        Ok(sel) => sel,
        Err(msg) => return bad_request(msg),
    };
    let format = Format::negotiate(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()));
    let parts = s.scraper.scrape(&selected).await;
    // Rendered on a blocking thread into a few chunks in flight, streamed as they fill: a large
    // exposition is never held whole. The in-flight permit lives until the rendering ends.
    let sources = s.sources.all();
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<axum::body::Bytes, std::io::Error>>(2);
    let slot = Slot {
        permit: _permit,
        limit: s.limit.clone(),
        runtime: tokio::runtime::Handle::current(),
    };
    tokio::task::spawn_blocking(move || {
        let sender = tx.clone();
        let mut slot = slot;
        let last = expose::render_chunked(parts, format, sources, move |chunk| {
            slot.send(&sender, chunk)
        });
        // The slot went with the rendering: it is free before the client can have the whole body.
        if !last.is_empty() {
            let _ = tx.blocking_send(Ok(last.into()));
        }
    });
    // poll_recv keeps answering None after the end (the gzip layer polls once more).
    let mut rx = rx;
    let chunks = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
    let mut resp = axum::body::Body::from_stream(chunks).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    resp
}

type Chunk = Result<axum::body::Bytes, std::io::Error>;

/// A scrape's `--web.max-requests` slot, held while its exposition is rendered. A client that does not
/// take what is rendered does not keep it: while a chunk waits for the client the slot is given back,
/// and taken again (waiting for one if need be) before rendering goes on. So clients that read slowly
/// cost a thread and two chunks each (bounded by --web.max-connections), never other scrapes' slots.
struct Slot {
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
    limit: Option<Arc<Semaphore>>,
    runtime: tokio::runtime::Handle,
}

impl Slot {
    /// Hands a chunk to the response; false when the client has gone.
    fn send(&mut self, tx: &tokio::sync::mpsc::Sender<Chunk>, chunk: String) -> bool {
        use tokio::sync::mpsc::error::TrySendError;
        let chunk = match tx.try_send(Ok(chunk.into())) {
            Ok(()) => return true,
            Err(TrySendError::Closed(_)) => return false,
            Err(TrySendError::Full(chunk)) => chunk,
        };
        let held = self.permit.take().is_some();
        if tx.blocking_send(chunk).is_err() {
            return false;
        }
        if held && let Some(limit) = &self.limit {
            self.permit = self.runtime.block_on(limit.clone().acquire_owned()).ok();
        }
        true
    }
}

/// Limits of the server on a shared network.
pub(crate) struct Limits {
    pub(crate) read_header_timeout: std::time::Duration,
    pub(crate) max_header_bytes: usize,
    pub(crate) max_connections: usize,
}

/// How each accepted connection is served: plain HTTP/1.1, or TLS and then HTTP/1.1 or HTTP/2 as ALPN
/// chose.
struct Connections {
    h1: hyper::server::conn::http1::Builder,
    h2: hyper::server::conn::http2::Builder<hyper_util::rt::TokioExecutor>,
    /// The TLS handshake gets as long as the request headers (a slow handshake is a slowloris too).
    handshake_timeout: std::time::Duration,
}

impl Connections {
    fn new(limits: &Limits) -> Connections {
        let mut h1 = hyper::server::conn::http1::Builder::new();
        h1.timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(limits.read_header_timeout)
            .max_buf_size(limits.max_header_bytes.max(8192))
            .max_header_size(limits.max_header_bytes);
        let mut h2 = hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new());
        h2.timer(hyper_util::rt::TokioTimer::new())
            .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
            .max_concurrent_streams(16)
            .keep_alive_interval(Some(std::time::Duration::from_secs(30)))
            .keep_alive_timeout(limits.read_header_timeout);
        Connections {
            h1,
            h2,
            handshake_timeout: limits.read_header_timeout,
        }
    }

    async fn serve(
        &self,
        tcp: tokio::net::TcpStream,
        tls: Option<Arc<rustls::ServerConfig>>,
        app: Router,
        ticket: &conn::Ticket,
        watcher: hyper_util::server::graceful::Watcher,
    ) {
        use hyper_util::rt::TokioIo;
        let service = tracked(app, ticket.busy.clone());
        let ended = match tls {
            None => {
                watcher
                    .watch(self.h1.serve_connection(TokioIo::new(tcp), service))
                    .await
            }
            Some(config) => {
                let accept = tokio_rustls::TlsAcceptor::from(config).accept(tcp);
                let stream = match tokio::time::timeout(self.handshake_timeout, accept).await {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(e)) => {
                        tracing::debug!(error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!("TLS handshake not done within --web.read-header-timeout");
                        return;
                    }
                };
                let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
                let io = TokioIo::new(stream);
                if h2 {
                    watcher.watch(self.h2.serve_connection(io, service)).await
                } else {
                    watcher.watch(self.h1.serve_connection(io, service)).await
                }
            }
        };
        if let Err(e) = ended {
            tracing::debug!(error = %e, "connection ended with an error");
        }
    }
}

/// The app as a hyper service whose connection counts as busy from each request's arrival until its
/// response body is all sent.
type Reply = Result<http::Response<conn::Tracked>, std::convert::Infallible>;
type ReplyFuture = std::pin::Pin<Box<dyn std::future::Future<Output = Reply> + Send>>;

fn tracked(
    app: Router,
    busy: Arc<std::sync::atomic::AtomicUsize>,
) -> impl hyper::service::Service<
    http::Request<hyper::body::Incoming>,
    Response = http::Response<conn::Tracked>,
    Error = std::convert::Infallible,
    Future = ReplyFuture,
> + Clone {
    let inner = hyper_util::service::TowerToHyperService::new(app);
    hyper::service::service_fn(move |req| {
        let guard = conn::Busy::enter(&busy);
        let call = hyper::service::Service::call(&inner, req);
        Box::pin(async move {
            let resp = call.await?;
            Ok(resp.map(|inner| conn::Tracked {
                inner,
                _busy: guard,
            }))
        }) as ReplyFuture
    })
}

/// A listener on `addr` with a backlog as deep as the kernel allows (`net.core.somaxconn`, as Go's servers
/// use), not the standard library's 128: a burst of reconnecting clients that overflows the accept queue
/// drops SYNs, and a dropped SYN costs Prometheus' connection a second's retransmission.
pub(crate) fn listen(addr: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    // The kernel caps this at net.core.somaxconn.
    socket.listen(4096)
}

/// Serves `app` on `listener` until `shutdown` resolves, then lets the connections in flight finish (at
/// most 10 s). Each connection gets `read_header_timeout` to finish its TLS handshake and to send its
/// headers, between requests too, so slow-header and idle connections are closed; past
/// `max_connections` a new one takes the place of an idle one of the peer holding the most (`conn`). With a web configuration that has TLS, every
/// connection is TLS, with the certificates in force when it was accepted.
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    limits: Limits,
    web: Option<Arc<Live>>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let connections = Arc::new(Connections::new(&limits));
    let registry = conn::Registry::new(limits.max_connections);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut refusing = false;
    let mut accept_failing = false;
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            _ = &mut shutdown => break,
            a = listener.accept() => a,
        };
        let (tcp, peer) = match accepted {
            Ok((tcp, addr)) => {
                accept_failing = false;
                (tcp, conn::Peer::from(addr.ip()))
            }
            Err(e) => {
                // Out of file descriptors, most often: say so once, back off a little.
                if !std::mem::replace(&mut accept_failing, true) {
                    tracing::error!(error = %e, "cannot accept connections (is the open-files limit reached?)");
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let admit = registry.admit(peer);
        match admit.at_cap() {
            None => refusing = false,
            // Once per episode at the cap, not once per connection closed.
            Some(why) => {
                if !std::mem::replace(&mut refusing, true) {
                    tracing::warn!(
                        max = limits.max_connections,
                        "{why} (--web.max-connections)"
                    );
                }
            }
        }
        let Some(ticket) = admit.ticket() else {
            continue;
        };
        // The exposition leaves in several writes: without TCP_NODELAY the last one waits for the
        // client's delayed ACK (40 ms on Linux), measured on every scrape by the benchmark.
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY on a scrape connection");
        }
        let tls = web.as_ref().and_then(|w| w.current().tls.clone());
        let (connections, app, watcher) = (connections.clone(), app.clone(), graceful.watcher());
        tokio::spawn(async move {
            let close = ticket.close.clone();
            tokio::select! {
                _ = connections.serve(tcp, tls, app, &ticket, watcher) => {}
                _ = close.notified() => {}
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(std::time::Duration::from_secs(10), graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open 10 s after the shutdown signal; closing them");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KNOWN: &[&str] = &["cpu", "meminfo", "filesystem"];

    #[test]
    fn filters() {
        assert_eq!(select(None, KNOWN).unwrap(), KNOWN);
        assert_eq!(select(Some("collect[]=cpu"), KNOWN).unwrap(), vec!["cpu"]);
        assert_eq!(
            select(Some("collect%5B%5D=cpu&collect%5B%5D=meminfo"), KNOWN).unwrap(),
            vec!["cpu", "meminfo"]
        );
        assert_eq!(
            select(Some("exclude[]=cpu"), KNOWN).unwrap(),
            vec!["meminfo", "filesystem"]
        );
        assert!(select(Some("collect[]=cpu&exclude[]=meminfo"), KNOWN).is_err());
        assert!(select(Some("collect[]=nope"), KNOWN).is_err());
        // A huge unknown name is not echoed back whole.
        let long = format!("collect[]={}", "x".repeat(60_000));
        let msg = select(Some(&long), KNOWN).unwrap_err();
        assert!(msg.len() < 200, "{} bytes", msg.len());
        assert!(msg.contains(&"x".repeat(64)) && !msg.contains(&"x".repeat(65)));
    }
}
