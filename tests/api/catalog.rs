//! The event catalogue (docs/contract.md §5): each type's schema, example and deprecation;
//! publishing checked against the schema; Test Webhook sending a type's example.

use reqwest::Method;
use serde_json::json;

use super::{BLOCKED, id_of, wrong_fields};
use crate::util::{Fleet, Receiver, WAIT, wait_until};

/// The schema refuses bad data with a pointer per fault, a deprecated type is still published
/// with a `Deprecation` header, Test Webhook sends the example, and only the operator
/// describes types.
#[tokio::test(flavor = "multi_thread")]
async fn event_types_carry_schemas_that_publishing_meets() {
    let fleet = Fleet::new();
    let receiver = Receiver::start().await.unwrap();
    let api = fleet.spawn_api().await;
    let schema = json!({
        "type": "object",
        "required": ["agent", "rule"],
        "properties": {
            "agent": {"type": "object", "required": ["id"], "properties": {"id": {"type": "string"}}},
            "rule": {"type": "string"},
            "severity": {"enum": ["low", "high", "critical"]},
        },
    });
    let example = json!({"agent": {"id": "a-17"}, "rule": "no-prod-writes", "severity": "high"});
    let path = format!("/v1/event-types/{BLOCKED}");

    // The example must meet the schema; an invalid schema is refused.
    let bad_example = json!({"schema": schema, "example": {"agent": {"id": 7}}});
    let refused = api.operator(Method::PUT, &path, Some(bad_example)).await;
    assert_eq!(
        wrong_fields(&refused),
        ["example", "example"],
        "{:?}",
        refused.body
    );
    let bad_schema = json!({"schema": {"type": "no-such-type"}});
    let refused = api.operator(Method::PUT, &path, Some(bad_schema)).await;
    assert_eq!(wrong_fields(&refused), ["schema"]);
    let unknown = (api.operator(Method::PUT, "/v1/event-types/no.such", Some(json!({})))).await;
    assert_eq!(unknown.status, 404, "{:?}", unknown.body);

    let put = json!({"description": "An agent's action was blocked.", "schema": schema,
                     "example": example});
    let described = api.operator(Method::PUT, &path, Some(put)).await;
    assert_eq!(described.status, 200, "{:?}", described.body);
    let token = api.tenant_token("acme").await;
    let listed = api
        .call(Method::GET, "/v1/event-types", Some(&token), None)
        .await;
    let blocked = (listed.body.as_array().unwrap().iter())
        .find(|t| t["type"] == BLOCKED)
        .unwrap();
    assert_eq!(blocked["schema"], schema);
    assert_eq!(blocked["example"], example);
    assert_eq!(blocked["deprecated"], false);
    let as_tenant = api
        .call(Method::PUT, &path, Some(&token), Some(json!({})))
        .await;
    assert_eq!(as_tenant.status, 404, "a tenant described a type");

    // Publishing: every fault, with its JSON pointer in `data`.
    let bad = json!({"type": BLOCKED, "tenant": "acme",
                     "data": {"agent": {"id": 7}, "severity": "medium"}});
    let refused = api.operator(Method::POST, "/v1/events", Some(bad)).await;
    assert_eq!(refused.status, 422, "{:?}", refused.body);
    let mut pointers: Vec<&str> = (refused.body["error"]["fields"].as_array().unwrap().iter())
        .map(|f| f["pointer"].as_str().unwrap())
        .collect();
    pointers.sort_unstable();
    assert_eq!(
        pointers,
        ["", "/agent/id", "/severity"],
        "{:?}",
        refused.body
    );

    // Deprecated: still published, with a warning.
    let put = json!({"schema": schema, "example": example, "deprecated": true});
    assert_eq!(
        api.operator(Method::PUT, &path, Some(put)).await.status,
        200
    );
    let good = json!({"type": BLOCKED, "tenant": "acme", "data": example});
    let published = api
        .http()
        .post(api.url("/v1/events"))
        .bearer_auth(crate::util::OPERATOR_TOKEN)
        .header("content-type", "application/json")
        .body(good.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(published.status(), 202);
    let deprecation = published.headers()["deprecation"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(deprecation.starts_with('@'), "{deprecation}");

    // Test Webhook sends the type's example, as that type.
    let endpoint = api
        .create_endpoint("acme", &receiver.url("/hook"), &[BLOCKED])
        .await;
    let test = format!("/v1/endpoints/{}/test", id_of(&endpoint));
    let tested = (api.operator(Method::POST, &test, Some(json!({"event_type": BLOCKED})))).await;
    assert_eq!(tested.status, 200, "{:?}", tested.body);
    assert_eq!(tested.body["delivered"], true, "{:?}", tested.body);
    wait_until(WAIT, "the test delivery", || receiver.count("/hook") == 1).await;
    let body: serde_json::Value =
        serde_json::from_slice(&receiver.requests("/hook")[0].body).unwrap();
    assert_eq!((&body["type"], &body["data"]), (&json!(BLOCKED), &example));
    let other = json!({"event_type": "approval.approved"});
    let refused = api.operator(Method::POST, &test, Some(other)).await;
    assert_eq!(wrong_fields(&refused), ["event_type"], "not subscribed");

    api.process.stop().await.unwrap();
    fleet.cleanup().await;
}

/// Draft 2020-12 allows a boolean schema (`true` accepts any `data`, `false` none), and `data`
/// is any JSON: both are accepted, echoed, and so described by the OpenAPI document (a
/// fuzzer once found `{"schema": true, "example": true}` answered outside it).
#[tokio::test(flavor = "multi_thread")]
async fn boolean_schemas_and_examples_of_any_json_are_accepted_and_documented() {
    let fleet = Fleet::new();
    let api = fleet.spawn_api().await;
    let path = format!("/v1/event-types/{BLOCKED}");

    let refusing = json!({"schema": false, "example": {}});
    let refused = api.operator(Method::PUT, &path, Some(refusing)).await;
    assert_eq!(wrong_fields(&refused), ["example"], "{:?}", refused.body);
    let put = api
        .operator(Method::PUT, &path, Some(json!({"schema": false})))
        .await;
    assert_eq!(put.status, 200, "{:?}", put.body);
    let event = json!({"type": BLOCKED, "tenant": "acme", "data": {"any": 1}});
    let refused = api.operator(Method::POST, "/v1/events", Some(event)).await;
    assert_eq!(wrong_fields(&refused), ["data"], "{:?}", refused.body);

    let put = json!({"schema": true, "example": true});
    let described = api.operator(Method::PUT, &path, Some(put)).await;
    assert_eq!(described.status, 200, "{:?}", described.body);
    assert_eq!(
        (&described.body["schema"], &described.body["example"]),
        (&json!(true), &json!(true))
    );
    let event = json!({"type": BLOCKED, "tenant": "acme", "data": [1, "two"]});
    let published = api.operator(Method::POST, "/v1/events", Some(event)).await;
    assert_eq!(published.status, 202, "{:?}", published.body);

    let document = api
        .call(Method::GET, "/openapi.json", None, None)
        .await
        .body;
    let view = &document["components"]["schemas"]["EventTypeView"]["properties"];
    assert_eq!(view["schema"]["type"], json!(["object", "boolean", "null"]));
    assert_eq!(
        view["example"].get("type"),
        None,
        "any JSON: {}",
        view["example"]
    );

    api.process.stop().await.unwrap();
    fleet.cleanup().await;
}
