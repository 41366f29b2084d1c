//! An endpoint's controls (docs/contract.md §2): headers and their sensitive names, the rate
//! limit, the in-flight cap and the payload filter, checked at create and at `PATCH`, every
//! fault noted against its own field.

use std::collections::{BTreeMap, BTreeSet};

use hookfleet_core::{CustomHeaders, Endpoint, PayloadFilter};

use crate::input::{self, Checks, EndpointPatch, NewEndpoint};

/// Checked headers, and the names among them that are sensitive.
type Headers = (CustomHeaders, BTreeSet<String>);

/// The controls of a new endpoint, checked.
#[derive(Debug)]
pub(crate) struct Controls {
    headers: Headers,
    rate_limit: Option<u32>,
    max_in_flight: Option<u32>,
    filter: Option<PayloadFilter>,
}

impl Controls {
    /// The controls `new` asks for; `None` when one is wrong (each fault noted in `checks`).
    /// `most_in_flight` is the workers' `HOOKFLEET_ENDPOINT_CONCURRENCY`.
    pub fn of(new: &NewEndpoint, most_in_flight: u32, checks: &mut Checks) -> Option<Self> {
        let given = new.headers.clone().unwrap_or_default();
        let sensitive = new.sensitive_headers.clone().unwrap_or_default();
        let headers = input::headers(given, sensitive)
            .map_err(|(field, why)| checks.fail(field, why))
            .ok();
        let rate_limit = checked(checks, "rate_limit", new.rate_limit, input::rate_limit);
        let max_in_flight = checked(checks, "max_in_flight", new.max_in_flight, |n| {
            input::max_in_flight(n, most_in_flight)
        });
        let filter = checked(checks, "filter", new.filter.as_ref(), input::filter);
        Some(Self {
            headers: headers?,
            rate_limit: rate_limit?,
            max_in_flight: max_in_flight?,
            filter: filter?,
        })
    }

    pub fn apply(self, endpoint: &mut Endpoint) {
        (endpoint.headers, endpoint.sensitive_headers) = self.headers;
        endpoint.rate_limit = self.rate_limit;
        endpoint.max_in_flight = self.max_in_flight;
        endpoint.filter = self.filter;
    }
}

/// What a `PATCH` changes of the controls: `None` leaves a control as it is, `Some(None)`
/// removes it.
#[derive(Debug, Default)]
pub(crate) struct ControlsPatch {
    headers: Option<Headers>,
    rate_limit: Option<Option<u32>>,
    max_in_flight: Option<Option<u32>>,
    filter: Option<Option<PayloadFilter>>,
}

impl ControlsPatch {
    /// The changes `patch` asks of `current`, checked; each fault is noted in `checks` (and
    /// its control left out).
    pub fn of(
        patch: &EndpointPatch,
        current: &Endpoint,
        most_in_flight: u32,
        checks: &mut Checks,
    ) -> Self {
        let headers = headers(
            current,
            patch.headers.clone(),
            patch.sensitive_headers.clone(),
        )
        .map_err(|(field, why)| checks.fail(field, why))
        .ok()
        .flatten();
        // Sent (`Some`), a control is checked as at create; `null` (`Some(None)`) removes it.
        let rate_limit = (patch.rate_limit)
            .and_then(|given| checked(checks, "rate_limit", given, input::rate_limit));
        let max_in_flight = patch.max_in_flight.and_then(|given| {
            checked(checks, "max_in_flight", given, |n| {
                input::max_in_flight(n, most_in_flight)
            })
        });
        let filter = (patch.filter.as_ref())
            .and_then(|given| checked(checks, "filter", given.as_ref(), input::filter));
        Self {
            headers,
            rate_limit,
            max_in_flight,
            filter,
        }
    }

    /// Makes the changes on the record as it is now (a compare-and-set may run this again on
    /// a fresher one).
    pub fn apply(&self, endpoint: &mut Endpoint) {
        if let Some((headers, sensitive)) = &self.headers {
            // A value shown masked, and sent back so, keeps what it was.
            let kept = headers
                .clone()
                .unmasked(&endpoint.headers, &endpoint.sensitive_headers);
            endpoint.headers = kept;
            endpoint.sensitive_headers.clone_from(sensitive);
        }
        if let Some(rate_limit) = self.rate_limit {
            endpoint.rate_limit = rate_limit;
        }
        if let Some(max_in_flight) = self.max_in_flight {
            endpoint.max_in_flight = max_in_flight;
        }
        if let Some(filter) = &self.filter {
            endpoint.filter.clone_from(filter);
        }
    }
}

/// An optional control, checked: `Some(None)` when not given, `Some(Some(_))` when right,
/// `None` when wrong (and noted in `checks` against `field`).
fn checked<T, U>(
    checks: &mut Checks,
    field: &str,
    given: Option<T>,
    check: impl FnOnce(T) -> Result<U, String>,
) -> Option<Option<U>> {
    match given {
        None => Some(None),
        Some(value) => checks.field(field, check(value)).map(Some),
    }
}

/// The headers a `PATCH` asks for, checked (`None`: unchanged). A new map replaces the old
/// one; without a new list, the sensitive names still in the map stay sensitive.
fn headers(
    current: &Endpoint,
    headers: Option<Option<BTreeMap<String, String>>>,
    sensitive: Option<Option<Vec<String>>>,
) -> Result<Option<Headers>, (&'static str, String)> {
    if headers.is_none() && sensitive.is_none() {
        return Ok(None);
    }
    let given = match headers {
        Some(given) => given.unwrap_or_default(),
        None => (current.headers.iter())
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
            .collect(),
    };
    let names = match sensitive {
        Some(names) => names.unwrap_or_default(),
        None => (current.sensitive_headers.iter())
            .filter(|n| given.keys().any(|g| g.eq_ignore_ascii_case(n)))
            .cloned()
            .collect(),
    };
    input::headers(given, names).map(Some)
}
