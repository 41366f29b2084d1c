//! A short-lived, per-tenant cache of endpoints for the delivery path.
//!
//! The contract lets an endpoint change take up to 2 s to reach every worker; caching each
//! tenant's list for a shorter time (1 s by default) saves a Redis round trip per event for
//! busy tenants while staying inside that promise.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

// tokio's clock, so that tests can pause and advance it.
use tokio::time::Instant;

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

/// Against the local Redis, in a namespace of its own.
#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use hookfleet_core::EventFilter;

    #[tokio::test(flavor = "current_thread")]
    async fn a_change_is_seen_once_the_ttl_has_passed() {
        let namespace: hookfleet_core::Namespace =
            format!("hf-cache-{}", uuid::Uuid::now_v7().simple())
                .parse()
                .unwrap();
        let redis = crate::connect("redis://127.0.0.1:6379").unwrap();
        let store = EndpointStore::new(redis.clone(), &namespace);
        let tenant: TenantId = "acme".parse().unwrap();
        let mut endpoint = Endpoint::new(
            tenant.clone(),
            "http://127.0.0.1:1/hook",
            EventFilter::All,
            None,
            String::new(),
        )
        .unwrap();
        store.put(&endpoint).await.unwrap();
        let ttl = Duration::from_secs(1);
        let cache = EndpointCache::new(store.clone(), ttl);
        assert!(cache.for_tenant(&tenant).await.unwrap()[0].enabled);

        // From here time stands still but when advanced. No Redis I/O may happen on this
        // runtime under the paused clock (its timeouts would fire at once): the change is
        // written from a thread with a runtime and a connection of its own.
        tokio::time::pause();
        endpoint.enabled = false;
        let ns = namespace.clone();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let redis = crate::connect("redis://127.0.0.1:6379").unwrap();
                EndpointStore::new(redis, &ns).put(&endpoint).await.unwrap();
            });
        })
        .join()
        .unwrap();
        tokio::time::advance(ttl - Duration::from_millis(1)).await;
        let cached = cache.for_tenant(&tenant).await.unwrap();
        assert!(cached[0].enabled, "within the TTL: the cached list");
        tokio::time::advance(Duration::from_millis(1)).await;
        tokio::time::resume();
        let fresh = cache.for_tenant(&tenant).await.unwrap();
        assert!(!fresh[0].enabled, "at the TTL: read again");
        crate::purge(&redis, &namespace).await.unwrap();
    }
}
