//! Every Redis key, prefixed by the namespace.
//!
//! The `{…}` part is the Redis Cluster hash tag: keys that one operation touches together share
//! a tag, so they live in one slot. All endpoint keys share `{N:endpoints}` (so a create or
//! remove is one atomic MULTI); everything else is tagged by its endpoint (`{ep_…}`), so that a
//! delivery's claim, marks, circuit and attempt log are one slot, and one pipeline or script.
//! Endpoints spread over the cluster; one endpoint's keys stay on one node.

use hookfleet_core::{EndpointId, EventId, Namespace, TenantId};

/// The keys every delivery builds (claim, marks, circuit, attempt log) are joined with `concat`,
/// one allocation of the exact size: `format!`, which grows its buffer as it goes, was
/// 4 % of a saturated worker's CPU samples.
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

    /// STRING `lock:<token>` while an attempt at delivering `event` to `endpoint` is in
    /// flight; it expires by itself if its holder dies.
    pub fn claim(&self, endpoint: &EndpointId, event: &EventId) -> String {
        [
            &self.namespace,
            ":claim:{",
            endpoint.as_str(),
            "}:",
            event.as_str(),
        ]
        .concat()
    }

    /// HASH: the layout and count of each time bucket of `bucket_ms` of the endpoint's
    /// marks (see `dedup`).
    pub fn marks_meta(&self, endpoint: &EndpointId, bucket_ms: u64) -> String {
        self.marks(endpoint, bucket_ms, "")
    }

    /// What the mark sets' keys begin with: the script appends `<bucket>:<n>:<i>`, set `i` of
    /// `n` of the bucket.
    pub fn marks_prefix(&self, endpoint: &EndpointId, bucket_ms: u64) -> String {
        self.marks(endpoint, bucket_ms, ":")
    }

    fn marks(&self, endpoint: &EndpointId, bucket_ms: u64, end: &str) -> String {
        let mut digits = itoa::Buffer::new();
        let bucket_ms = digits.format(bucket_ms);
        [
            &self.namespace,
            ":marks:{",
            endpoint.as_str(),
            "}:",
            bucket_ms,
            end,
        ]
        .concat()
    }

    /// HASH: the endpoint's circuit breaker state (see `circuit`). Tagged by the endpoint, so
    /// each script touches one slot.
    pub fn circuit(&self, endpoint: &EndpointId) -> String {
        [&self.namespace, ":circuit:{", endpoint.as_str(), "}"].concat()
    }

    /// HASH: when the endpoint may next be told of an exhausted event, and how many were held
    /// back meanwhile (see `notice_gate`).
    pub fn exhausted_notices(&self, endpoint: &EndpointId) -> String {
        format!("{}:notice:{{{endpoint}}}:exhausted", self.namespace)
    }

    /// LIST: an ordered endpoint's events waiting, oldest first (see `ordered`). Every ordered
    /// key shares one hash tag, so one script can move an endpoint's queue and the due set.
    pub fn ordered_queue(&self, endpoint: &EndpointId) -> String {
        format!("{{{}:ordered}}:queue:{endpoint}", self.namespace)
    }

    /// STRING: which worker drives an ordered endpoint now (a lease that expires).
    pub fn ordered_lease(&self, endpoint: &EndpointId) -> String {
        format!("{{{}:ordered}}:lease:{endpoint}", self.namespace)
    }

    /// SET: the tenants routed into the ordered intake one by one; with the flag
    /// [`Keys::ordered_all`], every tenant is (see `ordered`).
    pub fn ordered_tenants(&self) -> String {
        format!("{{{}:ordered}}:tenants", self.namespace)
    }

    /// STRING, set once: every event passes through the ordered intake.
    pub fn ordered_all(&self) -> String {
        format!("{{{}:ordered}}:all", self.namespace)
    }

    /// ZSET ordered endpoint → unix ms when its head is due.
    pub fn ordered_due(&self) -> String {
        format!("{{{}:ordered}}:due", self.namespace)
    }

    /// STRING: the endpoint's next free turn under its `rate_limit` (see `rate`).
    pub fn rate(&self, endpoint: &EndpointId) -> String {
        format!("{}:rate:{{{endpoint}}}", self.namespace)
    }

    /// STREAM: the endpoint's attempt log (see `attempts`).
    pub fn attempts(&self, endpoint: &EndpointId) -> String {
        [&self.namespace, ":attempts:{", endpoint.as_str(), "}"].concat()
    }

    /// HASH event type → its description, schema and example (see `catalog`).
    pub fn event_types(&self) -> String {
        format!("{}:event-types", self.namespace)
    }

    /// STRING: an event id `POST /v1/events` accepted (or is publishing), for publish
    /// idempotency (see `published`).
    pub fn published(&self, id: &EventId) -> String {
        format!("{}:published:{{{id}}}", self.namespace)
    }

    /// STRING: Test Webhook calls of `tenant` in the current minute (expires with it).
    pub fn test_budget(&self, tenant: &TenantId) -> String {
        format!("{}:tenant:{{{tenant}}}:test-budget", self.namespace)
    }

    /// STRING: unix ms before which `tenant`'s tokens are refused (a revocation).
    pub fn tokens_not_before(&self, tenant: &TenantId) -> String {
        format!("{}:tenant:{{{tenant}}}:tokens-not-before", self.namespace)
    }

    /// SCAN patterns that together match every key of the namespace, and no other's.
    pub fn all_patterns(&self) -> [String; 12] {
        [
            format!("{}:tenant:*", self.namespace),
            format!("{}:attempts:*", self.namespace),
            format!("{{{}:endpoints}}:*", self.namespace),
            format!("{}:claim:*", self.namespace),
            format!("{}:marks:*", self.namespace),
            format!("{}:circuit:*", self.namespace),
            format!("{}:rate:*", self.namespace),
            format!("{}:notice:*", self.namespace),
            format!("{{{}:ordered}}:*", self.namespace),
            format!("{}:published:*", self.namespace),
            format!("{}:event-types", self.namespace),
            // One key per (endpoint, event), as earlier versions wrote marks: purged too.
            format!("{}:dedup:*", self.namespace),
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
        assert_eq!(k.claim(&e, &id), "hf:claim:{ep_1}:evt_1");
        assert_eq!(k.marks_meta(&e, 1000), "hf:marks:{ep_1}:1000");
        assert_eq!(k.marks_prefix(&e, 1000), "hf:marks:{ep_1}:1000:");
        assert_eq!(k.circuit(&e), "hf:circuit:{ep_1}");
        assert_eq!(k.attempts(&e), "hf:attempts:{ep_1}");
    }
}
