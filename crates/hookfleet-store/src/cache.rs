//! A short-lived, per-tenant cache of endpoints for the delivery path.
//!
//! The contract lets an endpoint change take up to 2 s to reach every worker; caching each
//! tenant's list for a shorter time (1 s by default) saves a Redis round trip per event for
//! busy tenants while staying inside that promise, and one read refreshes it for every
//! message of that tenant in flight ([`Fresh`]).

use std::sync::Arc;
use std::time::Duration;

use hookfleet_core::{Endpoint, TenantId};

use crate::fresh::Fresh;
use crate::{EndpointStore, Result};

/// The contract's bound for an endpoint change to reach every worker: no list older than this
/// is used, even while a read refreshes it.
const STALE: Duration = Duration::from_secs(2);

#[derive(Debug)]
pub struct EndpointCache {
    store: EndpointStore,
    /// Each tenant's endpoints, refreshed by one read at a time.
    tenants: Fresh<TenantId, Arc<[Endpoint]>>,
}

impl EndpointCache {
    pub fn new(store: EndpointStore, ttl: Duration) -> Self {
        Self {
            store,
            tenants: Fresh::new(ttl, STALE),
        }
    }

    /// The tenant's endpoints, at most `ttl` old (2 s while one read refreshes them).
    pub async fn for_tenant(&self, tenant: &TenantId) -> Result<Arc<[Endpoint]>> {
        (self.tenants)
            .get(tenant, || async {
                Ok(self.store.for_tenant(tenant).await?.into())
            })
            .await
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
        let (namespace, redis) = crate::scratch("hf-cache");
        let store = EndpointStore::new(redis.clone(), &namespace);
        let tenant: TenantId = "acme".parse().unwrap();
        let endpoint = Endpoint::new(
            tenant.clone(),
            "http://127.0.0.1:1/hook",
            EventFilter::All,
            None,
            String::new(),
        )
        .unwrap();
        store.insert(&endpoint).await.unwrap();
        let ttl = Duration::from_secs(1);
        let cache = EndpointCache::new(store.clone(), ttl);
        assert!(cache.for_tenant(&tenant).await.unwrap()[0].enabled);

        // From here time stands still but when advanced. No Redis I/O may happen on this
        // runtime under the paused clock (its timeouts would fire at once): the change is
        // written from a thread with a runtime and a connection of its own.
        tokio::time::pause();
        let ns = namespace.clone();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let redis = crate::connect("redis://127.0.0.1:6379").unwrap();
                let store = EndpointStore::new(redis, &ns);
                store
                    .modify(&endpoint.id, |e| {
                        e.enabled = false;
                        Ok::<_, crate::Error>(())
                    })
                    .await
                    .unwrap();
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
