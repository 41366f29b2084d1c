//! End-to-end tests: the real `hookfleet` binary against the real RabbitMQ and Redis on
//! 127.0.0.1, each test in its own namespace with its own local HTTP receiver.
//!
//! Layout:
//! - `util`: the harness (a [`util::Fleet`] per test, the [`util::Receiver`], waiting and
//!   verifying helpers).
//! - `delivery`: what a receiver sees, filtering, endpoint changes, slowness, SSRF.
//! - `api`: the admin HTTP API: tokens, tenant isolation, validation, every route.
//! - `console`: the web console in headless Chromium (ignored; `scripts/test` runs it).
//! - `cli`: the command line's errors (undeclared types, bad settings) and endpoint commands.
//! - `retry`: delay tiers, dead letters and replay, 410 Gone, metric counts.
//! - `reference`: a delivery verified by the Standard Webhooks reference library (Python).
//! - `lifecycle`: de-duplication, malformed messages, SIGKILL and SIGTERM.
//! - `marks`: de-duplication marks in Redis: claim, commit, release, the intset layout.
//! - `monitoring`: the Prometheus rules and Grafana dashboard in `deploy/` against a real worker
//!   and a real Prometheus (ignored; `scripts/check-monitoring` runs it).
//! - `openapi`: schemathesis against `/openapi.json` (ignored; `scripts/test` runs it).
//! - `handler`: the message handler driven in-process, one message at a time.
//! - `history`: the message history in PostgreSQL: what is recorded; PostgreSQL away.
//! - `hygiene`: secrets, credentials and passwords kept out of output; bad URLs; dead letters.
//! - `isolation`: the per-endpoint cap, the shared circuit breaker, Retry-After, auto-disable.
//! - `ordered`: ordered endpoints: publish order through failures and a killed worker.
#![allow(clippy::unwrap_used)]

mod api;
mod cli;
mod console;
mod delivery;
mod handler;
mod history;
mod hygiene;
mod isolation;
mod lifecycle;
mod marks;
mod monitoring;
mod openapi;
mod ordered;
mod reference;
mod retry;
mod util;
