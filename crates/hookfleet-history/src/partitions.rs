//! A partition per UTC day for each history table: made a few days ahead (so rows never land
//! in the default partition, which would block making theirs), and dropped whole once older
//! than the retention, instead of deleting rows.

use std::time::Duration;

use hookfleet_core::Namespace;
use time::{Date, OffsetDateTime};

use crate::{HistoryConfig, Result, schema_name};

/// The partitioned tables, and which retention each follows.
const TABLES: [(&str, Retention); 3] = [
    ("events", Retention::History),
    ("payloads", Retention::Payload),
    ("attempts", Retention::History),
];

#[derive(Clone, Copy)]
enum Retention {
    History,
    Payload,
}

/// Days made ahead of today, and behind it (for a clock a little behind).
const AHEAD: i64 = 3;
const BEHIND: i64 = 1;

/// Makes the coming days' partitions and drops those past retention. Safe to run from every
/// worker at once: each statement is idempotent.
pub async fn maintain(client: &tokio_postgres::Client, config: &HistoryConfig) -> Result<()> {
    make_ahead(client, &config.namespace).await;
    let s = schema_name(&config.namespace);
    let today = OffsetDateTime::now_utc().date();
    for (table, retention) in TABLES {
        let keep = match retention {
            Retention::History => config.retention,
            Retention::Payload => config.payload_retention.min(config.retention),
        };
        for day in expired(client, &s, table, today, keep).await? {
            let sql = format!("DROP TABLE IF EXISTS {s}.{}", partition(table, day));
            client.batch_execute(&sql).await?;
            tracing::info!(message = "Dropped a history partition past retention.", %table, %day);
        }
    }
    Ok(())
}

/// Makes the partitions of yesterday to a few days ahead that are missing. `hookfleet
/// migrate` runs it too, so that the first worker does not make a dozen tables (each a
/// catalog change and a commit) while it delivers its first events.
pub async fn make_ahead(client: &tokio_postgres::Client, namespace: &Namespace) {
    let s = schema_name(namespace);
    let today = OffsetDateTime::now_utc().date();
    for (table, _) in TABLES {
        for offset in -BEHIND..=AHEAD {
            let day = today + time::Duration::days(offset);
            let next = day + time::Duration::days(1);
            let sql = format!(
                "CREATE TABLE IF NOT EXISTS {s}.{} PARTITION OF {s}.{table} FOR VALUES FROM ('{day}') TO ('{next}')",
                partition(table, day)
            );
            if let Err(error) = client.batch_execute(&sql).await {
                // Rows of that day already in the default partition: it stays there.
                tracing::warn!(message = "Cannot make a history partition.", %table, %day, %error);
            }
        }
    }
}

fn partition(table: &str, day: Date) -> String {
    format!(
        "{table}_{:04}{:02}{:02}",
        day.year(),
        u8::from(day.month()),
        day.day()
    )
}

/// The days of `table`'s partitions that end before `today - keep`.
async fn expired(
    client: &tokio_postgres::Client,
    s: &str,
    table: &str,
    today: Date,
    keep: Duration,
) -> Result<Vec<Date>> {
    let rows = client
        .query(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = to_regclass($1)",
            &[&format!("{s}.{table}")],
        )
        .await?;
    let cutoff = today - time::Duration::seconds(keep.as_secs() as i64);
    let prefix = format!("{table}_");
    Ok(rows
        .iter()
        .filter_map(|row| {
            let name: String = row.get(0);
            let digits = name.strip_prefix(&prefix)?;
            day_of(digits)
        })
        // A partition holds its day; it is past retention once the day after it is.
        .filter(|day| *day + time::Duration::days(1) <= cutoff)
        .collect())
}

fn day_of(digits: &str) -> Option<Date> {
    if digits.len() != 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let year = digits[..4].parse().ok()?;
    let month = time::Month::try_from(digits[4..6].parse::<u8>().ok()?).ok()?;
    Date::from_calendar_date(year, month, digits[6..].parse().ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_names_round_trip_to_their_day() {
        let day = time::macros::date!(2026 - 03 - 07);
        assert_eq!(partition("events", day), "events_20260307");
        assert_eq!(day_of("20260307"), Some(day));
        for bad in ["default", "2026037", "20261307", "2026030a"] {
            assert_eq!(day_of(bad), None, "{bad}");
        }
    }
}
