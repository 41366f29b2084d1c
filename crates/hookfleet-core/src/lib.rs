//! hookfleet's domain: the values every other crate passes around, parsed once at the edge.
//!
//! # Layout
//! - [`attempt`]: the attempt log's record and the classes of failure, in plain words.
//! - [`event`]: event ids, event types, tenants and the payload envelope (docs/contract.md §1).
//! - [`namespace`]: the deployment's prefix and every broker name derived from it.
//! - [`operational`]: hookfleet's own events (`endpoint.*`, `message.attempt.*`), with schemas.
//! - [`endpoint`]: endpoints and their subscriptions (docs/contract.md §2).
//! - [`custom_headers`]: an endpoint's own headers, checked.
//! - [`payload_filter`]: an endpoint's filter on an event's `data`, checked once, matched often.
//! - [`secret`]: `whsec_` and `whsk_` signing secrets, never printed.
//! - [`signature`]: Standard Webhooks `v1` and `v1a` signatures (docs/contract.md §3).
//! - [`policy`]: what an attempt's outcome means and when to try again.
//! - [`delays`]: which delay tiers exist, with jitter, and which one a wait goes to.
//! - [`circuit`]: the circuit breaker's rule over an endpoint's shared state.
//! - [`target`]: which addresses a delivery may reach (the SSRF rule).
//!
//! Nothing here does I/O, so all of it is covered by plain unit tests.
#![forbid(unsafe_code)]

pub mod attempt;
pub mod circuit;
pub mod custom_headers;
pub mod delays;
pub mod endpoint;
pub mod event;
pub mod namespace;
pub mod operational;
pub mod payload_filter;
pub mod policy;
pub mod secret;
pub mod signature;
pub mod target;

mod error;

pub use custom_headers::CustomHeaders;
pub use endpoint::{DisabledBy, Endpoint, EndpointId, EventFilter, RetiringSecret};
pub use error::{Error, Result};
pub use event::{Envelope, EventId, EventType, MAX_BODY_BYTES, TenantId};
pub use namespace::Namespace;
pub use operational::Operational;
pub use payload_filter::PayloadFilter;
pub use secret::{Scheme, Secret};
