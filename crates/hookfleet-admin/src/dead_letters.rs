//! Dead letters: listing and replaying, for operators only (a dead letter may be any tenant's).

use hookfleet_core::EndpointId;
use hookfleet_worker::dead_letters;
pub use hookfleet_worker::dead_letters::{DeadLetter, ReplayReport};

use crate::input::ReplayRequest;
use crate::{Admin, Error, Result, Scope};

/// Most dead letters one listing returns.
pub const MAX_LIST: usize = 1000;

impl Admin {
    /// Up to `limit` dead letters, oldest first; the queue is left as it is.
    pub async fn dead_letters(&self, scope: &Scope, limit: usize) -> Result<Vec<DeadLetter>> {
        scope.operator_only("route")?;
        let limit = limit.clamp(1, MAX_LIST);
        Ok(dead_letters::list(&self.broker, &self.config.namespace, limit).await?)
    }

    /// Sends dead letters back for delivery with a fresh attempt count.
    pub async fn replay(&self, scope: &Scope, request: ReplayRequest) -> Result<ReplayReport> {
        scope.operator_only("route")?;
        let endpoint = match request.endpoint.as_deref() {
            Some(text) => {
                let id = text.parse::<EndpointId>();
                Some(id.map_err(|e| Error::field("endpoint", e.to_string()))?)
            }
            None => None,
        };
        let limit = request.limit.unwrap_or(usize::MAX);
        Ok(dead_letters::replay(
            &self.broker,
            &self.confirmed,
            &self.config.namespace,
            endpoint.as_ref(),
            limit,
        )
        .await?)
    }
}
