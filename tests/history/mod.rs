//! The message history in PostgreSQL (docs/contract.md §5): what workers record, and what the
//! API reads from it.
//!
//! - `recording`: every event and attempt, byte for byte; PostgreSQL away never holds up a
//!   delivery.
//! - `reading`: search, one event, its attempts, the endpoint's log and statistics, resend
//!   and recover, each within its tenant.

mod reading;
mod recording;

use std::time::Duration;

use reqwest::Method;
use serde_json::Value;

use crate::util::{Api, Fleet, WAIT};

pub const BLOCKED: &str = "log.blocked";

pub use hookfleet_testkit::DATABASE_URL;

pub async fn database() -> tokio_postgres::Client {
    hookfleet_history::connect(DATABASE_URL).await.unwrap()
}

/// Polls `query` (one count) until it reaches `want`, within the test's bounded wait.
pub async fn wait_for_rows(db: &tokio_postgres::Client, query: &str, want: i64) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let got: i64 = db.query_one(query, &[]).await.unwrap().get(0);
        if got >= want {
            assert_eq!(got, want, "{query}");
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{query}: {got} rows, waited for {want}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Polls `path` as the operator until `done` holds for its answer, within the test's wait.
pub async fn wait_for_answer(
    api: &Api,
    path: &str,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let answer = api.operator(Method::GET, path, None).await;
        assert_eq!(answer.status, 200, "{path}: {:?}", answer.body);
        if done(&answer.body) {
            return answer.body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: last answer {:?}",
            answer.body
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A fleet with a history, its tables made.
pub async fn history_fleet() -> Fleet {
    let fleet = Fleet::new().env("HOOKFLEET_DATABASE_URL", DATABASE_URL);
    migrate(&fleet).await;
    fleet
}

pub async fn migrate(fleet: &Fleet) -> serde_json::Value {
    let out = fleet
        .run_with(&[("HOOKFLEET_DATABASE_URL", DATABASE_URL)], &["migrate"])
        .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    serde_json::from_slice(&out.stdout).unwrap()
}

pub async fn drop_schema(fleet: &Fleet) {
    let namespace = fleet.namespace().parse().unwrap();
    hookfleet_history::schema::drop_schema(&database().await, &namespace)
        .await
        .unwrap();
}
