//! The Standard Webhooks reference library (Python's `standardwebhooks`, which `scripts/test`
//! installs) as an independent verifier of deliveries.

use std::process::Stdio;

use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use super::Arrival;

/// The Standard Webhooks reference library (Python) verifying one request, as in `reference`.
const REFERENCE_VERIFY: &str = r#"
import json, sys
from standardwebhooks.webhooks import Webhook
request = json.load(sys.stdin)
Webhook(request["secret"]).verify(request["body"].encode(), request["headers"])
print("verified")
"#;
/// Whether the Standard Webhooks reference library accepts `request` under `secret`; the
/// error is Python's when it does not.
pub async fn reference_verifies(secret: &str, request: &Arrival) -> Result<(), String> {
    let headers: serde_json::Map<String, Value> =
        ["webhook-id", "webhook-timestamp", "webhook-signature"]
            .iter()
            .map(|name| (name.to_string(), request.header(name).into()))
            .collect();
    let input = json!({
        "secret": secret,
        "body": std::str::from_utf8(&request.body).unwrap(),
        "headers": headers,
    });
    let mut python = tokio::process::Command::new("python3")
        .args(["-c", REFERENCE_VERIFY])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 is needed for this test");
    let mut stdin = python.stdin.take().unwrap();
    stdin.write_all(input.to_string().as_bytes()).await.unwrap();
    drop(stdin);
    let output = python.wait_with_output().await.unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    if output.status.success() && stdout.trim() == "verified" {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}
