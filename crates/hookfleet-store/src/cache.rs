//! A short-lived, per-tenant cache of endpoints for the delivery path.
//!
//! The contract lets an endpoint change take up to 2 s to reach every worker; caching each
//! tenant's list for a shorter time (1 s by default) saves a Redis round trip per event for
//! busy tenants while staying inside that promise.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hookfleet_core::{Endpoint, TenantId};

use crate::{EndpointStore, Result};

/// Entries beyond this many trigger a sweep of the expired ones, bounding memory when events
/// come from very many tenants.
const SWEEP_ABOVE: usize = 10_000;

/// A tenant's endpoints and when they were read.
type Entries = HashMap<TenantId, (Instant, Arc<[Endpoint]>)>;

#[derive(Debug)]
pub struct EndpointCache {
    store: EndpointStore,
    ttl: Duration,
    entries: Mutex<Entries>,
}

impl EndpointCache {
    pub fn new(store: EndpointStore, ttl: Duration) -> Self {
        Self {
            store,
            ttl,
            entries: Mutex::default(),
        }
    }

    /// The tenant's endpoints, at most `ttl` old.
    pub async fn for_tenant(&self, tenant: &TenantId) -> Result<Arc<[Endpoint]>> {
        let now = Instant::now();
        if let Some((fetched, endpoints)) = self.lock().get(tenant)
            && now.duration_since(*fetched) < self.ttl
        {
            return Ok(endpoints.clone());
        }
        let endpoints: Arc<[Endpoint]> = self.store.for_tenant(tenant).await?.into();
        let mut entries = self.lock();
        if entries.len() > SWEEP_ABOVE {
            entries.retain(|_, (fetched, _)| now.duration_since(*fetched) < self.ttl);
        }
        entries.insert(tenant.clone(), (now, endpoints.clone()));
        Ok(endpoints)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        // A panic while holding this lock leaves a valid map behind: keep using it.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }
}
