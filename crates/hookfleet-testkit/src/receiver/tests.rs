//! The receiver against a real HTTP client.

#![allow(clippy::unwrap_used)]
use super::*;

async fn post(client: &reqwest::Client, url: &str, id: &str) -> Option<u16> {
    let request = client.post(url).header("webhook-id", id).body("{}");
    Some(request.send().await.ok()?.status().as_u16())
}

#[tokio::test]
async fn answers_as_programmed_and_counts_by_webhook_id() {
    let receiver = Receiver::start().await.unwrap();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .no_proxy()
        .build()
        .unwrap();
    let url = receiver.url("/hook");
    receiver.enqueue("/hook", [Reply::status(500)]);
    receiver.reply_to("/hook", "poison", Reply::status(410));
    receiver.set_default("/hang", Reply::never());

    let mut statuses = Vec::new();
    for id in ["a", "a", "poison", "b", "a"] {
        statuses.push(post(&client, &url, id).await);
    }
    assert_eq!(statuses, [500, 200, 410, 200, 200].map(Some));
    assert_eq!(post(&client, &receiver.url("/hang"), "h").await, None);

    let expected: HashSet<String> = ["a", "b", "c"].map(String::from).into();
    let count = receiver.tally("/hook", &expected);
    assert_eq!(
        (count.delivered, count.duplicates, count.requests),
        (2, 1, 5)
    );
    assert_eq!(receiver.seen("/hook", "a"), Seen { requests: 3, ok: 2 });
    assert_eq!(receiver.count("/hang"), 1);
    let totals = receiver.totals();
    assert_eq!(
        (totals.requests, totals.delivered, totals.duplicates),
        (6, 2, 1)
    );
    assert_eq!(receiver.requests("/hook")[0].header("webhook-id"), "a");

    let sibling = receiver.sibling().await.unwrap();
    sibling.set_reset(true);
    assert_eq!(post(&client, &sibling.url("/hook"), "c").await, None);
    sibling.set_reset(false);
    assert_eq!(post(&client, &sibling.url("/hook"), "c").await, Some(200));
    assert_eq!(receiver.tally("/hook", &expected).delivered, 3);
    receiver.clear();
    assert_eq!(receiver.totals(), Totals::default());
}

#[tokio::test]
async fn goes_down_and_comes_back_on_the_same_port() {
    let mut receiver = Receiver::start().await.unwrap();
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let url = receiver.url("/x");
    receiver.down().await;
    assert_eq!(post(&client, &url, "1").await, None);
    receiver.up().await.unwrap();
    assert_eq!(post(&client, &url, "1").await, Some(200));
}
