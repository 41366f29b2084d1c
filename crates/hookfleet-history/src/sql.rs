//! Statements put together from optional filters, and the cursors that page through them.

use time::OffsetDateTime;
use tokio_postgres::types::ToSql;

/// A statement and its parameters, bound as they are written in.
#[derive(Default)]
pub(crate) struct Statement {
    pub text: String,
    params: Vec<Box<dyn ToSql + Sync + Send>>,
}

impl Statement {
    pub fn new(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            params: Vec::new(),
        }
    }

    /// Binds `value`; returns its placeholder (`$n`).
    pub fn bind(&mut self, value: impl ToSql + Sync + Send + 'static) -> String {
        self.params.push(Box::new(value));
        format!("${}", self.params.len())
    }

    /// Appends ` AND <condition>`, where `condition` gets the placeholder of `value`.
    pub fn and(
        &mut self,
        value: impl ToSql + Sync + Send + 'static,
        condition: impl FnOnce(&str) -> String,
    ) {
        let placeholder = self.bind(value);
        self.text.push_str(" AND ");
        self.text.push_str(&condition(&placeholder));
    }

    pub fn push(&mut self, text: &str) {
        self.text.push_str(text);
    }

    pub fn params(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.params
            .iter()
            .map(|p| p.as_ref() as &(dyn ToSql + Sync))
            .collect()
    }
}

/// Unix microseconds: PostgreSQL's precision, so a cursor names a row's time exactly.
pub(crate) fn micros(at: OffsetDateTime) -> i64 {
    (at.unix_timestamp_nanos() / 1_000) as i64
}

pub(crate) fn from_micros(micros: i64) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1_000).ok()
}

/// Where a page of events ended: the last event's time and id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventCursor {
    pub at: OffsetDateTime,
    pub id: String,
}

impl EventCursor {
    /// A cursor this API gave out, or `None`.
    pub fn parse(text: &str) -> Option<Self> {
        let (micros, id) = text.split_once('.')?;
        Some(Self {
            at: from_micros(micros.parse().ok()?)?,
            id: id.to_owned(),
        })
        .filter(|c| !c.id.is_empty())
    }
}

impl std::fmt::Display for EventCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", micros(self.at), self.id)
    }
}

/// An attempt's id in the history: its time, number and event, which also order the
/// endpoint's attempt log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptCursor {
    pub at: OffsetDateTime,
    pub attempt: i32,
    pub event_id: String,
}

impl AttemptCursor {
    /// An attempt id this API gave out, or `None`.
    pub fn parse(text: &str) -> Option<Self> {
        let mut parts = text.splitn(3, '.');
        let at = from_micros(parts.next()?.parse().ok()?)?;
        let attempt = parts.next()?.parse().ok()?;
        let event_id = parts.next().filter(|id| !id.is_empty())?.to_owned();
        Some(Self {
            at,
            attempt,
            event_id,
        })
    }
}

impl std::fmt::Display for AttemptCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", micros(self.at), self.attempt, self.event_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_what_they_did_not_give_out() {
        let at = from_micros(1_764_950_400_123_456).unwrap();
        let event = EventCursor {
            at,
            id: "evt_a.b".into(),
        };
        assert_eq!(EventCursor::parse(&event.to_string()), Some(event));
        let attempt = AttemptCursor {
            at,
            attempt: 3,
            event_id: "evt.1".into(),
        };
        assert_eq!(AttemptCursor::parse(&attempt.to_string()), Some(attempt));
        for bad in ["", "x.evt", "1.", "1-2", "12.x.evt"] {
            assert_eq!(AttemptCursor::parse(bad), None, "{bad}");
        }
        for bad in ["", "x.evt", "1.", "17"] {
            assert_eq!(EventCursor::parse(bad), None, "{bad}");
        }
    }
}
