//! What one tenant can do to the fleet and to others (issue: security hardening): resource
//! caps, the Test Webhook meter, allowed ports, connection limits, lost writes, token
//! revocation and audience, operator-only re-enabling, and what error answers leak.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{BLOCKED, id_of, wrong_fields};
use crate::util::{Fleet, Receiver, WAIT, wait_until};

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_has_at_most_100_endpoints_of_bounded_urls_listed_in_pages() {
    let fleet = Fleet::new();
    let receiver = Receiver::start().await.unwrap();
    let api = fleet.spawn_api().await;
    let token = api.tenant_token("acme").await;
    let as_acme = |method: Method, path: String, body: Option<Value>| {
        let (api, token) = (&api, token.clone());
        async move { api.call(method, &path, Some(&token), body).await }
    };
    let mut created = Vec::new();
    for n in 0..100 {
        let body = json!({"url": receiver.url(&format!("/{n}")), "events": [BLOCKED]});
        let answer = as_acme(Method::POST, "/v1/endpoints".into(), Some(body)).await;
        assert_eq!(answer.status, 201, "endpoint {n}: {:?}", answer.body);
        created.push(id_of(&answer.body));
    }
    let one_more = json!({"url": receiver.url("/extra"), "events": [BLOCKED]});
    let refused = as_acme(Method::POST, "/v1/endpoints".into(), Some(one_more)).await;
    assert_eq!(refused.status, 409, "{:?}", refused.body);
    assert_eq!(refused.body["error"]["code"], "endpoint_limit");

    // The URL's length is checked where URLs are parsed: 2 048 bytes at most.
    let long = format!("{}?{}", receiver.url("/long"), "a".repeat(2_048));
    let too_long = json!({"url": long, "events": [BLOCKED]});
    let answer = as_acme(Method::POST, "/v1/endpoints".into(), Some(too_long.clone())).await;
    assert_eq!(wrong_fields(&answer), ["url"]);
    let path = format!("/v1/endpoints/{}", created[0]);
    let answer = as_acme(Method::PATCH, path, Some(json!({"url": long}))).await;
    assert_eq!(wrong_fields(&answer), ["url"]);

    // Pages of 40: 40, 40, 20, oldest first, each endpoint once.
    let mut listed = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = Vec::new();
    loop {
        let query = cursor.map_or(String::new(), |c| format!("&cursor={c}"));
        let page = as_acme(Method::GET, format!("/v1/endpoints?limit=40{query}"), None).await;
        assert_eq!(page.status, 200, "{:?}", page.body);
        let ids: Vec<String> = (page.body["data"].as_array().unwrap().iter())
            .map(id_of)
            .collect();
        pages.push(ids.len());
        listed.extend(ids);
        cursor = page.body["next_cursor"].as_str().map(str::to_owned);
        if cursor.is_none() {
            break;
        }
        assert!(pages.len() < 10, "the cursor goes round in circles");
    }
    assert_eq!(pages, [40, 40, 20]);
    assert_eq!(listed, created, "every endpoint once, oldest first");
    for bad in ["not%20a%20cursor", "%21%21"] {
        let answer = as_acme(Method::GET, format!("/v1/endpoints?cursor={bad}"), None).await;
        assert_eq!(answer.status, 400, "{bad}: {:?}", answer.body);
        assert_eq!(answer.body["error"]["code"], "invalid_query");
    }
    api.process.stop().await.unwrap();
    fleet.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn test_webhook_is_metered_per_tenant_and_ports_are_the_operators_choice() {
    let receiver = Receiver::start().await.unwrap();
    let elsewhere = Receiver::start().await.unwrap();
    let fleet = Fleet::new().env("HOOKFLEET_ALLOWED_PORTS", &receiver.port().to_string());
    let api = fleet.spawn_api_with(&[("HOOKFLEET_TEST_RATE", "2")]).await;
    let endpoint = api
        .create_endpoint("acme", &receiver.url("/ok"), &[BLOCKED])
        .await;
    let test_path = format!("/v1/endpoints/{}/test", id_of(&endpoint));
    let token = api.tenant_token("acme").await;

    for n in 0..2 {
        let answer = api.call(Method::POST, &test_path, Some(&token), None).await;
        assert_eq!(answer.status, 200, "test {n}: {:?}", answer.body);
    }
    let limited = (api.http())
        .post(api.url(&test_path))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(limited.status(), 429);
    let retry_after: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (1..=60).contains(&retry_after),
        "Retry-After: {retry_after}"
    );
    let body: Value = serde_json::from_slice(&limited.bytes().await.unwrap()).unwrap();
    assert_eq!(body["error"]["code"], "rate_limited");
    // The operator is not metered; the receiver saw two tests and the operator's.
    let answer = api.operator(Method::POST, &test_path, None).await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    assert_eq!(receiver.count("/ok"), 3);

    // Another port: refused at create and change...
    let other = json!({"tenant": "acme", "url": elsewhere.url("/x"), "events": [BLOCKED]});
    let answer = api
        .operator(Method::POST, "/v1/endpoints", Some(other))
        .await;
    assert_eq!(wrong_fields(&answer), ["url"]);
    let path = format!("/v1/endpoints/{}", id_of(&endpoint));
    let change = json!({"url": elsewhere.url("/x")});
    let answer = api.operator(Method::PATCH, &path, Some(change)).await;
    assert_eq!(wrong_fields(&answer), ["url"]);
    // ...and, for a record that got there another way, at test and delivery.
    let any_port = [("HOOKFLEET_ALLOWED_PORTS", "any")];
    let add = [
        "endpoints",
        "add",
        "--tenant",
        "acme",
        "--events",
        BLOCKED,
        "--url",
    ];
    let url = elsewhere.url("/x");
    let output = fleet
        .run_with(&any_port, &[&add[..], &[url.as_str()]].concat())
        .await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stray: Value = serde_json::from_slice(&output.stdout).unwrap();
    let stray_test = format!("/v1/endpoints/{}/test", stray["id"].as_str().unwrap());
    let answer = api.operator(Method::POST, &stray_test, None).await;
    assert_eq!(answer.body["delivered"], false, "{:?}", answer.body);
    assert_eq!(
        answer.body["error_class"], "blocked_target",
        "{:?}",
        answer.body
    );
    let worker = fleet.spawn_worker().await;
    api.publish(json!({"type": BLOCKED, "tenant": "acme", "data": {}}))
        .await;
    worker
        .wait_for_metric(
            "hookfleet_delivery_attempts_total",
            &[("event_type", BLOCKED), ("outcome", "blocked")],
            1.0,
            WAIT,
        )
        .await
        .unwrap();
    wait_until(WAIT, "the allowed endpoint's delivery", || {
        receiver.count("/ok") == 4
    })
    .await;
    assert_eq!(elsewhere.count("/x"), 0, "a port not allowed was called");
    assert!(worker.stop().await.unwrap().success());
    api.process.stop().await.unwrap();
    fleet.cleanup().await;
}

