//! Endpoint operations: create, list, get, update, remove, rotate the secret, read attempts.
//!
//! Every change is a compare-and-set on the record's version (`EndpointStore::modify`): a
//! change that raced another is made again on the fresh record, so a rotation, a removal or
//! an auto-disable is never undone by a write based on what was there before.

use hookfleet_core::attempt::Attempt;
use hookfleet_core::{DisabledBy, Endpoint, EndpointId, Secret};
use hookfleet_worker::guard;

use crate::controls::{Controls, ControlsPatch};
use crate::input::{self, Checks, EndpointPatch, NewEndpoint, Rotation};
use crate::view::{CircuitView, EndpointView, OrderedBacklog};
use crate::{Admin, Error, ROTATION_OVERLAP, Result, Scope};

/// Most attempts one read returns.
pub const MAX_ATTEMPTS_PAGE: usize = 1000;

/// Most endpoints one page of a listing holds, and how many by default.
pub const MAX_ENDPOINTS_PAGE: usize = 500;
pub const DEFAULT_ENDPOINTS_PAGE: usize = 100;

/// Which part of a listing to return: `limit` endpoints after the one named `cursor`.
#[derive(Debug, Clone, Copy)]
pub struct Page<'a> {
    pub limit: usize,
    pub cursor: Option<&'a str>,
}

impl Page<'_> {
    /// Everything at once (the CLI).
    pub const ALL: Page<'static> = Page {
        limit: usize::MAX,
        cursor: None,
    };
}

