//! An endpoint's own headers (`headers`, docs/contract.md §2), sent with every delivery: the
//! `X-Api-Key` a customer's gateway wants, a routing tag.
//!
//! Names are kept lower-case (HTTP names are case-insensitive, and one spelling per name
//! is what makes "at most one of each" checkable). The names hookfleet sets itself or that
//! HTTP owns are refused: a custom header must never change what a delivery means.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// Most headers one endpoint may have.
pub const MAX_HEADERS: usize = 20;
/// Longest value, in bytes.
pub const MAX_VALUE_BYTES: usize = 1024;
/// Longest name, in bytes.
pub const MAX_NAME_BYTES: usize = 256;
/// How a sensitive header's value is shown; sent back in a `PATCH`, it keeps the value.
pub const MASK: &str = "********";

/// Names hookfleet or HTTP set, refused as custom headers (besides every `webhook-*`).
const RESERVED: [&str; 6] = [
    "content-type",
    "content-length",
    "host",
    "user-agent",
    "connection",
    "transfer-encoding",
];

/// Checked headers, by lower-case name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CustomHeaders(BTreeMap<String, String>);

impl CustomHeaders {
    /// Checks every header, and reports every fault at once (`name: why`).
    pub fn parse(given: BTreeMap<String, String>) -> Result<Self, String> {
        if given.len() > MAX_HEADERS {
            return Err(format!(
                "at most {MAX_HEADERS} headers, not {}",
                given.len()
            ));
        }
        let mut headers = BTreeMap::new();
        let mut faults = Vec::new();
        for (name, value) in given {
            let lower = name.to_ascii_lowercase();
            if let Err(why) = check_name(&lower).and_then(|()| check_value(&value)) {
                faults.push(format!("{name}: {why}"));
            } else if headers.insert(lower, value).is_some() {
                faults.push(format!("{name}: given twice (names are case-insensitive)"));
            }
        }
        if faults.is_empty() {
            Ok(Self(headers))
        } else {
            Err(faults.join("; "))
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// The value stored for `name`, to be changed in place (sealing at rest).
    pub fn get_mut(&mut self, name: &str) -> Option<&mut String> {
        self.0.get_mut(name)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    /// As shown: the values of `sensitive` names masked.
    pub fn masked(&self, sensitive: &BTreeSet<String>) -> BTreeMap<String, String> {
        (self.0.iter())
            .map(|(name, value)| {
                let shown = if sensitive.contains(name) {
                    MASK.to_owned()
                } else {
                    value.clone()
                };
                (name.clone(), shown)
            })
            .collect()
    }

    /// `self` with every masked value of a sensitive name taken from `before`: a client that
    /// read the endpoint and sends its headers back does not overwrite a secret with stars.
    pub fn unmasked(mut self, before: &Self, sensitive: &BTreeSet<String>) -> Self {
        for (name, value) in &mut self.0 {
            if value == MASK
                && sensitive.contains(name)
                && let Some(kept) = before.get(name)
            {
                kept.clone_into(value);
            }
        }
        self
    }
}

/// Checks `sensitive_headers`: lower-cased names, each one of `headers`.
pub fn sensitive_names(
    names: Vec<String>,
    headers: &CustomHeaders,
) -> Result<BTreeSet<String>, String> {
    let names: BTreeSet<String> = names.iter().map(|n| n.to_ascii_lowercase()).collect();
    let missing: Vec<&str> = (names.iter())
        .filter(|n| !headers.contains(n))
        .map(String::as_str)
        .collect();
    if missing.is_empty() {
        Ok(names)
    } else {
        Err(format!("not in headers: {}", missing.join(", ")))
    }
}

/// An RFC 9110 token, and not a name hookfleet or HTTP sets.
fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_NAME_BYTES {
        return Err(format!("a name is 1 to {MAX_NAME_BYTES} characters"));
    }
    let tchar = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if !name.bytes().all(tchar) {
        return Err("a name is letters, digits and !#$%&'*+-.^_`|~ only".to_owned());
    }
    if name.starts_with("webhook-") || RESERVED.contains(&name) {
        return Err("hookfleet or HTTP sets this header; it cannot be replaced".to_owned());
    }
    Ok(())
}

/// Visible characters, with spaces or tabs inside only, at most 1 KiB.
fn check_value(value: &str) -> Result<(), String> {
    if value.len() > MAX_VALUE_BYTES {
        return Err(format!(
            "a value is at most {MAX_VALUE_BYTES} bytes, not {}",
            value.len()
        ));
    }
    let visible = |b: u8| b.is_ascii_graphic() || b == b' ' || b == b'\t';
    if !value.bytes().all(visible) {
        return Err("a value is visible ASCII characters, spaces and tabs only".to_owned());
    }
    if value.starts_with([' ', '\t']) || value.ends_with([' ', '\t']) {
        return Err("a value cannot start or end with a space".to_owned());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn names_are_lower_cased_and_checked() {
        let ok = CustomHeaders::parse(map(&[("X-Api-Key", "abc 123"), ("x-team", "red")]));
        let ok = ok.unwrap();
        assert_eq!(ok.get("x-api-key"), Some("abc 123"));
        for bad in [
            "webhook-id",
            "Webhook-Signature",
            "Content-Type",
            "host",
            "bad name",
            "",
        ] {
            let error = CustomHeaders::parse(map(&[(bad, "v")])).unwrap_err();
            assert!(error.starts_with(&format!("{bad}:")), "{bad}: {error}");
        }
        let twice = CustomHeaders::parse(map(&[("X-A", "1"), ("x-a", "2")])).unwrap_err();
        assert!(twice.contains("twice"), "{twice}");
    }

    #[test]
    fn values_are_visible_and_short() {
        for bad in [
            "a\nb",
            "é",
            " lead",
            "trail ",
            &"x".repeat(MAX_VALUE_BYTES + 1),
        ] {
            assert!(
                CustomHeaders::parse(map(&[("x-a", bad)])).is_err(),
                "{bad:?}"
            );
        }
        assert!(CustomHeaders::parse(map(&[("x-a", &"x".repeat(MAX_VALUE_BYTES))])).is_ok());
        let many: BTreeMap<String, String> = (0..=MAX_HEADERS)
            .map(|i| (format!("x-{i}"), "v".to_owned()))
            .collect();
        assert!(CustomHeaders::parse(many).is_err());
    }

    #[test]
    fn sensitive_values_are_masked_and_kept_when_sent_back_masked() {
        let before = CustomHeaders::parse(map(&[("x-key", "secret"), ("x-team", "red")])).unwrap();
        let sensitive = sensitive_names(vec!["X-Key".into()], &before).unwrap();
        let shown = before.masked(&sensitive);
        assert_eq!(shown["x-key"], MASK);
        assert_eq!(shown["x-team"], "red");
        let back = CustomHeaders::parse(shown)
            .unwrap()
            .unmasked(&before, &sensitive);
        assert_eq!(back, before);
        assert!(sensitive_names(vec!["x-nope".into()], &before).is_err());
    }
}
