//! Endpoint records in Redis.
//!
//! Each tenant's endpoints are one hash, so the delivery path reads exactly the endpoints of
//! the event's tenant (`HVALS`), however many other tenants there are.

use hookfleet_core::{Endpoint, EndpointId, Namespace, TenantId};
use redis::{self, AsyncCommands};

use crate::keys::Keys;
use crate::sealing::{self, SecretKey};
use crate::{Error, Result};

/// Where each secret sits in a record's JSON.
const SECRET_FIELDS: [&[&str]; 2] = [&["secret"], &["previous_secret", "secret"]];

#[derive(Debug, Clone)]
pub struct EndpointStore {
    redis: crate::Redis,
    keys: Keys,
    /// Seals secrets on write and opens them on read (`HOOKFLEET_SECRET_KEY`); without it
    /// secrets are stored as they are.
    sealing: Option<SecretKey>,
}

impl EndpointStore {
    pub fn new(redis: crate::Redis, namespace: &Namespace) -> Self {
        Self {
            redis,
            keys: Keys::new(namespace),
            sealing: None,
        }
    }

    /// Secrets are sealed with `key` from now on (and read with it).
    pub fn with_sealing(mut self, key: Option<SecretKey>) -> Self {
        self.sealing = key;
        self
    }

    /// Whether Redis answers.
    pub async fn ping(&self) -> Result<()> {
        crate::ping(&self.redis).await
    }

    /// Stores a new or changed endpoint.
    pub async fn put(&self, endpoint: &Endpoint) -> Result<()> {
        let json = self.record(endpoint)?;
        let mut conn = self.redis.clone();
        redis::pipe()
            .atomic()
            .hset(
                self.keys.tenant_endpoints(&endpoint.tenant),
                endpoint.id.as_str(),
                json,
            )
            .hset(
                self.keys.endpoint_index(),
                endpoint.id.as_str(),
                endpoint.tenant.as_str(),
            )
            .query_async::<()>(&mut conn)
            .await?;
        Ok(())
    }

    pub async fn get(&self, id: &EndpointId) -> Result<Endpoint> {
        let mut conn = self.redis.clone();
        let tenant: Option<String> = conn.hget(self.keys.endpoint_index(), id.as_str()).await?;
        let tenant = tenant
            .and_then(|t| t.parse::<TenantId>().ok())
            .ok_or_else(|| Error::NotFound(id.to_string()))?;
        let json: Option<String> = conn
            .hget(self.keys.tenant_endpoints(&tenant), id.as_str())
            .await?;
        let json = json.ok_or_else(|| Error::NotFound(id.to_string()))?;
        self.parse(id.as_str(), &json)
    }

    /// Removes an endpoint with its circuit state and attempt log; returns the record that
    /// was removed.
    pub async fn remove(&self, id: &EndpointId) -> Result<Endpoint> {
        let endpoint = self.get(id).await?;
        let mut conn = self.redis.clone();
        redis::pipe()
            .atomic()
            .hdel(self.keys.tenant_endpoints(&endpoint.tenant), id.as_str())
            .hdel(self.keys.endpoint_index(), id.as_str())
            .query_async::<()>(&mut conn)
            .await?;
        // Other hash slots than the record's: one DEL each, not one atomic block.
        redis::pipe()
            .del(self.keys.circuit(id))
            .ignore()
            .del(self.keys.attempts(id))
            .ignore()
            .query_async::<()>(&mut conn)
            .await?;
        Ok(endpoint)
    }

    /// Enables or disables an endpoint; returns the updated record. Enabling also clears
    /// its circuit breaker state: an operator who turns an endpoint back on means "try it
    /// now", and its auto-disable window starts afresh.
    pub async fn set_enabled(&self, id: &EndpointId, enabled: bool) -> Result<Endpoint> {
        let mut endpoint = self.get(id).await?;
        endpoint.enabled = enabled;
        self.put(&endpoint).await?;
        if enabled {
            self.clear_circuit(id).await?;
        }
        Ok(endpoint)
    }