/// One page of endpoints, oldest first, and the cursor of the next page if there is one.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct EndpointPage {
    pub data: Vec<EndpointView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

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
        let controls = Controls::of(&new, self.config.endpoint_concurrency, &mut checks);
        let url = self.check_url(&mut checks, &new.url).await;
        // The operator tenant's endpoints subscribe to the operational types.
        let catalog =
            (tenant.as_ref()).map_or_else(|| self.config.catalog.clone(), |t| self.catalog_of(t));
        let events = checks.field("events", input::events(new.events, &catalog));
        let scheme = match new.signature.as_deref() {
            Some(text) => checks.field("signature", input::scheme(text)).map(Some),
            None => Some(None),
        };
        let secret = scheme.and_then(|scheme| {
            let field = if new.secret.is_some() {
                "secret"
            } else {
                "signature"
            };
            let made = input::secret_for(new.secret.as_deref(), scheme);
            checks.field(field, made).map(Some)
        });
        let description = checks.field(
            "description",
            input::description(new.description.unwrap_or_default()),
        );
        let ordered = new.ordered == Some(true);
        let ordered = if ordered && tenant.as_ref() == Some(&self.config.operator_tenant) {
            // Operational events do not pass through the ordered intake.
            checks.fail("ordered", "the operator tenant's endpoints are not ordered");
            None
        } else {
            Some(ordered)
        };
        // A missing value always noted its field's error, and only a missing value did.
        let (
            Some(tenant),
            Some(url),
            Some(events),
            Some(secret),
            Some(description),
            Some(controls),
            Some(ordered),
        ) = (tenant, url, events, secret, description, controls, ordered)
        else {
            return Err(checks.into_error());
        };
        let mut endpoint = Endpoint::new(tenant, &url, events, secret, description)
            .map_err(|e| Error::field("url", e.to_string()))?;
        controls.apply(&mut endpoint);
        if ordered {
            self.route_ordered(&endpoint.tenant).await?;
            endpoint.ordered = true;
        }
        let max = self.config.limits.max_endpoints;
        match self.store.insert_within(&endpoint, max).await {
            Ok(()) => {}
            Err(hookfleet_store::Error::Limit(max)) => {
                return Err(Error::EndpointLimit {
                    tenant: endpoint.tenant.to_string(),
                    max,
                });
            }
            Err(other) => return Err(other.into()),
        }
        tracing::info!(message = "Endpoint created.", endpoint_id = %endpoint.id, tenant = %endpoint.tenant);
        self.tell_created(&endpoint).await;
        Ok(EndpointView::new(
            &endpoint,
            true,
            CircuitView::Closed,
            None,
        ))
    }

    /// The endpoints the scope sees, oldest first: one tenant's, or (operator) every one or
    /// one tenant's; their secrets only when `reveal` (the CLI's `list --reveal`; the API
    /// never). Ids grow with time (UUIDv7), so a cursor is the last id of the previous page.
    pub async fn list_endpoints(
        &self,
        scope: &Scope,
        tenant: Option<&str>,
        reveal: bool,
        page: Page<'_>,
    ) -> Result<EndpointPage> {
        let tenant = scope.tenant_filter(tenant)?;
        let after: Option<EndpointId> = match page.cursor {
            Some(text) => Some(text.parse().map_err(|_| {
                Error::BadQuery("cursor: not a cursor this API gave out".to_owned())
            })?),
            None => None,
        };
        let mut endpoints = self.store.list(tenant.as_ref()).await?;
        endpoints.sort_by(|a, b| a.id.cmp(&b.id));
        let start = after.map_or(0, |after| endpoints.partition_point(|e| e.id <= after));
        let rest = &endpoints[start..];
        let limit = page.limit.max(1);
        let shown = &rest[..rest.len().min(limit)];
        let next_cursor = (rest.len() > limit)
            .then(|| shown.last().map(|e| e.id.to_string()))
            .flatten();
        let mut data = Vec::with_capacity(shown.len());
        for endpoint in shown {
            data.push(self.view(endpoint, reveal).await?);
        }
        Ok(EndpointPage { data, next_cursor })
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

    /// Changes the fields given. Enabling also resets the circuit breaker. A tenant cannot
    /// enable an endpoint the operator disabled.
    pub async fn update_endpoint(
        &self,
        scope: &Scope,
        id: &str,
        patch: EndpointPatch,
    ) -> Result<EndpointView> {
        let current = self.visible(scope, id).await?;
        let mut checks = Checks::default();
        let most = self.config.endpoint_concurrency;
        let controls = ControlsPatch::of(&patch, &current, most, &mut checks);
        let url = match &patch.url {
            Some(text) => self.check_url(&mut checks, text).await,
            None => None,
        };
        let catalog = self.catalog_of(&current.tenant);
        let events = patch
            .events
            .and_then(|list| checks.field("events", input::events(list, &catalog)));
        let description = patch
            .description
            .and_then(|text| checks.field("description", input::description(text)));
        // A new scheme is a new secret of its kind, the old one signing beside it 24 h.
        let new_secret = (patch.signature.as_deref())
            .and_then(|text| checks.field("signature", input::scheme(text)))
            .filter(|scheme| *scheme != current.secret.scheme())
            .map(Secret::generate_for);
        if patch
            .ordered
            .is_some_and(|ordered| ordered != current.ordered)
        {
            // Switching would let an event in flight between the two paths be sent by
            // neither, or out of order (docs/ordered.md).
            let why = "is fixed when the endpoint is created: create another endpoint to change it";
            checks.fail("ordered", why);
        }
        checks.finish()?;
        let by = match scope {
            Scope::Operator => DisabledBy::Operator,
            Scope::Tenant(_) => DisabledBy::Tenant,
        };
        let endpoint = self
            .store
            .modify(&current.id, |endpoint| {
                if let Some(url) = &url {
                    endpoint.url.clone_from(url);
                }
                if let Some(events) = &events {
                    endpoint.events = events.clone();
                }
                if let Some(description) = &description {
                    endpoint.description.clone_from(description);
                }
                controls.apply(endpoint);
                if let Some(secret) = &new_secret
                    && secret.scheme() != endpoint.secret.scheme()
                {
                    let now = time::OffsetDateTime::now_utc().unix_timestamp();
                    endpoint.rotate_secret(secret.clone(), now, ROTATION_OVERLAP);
                }
                if let Some(enabled) = patch.enabled {
                    set_enabled(endpoint, enabled, by)?;
                }
                Ok::<_, Error>(())
            })
            .await?;
        if patch.enabled == Some(true) {
            // Turning an endpoint on means "try it now": its circuit starts afresh.
            self.store.clear_circuit(&endpoint.id).await?;
        }
        tracing::info!(message = "Endpoint updated.", endpoint_id = %endpoint.id, version = endpoint.version);
        self.tell_changed(scope, &current, &endpoint).await;
        let mut view = self.view(&endpoint, false).await?;
        if new_secret.is_some_and(|new| new == endpoint.secret) {
            // A new scheme's secret, shown this once, as after a rotation.
            view.secret = Some(endpoint.secret.expose().to_owned());
        }
        Ok(view)
    }

    /// Removes an endpoint, its attempt log, its circuit state and what waits for it in
    /// order; returns what was removed.
    pub async fn remove_endpoint(&self, scope: &Scope, id: &str) -> Result<EndpointView> {
        let endpoint = self.visible(scope, id).await?;
        let view = self.view(&endpoint, false).await?;
        self.store.remove(&endpoint.id).await?;
        self.ordered.clear(&endpoint.id).await?;
        tracing::info!(message = "Endpoint removed.", endpoint_id = %endpoint.id);
        self.tell_deleted(&endpoint).await;
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
        let current = self.visible(scope, id).await?;
        let new = match rotation.secret {
            Some(text) => input::secret(&text).map_err(|m| Error::field("secret", m))?,
            None => Secret::generate_for(current.secret.scheme()),
        };
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let endpoint = self
            .store
            .modify(&current.id, |endpoint| {
                if new == endpoint.secret {
                    return Err(Error::field(
                        "secret",
                        "is the current secret; a rotation needs a new one",
                    ));
                }
                endpoint.rotate_secret(new.clone(), now, ROTATION_OVERLAP);
                Ok(())
            })
            .await?;
        tracing::info!(message = "Endpoint secret rotated.", endpoint_id = %endpoint.id);
        self.tell_changed(scope, &current, &endpoint).await;
        let mut view = self.view(&endpoint, false).await?;
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
        let bad_before =
            || Error::BadQuery("before: not an attempt id, as in a previous page".into());
        let limit = limit.clamp(1, MAX_ATTEMPTS_PAGE);
        if let Some(history) = &self.history {
            let before = before
                .map(|b| hookfleet_history::AttemptCursor::parse(b).ok_or_else(bad_before))
                .transpose()?;
            let id = endpoint.id.as_str();
            return Ok(history
                .endpoint_attempts(id, limit, before.as_ref())
                .await?);
        }
        if before.is_some_and(|b| !is_stream_id(b)) {
            return Err(bad_before());
        }
        Ok(self.attempts.list(&endpoint.id, limit, before).await?)
    }

    /// The endpoint's newest attempt, from wherever attempts are kept. The history being away
    /// leaves it out rather than failing the endpoint's view.
    async fn last_attempt(&self, endpoint: &Endpoint) -> Result<Option<Attempt>> {
        let Some(history) = &self.history else {
            return Ok(self.attempts.list(&endpoint.id, 1, None).await?.pop());
        };
        match history
            .endpoint_attempts(endpoint.id.as_str(), 1, None)
            .await
        {
            Ok(mut last) => Ok(last.pop()),
            Err(error) => {
                tracing::warn!(message = "Cannot read the endpoint's last attempt from the history.", %error);
                Ok(None)
            }
        }
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
        let last = self.last_attempt(endpoint).await?;
        let mut view = EndpointView::new(endpoint, reveal, circuit, last);
        if endpoint.ordered {
            let backlog = self.ordered.backlog(&endpoint.id).await?;
            view.ordered_backlog = Some(OrderedBacklog {
                length: backlog.length,
                next_attempt_at: (backlog.next_attempt_ms)
                    .map(|ms| crate::view::rfc3339(ms.div_euclid(1000))),
            });
        }
        Ok(view)
    }

    /// The URL if it is well-formed and (unless private targets are allowed) public.
    async fn check_url(&self, checks: &mut Checks, text: &str) -> Option<String> {
        let url = checks.field("url", hookfleet_core::target::parse_url(text))?;
        if !self.config.allowed_ports.allows(&url) {
            checks.fail("url", "its port is not one the operator allows");
            return None;
        }
        if !self.config.allow_private_targets
            && let Err(blocked) = guard::check_url(&url).await
        {
            // The caller learns that it is refused, the operator's log where it pointed.
            blocked.log();
            checks.fail("url", blocked.to_string());
            return None;
        }
        Some(text.to_owned())
    }
}

