//! What the operator says of each event type of the catalog (`PUT /v1/event-types/{type}`):
//! a description, a JSON Schema for its `data`, an example, and whether it is deprecated.
//! The catalog itself (which types exist) is configuration, `HOOKFLEET_EVENT_TYPES`.

use std::collections::HashMap;

use hookfleet_core::{EventType, Namespace};
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};

use crate::keys::Keys;
use crate::{Error, Result};

/// One event type's description, as stored.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TypeInfo {
    #[serde(default)]
    pub description: String,
    /// A JSON Schema (2020-12) that every event's `data` must meet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<serde_json::Value>,
    /// An example `data`; Test Webhook sends it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub example: Option<serde_json::Value>,
    /// Unix seconds since the type is deprecated: still accepted, with a warning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deprecated_at: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct EventTypes {
    redis: crate::Redis,
    keys: Keys,
}

impl EventTypes {
    pub fn new(redis: crate::Redis, namespace: &Namespace) -> Self {
        Self {
            redis,
            keys: Keys::new(namespace),
        }
    }

    pub async fn put(&self, event_type: &EventType, info: &TypeInfo) -> Result<()> {
        let json = serde_json::to_string(info).map_err(|source| Error::CorruptType {
            name: event_type.to_string(),
            source,
        })?;
        let mut conn = self.redis.clone();
        conn.hset::<_, _, _, ()>(self.keys.event_types(), event_type.as_str(), json)
            .await?;
        Ok(())
    }

    /// One type's description, if the operator wrote one.
    pub async fn get(&self, event_type: &EventType) -> Result<Option<TypeInfo>> {
        (self.get_raw(event_type).await?)
            .map(|json| parse(event_type.as_str(), &json))
            .transpose()
    }

    /// One type's description as stored (JSON), for a caller that keeps what it parsed of it.
    pub async fn get_raw(&self, event_type: &EventType) -> Result<Option<String>> {
        let mut conn = self.redis.clone();
        Ok(conn
            .hget(self.keys.event_types(), event_type.as_str())
            .await?)
    }

    /// Every type's description the operator wrote, by type.
    pub async fn all(&self) -> Result<HashMap<String, TypeInfo>> {
        let mut conn = self.redis.clone();
        let stored: HashMap<String, String> = conn.hgetall(self.keys.event_types()).await?;
        (stored.into_iter())
            .map(|(name, json)| Ok((name.clone(), parse(&name, &json)?)))
            .collect()
    }
}

/// A stored description, read.
pub fn parse(name: &str, json: &str) -> Result<TypeInfo> {
    serde_json::from_str(json).map_err(|source| Error::CorruptType {
        name: name.to_owned(),
        source,
    })
}
