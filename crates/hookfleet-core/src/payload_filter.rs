//! An endpoint's payload filter: a JSON predicate on an event's `data`. An event that does
//! not match is not delivered to that endpoint.
//!
//! # Grammar
//! A filter is an object; every key must hold (an implicit `$and`), and `{}` matches everything.
//! - A **field** key names a field of `data`, by nesting (`{"agent": {"team": "red"}}`) or
//!   by a dotted path (`{"agent.team": "red"}`); arrays are not walked into.
//! - A plain value (string, number, bool, null, array) means JSON equality, with numbers
//!   compared by value (`1` equals `1.0`). To compare with an object, use `{"$eq": {...}}`.
//! - An object whose keys all start with `$` applies operators to the field's value:
//!   `$eq`, `$ne`, `$in`, `$nin` (an array), `$gt`, `$gte`, `$lt`, `$lte` (a number or a
//!   string; numbers compare with numbers and strings with strings, any other pair is false),
//!   `$exists` (a bool; a field holding `null` exists), `$startsWith` (a string).
//! - `$and` and `$or` take a non-empty array of filters, `$not` one filter. They may sit beside
//!   field keys or beside operators, and their filters apply where they sit:
//!   `{"severity": {"$not": {"$in": ["low"]}}}`,
//!   `{"agent": {"$or": [{"team": "red"}, {"lead": true}]}}`.
//!   Operators and field keys may not share an object.
//!
//! A missing field equals nothing: `$eq`, `$in`, the comparisons and `$startsWith` are false
//! on it, `$ne` and `$nin` true.
//!
//! A filter is checked once, when the endpoint is written, and kept compiled (paths already
//! split), so matching an event reads the payload without allocating.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Number, Value};

/// Most levels of JSON nesting (objects and arrays) in a filter: it bounds the recursion of
/// both checking and matching.
pub const MAX_DEPTH: usize = 16;
/// Largest filter, serialized: a filter is read with its endpoint on every cache refresh.
pub const MAX_BYTES: usize = 8 * 1024;

/// A checked filter, kept both as written (to show and store) and compiled (to match).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "Value")]
pub struct PayloadFilter {
    json: Value,
    root: Node,
}

/// Why a filter was refused, and where: `path` starts at `filter` and follows the keys,
/// e.g. `filter.agent.$in` or `filter.$or[1]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct FilterError {
    pub path: String,
    pub reason: String,
}

/// A predicate on one value of the payload; `None` is a missing field.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    All(Vec<Node>),
    Any(Vec<Node>),
    Not(Box<Node>),
    /// The node applied to the value at this path below the current one.
    Field(Box<[Box<str>]>, Box<Node>),
    Eq(Value),
    In(Vec<Value>),
    /// True when the value compares to `bound` as `want`, or equal when `or_equal`.
    Order {
        want: Ordering,
        or_equal: bool,
        bound: Value,
    },
    Exists(bool),
    StartsWith(String),
}

impl PayloadFilter {
    /// Checks and compiles a filter; the error names the first fault found.
    pub fn parse(value: &Value) -> Result<Self, FilterError> {
        let root = "filter";
        let Value::Object(object) = value else {
            return Err(fault(root, "must be an object"));
        };
        // Depth first: it bounds the recursion of the serializer below and of `level`.
        if nests_deeper(value, MAX_DEPTH) {
            return Err(fault(root, format!("nests deeper than {MAX_DEPTH} levels")));
        }
        let bytes = serde_json::to_string(value).map_or(usize::MAX, |s| s.len());
        if bytes > MAX_BYTES {
            return Err(fault(
                root,
                format!("is {bytes} bytes, more than {MAX_BYTES}"),
            ));
        }
        Ok(Self {
            json: value.clone(),
            root: level(object, root, false)?,
        })
    }

    /// Whether an event's `data` passes the filter.
    pub fn matches(&self, data: &Value) -> bool {
        self.root.eval(Some(data))
    }

    /// The filter as it was written.
    pub fn as_json(&self) -> &Value {
        &self.json
    }
}

impl TryFrom<Value> for PayloadFilter {
    type Error = FilterError;

    fn try_from(value: Value) -> Result<Self, FilterError> {
        Self::parse(&value)
    }
}

impl Serialize for PayloadFilter {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.json.serialize(serializer)
    }
}

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for PayloadFilter {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, Type};
        (ObjectBuilder::new().schema_type(Type::Object))
            .additional_properties(Some(AdditionalProperties::FreeForm(true)))
            .description(Some("A JSON predicate on the event's `data` (see docs)."))
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for PayloadFilter {}

