//! AMQP headers: the contract's `tenant`, hookfleet's own `x-hookfleet-*` headers that travel
//! with retries and dead letters, and typed access to lapin's `FieldTable`.

use std::borrow::Cow;

use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};

/// The account whose endpoints receive the event (docs/contract.md §1).
pub const TENANT: &str = "tenant";
/// Set on a retry or replay: deliver to this endpoint only, never fan out again.
pub const ENDPOINT: &str = "x-hookfleet-endpoint";
/// Set on a resend (`POST /v1/events/{id}/resend`, recover): the resend's own id, which
/// de-duplicates that resend instead of the event id, so that an event the endpoint already
/// got is sent again, once.
pub const RESEND: &str = "x-hookfleet-resend";
/// Attempts already made for that endpoint (absent = 0).
pub const ATTEMPTS: &str = "x-hookfleet-attempts";
/// The last attempt's HTTP status, when there was one.
pub const LAST_STATUS: &str = "x-hookfleet-last-status";
/// The last attempt's outcome, in words.
pub const LAST_ERROR: &str = "x-hookfleet-last-error";
/// On a dead letter: why it is there.
pub const REASON: &str = "x-hookfleet-reason";
/// On a dead letter: unix milliseconds when it was parked.
pub const DEAD_AT: &str = "x-hookfleet-dead-at";
/// On a dead letter kept truncated (its body was over the contract's limit): the size in
/// bytes of the body as published.
pub const ORIGINAL_SIZE: &str = "x-hookfleet-original-size";

/// Sets a string header.
pub fn set_str(headers: &mut FieldTable, name: &str, value: &str) {
    headers.insert(
        ShortString::from(name),
        AMQPValue::LongString(LongString::from(value)),
    );
}

/// Sets an integer header.
pub fn set_int(headers: &mut FieldTable, name: &str, value: i64) {
    headers.insert(ShortString::from(name), AMQPValue::LongLongInt(value));
}

/// Removes headers (lapin's `FieldTable` has no `remove`).
pub fn remove(headers: &mut FieldTable, names: &[&str]) {
    let mut map = headers.inner().clone();
    map.retain(|k, _| !names.contains(&k.as_str()));
    *headers = map.into();
}

/// A header as text, whichever string type the publishing client chose.
pub fn get_str<'a>(props: &'a BasicProperties, name: &str) -> Option<Cow<'a, str>> {
    match props.headers().as_ref()?.inner().get(name)? {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes())),
        AMQPValue::ShortString(s) => Some(Cow::Borrowed(s.as_str())),
        _ => None,
    }
}

/// A header as an integer, whichever integer type the publishing client chose.
pub fn get_int(props: &BasicProperties, name: &str) -> Option<i64> {
    match props.headers().as_ref()?.inner().get(name)? {
        AMQPValue::ShortShortInt(v) => Some((*v).into()),
        AMQPValue::ShortShortUInt(v) => Some((*v).into()),
        AMQPValue::ShortInt(v) => Some((*v).into()),
        AMQPValue::ShortUInt(v) => Some((*v).into()),
        AMQPValue::LongInt(v) => Some((*v).into()),
        AMQPValue::LongUInt(v) => Some((*v).into()),
        AMQPValue::LongLongInt(v) => Some(*v),
        AMQPValue::LongString(s) => std::str::from_utf8(s.as_bytes()).ok()?.parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_headers_are_read_whatever_their_width() {
        let mut h = FieldTable::default();
        h.insert("a".into(), AMQPValue::ShortShortUInt(3));
        h.insert("b".into(), AMQPValue::LongString("7".into()));
        let p = BasicProperties::default().with_headers(h);
        assert_eq!(get_int(&p, "a"), Some(3));
        assert_eq!(get_int(&p, "b"), Some(7));
        assert_eq!(get_int(&p, "c"), None);
    }

    #[test]
    fn headers_are_set_and_removed() {
        let mut h = FieldTable::default();
        set_str(&mut h, TENANT, "acme");
        set_int(&mut h, ATTEMPTS, 2);
        remove(&mut h, &[ATTEMPTS]);
        let p = BasicProperties::default().with_headers(h);
        assert_eq!(get_str(&p, TENANT).as_deref(), Some("acme"));
        assert_eq!(get_int(&p, ATTEMPTS), None);
    }
}
