//! Endpoint operations: create, list, get, update, remove, rotate the secret, read attempts.

use hookfleet_core::attempt::Attempt;
use hookfleet_core::{Endpoint, EndpointId, Secret, TenantId};
use hookfleet_worker::guard;

use crate::input::{self, Checks, EndpointPatch, NewEndpoint, Rotation};
use crate::view::{CircuitView, EndpointView};
use crate::{Admin, Error, ROTATION_OVERLAP, Result, Scope};

/// Most attempts one read returns.
pub const MAX_ATTEMPTS_PAGE: usize = 1000;

impl Admin {
    /// Creates an endpoint; the view carries its secret, shown this once.
    pub async fn create_endpoint(&self, scope: &Scope, new: NewEndpoint) -> Result<EndpointView> {
        let mut checks = Checks::default();
        let tenant = match (scope, new.tenant.as_deref()) {
            (Scope::Tenant(own), None) => Some(own.clone()),
            (Scope::Tenant(own), Some(given)) if given == own.as_str() => Some(own.clone()),
            (Scope::Tenant(_), Some(_)) => {
                checks.fail(
                    "tenant",
                    "a tenant token creates endpoints of its own tenant only",
                );
                None
            }
            (Scope::Operator, None) => {
                checks.fail("tenant", "required");
                None
            }
            (Scope::Operator, Some(given)) => checks.field("tenant", input::tenant(given)),
        };
        let url = self.check_url(&mut checks, &new.url).await;
        let events = checks.field("events", input::events(new.events, &self.config.catalog));
        let secret = match new.secret {
            Some(text) => checks.field("secret", input::secret(&text)).map(Some),
            None => Some(None),
        };
        let description = checks.field(
            "description",
            input::description(new.description.unwrap_or_default()),
        );
        // A missing value always noted its field's error, and only a missing value did.
        let (Some(tenant), Some(url), Some(events), Some(secret), Some(description)) =
            (tenant, url, events, secret, description)
        else {
            return Err(checks.into_error());
        };
        self.check_limit(&tenant).await?;
        let endpoint = Endpoint::new(tenant, &url, events, secret, description)
            .map_err(|e| Error::field("url", e.to_string()))?;
        self.store.put(&endpoint).await?;
        tracing::info!(message = "Endpoint created.", endpoint_id = %endpoint.id, tenant = %endpoint.tenant);
        Ok(EndpointView::new(
            &endpoint,
            true,
            CircuitView::Closed,
            None,
        ))
    }

    /// The endpoints the scope sees: one tenant's, or (operator) every one or one tenant's;
    /// their secrets only when `reveal` (the CLI's `list --reveal`; the API never).
    pub async fn list_endpoints(
        &self,
        scope: &Scope,
        tenant: Option<&str>,
        reveal: bool,
    ) -> Result<Vec<EndpointView>> {
        let tenant: Option<TenantId> = match tenant {
            Some(text) => {
                let tenant = input::tenant(text).map_err(|m| Error::field("tenant", m))?;
                if !scope.sees(&tenant) {
                    return Err(Error::NotFound(format!("tenant {tenant}")));
                }
                Some(tenant)
            }
            None => match scope {
                Scope::Tenant(own) => Some(own.clone()),
                Scope::Operator => None,
            },
        };
        let endpoints = self.store.list(tenant.as_ref()).await?;
        let mut views = Vec::with_capacity(endpoints.len());
        for endpoint in &endpoints {
            views.push(self.view(endpoint, reveal).await?);
        }
        Ok(views)
    }

    /// One endpoint; its secret only when `reveal` (the CLI's `get --reveal`; the API never).
    pub async fn get_endpoint(
        &self,
        scope: &Scope,
        id: &str,
        reveal: bool,
    ) -> Result<EndpointView> {
        let endpoint = self.visible(scope, id).await?;
        self.view(&endpoint, reveal).await
    }

    /// Changes the fields given. Enabling also resets the circuit breaker.
    pub async fn update_endpoint(
        &self,
        scope: &Scope,
        id: &str,
        patch: EndpointPatch,
    ) -> Result<EndpointView> {
        let mut endpoint = self.visible(scope, id).await?;
        let mut checks = Checks::default();
        let url = match &patch.url {
            Some(text) => self.check_url(&mut checks, text).await,
            None => None,
        };
        let events = patch
            .events
            .and_then(|list| checks.field("events", input::events(list, &self.config.catalog)));
        let description = patch
            .description
            .and_then(|text| checks.field("description", input::description(text)));
        checks.finish()?;
        if let Some(url) = url {
            endpoint.url = url;
        }
        if let Some(events) = events {
            endpoint.events = events;
        }
        if let Some(description) = description {
            endpoint.description = description;
        }
        if let Some(enabled) = patch.enabled {
            endpoint.enabled = enabled;
        }
        self.store.put(&endpoint).await?;
        if patch.enabled == Some(true) {
            // Turning an endpoint on means "try it now": its circuit starts afresh.
            self.store.clear_circuit(&endpoint.id).await?;
        }
        tracing::info!(message = "Endpoint updated.", endpoint_id = %endpoint.id);
        self.view(&endpoint, false).await
    }

