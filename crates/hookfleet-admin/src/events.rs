//! Publishing one event, confirmed by the broker (the producer crate does the work).

use hookfleet_core::{EventType, MAX_BODY_BYTES};
use hookfleet_producer::OutboundEvent;

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
                    } else {
                        Err(format!("{t} is not in the catalog (HOOKFLEET_EVENT_TYPES)"))
                    }
                }),
        );
        let tenant = checks.field("tenant", input::tenant(&new.tenant));
        let id = match new.id.as_deref() {
            Some(text) => checks.field("id", input::event_id(text)).map(Some),
            None => Some(None),
        };
        // A missing value always noted its field's error, and only a missing value did.
        let (Some(event_type), Some(tenant), Some(id)) = (event_type, tenant, id) else {
            return Err(checks.into_error());
        };
        let event = OutboundEvent::new(event_type, tenant, &new.data, id);
        if event.body.len() > MAX_BODY_BYTES {
            let size = event.body.len();
            let message = format!("the payload would be {size} bytes; at most {MAX_BODY_BYTES}");
            return Err(Error::field("data", message));
        }
        self.publisher.publish(&event).await?;
        Ok(Published {
            id: event.id.to_string(),
        })
    }
}
