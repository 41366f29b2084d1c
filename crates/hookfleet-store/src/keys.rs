//! Every Redis key, prefixed by the namespace.
//!
//! The `{…}` part is the Redis Cluster hash tag: keys that one operation touches together share
//! a tag, so they live in one slot. All endpoint keys share `{N:endpoints}` (so a create or
//! remove is one atomic MULTI); a de-duplication mark is tagged by its own (endpoint, event)
//! pair, which spreads the bulk of the data over the whole cluster.

use hookfleet_core::{EndpointId, EventId, Namespace, TenantId};

#[derive(Debug, Clone)]
pub struct Keys {
    namespace: String,
}

impl Keys {
    pub fn new(namespace: &Namespace) -> Self {
        Self {
            namespace: namespace.to_string(),
        }
    }

    /// HASH endpoint id → JSON record, one per tenant: the delivery lookup reads only this.
    pub fn tenant_endpoints(&self, tenant: &TenantId) -> String {
        format!("{{{}:endpoints}}:tenant:{tenant}", self.namespace)
    }

    /// HASH endpoint id → tenant, to find a record by id alone.
    pub fn endpoint_index(&self) -> String {
        format!("{{{}:endpoints}}:index", self.namespace)
    }

    /// STRING `lock:<token>` while an attempt is in flight, `done` once delivered.
    pub fn dedup(&self, endpoint: &EndpointId, event: &EventId) -> String {
        format!("{}:dedup:{{{endpoint}:{event}}}", self.namespace)
    }

    /// HASH: the endpoint's circuit breaker state (see `circuit`). Tagged by the endpoint, so
    /// each script touches one slot.
    pub fn circuit(&self, endpoint: &EndpointId) -> String {
        format!("{}:circuit:{{{endpoint}}}", self.namespace)
    }

    /// STREAM: the endpoint's attempt log (see `attempts`).
    pub fn attempts(&self, endpoint: &EndpointId) -> String {
        format!("{}:attempts:{{{endpoint}}}", self.namespace)
    }

    /// SCAN patterns that together match every key of the namespace, and no other's.
    pub fn all_patterns(&self) -> [String; 4] {
        [
            format!("{}:attempts:*", self.namespace),
            format!("{{{}:endpoints}}:*", self.namespace),
            format!("{}:dedup:*", self.namespace),
            format!("{}:circuit:*", self.namespace),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_keys_share_a_hash_tag() {
        let k = Keys::new(&"hf".parse().unwrap());
        let t: TenantId = "acme".parse().unwrap();
        assert_eq!(k.tenant_endpoints(&t), "{hf:endpoints}:tenant:acme");
        assert_eq!(k.endpoint_index(), "{hf:endpoints}:index");
        let e: EndpointId = "ep_1".parse().unwrap();
        let id: EventId = "evt_1".parse().unwrap();
        assert_eq!(k.dedup(&e, &id), "hf:dedup:{ep_1:evt_1}");
        assert_eq!(k.circuit(&e), "hf:circuit:{ep_1}");
    }
}