    /// Removes an endpoint, its attempt log and its circuit state; returns what was removed.
    pub async fn remove_endpoint(&self, scope: &Scope, id: &str) -> Result<EndpointView> {
        let endpoint = self.visible(scope, id).await?;
        let view = self.view(&endpoint, false).await?;
        self.store.remove(&endpoint.id).await?;
        tracing::info!(message = "Endpoint removed.", endpoint_id = %endpoint.id);
        Ok(view)
    }

    /// Enables or disables an endpoint.
    pub async fn set_enabled(
        &self,
        scope: &Scope,
        id: &str,
        enabled: bool,
    ) -> Result<EndpointView> {
        let patch = EndpointPatch {
            enabled: Some(enabled),
            ..EndpointPatch::default()
        };
        self.update_endpoint(scope, id, patch).await
    }

    /// Gives the endpoint a new secret; the old one keeps signing beside it for 24 h. The view
    /// carries the new secret, shown this once.
    pub async fn rotate_secret(
        &self,
        scope: &Scope,
        id: &str,
        rotation: Rotation,
    ) -> Result<EndpointView> {
        let mut endpoint = self.visible(scope, id).await?;
        let new = match rotation.secret {
            Some(text) => input::secret(&text).map_err(|m| Error::field("secret", m))?,
            None => Secret::generate(),
        };
        if new == endpoint.secret {
            return Err(Error::field(
                "secret",
                "is the current secret; a rotation needs a new one",
            ));
        }
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        endpoint.rotate_secret(new, now, ROTATION_OVERLAP);
        self.store.put(&endpoint).await?;
        tracing::info!(message = "Endpoint secret rotated.", endpoint_id = %endpoint.id);
        let mut view = self.view(&endpoint, true).await?;
        view.secret = Some(endpoint.secret.expose().to_owned());
        Ok(view)
    }

    /// Up to `limit` attempts, newest first, older than the entry `before` when given.
    pub async fn attempts(
        &self,
        scope: &Scope,
        id: &str,
        limit: usize,
        before: Option<&str>,
    ) -> Result<Vec<Attempt>> {
        let endpoint = self.visible(scope, id).await?;
        if let Some(before) = before
            && !is_stream_id(before)
        {
            return Err(Error::field(
                "before",
                "must be an attempt's id, as in a previous page",
            ));
        }
        let limit = limit.clamp(1, MAX_ATTEMPTS_PAGE);
        Ok(self.attempts.list(&endpoint.id, limit, before).await?)
    }

    /// The endpoint `id`, if the scope sees it; anything else is the same `NotFound`.
    pub(crate) async fn visible(&self, scope: &Scope, id: &str) -> Result<Endpoint> {
        let not_found = || Error::NotFound(format!("endpoint {id}"));
        let id: EndpointId = id.parse().map_err(|_| not_found())?;
        let endpoint = self.store.get(&id).await?;
        if !scope.sees(&endpoint.tenant) {
            return Err(not_found());
        }
        Ok(endpoint)
    }

    async fn view(&self, endpoint: &Endpoint, reveal: bool) -> Result<EndpointView> {
        let now_ms = time::OffsetDateTime::now_utc().unix_timestamp() * 1000;
        let state = self.circuits.state(&endpoint.id).await?;
        let circuit = if !state.is_open() {
            CircuitView::Closed
        } else if state.open_until_ms > now_ms {
            CircuitView::Open
        } else {
            // Cool-down over: the next delivery is (or is waiting to be) the probe.
            CircuitView::HalfOpen
        };
        let last = self.attempts.list(&endpoint.id, 1, None).await?.pop();
        Ok(EndpointView::new(endpoint, reveal, circuit, last))
    }

    /// The URL if it is well-formed and (unless private targets are allowed) public.
    async fn check_url(&self, checks: &mut Checks, text: &str) -> Option<String> {
        let url = checks.field("url", hookfleet_core::target::parse_url(text))?;
        if !self.config.allow_private_targets
            && let Err(blocked) = guard::check_url(&url).await
        {
            checks.fail("url", format!("not a public address: {blocked}"));
            return None;
        }
        Some(text.to_owned())
    }

    async fn check_limit(&self, tenant: &TenantId) -> Result<()> {
        let Some(max) = self.config.max_endpoints_per_tenant else {
            return Ok(());
        };
        // A read then a write: two creates racing at the limit may both pass. The limit
        // guards against runaway scripts, not against a determined race.
        if self.store.for_tenant(tenant).await?.len() >= max as usize {
            return Err(Error::EndpointLimit {
                tenant: tenant.to_string(),
                max,
            });
        }
        Ok(())
    }
}

/// Whether `text` is a Redis stream id (`<ms>-<seq>`).
fn is_stream_id(text: &str) -> bool {
    let mut parts = text.splitn(2, '-');
    let digits = |s: Option<&str>| {
        s.is_some_and(|s| !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit()))
    };
    digits(parts.next()) && digits(parts.next())
}

#[cfg(test)]
mod tests {
    #[test]
    fn stream_ids_are_recognised() {
        for good in ["1-0", "1732800000000-12"] {
            assert!(super::is_stream_id(good), "{good}");
        }
        for bad in ["", "1", "-1", "1-", "a-1", "1-2-3", "+", "(1-0"] {
            assert!(!super::is_stream_id(bad), "{bad}");
        }
    }
}
