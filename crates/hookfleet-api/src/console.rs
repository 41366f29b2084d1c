//! The web console at `/`: a small single-page app over the `/v1` API, its files compiled into
//! the binary so nothing is fetched from anywhere else (no CDN, no build step).
//!
//! A platform embeds it in an iframe as its customer's "Settings → Webhooks" page, opened with
//! a tenant token in the fragment (`/#token=hft_…`), which browsers never send to a server, so
//! the token reaches no access log. The content security policy allows this origin only, and
//! framing by the origins the operator names (`HOOKFLEET_CONSOLE_FRAME_ANCESTORS`, default
//! `'self'`): any other site framing it could overlay it and trick a customer's clicks.

use axum::Router;
use axum::http::header::{self, HeaderValue};
use axum::response::IntoResponse;
use axum::routing::get;

const INDEX: &str = include_str!("../console/index.html");
const SCRIPT: &str = include_str!("../console/app.js");
/// The message history's pages (loaded before `app.js`, whose helpers it uses).
const HISTORY_SCRIPT: &str = include_str!("../console/history.js");
/// The endpoint controls' form fields and facts (loaded before `app.js`, whose helpers it uses).
const CONTROLS_SCRIPT: &str = include_str!("../console/controls.js");
const STYLE: &str = include_str!("../console/style.css");

/// Scripts, styles, images and API calls from this origin only; framing by `frame_ancestors`
/// (CSP sources, checked by the setting's parser).
fn policy(frame_ancestors: &str) -> HeaderValue {
    let policy = format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors {frame_ancestors}"
    );
    HeaderValue::from_str(&policy)
        .unwrap_or_else(|_| HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"))
}

/// `/`, `/console/app.js`, `/console/history.js`, `/console/controls.js` and
/// `/console/style.css`, framed only by
/// `frame_ancestors`.
pub fn routes<S: Clone + Send + Sync + 'static>(frame_ancestors: &str) -> Router<S> {
    let policy = policy(frame_ancestors);
    let serve = move |content_type: &'static str, body: &'static str| {
        let policy = policy.clone();
        get(move || async move { file(content_type, body, policy) })
    };
    Router::new()
        .route("/", serve("text/html; charset=utf-8", INDEX))
        .route(
            "/console/app.js",
            serve("text/javascript; charset=utf-8", SCRIPT),
        )
        .route(
            "/console/history.js",
            serve("text/javascript; charset=utf-8", HISTORY_SCRIPT),
        )
        .route(
            "/console/controls.js",
            serve("text/javascript; charset=utf-8", CONTROLS_SCRIPT),
        )
        .route(
            "/console/style.css",
            serve("text/css; charset=utf-8", STYLE),
        )
}

fn file(content_type: &'static str, body: &'static str, policy: HeaderValue) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CONTENT_SECURITY_POLICY, policy),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body,
    )
}
