//! A delivery checked by the Standard Webhooks reference implementation itself (Python's
//! `standardwebhooks` from PyPI, which `.ci/run` installs): the strongest evidence that any
//! receiver's library will accept hookfleet's signatures.

use std::process::Stdio;

use tokio::io::AsyncWriteExt;

use crate::util::{Fleet, Receiver, WAIT, wait_until};

const VERIFY: &str = r#"
import json, sys
from standardwebhooks.webhooks import Webhook
request = json.load(sys.stdin)
Webhook(request["secret"]).verify(request["body"].encode(), request["headers"])
print("verified")
"#;

#[tokio::test(flavor = "multi_thread")]
async fn the_standard_webhooks_reference_library_verifies_a_delivery() {
    let fleet = Fleet::new();
    let receiver = Receiver::start().await.unwrap();
    let endpoint = fleet
        .add_endpoint("acme", &receiver.url("/hook"), &["log.blocked"])
        .await;
    let worker = fleet.spawn_worker().await;
    fleet
        .publish("log.blocked", "acme", r#"{"agent":"a-17","note":"Zoë"}"#)
        .await;
    wait_until(WAIT, "the delivery", || receiver.count("/hook") == 1).await;

    let request = &receiver.requests("/hook")[0];
    let headers: serde_json::Map<String, serde_json::Value> =
        ["webhook-id", "webhook-timestamp", "webhook-signature"]
            .iter()
            .map(|name| (name.to_string(), request.header(name).into()))
            .collect();
    let input = serde_json::json!({
        "secret": endpoint["secret"],
        "body": std::str::from_utf8(&request.body).unwrap(),
        "headers": headers,
    });
    let mut python = tokio::process::Command::new("python3")
        .args(["-c", VERIFY])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 is needed for this test");
    let mut stdin = python.stdin.take().unwrap();
    stdin.write_all(input.to_string().as_bytes()).await.unwrap();
    drop(stdin);
    let output = python.wait_with_output().await.unwrap();
    assert!(
        output.status.success(),
        "the reference library refused the signature (or is missing: pip install standardwebhooks): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "verified");

    assert!(worker.stop().await.unwrap().success());
    fleet.cleanup().await;
}