    /// Forgets the endpoint's circuit breaker state: its next delivery goes ahead, and its
    /// auto-disable window starts afresh.
    pub async fn clear_circuit(&self, id: &EndpointId) -> Result<()> {
        let mut conn = self.redis.clone();
        conn.del::<_, ()>(self.keys.circuit(id)).await?;
        Ok(())
    }

    /// One tenant's endpoints, oldest first. A corrupt record is logged and skipped so that
    /// it cannot stop the tenant's other deliveries; a record this process cannot unseal (no
    /// or another `HOOKFLEET_SECRET_KEY`) is an error, so that its events wait instead.
    pub async fn for_tenant(&self, tenant: &TenantId) -> Result<Vec<Endpoint>> {
        let mut conn = self.redis.clone();
        let records: Vec<(String, String)> =
            conn.hgetall(self.keys.tenant_endpoints(tenant)).await?;
        let mut endpoints: Vec<Endpoint> = records
            .iter()
            .filter_map(|(id, json)| match self.parse(id, json) {
                Ok(e) => Some(Ok(e)),
                // Sealed under a key this process lacks: a setting to fix, not a record to
                // skip, or its deliveries would be dropped until then.
                Err(e @ Error::Sealed { .. }) => Some(Err(e)),
                Err(error) => {
                    tracing::error!(message = "Skipping a corrupt endpoint record.", %error);
                    None
                }
            })
            .collect::<Result<_>>()?;
        endpoints.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(endpoints)
    }

    /// Every endpoint, or one tenant's.
    pub async fn list(&self, tenant: Option<&TenantId>) -> Result<Vec<Endpoint>> {
        if let Some(tenant) = tenant {
            return self.for_tenant(tenant).await;
        }
        let mut conn = self.redis.clone();
        let tenants: Vec<String> = conn.hvals(self.keys.endpoint_index()).await?;
        let mut tenants: Vec<TenantId> =
            tenants.into_iter().filter_map(|t| t.parse().ok()).collect();
        tenants.sort();
        tenants.dedup();
        let mut all = Vec::new();
        for tenant in &tenants {
            all.extend(self.for_tenant(tenant).await?);
        }
        Ok(all)
    }

    /// The JSON stored for `endpoint`, its secrets sealed when there is a key.
    fn record(&self, endpoint: &Endpoint) -> Result<String> {
        let corrupt = |source| Error::Corrupt {
            id: endpoint.id.to_string(),
            source,
        };
        let mut value = serde_json::to_value(endpoint).map_err(corrupt)?;
        if let Some(key) = &self.sealing {
            for path in SECRET_FIELDS {
                if let Some(serde_json::Value::String(secret)) = field(&mut value, path) {
                    *secret = key.seal(secret, endpoint.id.as_str());
                }
            }
        }
        serde_json::to_string(&value).map_err(corrupt)
    }

    fn parse(&self, id: &str, json: &str) -> Result<Endpoint> {
        let corrupt = |source| Error::Corrupt {
            id: id.to_owned(),
            source,
        };
        // The delivery path reads every record: skip the detour through a `Value` when nothing
        // in it is sealed.
        if !sealing::is_sealed_anywhere(json) {
            return serde_json::from_str(json).map_err(corrupt);
        }
        let mut value: serde_json::Value = serde_json::from_str(json).map_err(corrupt)?;
        for path in SECRET_FIELDS {
            if let Some(serde_json::Value::String(secret)) = field(&mut value, path)
                && sealing::is_sealed(secret)
            {
                let key = self.sealing.as_ref().ok_or_else(|| Error::Sealed {
                    id: id.to_owned(),
                    reason: "its secret is encrypted and HOOKFLEET_SECRET_KEY is not set",
                })?;
                *secret = key.open(secret, id).map_err(|reason| Error::Sealed {
                    id: id.to_owned(),
                    reason,
                })?;
            }
        }
        serde_json::from_value(value).map_err(corrupt)
    }
}

/// The value at `path` inside `value`, if there is one.
fn field<'a>(value: &'a mut serde_json::Value, path: &[&str]) -> Option<&'a mut serde_json::Value> {
    path.iter().try_fold(value, |v, name| v.get_mut(*name))
}
