//! Endpoints in Redis: the bench tenant's (one per receiver path) through the harness (the
//! store's own `EndpointStore::put`), and many endpoints of other tenants written with raw
//! pipelines in the store's exact format (one hash per tenant plus the id index), which is
//! ~50× faster.

use std::time::Instant;

use hookfleet_core::{CustomHeaders, Endpoint, EventFilter, PayloadFilter, Secret};
use hookfleet_store::keys::Keys;
use hookfleet_store::{Redis, redis};
use hookfleet_testkit::{Fleet, Receiver};
use serde_json::json;

use crate::CATALOG;

/// The tenant every bench event belongs to.
pub const TENANT: &str = "bench-tenant";
/// Endpoints per pipeline of the seeding.
const CHUNK: u64 = 2_000;

/// The tenant whose endpoint accepts connections and never answers.
pub const DEAD_TENANT: &str = "bench-dead";
/// The tenant whose endpoint answers 503 at once.
pub const FAILING_TENANT: &str = "bench-503";
/// The tenant whose endpoint has a `rate_limit` of [`LIMIT_PER_SECOND`].
pub const LIMITED_TENANT: &str = "bench-limited";
pub const LIMIT_PER_SECOND: u32 = 10;
/// Their endpoints' paths on the receiver.
pub const DEAD_PATH: &str = "/dead";
pub const FAILING_PATH: &str = "/unavailable";
pub const LIMITED_PATH: &str = "/limited";

/// The healthy tenants' names: [`TENANT`] alone, or `bench-tenant-<t>` for several.
pub fn healthy_tenants(count: usize) -> Vec<String> {
    match count {
        0 | 1 => vec![TENANT.to_owned()],
        n => (0..n).map(|t| format!("{TENANT}-{t}")).collect(),
    }
}

/// Registers `fanout` endpoints for each of `tenants`, endpoint `k` of tenant `t` at
/// `/ep/<t × fanout + k>` on the receiver, with the per-delivery controls when `controls`;
/// returns their secrets in that order.
pub async fn register_bench(
    fleet: &Fleet,
    receiver: &Receiver,
    tenants: &[String],
    fanout: usize,
    controls: bool,
) -> anyhow::Result<Vec<Secret>> {
    let mut secrets = Vec::with_capacity(tenants.len() * fanout);
    for (t, tenant) in tenants.iter().enumerate() {
        for k in 0..fanout {
            let url = receiver.url(&format!("/ep/{}", t * fanout + k));
            let endpoint = fleet
                .add_endpoint_with(tenant, &url, &CATALOG, |endpoint| {
                    if controls {
                        add_controls(endpoint);
                    }
                })
                .await?;
            secrets.push(endpoint.secret);
        }
    }
    Ok(secrets)
}

/// Registers the never-answering (one unordered, one ordered), the 503 and the rate-limited
/// endpoints.
pub async fn register_faulty(fleet: &Fleet, receiver: &Receiver) -> anyhow::Result<()> {
    for (tenant, path) in [(DEAD_TENANT, DEAD_PATH), (FAILING_TENANT, FAILING_PATH)] {
        let url = receiver.url(path);
        fleet.add_endpoint(tenant, &url, &CATALOG).await?;
    }
    // An ordered endpoint that is dead holds back only itself (docs/ordered.md).
    let url = receiver.url(DEAD_PATH);
    let ordered = |endpoint: &mut Endpoint| endpoint.ordered = true;
    (fleet.add_endpoint_with(DEAD_TENANT, &url, &CATALOG, ordered)).await?;
    crate::ordered::route(fleet, [DEAD_TENANT]).await?;
    let url = receiver.url(LIMITED_PATH);
    let limited = |endpoint: &mut Endpoint| endpoint.rate_limit = Some(LIMIT_PER_SECOND);
    fleet
        .add_endpoint_with(LIMITED_TENANT, &url, &CATALOG, limited)
        .await?;
    Ok(())
}

/// Gives `endpoint` the controls that cost something per delivery: two custom headers and a
/// payload filter that every bench event matches (the cost is the check, not fewer POSTs).
fn add_controls(endpoint: &mut Endpoint) {
    let headers = [("x-api-key", "bench-key"), ("x-team", "bench")];
    let headers = headers.map(|(n, v)| (n.to_owned(), v.to_owned()));
    endpoint.headers = CustomHeaders::parse(headers.into()).expect("valid bench headers");
    let filter = json!({"seq": {"$gte": 0}, "sent_us": {"$exists": true}});
    endpoint.filter = Some(PayloadFilter::parse(&filter).expect("a valid bench filter"));
}

/// Registers `count` endpoints, one per tenant `other-<i>`, all subscribed to the bench's
/// event type and pointing at a port nothing listens on (they must never be called).
pub async fn seed_other_tenants(pool: &Redis, namespace: &str, count: u64) -> anyhow::Result<()> {
    let keys = Keys::new(&namespace.parse()?);
    let filter = EventFilter::parse_list(&CATALOG.join(","))?;
    let started = Instant::now();
    let mut conn = pool.clone();
    let mut done = 0;
    while done < count {
        let mut pipe = redis::pipe();
        for i in done..(done + CHUNK).min(count) {
            let endpoint = Endpoint::new(
                format!("other-{i}").parse()?,
                "http://127.0.0.1:9/never",
                filter.clone(),
                None,
                String::new(),
            )?;
            let json = serde_json::to_string(&endpoint)?;
            pipe.hset(
                keys.tenant_endpoints(&endpoint.tenant),
                endpoint.id.as_str(),
                json,
            )
            .ignore()
            .hset(
                keys.endpoint_index(),
                endpoint.id.as_str(),
                endpoint.tenant.as_str(),
            )
            .ignore();
        }
        pipe.query_async::<()>(&mut conn).await?;
        done = (done + CHUNK).min(count);
        if done % 20_000 == 0 || done == count {
            eprintln!("  seeded {done}/{count} other-tenant endpoints");
        }
    }
    eprintln!(
        "  seeded {count} endpoints in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
