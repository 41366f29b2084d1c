//! Publishing one event, confirmed by the broker (the producer crate does the work), once
//! per given event id in 24 h (`hookfleet_store::published`).

use hookfleet_core::{EventType, MAX_BODY_BYTES, Operational, TenantId};
use hookfleet_producer::OutboundEvent;
use hookfleet_store::Seen;
use sha2::{Digest, Sha256};

use crate::input::{self, Checks, NewEvent};
use crate::view::Published;
use crate::{Admin, Error, Result, Scope};

impl Admin {
    /// Publishes the event; `Ok` only once the broker confirmed it. Only the operator
    /// publishes: events come from the platform, not from its customers.
    pub async fn publish(&self, scope: &Scope, new: NewEvent) -> Result<Published> {
        scope.operator_only("route")?;
        let mut checks = Checks::default();
        let event_type = checks.field(
            "type",
            new.event_type
                .parse::<EventType>()
                .map_err(|e| e.to_string())
                .and_then(|t| {
                    if self.config.catalog.contains(&t) {
                        Ok(t)
                    } else if Operational::of(t.as_str()).is_some() {
                        Err(format!(
                            "{t} is an operational event type: only hookfleet publishes it"
                        ))
                    } else {
                        Err(format!("{t} is not in the catalog (HOOKFLEET_EVENT_TYPES)"))
                    }
                }),
        );
        let tenant = checks.field(
            "tenant",
            input::tenant(&new.tenant).and_then(|t| {
                if t == self.config.operator_tenant {
                    Err(format!("{t} is the operator tenant (HOOKFLEET_OPERATOR_TENANT): only hookfleet publishes to it"))
                } else {
                    Ok(t)
                }
            }),
        );
        let id = match new.id.as_deref() {
            Some(text) => checks.field("id", input::event_id(text)).map(Some),
            None => Some(None),
        };
        // A missing value always noted its field's error, and only a missing value did.
        let (Some(event_type), Some(tenant), Some(id)) = (event_type, tenant, id) else {
            return Err(checks.into_error());
        };
        let deprecated_since = self.check_data(&event_type, &new.data).await?;
        // A generated id is new by construction: only a given one can repeat.
        let fingerprint = id
            .is_some()
            .then(|| fingerprint(&event_type, &tenant, &new.data));
        let event = OutboundEvent::new(event_type, tenant, &new.data, id);
        if event.body.len() > MAX_BODY_BYTES {
            let size = event.body.len();
            let message = format!("the payload would be {size} bytes; at most {MAX_BODY_BYTES}");
            return Err(Error::field("data", message));
        }
        let published = Published {
            id: event.id.to_string(),
            deprecated_since,
        };
        let Some(fingerprint) = fingerprint else {
            self.publisher.publish(&event).await?;
            return Ok(published);
        };
        match self.publications.claim(&event.id, &fingerprint).await? {
            Seen::New => {}
            Seen::Accepted => {
                tracing::info!(message = "Event id accepted before; not published again.", event_id = %event.id);
                return Ok(published);
            }
            Seen::Pending => {
                return Err(Error::Conflict(format!(
                    "event {} is being published by another request; try again in a moment",
                    event.id
                )));
            }
            Seen::Different => {
                return Err(Error::Conflict(format!(
                    "event id {} was used in the last 24 h for another event (its type, tenant or data differ)",
                    event.id
                )));
            }
        }
        if let Err(error) = self.publisher.publish(&event).await {
            // Not published: the platform's retry must publish it.
            if let Err(release) = self.publications.release(&event.id).await {
                tracing::warn!(message = "Cannot release an event id after a failed publish; a retry within 30 s is refused.", event_id = %event.id, error = %release);
            }
            return Err(error.into());
        }
        if let Err(error) = self.publications.accepted(&event.id, &fingerprint).await {
            // Published all the same; a repeat would be published again and de-duplicated
            // at delivery.
            tracing::warn!(message = "Cannot remember an accepted event id.", event_id = %event.id, %error);
        }
        Ok(published)
    }
}

/// What makes two publishes the same event: its type, tenant and data (JSON with sorted keys).
fn fingerprint(event_type: &EventType, tenant: &TenantId, data: &serde_json::Value) -> String {
    let mut digest = Sha256::new();
    for part in [
        event_type.as_str().as_bytes(),
        b"\0",
        tenant.as_str().as_bytes(),
        b"\0",
    ] {
        digest.update(part);
    }
    digest.update(data.to_string().as_bytes());
    let hash = digest.finalize();
    hash[..16].iter().map(|b| format!("{b:02x}")).collect()
}
