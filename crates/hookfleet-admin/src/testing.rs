//! "Test Webhook": one signed `webhook.test` delivery now, through the worker's own sending
//! code (signing, SSRF guard, allowed ports, timeout), recorded in the attempt log (the history, when there is one). A tenant
//! token's calls are metered (`HOOKFLEET_TEST_RATE` a minute per tenant, across API replicas):
//! otherwise it is a free probe of any host and port from the platform's addresses.

use bytes::Bytes;
use hookfleet_core::attempt::{Attempt, ErrorClass, Made, Source, explain};
use hookfleet_core::{Endpoint, Envelope, EventId, EventType};

use crate::input::{self, FilterTrial, TestRequest};
use crate::view::{FilterMatch, TestResult};
use crate::{Admin, Result, Scope};

impl Admin {
    /// Whether `filter` matches `data`: a customer tries a filter before saving it.
    pub fn test_filter(&self, trial: FilterTrial) -> Result<FilterMatch> {
        let filter = input::filter(&trial.filter).map_err(|m| crate::Error::field("filter", m))?;
        Ok(FilterMatch {
            matches: filter.matches(&trial.data),
        })
    }

    /// Sends one test event to the endpoint now, through its headers, signature and filter.
    pub async fn test_endpoint(
        &self,
        scope: &Scope,
        id: &str,
        request: TestRequest,
    ) -> Result<TestResult> {
        let endpoint = self.visible(scope, id).await?;
        if let (Scope::Tenant(tenant), Some(per_minute)) =
            (scope, self.config.limits.tests_per_minute)
            && let Some(retry_after) = self.tenants.take_test(tenant, per_minute).await?
        {
            return Err(crate::Error::RateLimited {
                what: format!(
                    "tenant {tenant} has made its {per_minute} test calls of this minute"
                ),
                retry_after,
            });
        }
        let event_id = EventId::generate();
        let (event_type, data) = match request.event_type.as_deref() {
            Some(name) => self.example_for(&endpoint, name).await?,
            None => {
                let data = serde_json::json!({
                    "endpoint_id": endpoint.id,
                    "message": "This is a test event from hookfleet.",
                });
                let test = EventType::TEST
                    .parse()
                    .map_err(|e: hookfleet_core::Error| crate::Error::Unavailable(e.to_string()))?;
                (test, data)
            }
        };
        if let Some(filter) = &endpoint.filter
            && !filter.matches(&data)
        {
            return Ok(TestResult {
                delivered: false,
                status: None,
                latency_ms: 0,
                error: Some(
                    "the endpoint's filter does not match the test event's data: nothing was sent"
                        .to_owned(),
                ),
                error_class: None,
                response_body: String::new(),
                event_id: event_id.to_string(),
                filtered: true,
            });
        }
        let now = time::OffsetDateTime::now_utc();
        let body = Envelope::to_bytes(&event_id, &event_type, now, &data);
        let sent = self
            .sender
            .post(&endpoint, &event_id, Bytes::from(body))
            .await;
        let timeout = self.config.delivery_timeout;
        let attempt = Attempt::new(Made {
            event_id: event_id.as_str(),
            event_type: event_type.as_str(),
            attempt: 1,
            source: Source::Test,
            outcome: &sent.outcome,
            excerpt: &sent.excerpt,
            latency: sent.latency,
            timeout,
        });
        let written = match &self.history {
            Some(history) => {
                let record = hookfleet_history::AttemptRecord {
                    tenant: endpoint.tenant.to_string(),
                    endpoint_id: endpoint.id.to_string(),
                    attempt,
                };
                history
                    .record_attempt(record)
                    .await
                    .map_err(|e| e.to_string())
            }
            None => (self.attempts.append(&endpoint.id, attempt).await).map_err(|e| e.to_string()),
        };
        if let Err(error) = written {
            tracing::warn!(message = "Could not write the test's attempt.", %error);
        }
        let class = ErrorClass::of(&sent.outcome);
        Ok(TestResult {
            delivered: class.is_none(),
            status: sent.outcome.status(),
            latency_ms: sent.latency.as_millis() as u64,
            error: class.map(|_| explain(&sent.outcome, timeout)),
            error_class: class,
            response_body: sent.excerpt,
            event_id: event_id.to_string(),
            filtered: false,
        })
    }

    /// A subscribed type of the catalog and its example, for Test Webhook.
    async fn example_for(
        &self,
        endpoint: &Endpoint,
        name: &str,
    ) -> Result<(EventType, serde_json::Value)> {
        let event_type = (name.parse::<EventType>().ok())
            .filter(|t| self.catalog_of(&endpoint.tenant).contains(t))
            .ok_or_else(|| {
                crate::Error::field("event_type", format!("{name} is not in the catalog"))
            })?;
        if !endpoint.events.matches(&event_type) {
            let message = format!("the endpoint is not subscribed to {event_type}");
            return Err(crate::Error::field("event_type", message));
        }
        let example = self.example_of(&event_type).await?.ok_or_else(|| {
            let message = format!(
                "{event_type} has no example yet (PUT /v1/event-types/{event_type} gives it one)"
            );
            crate::Error::field("event_type", message)
        })?;
        Ok((event_type, example))
    }
}
