//! hookfleet's own operator event: `endpoint.disabled` `{endpoint_id, tenant, reason}`,
//! published through the producer to `N.events.endpoint.disabled` (kept in `N.notices`), so the
//! platform can tell its customer (docs/contract.md §3).

use std::time::Duration;

use hookfleet_core::{Endpoint, EventType};
use hookfleet_producer::{OutboundEvent, Publisher};
use tracing::info;

use crate::Result;

#[derive(Debug)]
pub struct Notices {
    pub publisher: Publisher,
    /// An endpoint failing without a break this long is disabled (`HOOKFLEET_DISABLE_AFTER`).
    pub disable_after: Duration,
}

impl Notices {
    /// Publishes `endpoint.disabled`, confirmed by the broker.
    pub async fn endpoint_disabled(&self, endpoint: &Endpoint, reason: &str) -> Result<()> {
        let event_type = EventType::endpoint_disabled();
        let data = serde_json::json!({
            "endpoint_id": endpoint.id,
            "tenant": endpoint.tenant,
            "reason": reason,
        });
        let event = OutboundEvent::new(event_type, endpoint.tenant.clone(), &data, None);
        self.publisher.publish(&event).await?;
        info!(message = "Published endpoint.disabled.", endpoint_id = %endpoint.id, event_id = %event.id);
        Ok(())
    }
}
