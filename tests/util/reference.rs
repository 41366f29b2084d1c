//! Independent verifiers of deliveries, in Python (which `scripts/test` provides): the
//! Standard Webhooks reference library (`standardwebhooks`) for `v1`, and `cryptography`'s
//! Ed25519 for `v1a` (the reference library has no `v1a`).

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
/// A `v1a` check written from the specification alone: some `v1a,` signature of the header
/// verifies `<id>.<timestamp>.<body>` under the `whpk_` public key.
const ED25519_VERIFY: &str = r#"
import base64, json, sys
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
request = json.load(sys.stdin)
key = Ed25519PublicKey.from_public_bytes(base64.b64decode(request["public_key"].removeprefix("whpk_")))
h = request["headers"]
content = f'{h["webhook-id"]}.{h["webhook-timestamp"]}.'.encode() + request["body"].encode()
for part in h["webhook-signature"].split(" "):
    version, _, signature = part.partition(",")
    if version != "v1a":
        continue
    try:
        key.verify(base64.b64decode(signature), content)
        print("verified")
        sys.exit(0)
    except Exception:
        pass
sys.exit("no v1a signature verifies: " + h["webhook-signature"])
"#;

/// Whether Python's `cryptography` verifies a `v1a` signature of `request` with `public_key`.
pub async fn ed25519_verifies(public_key: &str, request: &Arrival) -> Result<(), String> {
    python(ED25519_VERIFY, "public_key", public_key, request).await
}

/// Whether the Standard Webhooks reference library accepts `request` under `secret`; the
/// error is Python's when it does not.
pub async fn reference_verifies(secret: &str, request: &Arrival) -> Result<(), String> {
    python(REFERENCE_VERIFY, "secret", secret, request).await
}

/// Runs a verifier with `request` and the key on its stdin.
async fn python(script: &str, key_name: &str, key: &str, request: &Arrival) -> Result<(), String> {
    let headers: serde_json::Map<String, Value> =
        ["webhook-id", "webhook-timestamp", "webhook-signature"]
            .iter()
            .map(|name| (name.to_string(), request.header(name).into()))
            .collect();
    let input = json!({
        key_name: key,
        "body": std::str::from_utf8(&request.body).unwrap(),
        "headers": headers,
    });
    let mut python = tokio::process::Command::new("python3")
        .args(["-c", script])
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
