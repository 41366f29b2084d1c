//! The bench's events: about `--payload-bytes` each, their data carrying the publish time
//! (`sent_us`, unix micros, for the lag) and a sequence number. They are published through the
//! real producer by the harness (`hookfleet_testkit::load`).

use std::sync::Arc;

use hookfleet_core::{EventType, TenantId};
use hookfleet_producer::OutboundEvent;
use serde_json::json;

use crate::{CATALOG, EVENT_TYPE};

/// Publishes in flight at once on the producer's confirm channel.
pub const IN_FLIGHT: usize = 256;

/// How to build the bench's events.
#[derive(Debug, Clone)]
pub struct Events {
    /// The busy type.
    event_type: EventType,
    /// The rest of the catalog, taking turns at the events the busy type leaves.
    others: Arc<[EventType]>,
    /// Percent of events of the busy type.
    busy_pct: usize,
    tenants: Arc<[TenantId]>,
    pad: Arc<str>,
}

impl Events {
    /// Events of `tenant` whose body is about `size` bytes.
    pub fn new(tenant: &str, size: usize) -> anyhow::Result<Self> {
        Self::of_tenants(&[tenant.to_owned()], size)
    }

    /// Events of any of `tenants` (chosen per event) whose body is about `size` bytes.
    pub fn of_tenants(tenants: &[String], size: usize) -> anyhow::Result<Self> {
        let tenants = (tenants.iter())
            .map(|t| t.parse())
            .collect::<Result<Arc<[TenantId]>, _>>()?;
        let mut events = Self {
            event_type: EVENT_TYPE.parse()?,
            others: (CATALOG.iter())
                .filter(|t| **t != EVENT_TYPE)
                .map(|t| t.parse())
                .collect::<Result<_, _>>()?,
            busy_pct: 100,
            tenants,
            pad: "".into(),
        };
        let bare = events.build(0).body.len();
        events.pad = "x".repeat(size.saturating_sub(bare)).into();
        Ok(events)
    }

    /// The same events with only `pct` percent of the busy type (real traffic is skewed: one
    /// type dominates), the rest spread over the catalog's other types.
    pub fn busy_share(mut self, pct: usize) -> Self {
        self.busy_pct = pct.min(100);
        self
    }

    /// Event number `seq` of the first tenant, stamped with the time now.
    pub fn build(&self, seq: usize) -> OutboundEvent {
        self.build_for(seq, 0)
    }

    /// Event number `seq` of tenant number `tenant`, stamped with the time now.
    pub fn build_for(&self, seq: usize, tenant: usize) -> OutboundEvent {
        let data = json!({"sent_us": crate::unix_micros(), "seq": seq, "pad": &*self.pad});
        let tenant = self.tenants[tenant % self.tenants.len()].clone();
        let event_type = match seq % 100 {
            r if r < self.busy_pct || self.others.is_empty() => &self.event_type,
            _ => &self.others[seq / 100 % self.others.len()],
        };
        OutboundEvent::new(event_type.clone(), tenant, &data, None)
    }
}

/// Which tenant each event goes to: a share to a tenant whose endpoint never answers, a share
/// to one whose endpoint answers 503, a share to one whose endpoint has a `rate_limit`, the
/// rest round robin over the healthy tenants.
#[derive(Debug, Clone, Copy, Default)]
pub struct Mix {
    pub healthy_tenants: usize,
    /// Percent of events for the never-answering endpoint.
    pub dead_pct: usize,
    /// Percent of events for the 503 endpoint.
    pub failing_pct: usize,
    /// Percent of events for the rate-limited endpoint.
    pub limited_pct: usize,
}

/// Tenant numbers in [`Events::of_tenants`]'s list: the healthy ones, then these three.
impl Mix {
    pub fn dead(&self) -> usize {
        self.healthy_tenants
    }

    pub fn failing(&self) -> usize {
        self.healthy_tenants + 1
    }

    pub fn limited(&self) -> usize {
        self.healthy_tenants + 2
    }

    /// The tenant number of event `seq`.
    pub fn tenant(&self, seq: usize) -> usize {
        let (dead, failing) = (self.dead_pct, self.dead_pct + self.failing_pct);
        match seq % 100 {
            r if r < dead => self.dead(),
            r if r < failing => self.failing(),
            r if r < failing + self.limited_pct => self.limited(),
            _ => seq % self.healthy_tenants.max(1),
        }
    }

    /// How many of events `0..count` go to healthy tenants.
    pub fn healthy(&self, count: usize) -> usize {
        (0..count)
            .filter(|&s| self.tenant(s) < self.healthy_tenants)
            .count()
    }

    /// Whether any event goes to a faulty endpoint.
    pub fn has_faults(&self) -> bool {
        self.dead_pct + self.failing_pct + self.limited_pct > 0
    }
}
