//! The history through the API: search, one event and its attempts, the endpoint's attempt
//! log and statistics, resend and recover, each within its tenant.

use reqwest::Method;
use serde_json::{Value, json};

use super::{BLOCKED, drop_schema, history_fleet, wait_for_answer};
use crate::util::{Receiver, Reply, WAIT, wait_for_result, wait_until};

const FAILED: &str = "log.failed";

fn id_of(value: &Value) -> String {
    value["id"].as_str().unwrap().to_owned()
}

fn ids(page: &Value) -> Vec<String> {
    (page["data"].as_array().unwrap().iter())
        .map(id_of)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn events_are_searched_and_read_with_every_endpoints_outcome() {
    let fleet = history_fleet().await;
    let receiver = Receiver::start().await.unwrap();
    // The first event's 4 attempts at /down all fail: it is dead-lettered there.
    receiver.enqueue("/down", [Reply::status(503); 4]);
    let api = fleet.spawn_api().await;
    let ok = api
        .create_endpoint("acme", &receiver.url("/ok"), &[BLOCKED, FAILED])
        .await;
    let down = api
        .create_endpoint("acme", &receiver.url("/down"), &[BLOCKED])
        .await;
    let worker = fleet.spawn_worker().await;

    let failed = api
        .publish(json!({"type": BLOCKED, "tenant": "acme", "data": {"n": 1}}))
        .await;
    wait_for_result(&worker, "dead_lettered", 1.0).await;
    let delivered = api
        .publish(json!({"type": FAILED, "tenant": "acme", "data": {"n": 2}}))
        .await;
    let other = api
        .publish(json!({"type": BLOCKED, "tenant": "globex", "data": {"n": 3}}))
        .await;
    let all = wait_for_answer(&api, "/v1/events?tenant=acme", "both events", |page| {
        ids(page).len() == 2 && page["data"][0]["status"] == "delivered"
    })
    .await;
    assert_eq!(
        ids(&all),
        [delivered.clone(), failed.clone()],
        "newest first"
    );
    assert_eq!(all["data"][1]["status"], "failed", "{all}");
    assert_eq!(all["data"][1]["type"], BLOCKED, "{all}");

    // Filters: status, type, time, and pages.
    let page = |query: &str| {
        let api = &api;
        let path = format!("/v1/events?{query}");
        async move {
            let answer = api.operator(Method::GET, &path, None).await;
            assert_eq!(answer.status, 200, "{path}: {:?}", answer.body);
            answer.body
        }
    };
    assert_eq!(
        ids(&page("tenant=acme&status=failed").await),
        [failed.as_str()]
    );
    assert_eq!(
        ids(&page("tenant=acme&status=delivered").await),
        [delivered.as_str()]
    );
    assert!(ids(&page("tenant=acme&status=pending").await).is_empty());
    assert_eq!(
        ids(&page(&format!("tenant=acme&type={FAILED}")).await),
        [delivered.as_str()]
    );
    assert_eq!(ids(&page("tenant=globex").await), [other.as_str()]);
    assert_eq!(ids(&page("until=2000-01-01T00:00:00Z").await).len(), 0);
    let first = page("tenant=acme&limit=1").await;
    assert_eq!(ids(&first), [delivered.as_str()]);
    let cursor = first["next_cursor"].as_str().unwrap();
    let second = page(&format!("tenant=acme&limit=1&cursor={cursor}")).await;
    assert_eq!(ids(&second), [failed.as_str()]);
    for bad in ["status=lost", "since=yesterday", "cursor=nonsense"] {
        let answer = api
            .operator(Method::GET, &format!("/v1/events?{bad}"), None)
            .await;
        assert_eq!(answer.status, 400, "{bad}: {:?}", answer.body);
        assert_eq!(answer.body["error"]["code"], "invalid_query", "{bad}");
    }

    // One event: its payload, and where it stands at each endpoint.
    let event = api
        .operator(Method::GET, &format!("/v1/events/{failed}"), None)
        .await;
    assert_eq!(event.status, 200, "{:?}", event.body);
    assert_eq!(event.body["payload"]["data"], json!({"n": 1}));
    assert_eq!(event.body["status"], "failed");
    let outcomes = event.body["endpoints"].as_array().unwrap();
    let outcome = |endpoint: &Value| {
        (outcomes.iter())
            .find(|o| o["endpoint_id"] == endpoint["id"])
            .unwrap_or_else(|| panic!("{outcomes:?}"))
            .clone()
    };
    assert_eq!(outcome(&ok)["status"], "delivered");
    assert_eq!(outcome(&ok)["attempts"], 1);
    assert_eq!(outcome(&ok)["last_status_code"], 200);
    assert_eq!(outcome(&down)["status"], "failed");
    assert_eq!(outcome(&down)["attempts"], 4);
    assert_eq!(outcome(&down)["last_status_code"], 503);
    let attempts = api
        .operator(Method::GET, &format!("/v1/events/{failed}/attempts"), None)
        .await;
    let attempts = attempts.body.as_array().unwrap().clone();
    assert_eq!(attempts.len(), 5, "{attempts:?}");
    let at_down: Vec<u64> = (attempts.iter())
        .filter(|a| a["endpoint_id"] == down["id"])
        .map(|a| a["attempt"].as_u64().unwrap())
        .collect();
    assert_eq!(at_down, [1, 2, 3, 4], "oldest first");

    // The endpoint's attempt log comes from the history now, paged by its ids.
    let log_path = format!("/v1/endpoints/{}/attempts", id_of(&down));
    let log = api.operator(Method::GET, &log_path, None).await.body;
    let numbers: Vec<u64> = (log.as_array().unwrap().iter())
        .map(|a| a["attempt"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, [4, 3, 2, 1], "{log}");
    let newest = id_of(&log[0]);
    let older = api
        .operator(
            Method::GET,
            &format!("{log_path}?before={newest}&limit=2"),
            None,
        )
        .await;
    assert_eq!(older.status, 200, "{:?}", older.body);
    assert_eq!(
        older.body.as_array().unwrap().as_slice(),
        &log.as_array().unwrap()[1..3]
    );
    let stream_id = api
        .operator(Method::GET, &format!("{log_path}?before=1-0"), None)
        .await;
    assert_eq!(stream_id.status, 400, "a Redis log's id means nothing here");

    // Statistics, for the console's chart.
    let stats = api
        .operator(
            Method::GET,
            &format!("/v1/endpoints/{}/stats", id_of(&down)),
            None,
        )
        .await;
    assert_eq!(stats.status, 200, "{:?}", stats.body);
    assert_eq!(stats.body["attempts"], 4);
    assert_eq!(stats.body["failed"], 4);
    assert_eq!(stats.body["failures"]["non_success_status"], 4);
    assert!(stats.body["latency_p99_ms"].is_u64(), "{:?}", stats.body);
    let hours = stats.body["hours"].as_array().unwrap();
    let failed_in_hours: u64 = hours.iter().map(|h| h["failed"].as_u64().unwrap()).sum();
    assert_eq!(failed_in_hours, 4);

    // A tenant sees its own events only: anything else is 404, as for endpoints.
    let acme = api.tenant_token("acme").await;
    let as_acme = |method: Method, path: String, body: Option<Value>| {
        let (api, token) = (&api, acme.as_str());
        async move { api.call(method, &path, Some(token), body).await }
    };
    let own = as_acme(Method::GET, "/v1/events".into(), None).await;
    assert_eq!(ids(&own.body), [delivered.clone(), failed.clone()]);
    for path in [
        format!("/v1/events/{other}"),
        format!("/v1/events/{other}/attempts"),
        "/v1/events?tenant=globex".to_owned(),
    ] {
        let answer = as_acme(Method::GET, path.clone(), None).await;
        assert_eq!(answer.status, 404, "{path}: {:?}", answer.body);
    }
    let globex_endpoint = api
        .create_endpoint("globex", &receiver.url("/globex"), &[BLOCKED])
        .await;
    let resend_other = as_acme(
        Method::POST,
        format!("/v1/events/{other}/resend"),
        Some(json!({"endpoint_id": id_of(&globex_endpoint)})),
    )
    .await;
    assert_eq!(resend_other.status, 404, "{:?}", resend_other.body);
    for path in [
        format!("/v1/endpoints/{}/stats", id_of(&globex_endpoint)),
        format!("/v1/endpoints/{}/attempts", id_of(&globex_endpoint)),
    ] {
        let answer = as_acme(Method::GET, path.clone(), None).await;
        assert_eq!(answer.status, 404, "{path}: {:?}", answer.body);
    }
    let recover_other = as_acme(
        Method::POST,
        format!("/v1/endpoints/{}/recover", id_of(&globex_endpoint)),
        Some(json!({"since": "2026-01-01T00:00:00Z"})),
    )
    .await;
    assert_eq!(recover_other.status, 404, "{:?}", recover_other.body);
    // The operator cannot cross tenants either: globex's endpoint never gets acme's event.
    let crossed = api
        .operator(
            Method::POST,
            &format!("/v1/events/{failed}/resend"),
            Some(json!({"endpoint_id": id_of(&globex_endpoint)})),
        )
        .await;
    assert_eq!(crossed.status, 404, "{:?}", crossed.body);

    assert!(worker.stop().await.unwrap().success());
    api.process.stop().await.unwrap();
    drop_schema(&fleet).await;
    fleet.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn resend_and_recover_deliver_exactly_what_was_asked() {
    let fleet = history_fleet().await;
    let receiver = Receiver::start().await.unwrap();
    let api = fleet.spawn_api().await;
    let hook = api
        .create_endpoint("acme", &receiver.url("/hook"), &[BLOCKED])
        .await;
    let only_failed = api
        .create_endpoint("acme", &receiver.url("/other"), &[FAILED])
        .await;
    let worker = fleet.spawn_worker().await;
    let since = time::OffsetDateTime::now_utc() - time::Duration::minutes(1);
    let event = |n: u32| json!({"type": BLOCKED, "tenant": "acme", "data": {"n": n}});

    let first = api.publish(event(1)).await;
    wait_until(WAIT, "the first delivery", || receiver.count("/hook") == 1).await;
    // The next two fail at every attempt and are dead-lettered (a 4xx: the circuit breaker
    // does not count those, so every attempt is made).
    receiver.enqueue("/hook", [Reply::status(422); 8]);
    let second = api.publish(event(2)).await;
    let third = api.publish(event(3)).await;
    wait_for_result(&worker, "dead_lettered", 2.0).await;
    assert_eq!(receiver.count("/hook"), 9);

    // Resend: the delivered event once more, with its own webhook-id.
    let resent = api
        .operator(
            Method::POST,
            &format!("/v1/events/{first}/resend"),
            Some(json!({"endpoint_id": id_of(&hook)})),
        )
        .await;
    assert_eq!(resent.status, 202, "{:?}", resent.body);
    wait_until(WAIT, "the resend", || receiver.count("/hook") == 10).await;
    let arrivals = receiver.requests("/hook");
    assert_eq!(arrivals[9].header("webhook-id"), first);
    assert_eq!(
        arrivals[9].body, arrivals[0].body,
        "the stored payload, byte for byte"
    );

    // Refused: an endpoint not subscribed to the type, an unknown event, a bad body.
    let refused = api
        .operator(
            Method::POST,
            &format!("/v1/events/{first}/resend"),
            Some(json!({"endpoint_id": id_of(&only_failed)})),
        )
        .await;
    assert_eq!(refused.status, 422, "{:?}", refused.body);
    assert_eq!(refused.body["error"]["fields"][0]["field"], "endpoint_id");
    let unknown = api
        .operator(
            Method::POST,
            "/v1/events/evt_unknown/resend",
            Some(json!({"endpoint_id": id_of(&hook)})),
        )
        .await;
    assert_eq!(unknown.status, 404, "{:?}", unknown.body);
    let recover_path = format!("/v1/endpoints/{}/recover", id_of(&hook));
    let bad = api
        .operator(Method::POST, &recover_path, Some(json!({"since": "noon"})))
        .await;
    assert_eq!(bad.status, 422, "{:?}", bad.body);
    assert_eq!(bad.body["error"]["fields"][0]["field"], "since");

    // Recover: exactly the two that never got through, oldest first.
    let since = since
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let recovered = api
        .operator(Method::POST, &recover_path, Some(json!({"since": since})))
        .await;
    assert_eq!(recovered.status, 202, "{:?}", recovered.body);
    assert_eq!(recovered.body["queued"], 2, "{:?}", recovered.body);
    wait_until(WAIT, "the recovered events", || {
        receiver.count("/hook") == 12
    })
    .await;
    let mut got: Vec<String> = receiver.requests("/hook")[10..]
        .iter()
        .map(|a| a.header("webhook-id").to_owned())
        .collect();
    got.sort();
    let mut want = vec![second.clone(), third.clone()];
    want.sort();
    assert_eq!(got, want);

    // Once their 2xx is recorded, nothing is left to recover.
    let event_path = format!("/v1/events/{third}");
    wait_for_answer(&api, &event_path, "the recovered event's 2xx", |event| {
        event["status"] == "delivered"
    })
    .await;
    wait_for_answer(
        &api,
        &format!("/v1/events/{second}"),
        "the other's 2xx",
        |event| event["status"] == "delivered",
    )
    .await;
    let again = api
        .operator(Method::POST, &recover_path, Some(json!({"since": since})))
        .await;
    assert_eq!(again.body["queued"], 0, "{:?}", again.body);
    assert_eq!(receiver.count("/hook"), 12);
    assert_eq!(
        receiver.count("/other"),
        0,
        "recover is for its endpoint only"
    );

    assert!(worker.stop().await.unwrap().success());
    api.process.stop().await.unwrap();
    drop_schema(&fleet).await;
    fleet.cleanup().await;
}
