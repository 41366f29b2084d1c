//! Each endpoint change told to the platform as an operational event: `endpoint.created`,
//! `endpoint.updated` (naming the fields that changed), `endpoint.deleted`, and
//! `endpoint.enabled` / `endpoint.disabled` when a change turned it on or off. Each id names
//! the record's version, so telling a change twice delivers it once.
//!
//! The change is made first and told after: a change that could not be told (the broker away
//! past [`crate::NOTICE_PATIENCE`]) is logged as an error, and the caller still gets its
//! answer, since repeating the request would make the change again.

use hookfleet_core::target::redact_url;
use hookfleet_core::{DisabledBy, Endpoint, Operational};
use serde_json::{Value, json};

use crate::{Admin, Scope};

/// Fields of a record that are bookkeeping, not something the endpoint's owner changed: the
/// version, the on/off state (told as enabled/disabled), the retiring secret (a rotation is
/// told as `secret`).
const NOT_TOLD: [&str; 4] = ["version", "enabled", "disabled_by", "previous_secret"];

impl Admin {
    pub(crate) async fn tell_created(&self, endpoint: &Endpoint) {
        let fields = json!({
            "url": redact_url(&endpoint.url),
            "events": endpoint.events,
            "description": endpoint.description,
        });
        let cause = format!("v{}", endpoint.version);
        (self
            .notices
            .tell(Operational::EndpointCreated, endpoint, &cause, fields))
        .await;
    }

    /// Tells what changed between `before` and `after`, as `scope` asked.
    pub(crate) async fn tell_changed(&self, scope: &Scope, before: &Endpoint, after: &Endpoint) {
        let cause = format!("v{}", after.version);
        let changed = changed_fields(before, after);
        if !changed.is_empty() {
            let fields = json!({"changed": changed, "version": after.version});
            (self
                .notices
                .tell(Operational::EndpointUpdated, after, &cause, fields))
            .await;
        }
        if before.enabled == after.enabled {
            return;
        }
        let by = match scope {
            Scope::Operator => DisabledBy::Operator,
            Scope::Tenant(_) => DisabledBy::Tenant,
        };
        if after.enabled {
            let fields = json!({"by": by});
            (self
                .notices
                .tell(Operational::EndpointEnabled, after, &cause, fields))
            .await;
        } else {
            let reason = match by {
                DisabledBy::Tenant => "turned off by its tenant",
                _ => "turned off by the operator",
            };
            let fields = json!({"by": by, "reason": reason});
            (self
                .notices
                .tell(Operational::EndpointDisabled, after, &cause, fields))
            .await;
        }
    }

    pub(crate) async fn tell_deleted(&self, endpoint: &Endpoint) {
        let cause = format!("v{}", endpoint.version);
        let kind = Operational::EndpointDeleted;
        (self.notices.tell(kind, endpoint, &cause, json!({}))).await;
    }
}

/// The names of the record's fields that differ, sorted; a field absent on one side (an
/// optional control set or removed) counts as changed.
fn changed_fields(before: &Endpoint, after: &Endpoint) -> Vec<String> {
    let (Ok(Value::Object(before)), Ok(Value::Object(after))) =
        (serde_json::to_value(before), serde_json::to_value(after))
    else {
        return Vec::new();
    };
    let mut names: Vec<String> = (before.keys().chain(after.keys()))
        .filter(|name| !NOT_TOLD.contains(&name.as_str()))
        .filter(|name| before.get(*name) != after.get(*name))
        .cloned()
        .collect();
    names.sort();
    names.dedup();
    names
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use hookfleet_core::{EventFilter, Secret};

    fn endpoint() -> Endpoint {
        let events = EventFilter::try_from(vec!["log.blocked".to_owned()]).unwrap();
        let secret = Secret::generate_for(Default::default());
        Endpoint::new(
            "acme".parse().unwrap(),
            "https://a.example/h",
            events,
            Some(secret),
            String::new(),
        )
        .unwrap()
    }

    #[test]
    fn names_what_the_owner_changed_not_the_bookkeeping() {
        let before = endpoint();
        let mut after = before.clone();
        after.version += 1;
        after.set_enabled(false, DisabledBy::Tenant);
        assert!(changed_fields(&before, &after).is_empty());
        after.url = "https://b.example/h".to_owned();
        after.rate_limit = Some(10);
        after.rotate_secret(
            Secret::generate_for(Default::default()),
            0,
            Default::default(),
        );
        assert_eq!(
            changed_fields(&before, &after),
            ["rate_limit", "secret", "url"]
        );
    }
}
