//! Who may call what: the operator token, tenant tokens, no or forged tokens.

use reqwest::Method;
use serde_json::{Value, json};

use super::{BLOCKED, id_of, wrong_fields};
use crate::util::{Fleet, Receiver};

#[tokio::test(flavor = "multi_thread")]
async fn every_v1_route_needs_a_valid_token() {
    let fleet = Fleet::new();
    let api = fleet.spawn_api().await;
    let ep = api
        .create_endpoint("acme", "http://127.0.0.1:9/x", &["log.blocked"])
        .await;
    let id = ep["id"].as_str().unwrap();
    let routes = [
        (Method::GET, "/v1/endpoints".to_owned()),
        (Method::POST, "/v1/endpoints".to_owned()),
        (Method::GET, format!("/v1/endpoints/{id}")),
        (Method::PATCH, format!("/v1/endpoints/{id}")),
        (Method::DELETE, format!("/v1/endpoints/{id}")),
        (Method::POST, format!("/v1/endpoints/{id}/test")),
        (Method::POST, format!("/v1/endpoints/{id}/rotate-secret")),
        (Method::GET, format!("/v1/endpoints/{id}/attempts")),
        (Method::POST, "/v1/events".to_owned()),
        (Method::GET, "/v1/dead-letters".to_owned()),
        (Method::POST, "/v1/dead-letters/replay".to_owned()),
        (Method::POST, "/v1/tenants/acme/tokens".to_owned()),
        (Method::GET, "/v1/event-types".to_owned()),
        (Method::PUT, "/v1/event-types/log.blocked".to_owned()),
        (Method::POST, "/v1/filters/test".to_owned()),
    ];
    for (method, path) in routes {
        for token in [None, Some("wrong-token-0123456789"), Some("hft_forged.sig")] {
            let answer = api.call(method.clone(), &path, token, None).await;
            assert_eq!(answer.status, 401, "{method} {path} with {token:?}");
            assert_eq!(answer.body["error"]["code"], "unauthorized");
        }
    }
    // The endpoint is untouched.
    let got = api
        .operator(Method::GET, &format!("/v1/endpoints/{id}"), None)
        .await;
    assert_eq!(got.status, 200);
    // The probes, the document and the console's files need no token.
    for path in [
        "/healthz",
        "/readyz",
        "/openapi.json",
        "/metrics",
        "/",
        "/console/app.js",
        "/console/history.js",
        "/console/controls.js",
        "/console/style.css",
    ] {
        let answer = api.call(Method::GET, path, None, None).await;
        assert_eq!(answer.status, 200, "{path}");
    }
    api.process.stop().await.unwrap();
    fleet.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_api_refuses_to_start_without_a_token_unless_told_to() {
    let fleet = Fleet::new();
    let refused = fleet.run(&["api"]).await;
    assert_eq!(refused.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("HOOKFLEET_API_TOKEN"), "{stderr}");
    fleet
        .assert_refused("HOOKFLEET_API_TOKEN", "short", &["api"])
        .await;
    fleet.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_token_sees_only_its_tenant() {
    let fleet = Fleet::new();
    let receiver = Receiver::start().await.unwrap();
    let api = fleet.spawn_api().await;
    let ours = api
        .create_endpoint("acme", &receiver.url("/acme"), &[BLOCKED])
        .await;
    let theirs = api
        .create_endpoint("globex", &receiver.url("/globex"), &[BLOCKED])
        .await;
    let theirs_path = format!("/v1/endpoints/{}", id_of(&theirs));
    let theirs_before = api.operator(Method::GET, &theirs_path, None).await;
    assert_eq!(theirs_before.status, 200);

    let minted = api
        .operator(
            Method::POST,
            "/v1/tenants/acme/tokens",
            Some(json!({"ttl": "15m"})),
        )
        .await;
    assert_eq!(minted.status, 201, "{:?}", minted.body);
    assert!(minted.body["expires_at"].is_string(), "{:?}", minted.body);
    let token = minted.body["token"].as_str().unwrap().to_owned();
    let as_acme = |method: Method, path: String, body: Option<Value>| {
        let token = token.clone();
        let api = &api;
        async move { api.call(method, &path, Some(&token), body).await }
    };

    let listed = as_acme(Method::GET, "/v1/endpoints".to_owned(), None).await;
    assert_eq!(listed.status, 200, "{:?}", listed.body);
    let ids: Vec<String> = (listed.body["data"].as_array().unwrap().iter())
        .map(id_of)
        .collect();
    assert_eq!(ids, [id_of(&ours)]);
    let own = as_acme(Method::GET, format!("/v1/endpoints/{}", id_of(&ours)), None).await;
    assert_eq!(own.status, 200, "{:?}", own.body);

    // Another tenant's endpoint does not exist, as far as this token can tell.
    let id = id_of(&theirs);
    let probes = [
        (Method::GET, theirs_path.clone(), None),
        (
            Method::PATCH,
            theirs_path.clone(),
            Some(json!({"url": receiver.url("/stolen"), "enabled": false})),
        ),
        (Method::DELETE, theirs_path.clone(), None),
        (Method::POST, format!("/v1/endpoints/{id}/test"), None),
        (
            Method::POST,
            format!("/v1/endpoints/{id}/rotate-secret"),
            None,
        ),
        (Method::GET, format!("/v1/endpoints/{id}/attempts"), None),
        (Method::GET, "/v1/endpoints?tenant=globex".to_owned(), None),
        (Method::GET, "/v1/dead-letters".to_owned(), None),
        (
            Method::POST,
            "/v1/dead-letters/replay".to_owned(),
            Some(json!({})),
        ),
        (
            Method::POST,
            "/v1/events".to_owned(),
            Some(json!({"type": BLOCKED, "tenant": "acme", "data": {}})),
        ),
        (Method::POST, "/v1/tenants/acme/tokens".to_owned(), None),
    ];
    for (method, path, body) in probes {
        let answer = as_acme(method.clone(), path.clone(), body).await;
        assert_eq!(answer.status, 404, "{method} {path}: {:?}", answer.body);
        assert_eq!(answer.body["error"]["code"], "not_found", "{method} {path}");
    }
    assert_eq!(receiver.count("/globex"), 0, "the test was sent");
    let theirs_after = api.operator(Method::GET, &theirs_path, None).await;
    assert_eq!(theirs_after.status, 200, "{:?}", theirs_after.body);
    assert_eq!(theirs_after.body, theirs_before.body);

    // Creating: the token's tenant when left out; another tenant is refused.
    let new = json!({"url": receiver.url("/acme-2"), "events": ["*"]});
    let created = as_acme(Method::POST, "/v1/endpoints".to_owned(), Some(new)).await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    assert_eq!(created.body["tenant"], "acme");
    let foreign = json!({"tenant": "globex", "url": receiver.url("/x"), "events": ["*"]});
    let refused = as_acme(Method::POST, "/v1/endpoints".to_owned(), Some(foreign)).await;
    assert_eq!(wrong_fields(&refused), ["tenant"]);
    let globex = api
        .operator(Method::GET, "/v1/endpoints?tenant=globex", None)
        .await;
    assert_eq!(
        globex.body["data"].as_array().unwrap().len(),
        1,
        "{:?}",
        globex.body
    );

    let long = api
        .operator(
            Method::POST,
            "/v1/tenants/acme/tokens",
            Some(json!({"ttl": "48h"})),
        )
        .await;
    assert_eq!(wrong_fields(&long), ["ttl"]);

    // A token whose payload was altered no longer matches its signature. (Expiry is covered
    // by the unit tests of `hookfleet_api::tokens`: the shortest ttl is a minute.)
    let (payload, signature) = token.strip_prefix("hft_").unwrap().split_once('.').unwrap();
    let middle = payload.len() / 2;
    let swapped = if &payload[middle..=middle] == "A" {
        "B"
    } else {
        "A"
    };
    let altered = format!(
        "hft_{}{swapped}{}.{signature}",
        &payload[..middle],
        &payload[middle + 1..]
    );
    assert_ne!(altered, token);
    let answer = api
        .call(Method::GET, "/v1/endpoints", Some(&altered), None)
        .await;
    assert_eq!(answer.status, 401, "{:?}", answer.body);
    assert_eq!(answer.body["error"]["code"], "unauthorized");

    api.process.stop().await.unwrap();
    fleet.cleanup().await;
}
