//! The bench's events: about `--payload-bytes` each, their data carrying the publish time
//! (`sent_us`, unix micros, for the lag) and a sequence number. They are published through the
//! real producer by the harness (`hookfleet_testkit::load`).

use std::sync::Arc;

use hookfleet_core::{EventType, TenantId};
use hookfleet_producer::OutboundEvent;
use serde_json::json;

use crate::EVENT_TYPE;

/// Publishes in flight at once on the producer's confirm channel.
pub const IN_FLIGHT: usize = 256;

/// How to build the bench's events.
#[derive(Debug, Clone)]
pub struct Events {
    event_type: EventType,
    tenant: TenantId,
    pad: Arc<str>,
}

impl Events {
    /// Events of `tenant` whose body is about `size` bytes.
    pub fn new(tenant: &str, size: usize) -> anyhow::Result<Self> {
        let mut events = Self {
            event_type: EVENT_TYPE.parse()?,
            tenant: tenant.parse()?,
            pad: "".into(),
        };
        let bare = events.build(0).body.len();
        events.pad = "x".repeat(size.saturating_sub(bare)).into();
        Ok(events)
    }

    /// Event number `seq`, stamped with the time now.
    pub fn build(&self, seq: usize) -> OutboundEvent {
        let data = json!({"sent_us": crate::unix_micros(), "seq": seq, "pad": &*self.pad});
        OutboundEvent::new(self.event_type.clone(), self.tenant.clone(), &data, None)
    }
}
