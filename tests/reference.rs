//! A delivery checked by the Standard Webhooks reference implementation itself (Python's
//! `standardwebhooks` from PyPI, which `.ci/run` installs): the strongest evidence that any
//! receiver's library will accept hookfleet's signatures.

use crate::util::{Fleet, Receiver, WAIT, reference_verifies, wait_until};

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
    let secret = endpoint["secret"].as_str().unwrap();
    if let Err(error) = reference_verifies(secret, request).await {
        panic!(
            "the reference library refused the signature (or is missing: pip install standardwebhooks): {error}"
        );
    }

    assert!(worker.stop().await.unwrap().success());
    fleet.cleanup().await;
}
