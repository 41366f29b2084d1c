//! Publishing hookfleet's operational events ([`hookfleet_core::operational`]) under the
//! operator tenant: workers tell of disabled endpoints, exhausted events, failing and
//! recovered endpoints; the admin operations (`hookfleet-admin`) of endpoint changes. The
//! workers then deliver them to the operator tenant's endpoints like any event.
//!
//! Two rules keep them honest:
//! - Each event's id names its cause ([`Operational::event_id`]), so telling one cause twice
//!   (two workers, a redelivered message) is delivered once.
//! - Nothing is told about the operator tenant's own endpoints: a failing operator endpoint
//!   would otherwise feed itself notices about its own failures.

use hookfleet_core::policy::AttemptOutcome;
use hookfleet_core::{DisabledBy, Endpoint, EventId, EventType, Operational, TenantId};
use hookfleet_producer::{OutboundEvent, Publisher};
use hookfleet_store::Streak;
use serde_json::{Value, json};
use tracing::{debug, error};

use crate::Result;

#[derive(Debug)]
pub struct Notices {
    publisher: Publisher,
    operator: TenantId,
}

/// One delivery that a notice is about.
#[derive(Debug, Clone, Copy)]
pub struct About<'a> {
    pub event_id: &'a EventId,
    pub event_type: &'a EventType,
    /// Its attempt number (1 for the first).
    pub attempt: u32,
    pub outcome: &'a AttemptOutcome,
}

impl About<'_> {
    fn fields(&self) -> Value {
        json!({
            "event_id": self.event_id,
            "event_type": self.event_type,
            "attempt": self.attempt,
            "last_status": self.outcome.status(),
        })
    }
}

impl Notices {
    /// Publishes with `publisher` (confirmed, within its patience) under `operator`.
    pub fn new(publisher: Publisher, operator: TenantId) -> Self {
        Self {
            publisher,
            operator,
        }
    }

    /// `HOOKFLEET_OPERATOR_TENANT`.
    pub fn operator(&self) -> &TenantId {
        &self.operator
    }

    /// Publishes `kind` about `endpoint` for `cause`, with `fields` beside the tenant and the
    /// endpoint; `Ok` once the broker confirmed it, or at once for an operator endpoint.
    pub async fn send(
        &self,
        kind: Operational,
        endpoint: &Endpoint,
        cause: &str,
        fields: Value,
    ) -> Result<()> {
        if endpoint.tenant == self.operator {
            return Ok(());
        }
        let mut data = json!({"tenant": endpoint.tenant, "endpoint_id": endpoint.id});
        if let (Some(data), Value::Object(fields)) = (data.as_object_mut(), fields) {
            data.extend(fields);
        }
        let id = kind.event_id(&endpoint.id, cause);
        let event = OutboundEvent::new(kind.event_type(), self.operator.clone(), &data, Some(id));
        self.publisher.publish(&event).await?;
        debug!(message = "Operational event published.", event_type = kind.name(), event_id = %event.id, endpoint_id = %endpoint.id);
        Ok(())
    }

    /// [`Notices::send`] where the notice must not hold up what it is about: a failure is
    /// logged, loudly, and the delivery goes on.
    pub async fn tell(&self, kind: Operational, endpoint: &Endpoint, cause: &str, fields: Value) {
        if let Err(err) = self.send(kind, endpoint, cause, fields).await {
            error!(message = "Cannot publish an operational event; it is lost.", event_type = kind.name(), endpoint_id = %endpoint.id, error = %err);
        }
    }

    /// `endpoint.disabled`, once per version of the record it turned off.
    pub async fn endpoint_disabled(
        &self,
        endpoint: &Endpoint,
        by: DisabledBy,
        reason: &str,
    ) -> Result<()> {
        let kind = Operational::EndpointDisabled;
        let cause = format!("v{}", endpoint.version);
        let fields = json!({"by": by, "reason": reason});
        self.send(kind, endpoint, &cause, fields).await
    }

    /// `message.attempt.exhausted`, once per event (and fewer in a storm: the caller
    /// passed [`hookfleet_store::ExhaustedNotices`]).
    pub async fn attempt_exhausted(
        &self,
        endpoint: &Endpoint,
        about: About<'_>,
        reason: &str,
        suppressed: u64,
    ) {
        let mut fields = about.fields();
        fields["reason"] = json!(reason);
        fields["suppressed"] = json!(suppressed);
        let kind = Operational::AttemptExhausted;
        (self.tell(kind, endpoint, about.event_id.as_str(), fields)).await;
    }

    /// `message.attempt.failing`, once per streak.
    pub async fn attempt_failing(&self, endpoint: &Endpoint, about: About<'_>, streak: Streak) {
        let mut fields = about.fields();
        fields["reason"] = json!(about.outcome.describe());
        fields["failures"] = json!(streak.failures);
        let cause = streak.since_ms.to_string();
        (self.tell(Operational::AttemptFailing, endpoint, &cause, fields)).await;
    }

    /// `message.attempt.recovered`, once per streak told as failing.
    pub async fn attempt_recovered(&self, endpoint: &Endpoint, about: About<'_>, streak: Streak) {
        let cause = streak.since_ms.to_string();
        let kind = Operational::AttemptRecovered;
        (self.tell(kind, endpoint, &cause, about.fields())).await;
    }
}