/// Turns `endpoint` on or off on behalf of `by`. What the operator turned off stays off for
/// a tenant: enabling it is refused, disabling it again leaves it the operator's.
fn set_enabled(endpoint: &mut Endpoint, enabled: bool, by: DisabledBy) -> Result<()> {
    let operators = !endpoint.enabled && endpoint.disabled_by == Some(DisabledBy::Operator);
    if operators && by == DisabledBy::Tenant {
        if enabled {
            return Err(Error::Forbidden(
                "the operator disabled this endpoint; only the operator can enable it".to_owned(),
            ));
        }
        return Ok(());
    }
    endpoint.set_enabled(enabled, by);
    Ok(())
}

/// Whether `text` is a Redis stream id (`<ms>-<seq>`, each a 64-bit number).
fn is_stream_id(text: &str) -> bool {
    text.split_once('-').is_some_and(|(ms, seq)| {
        let number = |s: &str| s.bytes().all(|b| b.is_ascii_digit()) && s.parse::<u64>().is_ok();
        number(ms) && number(seq)
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn stream_ids_are_recognised() {
        for good in ["1-0", "1732800000000-12"] {
            assert!(super::is_stream_id(good), "{good}");
        }
        for bad in [
            "",
            "1",
            "-1",
            "1-",
            "a-1",
            "1-2-3",
            "+",
            "(1-0",
            "99999999999999999999-0",
            "1-+1",
        ] {
            assert!(!super::is_stream_id(bad), "{bad}");
        }
    }
}
