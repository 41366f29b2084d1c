//! Endpoint records in Redis.
//!
//! Each tenant's endpoints are one hash, so the delivery path reads exactly the endpoints of
//! the event's tenant (`HVALS`), however many other tenants there are.

use hookfleet_core::{DisabledBy, Endpoint, EndpointId, Namespace, TenantId};
use redis::{self, AsyncCommands};

use crate::keys::Keys;
use crate::sealing::{self, Keyring};
use crate::{Error, Result};

/// How often a write that lost a race is tried again on a fresh read before it gives up, and
/// how much longer it waits before each next try (so that racing writers spread out).
const WRITE_ATTEMPTS: u32 = 10;
const WRITE_BACKOFF: std::time::Duration = std::time::Duration::from_millis(2);

/// A compare-and-set write of one record. ARGV: id, the version the writer read (empty: the
/// record must not exist), the new record, the tenant, and for a create the most records the
/// tenant may have (empty: no limit). Returns 1 when written, 0 when the record is at another
/// version (or exists, for a create), -1 when it is gone, -2 when the tenant is at its limit.
/// The limit is checked in the same script as the write, so creates racing at it cannot all
/// pass.
const WRITE_IF_VERSION: &str = r#"
local current = redis.call('HGET', KEYS[1], ARGV[1])
if ARGV[2] == '' then
  if current then return 0 end
  if ARGV[5] ~= '' and redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[5]) then return -2 end
else
  if not current then return -1 end
  local version = cjson.decode(current).version or 0
  if string.format('%d', version) ~= ARGV[2] then return 0 end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[4])
return 1
"#;

#[derive(Debug, Clone)]
pub struct EndpointStore {
    redis: crate::Redis,
    keys: Keys,
    /// Seals secrets (and URLs with credentials) on write and opens them on read
    /// (`HOOKFLEET_SECRET_KEY`, `HOOKFLEET_SECRET_KEY_PREVIOUS`); without a key they are
    /// stored as they are.
    keyring: Keyring,
    write_if_version: redis::Script,
}

/// What `hookfleet endpoints reseal` did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Resealed {
    /// Records written again under the current key.
    pub resealed: u64,
    /// Records already under the current key.
    pub current: u64,
    /// Records that could not be opened (a key missing from the settings) or written.
    pub failed: u64,
}

impl EndpointStore {
    pub fn new(redis: crate::Redis, namespace: &Namespace) -> Self {
        Self {
            redis,
            keys: Keys::new(namespace),
            keyring: Keyring::default(),
            write_if_version: redis::Script::new(WRITE_IF_VERSION),
        }
    }

    /// Values are sealed with the keyring's current key from now on, and opened with any of
    /// its keys.
    pub fn with_keyring(mut self, keyring: Keyring) -> Self {
        self.keyring = keyring;
        self
    }

    /// Whether Redis answers.
    pub async fn ping(&self) -> Result<()> {
        crate::ping(&self.redis).await
    }

    /// Stores a new endpoint; [`Error::Conflict`] if its id is taken.
    pub async fn insert(&self, endpoint: &Endpoint) -> Result<()> {
        self.insert_within(endpoint, None).await
    }

    /// Stores a new endpoint if its tenant has fewer than `max` (when given);
    /// [`Error::Limit`] otherwise, [`Error::Conflict`] if its id is taken.
    pub async fn insert_within(&self, endpoint: &Endpoint, max: Option<u32>) -> Result<()> {
        match self.write(endpoint, None, max).await? {
            1 => Ok(()),
            -2 => Err(Error::Limit(max.unwrap_or_default())),
            _ => Err(Error::Conflict(endpoint.id.to_string())),
        }
    }