/// The `data` of an event's payload (`null` when it has none), which filters look at.
pub fn data_of(body: &[u8]) -> Value {
    #[derive(Deserialize)]
    struct Payload {
        #[serde(default)]
        data: Value,
    }
    // Only an object has a `data`: read by position, `[x, …]` would look like `{"data": x}`.
    if crate::event::json_opening(body) != Some(b'{') {
        return Value::Null;
    }
    serde_json::from_slice::<Payload>(body).map_or(Value::Null, |p| p.data)
}

fn fault(path: &str, reason: impl Into<String>) -> FilterError {
    FilterError {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

const LOGICAL: [&str; 3] = ["$and", "$or", "$not"];
#[rustfmt::skip]
const OPERATORS: [&str; 10] = [
    "$eq", "$ne", "$in", "$nin", "$gt", "$gte", "$lt", "$lte", "$exists", "$startsWith",
];

/// Compiles one object of the filter; `at_field` when it applies to a field's value (so
/// operators are allowed), not to `data` as a whole.
fn level(object: &Map<String, Value>, path: &str, at_field: bool) -> Result<Node, FilterError> {
    let has_field = object.keys().any(|k| !k.starts_with('$'));
    if has_field && object.keys().any(|k| OPERATORS.contains(&k.as_str())) {
        return Err(fault(path, "cannot mix operators and field names"));
    }
    let mut all = Vec::with_capacity(object.len());
    for (key, operand) in object {
        let here = format!("{path}.{key}");
        let node = if LOGICAL.contains(&key.as_str()) {
            logical(key, operand, &here, at_field)?
        } else if key.starts_with('$') {
            if !OPERATORS.contains(&key.as_str()) {
                return Err(fault(&here, "unknown operator"));
            }
            if !at_field {
                return Err(fault(&here, "must be under a field name"));
            }
            operator(key, operand, &here)?
        } else {
            field(key, operand, path, &here)?
        };
        all.push(node);
    }
    Ok(if all.len() == 1 {
        all.swap_remove(0)
    } else {
        Node::All(all)
    })
}

fn logical(key: &str, operand: &Value, path: &str, at_field: bool) -> Result<Node, FilterError> {
    if key == "$not" {
        let Value::Object(inner) = operand else {
            return Err(fault(path, "must be a filter (an object)"));
        };
        return Ok(Node::Not(Box::new(level(inner, path, at_field)?)));
    }
    let filters = match operand {
        Value::Array(filters) if !filters.is_empty() => filters,
        _ => return Err(fault(path, "must be a non-empty array of filters")),
    };
    let mut nodes = Vec::with_capacity(filters.len());
    for (i, filter) in filters.iter().enumerate() {
        let here = format!("{path}[{i}]");
        let Value::Object(inner) = filter else {
            return Err(fault(&here, "must be a filter (an object)"));
        };
        nodes.push(level(inner, &here, at_field)?);
    }
    Ok(if key == "$and" {
        Node::All(nodes)
    } else {
        Node::Any(nodes)
    })
}

fn operator(key: &str, operand: &Value, path: &str) -> Result<Node, FilterError> {
    let order = |want, or_equal| match operand {
        Value::Number(_) | Value::String(_) => Ok(Node::Order {
            want,
            or_equal,
            bound: operand.clone(),
        }),
        _ => Err(fault(path, "must be a number or a string")),
    };
    let list = || match operand {
        Value::Array(values) => Ok(Node::In(values.clone())),
        _ => Err(fault(path, "must be an array")),
    };
    match key {
        "$eq" => Ok(Node::Eq(operand.clone())),
        "$ne" => Ok(Node::Not(Box::new(Node::Eq(operand.clone())))),
        "$in" => list(),
        "$nin" => Ok(Node::Not(Box::new(list()?))),
        "$gt" => order(Ordering::Greater, false),
        "$gte" => order(Ordering::Greater, true),
        "$lt" => order(Ordering::Less, false),
        "$lte" => order(Ordering::Less, true),
        "$exists" => match operand {
            Value::Bool(b) => Ok(Node::Exists(*b)),
            _ => Err(fault(path, "must be true or false")),
        },
        "$startsWith" => match operand {
            Value::String(s) => Ok(Node::StartsWith(s.clone())),
            _ => Err(fault(path, "must be a string")),
        },
        _ => Err(fault(path, "unknown operator")),
    }
}

/// A field key and its value: a nested filter for an object, equality for anything else.
fn field(key: &str, operand: &Value, parent: &str, path: &str) -> Result<Node, FilterError> {
    if key.is_empty() {
        return Err(fault(parent, "empty field name"));
    }
    let mut segments: Vec<Box<str>> = key.split('.').map(Box::from).collect();
    if segments.iter().any(|s| s.is_empty()) {
        return Err(fault(path, "empty path segment"));
    }
    let inner = match operand {
        Value::Object(object) => level(object, path, true)?,
        other => Node::Eq(other.clone()),
    };
    // `{"agent": {"team": ..}}` and `{"agent.team": ..}` compile to the same walk.
    Ok(match inner {
        Node::Field(rest, node) => {
            segments.extend(rest);
            Node::Field(segments.into(), node)
        }
        node => Node::Field(segments.into(), Box::new(node)),
    })
}

/// Whether `value` holds containers more than `room` levels deep; never recurses further.
fn nests_deeper(value: &Value, room: usize) -> bool {
    match value {
        Value::Array(items) => room == 0 || items.iter().any(|v| nests_deeper(v, room - 1)),
        Value::Object(map) => room == 0 || map.values().any(|v| nests_deeper(v, room - 1)),
        _ => false,
    }
}

impl Node {
    fn eval(&self, value: Option<&Value>) -> bool {
        match self {
            Node::All(nodes) => nodes.iter().all(|n| n.eval(value)),
            Node::Any(nodes) => nodes.iter().any(|n| n.eval(value)),
            Node::Not(node) => !node.eval(value),
            Node::Field(path, node) => {
                let found = value.and_then(|v| {
                    (path.iter()).try_fold(v, |v, segment| v.as_object()?.get(&**segment))
                });
                node.eval(found)
            }
            Node::Eq(want) => value.is_some_and(|v| json_eq(v, want)),
            Node::In(wants) => value.is_some_and(|v| wants.iter().any(|w| json_eq(v, w))),
            Node::Order {
                want,
                or_equal,
                bound,
            } => match value.and_then(|v| compare(v, bound)) {
                Some(Ordering::Equal) => *or_equal,
                Some(ordering) => ordering == *want,
                None => false,
            },
            Node::Exists(want) => value.is_some() == *want,
            Node::StartsWith(prefix) => value
                .and_then(Value::as_str)
                .is_some_and(|s| s.starts_with(prefix.as_str())),
        }
    }
}

/// JSON equality, except that numbers compare by value: serde_json holds `1` and `1.0` as
/// different kinds of number, but a sender's serializer may write either.
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => number_cmp(x, y) == Some(Ordering::Equal),
        (Value::Array(xs), Value::Array(ys)) => {
            xs.len() == ys.len() && xs.iter().zip(ys).all(|(x, y)| json_eq(x, y))
        }
        (Value::Object(xs), Value::Object(ys)) => {
            xs.len() == ys.len()
                && (xs.iter()).all(|(k, x)| ys.get(k).is_some_and(|y| json_eq(x, y)))
        }
        _ => a == b,
    }
}

fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => number_cmp(x, y),
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

/// Integers exactly (as i128, which holds both u64 and i64), anything else as f64.
fn number_cmp(a: &Number, b: &Number) -> Option<Ordering> {
    let int = |n: &Number| n.as_i64().map(i128::from).or(n.as_u64().map(i128::from));
    match (int(a), int(b)) {
        (Some(x), Some(y)) => Some(x.cmp(&y)),
        _ => a.as_f64()?.partial_cmp(&b.as_f64()?),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use serde_json::json;

    use super::*;

    fn filter(value: Value) -> PayloadFilter {
        PayloadFilter::parse(&value).unwrap()
    }

    fn error(value: Value) -> String {
        PayloadFilter::parse(&value).unwrap_err().to_string()
    }

    #[test]
    fn only_an_object_payload_has_data() {
        let data_of = |body: &str| data_of(body.as_bytes());
        assert_eq!(
            data_of(r#" {"type": "t", "data": {"a": 1}}"#),
            json!({"a": 1})
        );
        assert_eq!(data_of(r#"{"type": "t"}"#), Value::Null);
        // An array is not read by position: its first element is not `data`.
        assert_eq!(data_of(r#"[{"a": 1}]"#), Value::Null);
        assert_eq!(data_of(r#" ["t", {"a": 1}]"#), Value::Null);
        assert_eq!(data_of("not json"), Value::Null);
        assert!(!filter(json!({"a": 1})).matches(&data_of(r#"[{"a": 1}]"#)));
    }

    fn event() -> Value {
        json!({
            "agent": {"team": "red", "name": "ada", "level": 3, "lead": null},
            "severity": "high", "score": 1, "ratio": 0.5, "tags": ["a", "b"], "on": true,
        })
    }

    #[test]
    #[rustfmt::skip]
    fn operators_on_a_present_field() {
        let cases = [
            (json!({"severity": "high"}), true),
            (json!({"severity": "low"}), false),
            (json!({"tags": ["a", "b"]}), true),
            (json!({"tags": ["b", "a"]}), false),
            (json!({"on": true, "agent.lead": null}), true),
            (json!({"agent": {"$eq": {"team": "red", "name": "ada", "level": 3.0, "lead": null}}}),
                true),
            (json!({"severity": {"$eq": "high"}}), true),
            (json!({"severity": {"$ne": "high"}}), false),
            (json!({"severity": {"$ne": "low"}}), true),
            (json!({"severity": {"$in": ["low", "high"]}}), true),
            (json!({"severity": {"$in": []}}), false),
            (json!({"severity": {"$nin": ["low", "high"]}}), false),
            (json!({"severity": {"$nin": ["low"]}}), true),
            (json!({"score": {"$gt": 0, "$lt": 2}}), true),
            (json!({"score": {"$gt": 1}}), false),
            (json!({"score": {"$gte": 1, "$lte": 1.0}}), true),
            (json!({"ratio": {"$lt": 1, "$gt": 0.25}}), true),
            (json!({"severity": {"$gt": "a", "$lt": "i"}}), true),
            (json!({"severity": {"$gte": "i"}}), false),
            (json!({"severity": {"$gt": 1}}), false),
            (json!({"score": {"$lt": "z"}}), false),
            (json!({"tags": {"$gt": 0}}), false),
            (json!({"agent.lead": {"$exists": true}}), true),
            (json!({"agent.lead": {"$exists": false}}), false),
            (json!({"agent.name": {"$startsWith": "ad"}}), true),
            (json!({"agent.name": {"$startsWith": "bo"}}), false),
            (json!({"score": {"$startsWith": "1"}}), false),
        ];
        for (f, want) in cases {
            assert_eq!(filter(f.clone()).matches(&event()), want, "{f}");
        }
    }

    #[test]
    fn a_missing_field_equals_nothing() {
        let cases = [
            (json!({"nope": null}), false),
            (json!({"nope": {"$eq": null}}), false),
            (json!({"nope": {"$ne": null}}), true),
            (json!({"nope": {"$in": [null]}}), false),
            (json!({"nope": {"$nin": [null]}}), true),
            (json!({"nope": {"$gte": 0}}), false),
            (json!({"nope": {"$lt": "z"}}), false),
            (json!({"nope": {"$startsWith": ""}}), false),
            (json!({"nope": {"$exists": false}}), true),
            (json!({"nope": {"$exists": true}}), false),
            // Through a scalar or a missing parent.
            (json!({"severity.x": {"$exists": false}}), true),
            (json!({"nope.x": "y"}), false),
            (json!({"nope": {"x": {"$ne": 1}}}), true),
        ];
        for (f, want) in cases {
            assert_eq!(filter(f.clone()).matches(&event()), want, "{f}");
        }
    }

    #[test]
    fn numbers_compare_by_value() {
        assert!(filter(json!({"score": 1.0})).matches(&event()));
        assert!(filter(json!({"n": 1})).matches(&json!({"n": 1.0})));
        assert!(filter(json!({"n": [1, {"m": 2}]})).matches(&json!({"n": [1.0, {"m": 2.0}]})));
        assert!(filter(json!({"n": {"$in": [7, 1.0]}})).matches(&json!({"n": 1})));
        assert!(filter(json!({"n": {"$gt": -1}})).matches(&json!({"n": u64::MAX})));
        assert!(!filter(json!({"n": u64::MAX})).matches(&json!({"n": u64::MAX - 1})));
    }

    #[test]
    fn nested_and_dotted_paths_compile_alike() {
        let nested = filter(json!({"agent": {"team": "red"}}));
        let dotted = filter(json!({"agent.team": "red"}));
        assert_eq!(nested.root, dotted.root);
        assert!(nested.matches(&event()));
        assert!(!nested.matches(&json!({"agent": {"team": "blue"}})));
        assert!(filter(json!({"agent": {"team": "red", "level": {"$gte": 3}}})).matches(&event()));
        assert!(filter(json!({})).matches(&event()));
        assert!(filter(json!({})).matches(&json!(null)));
    }

    #[test]
    #[rustfmt::skip]
    fn logical_operators() {
        let cases = [
            (json!({"$and": [{"severity": "high"}, {"score": 1}]}), true),
            (json!({"$and": [{"severity": "high"}, {"score": 2}]}), false),
            (json!({"$or": [{"severity": "low"}, {"score": 1}]}), true),
            (json!({"$or": [{"severity": "low"}, {"score": 2}]}), false),
            (json!({"$not": {"severity": "low"}}), true),
            (json!({"$not": {}}), false),
            (json!({"on": true, "$or": [{"agent.team": "blue"}, {"tags": {"$exists": true}}]}),
                true),
            (json!({"severity": {"$not": {"$in": ["low", "high"]}}}), false),
            (json!({"severity": {"$or": [{"$eq": "low"}, {"$startsWith": "hi"}]}}), true),
            (json!({"agent": {"$or": [{"team": "blue"}, {"name": "ada"}]}}), true),
            (json!({"agent": {"$and": [{"team": "red"}, {"$not": {"level": 3}}]}}), false),
        ];
        for (f, want) in cases {
            assert_eq!(filter(f.clone()).matches(&event()), want, "{f}");
        }
    }

    #[test]
    #[rustfmt::skip]
    fn faults_are_named_by_path() {
        let cases = [
            (json!([]), "filter: must be an object"),
            (json!({"agent": {"team": {"$gtx": 1}}}), "filter.agent.team.$gtx: unknown operator"),
            (json!({"$or": []}), "filter.$or: must be a non-empty array of filters"),
            (json!({"$and": {}}), "filter.$and: must be a non-empty array of filters"),
            (json!({"$or": [{}, 1]}), "filter.$or[1]: must be a filter (an object)"),
            (json!({"$not": [1]}), "filter.$not: must be a filter (an object)"),
            (json!({"severity": {"$in": "high"}}), "filter.severity.$in: must be an array"),
            (json!({"a": {"$nin": 1}}), "filter.a.$nin: must be an array"),
            (json!({"a": {"$exists": 1}}), "filter.a.$exists: must be true or false"),
            (json!({"a": {"$startsWith": 1}}), "filter.a.$startsWith: must be a string"),
            (json!({"a": {"$lte": null}}), "filter.a.$lte: must be a number or a string"),
            (json!({"a": {"$gt": 1, "b": 2}}), "filter.a: cannot mix operators and field names"),
            (json!({"$eq": 1}), "filter.$eq: must be under a field name"),
            (json!({"$or": [{"$in": []}]}), "filter.$or[0].$in: must be under a field name"),
            (json!({"$or": [{"a": {"$not": {"$in": 1}}}]}),
                "filter.$or[0].a.$not.$in: must be an array"),
            (json!({"x": {"": 1}}), "filter.x: empty field name"),
            (json!({"a..b": 1}), "filter.a..b: empty path segment"),
            (json!({"a.": 1}), "filter.a.: empty path segment"),
        ];
        for (f, want) in cases {
            assert_eq!(error(f), want);
        }
    }

    #[test]
    fn limits() {
        let mut deep = json!(1);
        for _ in 0..MAX_DEPTH {
            deep = json!({"a": deep});
        }
        assert!(PayloadFilter::parse(&deep).is_ok());
        assert_eq!(
            error(json!({"a": deep})),
            "filter: nests deeper than 16 levels"
        );
        assert_eq!(
            error(json!({"a": {"$in": [[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]}})),
            "filter: nests deeper than 16 levels"
        );

        let big = "x".repeat(MAX_BYTES - r#"{"a":""}"#.len());
        assert!(PayloadFilter::parse(&json!({ "a": big })).is_ok());
        assert_eq!(
            error(json!({ "a": format!("{big}x") })),
            "filter: is 8193 bytes, more than 8192"
        );
    }

    #[test]
    fn serde_round_trips_the_filter_as_written() {
        let written = json!({"agent": {"team": "red"}, "$or": [{"score": {"$gte": 1}}]});
        let parsed: PayloadFilter = serde_json::from_value(written.clone()).unwrap();
        assert_eq!(parsed.as_json(), &written);
        assert_eq!(serde_json::to_value(&parsed).unwrap(), written);
        assert_eq!(parsed, filter(written));

        let refused = serde_json::from_str::<PayloadFilter>(r#"{"a": {"$in": 1}}"#);
        let message = refused.unwrap_err().to_string();
        assert!(
            message.starts_with("filter.a.$in: must be an array"),
            "{message}"
        );
    }
}
