//! What workers record, and that deliveries never wait for it (PostgreSQL away: deliveries go
//! on, the loss is counted, recording resumes by itself).

use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use super::{BLOCKED, DATABASE_URL, database, drop_schema, migrate, wait_for_rows};
use crate::util::{Fleet, Receiver, Reply, WAIT, wait_until};

#[tokio::test(flavor = "multi_thread")]
async fn every_event_and_attempt_is_recorded() {
    let fleet = Fleet::new().env("HOOKFLEET_DATABASE_URL", DATABASE_URL);
    let receiver = Receiver::start().await.unwrap();
    receiver.enqueue("/flaky", [Reply::status(503)]);
    assert_eq!(migrate(&fleet).await["applied"], serde_json::json!([1, 2]));
    assert_eq!(
        migrate(&fleet).await["applied"],
        serde_json::json!([]),
        "a second run has nothing to do"
    );
    let db = database().await;
    let s = format!("\"{}\"", fleet.namespace());
    // Made by the migration, not by a worker in the midst of its first deliveries.
    for table in ["events", "payloads", "attempts"] {
        let today = format!(
            "SELECT to_regclass('{s}.{table}_' || to_char(now() AT TIME ZONE 'UTC', 'YYYYMMDD')) IS NOT NULL"
        );
        let made: bool = db.query_one(&today, &[]).await.unwrap().get(0);
        assert!(made, "no partition of today for {table}");
    }
    let ok = fleet
        .add_endpoint("acme", &receiver.url("/ok"), &[BLOCKED])
        .await;
    let flaky = (fleet)
        .add_endpoint("acme", &receiver.url("/flaky"), &[BLOCKED])
        .await;
    let worker = fleet.spawn_worker().await;
    let id = fleet.publish(BLOCKED, "acme", r#"{"agent":"a-17"}"#).await;
    wait_until(WAIT, "both endpoints' deliveries", || {
        receiver.count("/ok") == 1 && receiver.count("/flaky") == 2
    })
    .await;

    let attempts = format!("SELECT count(*) FROM {s}.attempts WHERE event_id = '{id}'");
    wait_for_rows(&db, &attempts, 3).await;
    let event = (db.query_one(
        &format!("SELECT e.tenant, e.event_type, p.body FROM {s}.events e JOIN {s}.payloads p ON p.event_id = e.id WHERE e.id = $1"),
        &[&id],
    ))
    .await
    .unwrap();
    assert_eq!(event.get::<_, String>(0), "acme");
    assert_eq!(event.get::<_, String>(1), BLOCKED);
    let body: Vec<u8> = event.get(2);
    assert_eq!(
        body,
        receiver.requests("/ok")[0].body.to_vec(),
        "not byte for byte"
    );
    let rows = (db.query(
        &format!("SELECT endpoint_id, attempt, status, error_class FROM {s}.attempts WHERE event_id = $1 ORDER BY endpoint_id, attempt"),
        &[&id],
    ))
    .await
    .unwrap();
    let mut seen: Vec<(String, i32, Option<i16>, Option<String>)> = (rows.iter())
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    seen.sort();
    let ep = |v: &serde_json::Value| v["id"].as_str().unwrap().to_owned();
    let mut want = vec![
        (ep(&ok), 1, Some(200), None),
        (
            ep(&flaky),
            1,
            Some(503),
            Some("non_success_status".to_owned()),
        ),
        (ep(&flaky), 2, Some(200), None),
    ];
    want.sort();
    assert_eq!(seen, want);

    assert!(worker.stop().await.unwrap().success());
    drop_schema(&fleet).await;
    fleet.cleanup().await;
}

/// A TCP proxy to PostgreSQL that a test can take down (closing every connection through
/// it) and bring back.
struct Switch {
    addr: std::net::SocketAddr,
    up: std::sync::Arc<std::sync::Mutex<CancellationToken>>,
    stop: CancellationToken,
}

impl Switch {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let up = std::sync::Arc::new(std::sync::Mutex::new(CancellationToken::new()));
        let stop = CancellationToken::new();
        let (state, done) = (up.clone(), stop.clone());
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    accepted = listener.accept() => accepted,
                    () = done.cancelled() => return,
                };
                let Ok((mut client, _)) = accepted else {
                    continue;
                };
                let gone = state.lock().unwrap().clone();
                if gone.is_cancelled() {
                    continue; // down: the connection is dropped at once
                }
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect("127.0.0.1:5432").await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        () = gone.cancelled() => {}
                    }
                });
            }
        });
        Self { addr, up, stop }
    }

    fn url(&self) -> String {
        format!("postgres://postgres:postgres@{}/postgres", self.addr)
    }

    fn down(&self) {
        self.up.lock().unwrap().cancel();
    }

    fn back_up(&self) {
        *self.up.lock().unwrap() = CancellationToken::new();
    }
}

impl Drop for Switch {
    fn drop(&mut self) {
        self.stop.cancel();
        self.up.lock().unwrap().cancel();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn deliveries_never_wait_for_postgres_and_recording_resumes() {
    let switch = Switch::start().await;
    let fleet = Fleet::new().env("HOOKFLEET_DATABASE_URL", &switch.url());
    let receiver = Receiver::start().await.unwrap();
    migrate(&fleet).await;
    fleet
        .add_endpoint("acme", &receiver.url("/hook"), &[BLOCKED])
        .await;
    let worker = fleet.spawn_worker().await;
    let db = database().await;
    let s = format!("\"{}\"", fleet.namespace());
    let events = format!("SELECT count(*) FROM {s}.events");

    fleet.publish(BLOCKED, "acme", "{}").await;
    wait_for_rows(&db, &events, 1).await;

    switch.down();
    for n in 0..20 {
        fleet
            .publish(BLOCKED, "acme", &format!(r#"{{"n":{n}}}"#))
            .await;
    }
    wait_until(WAIT, "every delivery while PostgreSQL is away", || {
        receiver.count("/hook") == 21
    })
    .await;
    worker
        .wait_for_metric("hookfleet_history_dropped_total", &[], 1.0, WAIT)
        .await
        .unwrap();
    assert!(worker.log().contains("History records are being dropped"));

    switch.back_up();
    // Published until one is recorded: the worker reconnects a second after its last try.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        fleet.publish(BLOCKED, "acme", r#"{"after":true}"#).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let recorded: i64 = db.query_one(&events, &[]).await.unwrap().get(0);
        if recorded > 1 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "recording never resumed"
        );
    }
    wait_until(WAIT, "the log to say so", || {
        worker.log().contains("History records are written again")
    })
    .await;
    assert!(worker.stop().await.unwrap().success());
    drop_schema(&fleet).await;
    fleet.cleanup().await;
}