    /// Reads the endpoint, lets `change` edit it, and writes it back if nobody wrote it in
    /// between (the record's version is unchanged); otherwise reads and edits it again, up to
    /// ten times a little later each time, then gives up with [`Error::Conflict`]. A record removed meanwhile is
    /// [`Error::NotFound`], never written back. Returns the record as written.
    pub async fn modify<E: From<Error>>(
        &self,
        id: &EndpointId,
        mut change: impl FnMut(&mut Endpoint) -> std::result::Result<(), E>,
    ) -> std::result::Result<Endpoint, E> {
        for tried in 0..WRITE_ATTEMPTS {
            if tried > 0 {
                tokio::time::sleep(WRITE_BACKOFF * tried).await;
            }
            let mut endpoint = self.get(id).await?;
            let read = endpoint.version;
            change(&mut endpoint)?;
            endpoint.version = read + 1;
            match self.write(&endpoint, Some(read), None).await? {
                1 => return Ok(endpoint),
                -1 => return Err(Error::NotFound(id.to_string()).into()),
                _ => continue,
            }
        }
        Err(Error::Conflict(id.to_string()).into())
    }

    /// One compare-and-set write: see [`WRITE_IF_VERSION`].
    async fn write(&self, endpoint: &Endpoint, read: Option<u64>, max: Option<u32>) -> Result<i64> {
        let json = self.record(endpoint)?;
        let mut conn = self.redis.clone();
        let written = self
            .write_if_version
            .key(self.keys.tenant_endpoints(&endpoint.tenant))
            .key(self.keys.endpoint_index())
            .arg(endpoint.id.as_str())
            .arg(read.map(|v| v.to_string()).unwrap_or_default())
            .arg(json)
            .arg(endpoint.tenant.as_str())
            .arg(max.map(|m| m.to_string()).unwrap_or_default())
            .invoke_async(&mut conn)
            .await?;
        Ok(written)
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

    /// Enables or disables an endpoint on behalf of `by`; returns the updated record.
    /// Enabling also clears its circuit breaker state: whoever turns an endpoint back on means
    /// "try it now", and its auto-disable window starts afresh.
    pub async fn set_enabled(
        &self,
        id: &EndpointId,
        enabled: bool,
        by: DisabledBy,
    ) -> Result<Endpoint> {
        let endpoint = self
            .modify(id, |endpoint| {
                endpoint.set_enabled(enabled, by);
                Ok::<_, Error>(())
            })
            .await?;
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
        let mut all = Vec::new();
        for tenant in &self.tenants().await? {
            all.extend(self.for_tenant(tenant).await?);
        }
        Ok(all)
    }

    /// Seals every record not sealed under the current key (plain secrets, other keys,
    /// `enc:v1:` values without a key id), one compare-and-set write each. Resumable: a record
    /// done is not done again, so a run stopped midway is simply run again.
    pub async fn reseal(&self) -> Result<Resealed> {
        if self.keyring.current().is_none() {
            return Err(Error::Config(
                "HOOKFLEET_SECRET_KEY is not set: there is no key to seal with".into(),
            ));
        }
        let mut done = Resealed::default();
        for tenant in self.tenants().await? {
            let mut conn = self.redis.clone();
            let records: Vec<(String, String)> =
                conn.hgetall(self.keys.tenant_endpoints(&tenant)).await?;
            for (id, json) in records {
                if self.is_current(&json) {
                    done.current += 1;
                    continue;
                }
                let Ok(id) = id.parse::<EndpointId>() else {
                    done.failed += 1;
                    continue;
                };
                // Rewritten as it is: the write seals under the current key.
                match self.modify(&id, |_| Ok::<_, Error>(())).await {
                    Ok(_) => done.resealed += 1,
                    // Removed since the listing: nothing to seal.
                    Err(Error::NotFound(_)) => {}
                    Err(error @ (Error::Redis(_) | Error::Config(_))) => return Err(error),
                    Err(error) => {
                        tracing::error!(message = "Cannot reseal an endpoint record.", endpoint_id = %id, %error);
                        done.failed += 1;
                    }
                }
            }
        }
        Ok(done)
    }

    /// Whether a stored record is as a write with the current key would store it.
    fn is_current(&self, json: &str) -> bool {
        let Ok(mut value) = serde_json::from_str::<serde_json::Value>(json) else {
            return false;
        };
        sealable_mut(&mut value).into_iter().all(|(kind, stored)| {
            self.keyring.is_current(stored)
                || (!kind.must_seal(stored) && !sealing::is_sealed(stored))
        })
    }

    /// The tenants that have endpoints, sorted.
    async fn tenants(&self) -> Result<Vec<TenantId>> {
        let mut conn = self.redis.clone();
        let tenants: Vec<String> = conn.hvals(self.keys.endpoint_index()).await?;
        let mut tenants: Vec<TenantId> =
            tenants.into_iter().filter_map(|t| t.parse().ok()).collect();
        tenants.sort();
        tenants.dedup();
        Ok(tenants)
    }

    /// The JSON stored for `endpoint`, its secrets (and a URL with credentials) sealed when
    /// there is a key.
    fn record(&self, endpoint: &Endpoint) -> Result<String> {
        let corrupt = |source| Error::Corrupt {
            id: endpoint.id.to_string(),
            source,
        };
        let mut value = serde_json::to_value(endpoint).map_err(corrupt)?;
        if self.keyring.current().is_some() {
            let id = endpoint.id.as_str();
            for (kind, plain) in sealable_mut(&mut value) {
                if kind.must_seal(plain) {
                    *plain = self.keyring.seal(plain, id).unwrap_or_default();
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
        for (_, stored) in sealable_mut(&mut value) {
            if sealing::is_sealed(stored) {
                *stored = self
                    .keyring
                    .open(stored, id)
                    .map_err(|reason| Error::Sealed {
                        id: id.to_owned(),
                        reason,
                    })?;
            }
        }
        serde_json::from_value(value).map_err(corrupt)
    }
}

/// Whether a URL carries credentials: a user or password, or a query (where tokens ride).
fn carries_credentials(url: &str) -> bool {
    match url::Url::parse(url) {
        Ok(url) => !url.username().is_empty() || url.password().is_some() || url.query().is_some(),
        // Not a URL a delivery could use; sealed all the same, in case it holds a secret.
        Err(_) => true,
    }
}

/// The names of a record's sensitive headers.
fn sensitive_names(record: &serde_json::Value) -> Vec<String> {
    record
        .get("sensitive_headers")
        .and_then(|names| serde_json::from_value(names.clone()).ok())
        .unwrap_or_default()
}

/// What a sealable string of a record is, which decides whether it is sealed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sealable {
    /// The secret, or the secret a rotation replaced: always sealed when there is a key.
    Secret,
    /// Sealed when it carries credentials (`user:pass@`, or a query, where tokens ride).
    Url,
    /// A value of a name in `sensitive_headers`: always sealed when there is a key.
    SensitiveHeader,
}

impl Sealable {
    fn must_seal(self, plain: &str) -> bool {
        self != Sealable::Url || carries_credentials(plain)
    }
}

/// Every string of a record that may be sealed, and what it is: the secrets, the URL, the
/// values of the sensitive headers (only those: any other value is the customer's text,
/// whatever it says).
fn sealable_mut(record: &mut serde_json::Value) -> Vec<(Sealable, &mut String)> {
    let sensitive = sensitive_names(record);
    let Some(fields) = record.as_object_mut() else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for (name, value) in fields.iter_mut() {
        let (kind, values): (_, Vec<&mut serde_json::Value>) = match name.as_str() {
            "secret" => (Sealable::Secret, vec![value]),
            "url" => (Sealable::Url, vec![value]),
            "previous_secret" => (
                Sealable::Secret,
                value.get_mut("secret").into_iter().collect(),
            ),
            "headers" => (
                Sealable::SensitiveHeader,
                (value.as_object_mut().into_iter())
                    .flat_map(|headers| headers.iter_mut())
                    .filter(|(name, _)| sensitive.contains(name))
                    .map(|(_, value)| value)
                    .collect(),
            ),
            _ => continue,
        };
        found.extend(values.into_iter().filter_map(|v| match v {
            serde_json::Value::String(text) => Some((kind, text)),
            _ => None,
        }));
    }
    found
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use hookfleet_core::EventFilter;

    fn store() -> (EndpointStore, Namespace) {
        let (namespace, redis) = crate::scratch("hf-store");
        (EndpointStore::new(redis, &namespace), namespace)
    }

    fn endpoint() -> Endpoint {
        let url = "http://127.0.0.1:1/hook";
        Endpoint::new(
            "acme".parse().unwrap(),
            url,
            EventFilter::All,
            None,
            String::new(),
        )
        .unwrap()
    }

    /// A write that read a record another write changed since is made again on the fresh
    /// record, so both changes land.
    #[tokio::test]
    async fn a_change_that_lost_a_race_is_made_again_on_the_fresh_record() {
        let (store, namespace) = store();
        let endpoint = endpoint();
        store.insert(&endpoint).await.unwrap();
        assert!(matches!(
            store.insert(&endpoint).await,
            Err(Error::Conflict(_))
        ));
        let mut calls = 0;
        let changed = store
            .modify(&endpoint.id, |record| {
                calls += 1;
                if calls == 1 {
                    // Another writer (a connection and a runtime of its own: this one's
                    // are blocked here) lands between this read and this write.
                    let (id, ns) = (record.id.clone(), namespace.clone());
                    std::thread::spawn(move || {
                        let runtime = tokio::runtime::Runtime::new().unwrap();
                        runtime.block_on(async {
                            let redis = crate::connect("redis://127.0.0.1:6379").unwrap();
                            let other = EndpointStore::new(redis, &ns);
                            let theirs = |r: &mut Endpoint| {
                                r.description = "theirs".into();
                                Ok::<_, Error>(())
                            };
                            other.modify(&id, theirs).await
                        })
                    })
                    .join()
                    .unwrap()
                    .unwrap();
                }
                record.enabled = false;
                Ok::<_, Error>(())
            })
            .await
            .unwrap();
        assert_eq!(calls, 2);
        let stored = store.get(&endpoint.id).await.unwrap();
        assert_eq!(stored, changed);
        assert_eq!(
            (stored.description.as_str(), stored.enabled),
            ("theirs", false)
        );
        assert_eq!(stored.version, 2);

        store.remove(&endpoint.id).await.unwrap();
        let late = store
            .modify(&endpoint.id, |r| {
                r.enabled = true;
                Ok::<_, Error>(())
            })
            .await;
        assert!(matches!(late, Err(Error::NotFound(_))), "{late:?}");
        crate::purge(&store.redis, &namespace).await.unwrap();
    }

    /// The per-tenant limit is checked in the write's own script: creates racing at it
    /// cannot all pass.
    #[tokio::test]
    async fn creates_racing_at_the_limit_stop_at_it() {
        let (store, namespace) = store();
        let creates = (0..20).map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.insert_within(&endpoint(), Some(5)).await })
        });
        let results = futures_util::future::join_all(creates).await;
        let created = results.iter().filter(|r| matches!(r, Ok(Ok(())))).count();
        let refused = (results.iter())
            .filter(|r| matches!(r, Ok(Err(Error::Limit(5)))))
            .count();
        assert_eq!((created, refused), (5, 15));
        let tenant = "acme".parse().unwrap();
        assert_eq!(store.for_tenant(&tenant).await.unwrap().len(), 5);
        crate::purge(&store.redis, &namespace).await.unwrap();
    }

    /// A sensitive header's value is sealed in Redis and opened on read; another header's
    /// value is stored as given, even when it looks sealed.
    #[tokio::test]
    async fn sensitive_header_values_are_sealed_at_rest() {
        let (store, namespace) = store();
        let key: sealing::SecretKey = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
            .parse()
            .unwrap();
        let store = store.with_keyring(Keyring::new(Some(key), Vec::new()));
        let mut endpoint = endpoint();
        let given = [("x-api-key", "hunter2"), ("x-note", "enc:v2:looks:sealed")];
        let given = given.map(|(n, v)| (n.to_owned(), v.to_owned()));
        endpoint.headers = hookfleet_core::CustomHeaders::parse(given.into()).unwrap();
        endpoint.sensitive_headers = ["x-api-key".to_owned()].into();
        store.insert(&endpoint).await.unwrap();
        let mut conn = store.redis.clone();
        let raw: String = conn
            .hget(
                store.keys.tenant_endpoints(&endpoint.tenant),
                endpoint.id.as_str(),
            )
            .await
            .unwrap();
        assert!(!raw.contains("hunter2"), "{raw}");
        assert!(store.is_current(&raw), "{raw}");
        let read = store.get(&endpoint.id).await.unwrap();
        assert_eq!(read.headers.get("x-api-key"), Some("hunter2"));
        assert_eq!(read.headers.get("x-note"), Some("enc:v2:looks:sealed"));
        crate::purge(&store.redis, &namespace).await.unwrap();
    }
}
