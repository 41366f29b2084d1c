//! Endpoints through the API: validation, create/read/change/remove, Test Webhook.

use reqwest::Method;
use serde_json::{Value, json};

use super::{BLOCKED, events_of, id_of, wrong_fields};
use crate::util::{Answer, Fleet, Receiver, Reply};

#[tokio::test(flavor = "multi_thread")]
async fn validation_lists_every_wrong_field() {
    let fleet = Fleet::new();
    let api = fleet.spawn_api().await;
    let bad = json!({
        "tenant": "acme",
        "url": "ftp://example.com",
        "events": ["log.blocked", "no.such"],
        "secret": "not-a-secret",
        "description": "x".repeat(501),
    });
    let answer = api.operator(Method::POST, "/v1/endpoints", Some(bad)).await;
    assert_eq!(answer.status, 422, "{:?}", answer.body);
    assert_eq!(answer.body["error"]["code"], "validation_failed");
    let mut fields: Vec<&str> = answer.body["error"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    fields.sort_unstable();
    assert_eq!(fields, ["description", "events", "secret", "url"]);

    let unknown =
        json!({"tenant": "acme", "url": "http://127.0.0.1:9/", "events": ["*"], "evnets": []});
    let answer = api
        .operator(Method::POST, "/v1/endpoints", Some(unknown))
        .await;
    assert_eq!(answer.status, 422);
    assert!(
        answer.body["error"]["fields"][0]["message"]
            .as_str()
            .unwrap()
            .contains("evnets"),
        "{:?}",
        answer.body
    );
    api.process.stop().await.unwrap();
    fleet.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn endpoints_crud_round_trips() {
    let fleet = Fleet::new();
    let receiver = Receiver::start().await.unwrap();
    let api = fleet.spawn_api().await;

    let new = json!({
        "tenant": "acme",
        "url": receiver.url("/orders"),
        "events": [BLOCKED],
        "description": "orders service",
    });
    let created = api.operator(Method::POST, "/v1/endpoints", Some(new)).await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    let created = created.body;
    let id = id_of(&created);
    let path = format!("/v1/endpoints/{id}");
    assert!(
        created["secret"].as_str().unwrap().starts_with("whsec_"),
        "{created}"
    );
    assert_eq!(created["tenant"], "acme");
    assert_eq!(created["url"], receiver.url("/orders"));
    assert_eq!(events_of(&created), [BLOCKED]);
    assert_eq!(created["enabled"], true);
    assert_eq!(created["description"], "orders service");

    let got = api.operator(Method::GET, &path, None).await;
    assert_eq!(got.status, 200, "{:?}", got.body);
    assert!(got.body.get("secret").is_none(), "{:?}", got.body);
    let mut without_secret = created.clone();
    without_secret.as_object_mut().unwrap().remove("secret");
    assert_eq!(got.body, without_secret);

    let listed_ids = |answer: &Answer| -> Vec<String> {
        assert_eq!(answer.status, 200, "{:?}", answer.body);
        (answer.body["data"].as_array().unwrap().iter())
            .map(id_of)
            .collect()
    };
    let of_acme = api
        .operator(Method::GET, "/v1/endpoints?tenant=acme", None)
        .await;
    assert_eq!(listed_ids(&of_acme), std::slice::from_ref(&id));
    assert!(
        of_acme.body["data"][0].get("secret").is_none(),
        "{:?}",
        of_acme.body
    );
    let all = api.operator(Method::GET, "/v1/endpoints", None).await;
    assert!(listed_ids(&all).contains(&id), "{:?}", all.body);

    // A PATCH changes the fields it gives, and only those.
    let moved =
        json!({"url": receiver.url("/orders-v2"), "events": ["approval.approved", BLOCKED]});
    let patched = api.operator(Method::PATCH, &path, Some(moved)).await;
    assert_eq!(patched.status, 200, "{:?}", patched.body);
    assert_eq!(patched.body["url"], receiver.url("/orders-v2"));
    assert_eq!(events_of(&patched.body), ["approval.approved", BLOCKED]);
    assert_eq!(patched.body["description"], "orders service");
    assert_eq!(patched.body["enabled"], true);
    let relabelled = json!({"description": "orders, v2", "enabled": false});
    let patched = api.operator(Method::PATCH, &path, Some(relabelled)).await;
    assert_eq!(patched.status, 200, "{:?}", patched.body);
    assert_eq!(patched.body["description"], "orders, v2");
    assert_eq!(patched.body["enabled"], false);
    assert_eq!(patched.body["url"], receiver.url("/orders-v2"));
    assert_eq!(events_of(&patched.body), ["approval.approved", BLOCKED]);
    assert!(patched.body.get("secret").is_none(), "{:?}", patched.body);

    let bad = json!({"events": ["no.such"], "description": "never written"});
    let refused = api.operator(Method::PATCH, &path, Some(bad)).await;
    assert_eq!(wrong_fields(&refused), ["events"]);
    let after = api.operator(Method::GET, &path, None).await;
    assert_eq!(
        after.body, patched.body,
        "a refused PATCH changed the endpoint"
    );

    // Bodies that are not JSON, not declared as JSON, or too large.
    let not_json = api
        .operator_raw(
            Method::POST,
            "/v1/endpoints",
            Some("application/json"),
            b"{\"tenant\": \"acme\",".to_vec(),
        )
        .await;
    assert_eq!(not_json.status, 400, "{:?}", not_json.body);
    assert_eq!(not_json.body["error"]["code"], "invalid_json");
    // serde would read an array field by field; a body is an object, and nothing changes.
    let array = api
        .operator_raw(
            Method::PATCH,
            &path,
            Some("application/json"),
            b" [null, \"https://example.com/x\"]".to_vec(),
        )
        .await;
    assert_eq!(wrong_fields(&array), ["body"], "{:?}", array.body);
    let unchanged = api.operator(Method::GET, &path, None).await;
    assert_eq!(unchanged.body, patched.body, "an array PATCH changed it");
    let body = json!({"tenant": "acme", "url": receiver.url("/x"), "events": ["*"]});
    let untyped = api
        .operator_raw(
            Method::POST,
            "/v1/endpoints",
            None,
            body.to_string().into_bytes(),
        )
        .await;
    assert_eq!(untyped.status, 415, "{:?}", untyped.body);
    assert_eq!(untyped.body["error"]["code"], "unsupported_media_type");
    let huge = json!({
        "tenant": "acme",
        "url": receiver.url("/x"),
        "events": ["*"],
        "description": "x".repeat(301 * 1024),
    });
    let too_large = api
        .operator_raw(
            Method::POST,
            "/v1/endpoints",
            Some("application/json"),
            huge.to_string().into_bytes(),
        )
        .await;
    assert_eq!(too_large.status, 413, "{:?}", too_large.body);
    assert_eq!(too_large.body["error"]["code"], "payload_too_large");
    let listed = api
        .operator(Method::GET, "/v1/endpoints?tenant=acme", None)
        .await;
    assert_eq!(
        listed_ids(&listed),
        std::slice::from_ref(&id),
        "a refused body created one"
    );

    let removed = api.operator(Method::DELETE, &path, None).await;
    assert_eq!(removed.status, 200, "{:?}", removed.body);
    assert_eq!(removed.body["id"], id.as_str());
    let gone = api.operator(Method::GET, &path, None).await;
    assert_eq!(gone.status, 404, "{:?}", gone.body);
    assert_eq!(gone.body["error"]["code"], "not_found");
    let again = api.operator(Method::DELETE, &path, None).await;
    assert_eq!(again.status, 404, "{:?}", again.body);

    api.process.stop().await.unwrap();
    fleet.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn test_webhook_reports_delivered_and_failures_in_plain_words() {
    let fleet = Fleet::new();
    let receiver = Receiver::start().await.unwrap();
    receiver.set_default("/broken", Reply::status(500));
    let api = fleet.spawn_api().await;
    let test = |id: String| {
        let api = &api;
        async move {
            let answer = api
                .operator(Method::POST, &format!("/v1/endpoints/{id}/test"), None)
                .await;
            assert_eq!(answer.status, 200, "{:?}", answer.body);
            answer.body
        }
    };

    let ok = api
        .create_endpoint("acme", &receiver.url("/ok"), &[BLOCKED])
        .await;
    let result = test(id_of(&ok)).await;
    assert_eq!(result["delivered"], true, "{result}");
    assert_eq!(result["status"], 200, "{result}");
    assert!(result["latency_ms"].is_u64(), "{result}");
    assert!(result["error"].is_null(), "{result}");
    // The answer comes after the receiver's: the request is there already.
    assert_eq!(receiver.count("/ok"), 1);
    let request = &receiver.requests("/ok")[0];
    assert!(
        crate::util::verify_signature(
            ok["secret"].as_str().unwrap(),
            &request.headers,
            &request.body
        ),
        "bad signature: {:?}",
        request.headers
    );
    let payload: Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(payload["type"], "webhook.test", "{payload}");
    assert_eq!(payload["id"], result["event_id"], "{payload}");
    assert_eq!(request.header("webhook-id"), result["event_id"]);

    let broken = api
        .create_endpoint("acme", &receiver.url("/broken"), &[BLOCKED])
        .await;
    let result = test(id_of(&broken)).await;
    assert_eq!(result["delivered"], false, "{result}");
    assert_eq!(result["status"], 500, "{result}");
    assert_eq!(result["error_class"], "non_success_status", "{result}");
    assert!(
        result["error"].as_str().unwrap().contains("HTTP 500"),
        "{result}"
    );
    let failed_event = result["event_id"].clone();

    let nobody = api
        .create_endpoint("acme", "http://127.0.0.1:1/", &[BLOCKED])
        .await;
    let result = test(id_of(&nobody)).await;
    assert_eq!(result["delivered"], false, "{result}");
    assert!(result["status"].is_null(), "{result}");
    assert_eq!(result["error_class"], "connection_refused", "{result}");
    assert!(
        result["error"].as_str().unwrap().contains("refused"),
        "{result}"
    );

    // Once fixed, a second test; the log shows both, newest first.
    receiver.set_default("/broken", Reply::status(204));
    let fixed = test(id_of(&broken)).await;
    assert_eq!(fixed["delivered"], true, "{fixed}");
    let path = format!("/v1/endpoints/{}/attempts", id_of(&broken));
    let attempts = api.operator(Method::GET, &path, None).await;
    assert_eq!(attempts.status, 200, "{:?}", attempts.body);
    let log = attempts.body.as_array().unwrap();
    assert_eq!(log.len(), 2, "{log:?}");
    assert_eq!(log[0]["event_id"], fixed["event_id"]);
    assert_eq!(log[0]["status"], 204);
    assert!(log[0]["error"].is_null(), "{log:?}");
    assert_eq!(log[1]["event_id"], failed_event);
    assert_eq!(log[1]["status"], 500);
    assert_eq!(log[1]["error"], "non_success_status");
    for attempt in log {
        assert_eq!(attempt["source"], "test", "{attempt}");
        assert_eq!(attempt["event_type"], "webhook.test", "{attempt}");
        assert_eq!(attempt["attempt"], 1, "{attempt}");
    }
    let path = format!("/v1/endpoints/{}/attempts", id_of(&nobody));
    let refused = api.operator(Method::GET, &path, None).await;
    assert_eq!(
        refused.body[0]["error"], "connection_refused",
        "{:?}",
        refused.body
    );
    assert_eq!(refused.body[0]["source"], "test");

    api.process.stop().await.unwrap();
    fleet.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_may_have_at_most_the_endpoint_limit() {
    let fleet = Fleet::new();
    let api = fleet
        .spawn_api_with(&[("HOOKFLEET_MAX_ENDPOINTS_PER_TENANT", "2")])
        .await;
    for _ in 0..2 {
        api.create_endpoint("acme", "http://127.0.0.1:9/x", &["*"])
            .await;
    }
    let body = json!({"tenant": "acme", "url": "http://127.0.0.1:9/x", "events": ["*"]});
    let third = api
        .operator(Method::POST, "/v1/endpoints", Some(body))
        .await;
    assert_eq!(third.status, 409, "{:?}", third.body);
    assert_eq!(third.body["error"]["code"], "endpoint_limit");
    // Another tenant has its own count.
    api.create_endpoint("globex", "http://127.0.0.1:9/x", &["*"])
        .await;
    api.process.stop().await.unwrap();
    fleet.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tenant_and_time_parameters_are_documented_as_the_api_checks_them() {
    let fleet = Fleet::new();
    let api = fleet.spawn_api().await;
    let document = api
        .call(Method::GET, "/openapi.json", None, None)
        .await
        .body;
    let schema_of = |path: &str, method: &str, name: &str| -> Value {
        let parameters = document["paths"][path][method]["parameters"].as_array();
        let parameter = parameters
            .into_iter()
            .flatten()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("{method} {path} has no parameter {name}"));
        parameter["schema"].clone()
    };
    let tenant = "^[!-~]{1,255}$";
    for (path, method) in [
        ("/v1/endpoints", "get"),
        ("/v1/events", "get"),
        ("/v1/tenants/{tenant}/tokens", "post"),
        ("/v1/tenants/{tenant}/tokens/revoke", "post"),
    ] {
        assert_eq!(
            schema_of(path, method, "tenant")["pattern"],
            tenant,
            "{path}"
        );
    }
    for (path, name) in [
        ("/v1/events", "since"),
        ("/v1/events", "until"),
        ("/v1/endpoints/{id}/stats", "since"),
    ] {
        assert_eq!(
            schema_of(path, "get", name)["format"],
            "date-time",
            "{path}"
        );
    }
    let recover = &document["components"]["schemas"]["RecoverRequest"]["properties"];
    assert_eq!(
        (&recover["since"]["format"], &recover["until"]["format"]),
        (&json!("date-time"), &json!("date-time"))
    );

    // What the pattern refuses, the API refuses.
    let listed = (api.operator(Method::GET, "/v1/endpoints?tenant=a%20b", None)).await;
    assert_eq!(wrong_fields(&listed), ["tenant"], "{:?}", listed.body);
    let minted = (api.operator(Method::POST, "/v1/tenants/a%20b/tokens", None)).await;
    assert_eq!(wrong_fields(&minted), ["tenant"], "{:?}", minted.body);
    api.process.stop().await.unwrap();
    fleet.cleanup().await;
}
