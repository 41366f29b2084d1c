//! Scenario 6: the message history's PostgreSQL stops for 30 s while events are published
//! and delivered.
//!
//! Deliveries must not notice: the workers record off the delivery path, drop what does not
//! fit their bounded queue (counted in `hookfleet_history_dropped_total`), and record again
//! once PostgreSQL is back. The row says how many events were recorded, and checks that
//! recording resumed by itself.

use std::time::Duration;

use hookfleet_testkit::DATABASE_URL;

use super::{CONCURRENCY, fault_while_publishing, single_endpoint};
use crate::services::{self, Restore};
use crate::{Outcome, Settings, fleet};

/// How long PostgreSQL stays stopped (the 30 s).
const DOWN: Duration = Duration::from_secs(30);

pub async fn run(settings: &Settings) -> anyhow::Result<Vec<Outcome>> {
    // Publishing lasts about 50 s: some before, the 30 s stop, some after.
    let rate = settings.size.pick(100.0, 400.0);
    let events = (rate * 50.0) as usize;
    let mut fleet = fleet::fresh(settings, "pg_stop", CONCURRENCY)?;
    fleet.set("HOOKFLEET_DATABASE_URL", DATABASE_URL);
    fleet.run_ok(&["migrate"]).await?;
    let namespace = fleet.namespace().parse()?;
    let (receiver, _) = single_endpoint(&fleet, Duration::ZERO).await?;
    let title = "PostgreSQL (the history) stopped during delivery";
    let mut resumed_after = None;
    let mut row = fault_while_publishing(fleet, receiver, title, events, rate, events / 5, async |_| {
        let guard = Restore::new()?;
        super::blocking(services::stop_postgres).await?;
        tokio::time::sleep(DOWN).await;
        super::blocking(services::start_postgres).await?;
        resumed_after = Some(time::OffsetDateTime::now_utc());
        drop(guard);
        Ok(format!(
            "publishing {rate} events/s, PostgreSQL stopped for {} s a fifth of the way through",
            DOWN.as_secs()
        ))
    })
    .await?;

    let db = hookfleet_history::connect(DATABASE_URL).await?;
    let s = hookfleet_history::schema_name(&namespace);
    let recorded: i64 = db
        .query_one(&format!("SELECT count(DISTINCT id) FROM {s}.events"), &[])
        .await?
        .get(0);
    let after: i64 = match resumed_after {
        Some(at) => db
            .query_one(
                &format!("SELECT count(*) FROM {s}.events WHERE recorded_at > $1"),
                &[&at],
            )
            .await?
            .get(0),
        None => 0,
    };
    hookfleet_history::schema::drop_schema(&db, &namespace).await?;
    row.note += &format!(
        "; {recorded} of {} events recorded in the history ({} dropped and counted while it was \
         away), {after} recorded after it came back",
        row.published,
        row.published.saturating_sub(recorded as usize)
    );
    anyhow::ensure!(
        after > 0,
        "recording never resumed after PostgreSQL came back"
    );
    Ok(vec![row])
}