/// A client that connects and never finishes its headers is closed after the header
/// timeout, and while the connection cap is reached, a new client waits instead of being
/// served beside them.
#[tokio::test(flavor = "multi_thread")]
async fn half_open_connections_are_closed_and_capped() {
    let fleet = Fleet::new();
    let api = fleet
        .spawn_api_with(&[
            ("HOOKFLEET_API_HEADER_TIMEOUT", "1s"),
            ("HOOKFLEET_API_MAX_CONNECTIONS", "3"),
        ])
        .await;
    let addr = api.url("").trim_start_matches("http://").to_owned();
    let mut stalled = Vec::new();
    for _ in 0..3 {
        let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        stalled.push(stream);
    }
    // The cap is reached: a fourth client is served only once the stalled ones are gone.
    let healthz = api.http().get(api.url("/healthz")).send();
    let answer = tokio::time::timeout(WAIT, healthz).await.unwrap().unwrap();
    assert_eq!(answer.status(), 200);
    for mut stream in stalled {
        let mut buf = [0u8; 256];
        // Closed by the server: end of stream (or a reset), within a bounded wait.
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await;
        let closed = matches!(read, Ok(Ok(0)) | Ok(Err(_)))
            || matches!(read, Ok(Ok(n)) if String::from_utf8_lossy(&buf[..n]).contains("408"));
        assert!(closed, "a half-open connection is still open: {read:?}");
    }
    api.process.stop().await.unwrap();
    fleet.cleanup().await;
}

