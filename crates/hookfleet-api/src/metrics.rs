//! The API's metrics: what it published (`hookfleet_published_total`, as every publisher
//! counts), its requests by route and status, and how often `/readyz` really looked.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use hookfleet_producer::PublishedCounter;
use prometheus::{Encoder, HistogramOpts, HistogramVec, IntCounter, Registry, TextEncoder};

use crate::AppState;

#[derive(Debug, Clone)]
pub struct ApiMetrics {
    registry: Registry,
    pub published: PublishedCounter,
    /// `hookfleet_api_request_duration_seconds{route, status}`: the route is the matched
    /// pattern (`/v1/endpoints/{id}`), never the raw path, so the label stays bounded.
    requests: HistogramVec,
    /// `hookfleet_api_readiness_checks_total`: times `/readyz` asked Redis and RabbitMQ (at
    /// most about once a second, however many probes ask).
    pub readiness_checks: IntCounter,
}

impl ApiMetrics {
    pub fn new() -> prometheus::Result<Self> {
        let registry = Registry::new();
        let published = PublishedCounter::register(&registry)?;
        let requests = HistogramVec::new(
            HistogramOpts::new(
                "hookfleet_api_request_duration_seconds",
                "Admin API requests by route and status, and how long they took.",
            ),
            &["route", "status"],
        )?;
        registry.register(Box::new(requests.clone()))?;
        let readiness_checks = IntCounter::new(
            "hookfleet_api_readiness_checks_total",
            "Times /readyz asked Redis and RabbitMQ; its answer is reused for a second.",
        )?;
        registry.register(Box::new(readiness_checks.clone()))?;
        Ok(Self {
            registry,
            published,
            requests,
            readiness_checks,
        })
    }

    pub fn render(&self) -> String {
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

/// Times each request under its route pattern.
pub async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let started = Instant::now();
    let response = next.run(request).await;
    state
        .metrics
        .requests
        .with_label_values(&[route.as_str(), response.status().as_str()])
        .observe(started.elapsed().as_secs_f64());
    response
}
