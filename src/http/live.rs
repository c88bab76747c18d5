//! The live view's routes: the page and its embedded assets, a JSON frame, the frames as server-sent
//! events, and one container's details. Every answer carries a Content-Security-Policy that allows only
//! this origin's own script and style, so text from containers (names, labels, images) can never run.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::sync::Semaphore;

use crate::live::Hub;

/// Only this origin's files; no inline script or style, no frames, no forms, no plugins.
pub(crate) const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const INDEX: &str = include_str!("../live/assets/index.html");
const APP_JS: &str = include_str!("../live/assets/app.js");
const APP_CSS: &str = include_str!("../live/assets/app.css");
const ICON: &str = include_str!("../live/assets/icon.svg");

#[derive(Clone)]
pub(crate) struct LiveState {
    pub hub: Arc<Hub>,
    /// Server-sent-event streams open at once (`--web.ui.max-viewers`).
    pub viewers: Arc<Semaphore>,
    pub telemetry_path: String,
}

pub(crate) fn routes(state: LiveState) -> Router {
    let mut r = Router::new()
        .route("/ui/", get(page))
        .route(
            "/ui/app.js",
            get(|| asset(APP_JS, "text/javascript; charset=utf-8")),
        )
        .route(
            "/ui/app.css",
            get(|| asset(APP_CSS, "text/css; charset=utf-8")),
        )
        .route("/ui/icon.svg", get(|| asset(ICON, "image/svg+xml")))
        .route("/api/v1/live", get(frame))
        .route("/api/v1/live/stream", get(stream))
        .route("/api/v1/container", get(container));
    if state.telemetry_path != "/" {
        r = r.route("/", get(page));
    }
    r.with_state(state)
        .layer(axum::middleware::map_response(secure))
}

/// The security headers of every live-view answer.
pub(crate) async fn secure(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    resp
}

async fn asset(body: &'static str, content_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// The page: static markup; everything it shows arrives as data and is set as text by app.js.
async fn page(State(s): State<LiveState>) -> Response {
    let html = INDEX
        .replace("{{VERSION}}", &super::html_escape(crate::cli::VERSION_LINE))
        .replace("{{METRICS}}", &super::html_escape(&s.telemetry_path));
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        html,
    )
        .into_response()
}

fn json(body: Vec<u8>) -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

/// One frame with rates (the loop's second run, if it was not already running).
async fn frame(State(s): State<LiveState>) -> Response {
    match s.hub.frame_with_rates().await {
        Some(f) => json(f.to_vec()),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            "no collection yet; try again\n",
        )
            .into_response(),
    }
}

/// Every frame as a server-sent event (`data: <frame>`), the current one first. A viewer that reads
/// slowly skips frames rather than queueing them.
async fn stream(State(s): State<LiveState>) -> Response {
    let Ok(permit) = s.viewers.clone().try_acquire_owned() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "too many live views open (--web.ui.max-viewers)\n",
        )
            .into_response();
    };
    let rx = s.hub.subscribe();
    // Stage 0: the reconnect delay; 1: the current frame, if there is one; 2: each new frame.
    let events =
        futures_util::stream::unfold((rx, permit, 0u8), |(mut rx, permit, stage)| async move {
            if stage == 0 {
                let retry = axum::body::Bytes::from_static(b"retry: 2000\n\n");
                return Some((Ok::<_, std::io::Error>(retry), (rx, permit, 1)));
            }
            loop {
                if stage == 2 || rx.borrow().is_none() {
                    rx.changed().await.ok()?;
                }
                let frame = rx.borrow_and_update().clone();
                if let Some(f) = frame {
                    return Some((Ok(event(&f)), (rx, permit, 2)));
                }
            }
        });
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        axum::body::Body::from_stream(events),
    )
        .into_response()
}

fn event(frame: &[u8]) -> axum::body::Bytes {
    let mut event = Vec::with_capacity(frame.len() + 8);
    event.extend_from_slice(b"data: ");
    event.extend_from_slice(frame);
    event.extend_from_slice(b"\n\n");
    event.into()
}

#[derive(serde::Deserialize)]
struct ContainerQuery {
    id: String,
}

async fn container(State(s): State<LiveState>, Query(q): Query<ContainerQuery>) -> Response {
    match s.hub.details(&q.id).await {
        Some(d) => json(serde_json::to_vec(&d).unwrap_or_default()),
        None => (
            StatusCode::NOT_FOUND,
            "no such container in the last collection\n",
        )
            .into_response(),
    }
}