/// Changes racing each other all land: a PATCH never writes back the secret a rotation
/// replaced, nor resurrects a removed endpoint.
#[tokio::test(flavor = "multi_thread")]
async fn racing_writes_are_never_lost() {
    let fleet = Fleet::new();
    let receiver = Receiver::start().await.unwrap();
    let api = fleet.spawn_api().await;
    let endpoint = api
        .create_endpoint("acme", &receiver.url("/hook"), &[BLOCKED])
        .await;
    let id = id_of(&endpoint);
    let path = format!("/v1/endpoints/{id}");
    let rotate = format!("{path}/rotate-secret");

    let patches = (0..30).map(|n| {
        let body = json!({"description": format!("change {n}")});
        api.operator(Method::PATCH, &path, Some(body))
    });
    let (answers, mut rotated) = tokio::join!(
        futures_util::future::join_all(patches),
        api.operator(Method::POST, &rotate, None)
    );
    // 409 tells the client to try again, which is what one does.
    if rotated.status == 409 {
        rotated = api.operator(Method::POST, &rotate, None).await;
    }
    for answer in &answers {
        assert!(
            answer.status == 200 || answer.status == 409,
            "{:?}",
            answer.body
        );
    }
    assert_eq!(rotated.status, 200, "{:?}", rotated.body);
    let store = fleet.store();
    let stored = store.get(&id.parse().unwrap()).await.unwrap();
    assert_eq!(
        stored.secret.expose(),
        rotated.body["secret"].as_str().unwrap(),
        "a PATCH wrote back the secret the rotation replaced"
    );
    assert_eq!(
        stored.previous_secret.unwrap().secret.expose(),
        endpoint["secret"].as_str().unwrap()
    );

    let patches = (0..30).map(|n| {
        let body = json!({"description": format!("late {n}")});
        api.operator(Method::PATCH, &path, Some(body))
    });
    let (_, removed) = tokio::join!(
        futures_util::future::join_all(patches),
        api.operator(Method::DELETE, &path, None)
    );
    assert_eq!(removed.status, 200, "{:?}", removed.body);
    let gone = api.operator(Method::GET, &path, None).await;
    assert_eq!(
        gone.status, 404,
        "a PATCH resurrected the endpoint: {:?}",
        gone.body
    );
    api.process.stop().await.unwrap();
    fleet.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tenant_tokens_can_be_revoked_and_work_in_their_namespace_only() {
    const KEY: (&str, &str) = ("HOOKFLEET_TOKEN_KEY", "shared-token-key-0123456789");
    let fleet = Fleet::new();
    let api = fleet.spawn_api_with(&[KEY]).await;
    let staging = Fleet::new();
    let staging_api = staging.spawn_api_with(&[KEY]).await;

    let old = api.tenant_token("acme").await;
    let listed = api
        .call(Method::GET, "/v1/endpoints", Some(&old), None)
        .await;
    assert_eq!(listed.status, 200, "{:?}", listed.body);
    let elsewhere = (staging_api)
        .call(Method::GET, "/v1/endpoints", Some(&old), None)
        .await;
    assert_eq!(elsewhere.status, 401, "{:?}", elsewhere.body);
    assert_eq!(elsewhere.body["error"]["code"], "unauthorized");

    let revoke = "/v1/tenants/acme/tokens/revoke";
    let by_tenant = api.call(Method::POST, revoke, Some(&old), None).await;
    assert_eq!(by_tenant.status, 404, "{:?}", by_tenant.body);
    let revoked = api.operator(Method::POST, revoke, None).await;
    assert_eq!(revoked.status, 204, "{:?}", revoked.body);
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let answer = api
            .call(Method::GET, "/v1/endpoints", Some(&old), None)
            .await;
        if answer.status == 401 {
            assert!(
                answer.body["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("revoked")
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the revoked token still works"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let new = api.tenant_token("acme").await;
    let listed = api
        .call(Method::GET, "/v1/endpoints", Some(&new), None)
        .await;
    assert_eq!(
        listed.status, 200,
        "a token minted after the revocation is refused"
    );
    let other = api.tenant_token("globex").await;
    let listed = api
        .call(Method::GET, "/v1/endpoints", Some(&other), None)
        .await;
    assert_eq!(
        listed.status, 200,
        "another tenant's tokens were revoked too"
    );

    staging_api.process.stop().await.unwrap();
    staging.cleanup().await;
    api.process.stop().await.unwrap();
    fleet.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_cannot_enable_what_the_operator_disabled() {
    let fleet = Fleet::new();
    let receiver = Receiver::start().await.unwrap();
    let api = fleet.spawn_api().await;
    let endpoint = api
        .create_endpoint("acme", &receiver.url("/hook"), &[BLOCKED])
        .await;
    let path = format!("/v1/endpoints/{}", id_of(&endpoint));
    let token = api.tenant_token("acme").await;
    let set = |enabled: bool, token: Option<String>| {
        let (api, path) = (&api, path.clone());
        async move {
            let body = Some(json!({"enabled": enabled}));
            match token {
                Some(token) => api.call(Method::PATCH, &path, Some(&token), body).await,
                None => api.operator(Method::PATCH, &path, body).await,
            }
        }
    };
    // The tenant's own switch works both ways.
    let off = set(false, Some(token.clone())).await;
    assert_eq!(off.body["disabled_by"], "tenant", "{:?}", off.body);
    assert_eq!(set(true, Some(token.clone())).await.status, 200);

    let off = set(false, None).await;
    assert_eq!(off.body["disabled_by"], "operator", "{:?}", off.body);
    let refused = set(true, Some(token.clone())).await;
    assert_eq!(refused.status, 403, "{:?}", refused.body);
    assert_eq!(refused.body["error"]["code"], "forbidden");
    // Switching it off again does not make it the tenant's to switch on.
    assert_eq!(set(false, Some(token.clone())).await.status, 200);
    assert_eq!(set(true, Some(token.clone())).await.status, 403);
    let on = set(true, None).await;
    assert_eq!(on.body["enabled"], true, "{:?}", on.body);
    assert!(on.body.get("disabled_by").is_none(), "{:?}", on.body);
    api.process.stop().await.unwrap();
    fleet.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn answers_leak_no_internals_and_secrets_are_not_cached() {
    let fleet = Fleet::new().env("HOOKFLEET_ALLOW_PRIVATE_TARGETS", "false");
    let api = fleet.spawn_api().await;
    for url in [
        "http://localhost:8080/x",
        "http://10.1.2.3/x",
        "http://[::ffff:0:a01:203]/",
    ] {
        let body = json!({"tenant": "acme", "url": url, "events": [BLOCKED]});
        let answer = api
            .operator(Method::POST, "/v1/endpoints", Some(body))
            .await;
        assert_eq!(wrong_fields(&answer), ["url"]);
        let text = answer.body.to_string();
        assert!(text.contains("not allowed"), "{text}");
        for leak in ["127.0.0.1", "10.1.2.3", "::1", "HOOKFLEET_"] {
            assert!(!text.contains(leak), "{leak} in {text}");
        }
    }
    assert!(
        api.process
            .log()
            .contains("HOOKFLEET_ALLOW_PRIVATE_TARGETS"),
        "the operator's log does not say what was refused"
    );
    api.process.stop().await.unwrap();
    fleet.cleanup().await;

    let fleet = Fleet::new();
    let receiver = Receiver::start().await.unwrap();
    let api = fleet.spawn_api().await;
    let body = json!({"tenant": "acme", "url": receiver.url("/hook"), "events": [BLOCKED]});
    let created = (api.http())
        .post(api.url("/v1/endpoints"))
        .bearer_auth(crate::util::OPERATOR_TOKEN)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(created.headers()["cache-control"], "no-store");
    let endpoint: Value = serde_json::from_slice(&created.bytes().await.unwrap()).unwrap();
    let path = format!("/v1/endpoints/{}", id_of(&endpoint));
    let rotated = (api.http())
        .post(api.url(&format!("{path}/rotate-secret")))
        .bearer_auth(crate::util::OPERATOR_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(rotated.status(), 200);
    assert_eq!(rotated.headers()["cache-control"], "no-store");

    // An attempt id Redis cannot take is the caller's mistake, not an outage.
    let answer = (api)
        .operator(
            Method::GET,
            &format!("{path}/attempts?before=99999999999999999999-0"),
            None,
        )
        .await;
    assert_eq!(answer.status, 400, "{:?}", answer.body);
    assert_eq!(answer.body["error"]["code"], "invalid_query");
    assert!(
        !answer.body.to_string().contains("ERR"),
        "{:?}",
        answer.body
    );

    // The console may be framed by this origin only, unless the operator names others.
    let console = api.http().get(api.url("/")).send().await.unwrap();
    let policy = console.headers()["content-security-policy"]
        .to_str()
        .unwrap();
    assert!(policy.ends_with("frame-ancestors 'self'"), "{policy}");
    api.process.stop().await.unwrap();
    let framed = (fleet)
        .spawn_api_with(&[(
            "HOOKFLEET_CONSOLE_FRAME_ANCESTORS",
            "'self' https://dashboard.example.com",
        )])
        .await;
    let console = framed.http().get(framed.url("/")).send().await.unwrap();
    let policy = console.headers()["content-security-policy"]
        .to_str()
        .unwrap();
    assert!(
        policy.ends_with("frame-ancestors 'self' https://dashboard.example.com"),
        "{policy}"
    );
    framed.process.stop().await.unwrap();
    fleet
        .assert_refused(
            "HOOKFLEET_CONSOLE_FRAME_ANCESTORS",
            "*; script-src *",
            &["api"],
        )
        .await;
    fleet.cleanup().await;
}

/// Probes from every kubelet and load balancer do not each open an AMQP channel: `/readyz`
/// looks at most about once a second.
#[tokio::test(flavor = "multi_thread")]
async fn readiness_is_looked_at_once_a_second_however_many_ask() {
    let fleet = Fleet::new();
    let api = fleet.spawn_api().await;
    let checks = || async {
        let text = (api.http().get(api.url("/metrics")).send().await.unwrap())
            .text()
            .await
            .unwrap();
        crate::util::metric_sum(&text, "hookfleet_api_readiness_checks_total", &[])
    };
    let before = checks().await;
    let started = std::time::Instant::now();
    let probes = (0..30).map(|_| api.http().get(api.url("/readyz")).send());
    for answer in futures_util::future::join_all(probes).await {
        assert_eq!(answer.unwrap().status(), 200);
    }
    let looked = checks().await - before;
    // Within one second one look, two if the probes straddle the second's end.
    let bound = started.elapsed().as_secs_f64().ceil() + 1.0;
    assert!(looked <= bound, "{looked} looks for 30 probes");
    api.process.stop().await.unwrap();
    fleet.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn without_auth_the_api_listens_on_loopback_only() {
    let fleet = Fleet::new();
    let refused = fleet
        .run_with(
            &[("HOOKFLEET_API_ADDR", "0.0.0.0:0")],
            &["api", "--insecure-no-auth"],
        )
        .await;
    assert_eq!(refused.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("loopback"), "{stderr}");
    fleet.cleanup().await;
}
