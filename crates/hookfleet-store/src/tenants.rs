//! Per-tenant state of the admin API, shared by every API replica: the Test Webhook budget
//! and the moment before which the tenant's tokens are refused.

use std::time::Duration;

use hookfleet_core::{Namespace, TenantId};
use redis::AsyncCommands;

use crate::Result;
use crate::keys::Keys;

/// Counts one call in the current window and returns 0 when it fits, or how many ms remain
/// of the window when it does not. ARGV: window ms, calls allowed per window.
const TAKE: &str = r#"
local n = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
if n > tonumber(ARGV[2]) then return ttl end
return 0
"#;

#[derive(Debug, Clone)]
pub struct Tenants {
    redis: crate::Redis,
    keys: Keys,
    take: redis::Script,
}

impl Tenants {
    pub fn new(redis: crate::Redis, namespace: &Namespace) -> Self {
        Self {
            redis,
            keys: Keys::new(namespace),
            take: redis::Script::new(TAKE),
        }
    }

    /// Takes one Test Webhook call of `tenant`'s `per_minute`: `None` when it fits, or how
    /// long until the next window when the budget is spent.
    pub async fn take_test(&self, tenant: &TenantId, per_minute: u32) -> Result<Option<Duration>> {
        let mut conn = self.redis.clone();
        let wait_ms: u64 = self
            .take
            .key(self.keys.test_budget(tenant))
            .arg(60_000)
            .arg(per_minute)
            .invoke_async(&mut conn)
            .await?;
        Ok((wait_ms > 0).then(|| Duration::from_millis(wait_ms)))
    }

    /// Refuses every token of `tenant` issued before `now_ms` (unix milliseconds).
    pub async fn revoke_tokens(&self, tenant: &TenantId, now_ms: i64) -> Result<()> {
        let mut conn = self.redis.clone();
        conn.set::<_, _, ()>(self.keys.tokens_not_before(tenant), now_ms)
            .await?;
        Ok(())
    }

    /// The moment (unix milliseconds) before which `tenant`'s tokens are refused, if any.
    pub async fn tokens_not_before(&self, tenant: &TenantId) -> Result<Option<i64>> {
        let mut conn = self.redis.clone();
        Ok(conn.get(self.keys.tokens_not_before(tenant)).await?)
    }
}
