//! [`Api`]: a running `hookfleet api` of a test's fleet and a client for it.

use reqwest::Method;
use serde_json::Value;

use hookfleet_testkit::WorkerProcess;

/// The operator token every test API runs with.
pub const OPERATOR_TOKEN: &str = "test-operator-token-0123456789";

/// A running admin API and an HTTP client for it.
#[derive(Debug)]
pub struct Api {
    pub process: WorkerProcess,
    http: reqwest::Client,
}

/// An answer: its status and its JSON body (`Value::Null` when the body is not JSON).
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

async fn answer(request: reqwest::RequestBuilder) -> Answer {
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let bytes = response.bytes().await.unwrap();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Answer { status, body }
}

impl Api {
    pub fn new(process: WorkerProcess) -> Self {
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(std::time::Duration::from_secs(15))
            .build()
            .unwrap();
        Self { process, http }
    }

    /// The client, for requests whose headers a test reads.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.process.base_url())
    }

    /// `method path` with `token` (none when `None`) and a JSON `body` (none when `None`).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        let mut request = self.http.request(method, self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        answer(request).await
    }

    /// As the operator, `body` sent as it is, with `content_type` when given: for bodies that
    /// are not JSON, not declared as JSON, or too large.
    pub async fn operator_raw(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Answer {
        let mut request = (self.http.request(method, self.url(path)))
            .bearer_auth(OPERATOR_TOKEN)
            .body(body);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        answer(request).await
    }

    /// As the operator.
    pub async fn operator(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        self.call(method, path, Some(OPERATOR_TOKEN), body).await
    }

    /// Publishes `event` (`{type, tenant, data, id?}`) as the operator; returns its id.
    pub async fn publish(&self, event: Value) -> String {
        let answer = self.operator(Method::POST, "/v1/events", Some(event)).await;
        assert_eq!(answer.status, 202, "{:?}", answer.body);
        answer.body["id"].as_str().unwrap().to_owned()
    }

    /// A tenant token for `tenant`, minted by the operator.
    pub async fn tenant_token(&self, tenant: &str) -> String {
        let path = format!("/v1/tenants/{tenant}/tokens");
        let answer = self.operator(Method::POST, &path, None).await;
        assert_eq!(answer.status, 201, "{:?}", answer.body);
        answer.body["token"].as_str().unwrap().to_owned()
    }

    /// Creates an endpoint as the operator; returns it as answered (with its secret).
    pub async fn create_endpoint(&self, tenant: &str, url: &str, events: &[&str]) -> Value {
        let body = serde_json::json!({"tenant": tenant, "url": url, "events": events});
        let answer = self
            .operator(Method::POST, "/v1/endpoints", Some(body))
            .await;
        assert_eq!(answer.status, 201, "{:?}", answer.body);
        answer.body
    }
}
