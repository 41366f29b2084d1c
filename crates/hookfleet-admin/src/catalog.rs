//! The event catalogue: what each type of `HOOKFLEET_EVENT_TYPES` carries (a JSON Schema
//! 2020-12 for its `data`), an example Test Webhook sends, and whether it is deprecated.
//!
//! Publishing checks `data` against the type's schema, compiled once per stored description
//! and kept per process: the publish path reads the type's description (one Redis read) and
//! compares texts; it parses and compiles again only when the operator changed it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use hookfleet_core::{EventType, Operational, TenantId};
use hookfleet_store::TypeInfo;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{Admin, Error, FieldError, Result, Scope};

/// Most faults one refused event lists.
const MAX_FAULTS: usize = 20;

/// What the operator says of one event type (`PUT` replaces all of it).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutEventType {
    #[serde(default)]
    #[schema(
        example = "An agent's action was blocked by a policy.",
        max_length = 2000
    )]
    pub description: Option<String>,
    /// A JSON Schema (its description is in `json_schema_doc`).
    #[serde(default)]
    #[schema(schema_with = json_schema_doc)]
    pub schema: Option<serde_json::Value>,
    /// An example `data` (any JSON, as `data` is), which must meet the schema; Test Webhook
    /// sends it.
    #[serde(default)]
    #[schema(example = json!({"agent": "a-17", "rule": "no-prod-writes"}))]
    pub example: Option<serde_json::Value>,
    /// Still accepted, with a `Deprecation` header on each publish.
    #[serde(default)]
    pub deprecated: Option<bool>,
}

/// One event type as listed.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EventTypeView {
    #[serde(rename = "type")]
    pub event_type: String,
    pub description: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = json_schema_doc)]
    pub schema: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub example: Option<serde_json::Value>,
    pub deprecated: bool,
    /// One of hookfleet's own types, for endpoints of the operator tenant only (operator
    /// tokens see them).
    pub operational: bool,
}

impl EventTypeView {
    fn new(event_type: &str, info: TypeInfo) -> Self {
        Self {
            event_type: event_type.to_owned(),
            description: info.description,
            schema: info.schema,
            example: info.example,
            deprecated: info.deprecated_at.is_some(),
            operational: Operational::of(event_type).is_some(),
        }
    }
}

/// How the OpenAPI document shows a type's JSON Schema: draft 2020-12 allows an object or a
/// boolean (`true` accepts any `data`, `false` none), and both compile, so both are accepted.
fn json_schema_doc() -> utoipa::openapi::Object {
    use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
    let example = serde_json::json!({
        "type": "object",
        "required": ["agent", "rule"],
        "properties": {"agent": {"type": "string"}, "rule": {"type": "string"}},
    });
    (ObjectBuilder::new())
        .schema_type(SchemaType::from_iter([
            Type::Object,
            Type::Boolean,
            Type::Null,
        ]))
        .description(Some(
            "A JSON Schema (2020-12) that every event's `data` must meet: an object, or \
             `true` / `false` as the draft allows; no remote `$ref`.",
        ))
        .examples([example])
        .build()
}

/// A type's description as read, and its schema compiled.
#[derive(Debug)]
struct Known {
    info: TypeInfo,
    validator: Option<jsonschema::Validator>,
}

/// What was read and compiled of each type, with the stored text it came from: a publish
/// compares that text with what Redis holds, and parses and compiles only when it changed.
#[derive(Debug, Default)]
pub(crate) struct Schemas(Mutex<HashMap<String, (String, Arc<Known>)>>);

impl Schemas {
    /// What `stored` (the type's description as Redis holds it) says, compiled once.
    fn known(&self, event_type: &str, stored: String) -> Result<Arc<Known>> {
        let mut cache = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((was, known)) = cache.get(event_type)
            && *was == stored
        {
            return Ok(known.clone());
        }
        let info = hookfleet_store::catalog::parse(event_type, &stored)?;
        let validator = (info.schema.as_ref())
            .map(compile)
            .transpose()
            .map_err(|e| Error::Unavailable(format!("the schema of {event_type}: {e}")))?;
        let known = Arc::new(Known { info, validator });
        cache.insert(event_type.to_owned(), (stored, known.clone()));
        Ok(known)
    }
}

/// What hookfleet says of one of its operational types.
fn built_in(kind: Operational) -> TypeInfo {
    TypeInfo {
        description: kind.description().to_owned(),
        schema: Some(kind.schema()),
        example: Some(kind.example()),
        deprecated_at: None,
    }
}

fn compile(schema: &serde_json::Value) -> std::result::Result<jsonschema::Validator, String> {
    jsonschema::draft202012::new(schema).map_err(|e| e.to_string())
}

/// The faults of `value` under `validator`, as errors of `field` with their JSON pointers.
fn faults(
    field: &str,
    validator: &jsonschema::Validator,
    value: &serde_json::Value,
) -> Vec<FieldError> {
    validator
        .iter_errors(value)
        .take(MAX_FAULTS)
        .map(|e| FieldError::at(field, e.instance_path().to_string(), e.to_string()))
        .collect()
}

impl Admin {
    /// Every type of the catalog, with what the operator said of it (any token); for the
    /// operator, then the operational types with their built-in descriptions.
    pub async fn event_types(&self, scope: &Scope) -> Result<Vec<EventTypeView>> {
        let mut stored = self.event_types.all().await?;
        let mut views: Vec<EventTypeView> = (self.config.catalog.iter())
            .map(|t| EventTypeView::new(t.as_str(), stored.remove(t.as_str()).unwrap_or_default()))
            .collect();
        if *scope == Scope::Operator {
            views.extend(
                Operational::ALL.map(|kind| EventTypeView::new(kind.name(), built_in(kind))),
            );
        }
        Ok(views)
    }

    /// The types an endpoint of `tenant` may subscribe to: the catalog, or for the operator
    /// tenant the operational types (and Test Webhook's).
    pub(crate) fn catalog_of(&self, tenant: &TenantId) -> Vec<EventType> {
        if *tenant != self.config.operator_tenant {
            return self.config.catalog.clone();
        }
        let test = EventType::TEST.parse().expect("the test type is valid");
        (Operational::ALL.map(Operational::event_type).into_iter())
            .chain([test])
            .collect()
    }

    /// Describes a type of the catalog (operators only); its schema and example are checked.
    pub async fn put_event_type(
        &self,
        scope: &Scope,
        name: &str,
        put: PutEventType,
    ) -> Result<EventTypeView> {
        scope.operator_only("route")?;
        let event_type = self.catalogued(name)?;
        let description = put.description.unwrap_or_default();
        if description.chars().count() > 2000 {
            return Err(Error::field("description", "at most 2000 characters"));
        }
        if let Some(schema) = &put.schema {
            let validator = compile(schema).map_err(|e| Error::field("schema", e))?;
            if let Some(example) = &put.example {
                let faults = faults("example", &validator, example);
                if !faults.is_empty() {
                    return Err(Error::Invalid(faults));
                }
            }
        }
        let before = self.event_types.get(&event_type).await?.unwrap_or_default();
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let info = TypeInfo {
            description,
            schema: put.schema,
            example: put.example,
            deprecated_at: match put.deprecated {
                Some(true) => Some(before.deprecated_at.unwrap_or(now)),
                _ => None,
            },
        };
        self.event_types.put(&event_type, &info).await?;
        tracing::info!(message = "Event type described.", %event_type, schema = info.schema.is_some(), deprecated = info.deprecated_at.is_some());
        Ok(EventTypeView::new(event_type.as_str(), info))
    }

    /// Checks `data` against the type's schema: `Ok` with when the type was deprecated (if
    /// it is), or every fault with its pointer.
    pub(crate) async fn check_data(
        &self,
        event_type: &EventType,
        data: &serde_json::Value,
    ) -> Result<Option<i64>> {
        let Some(stored) = self.event_types.get_raw(event_type).await? else {
            return Ok(None);
        };
        let known = self.schemas.known(event_type.as_str(), stored)?;
        // `is_valid` stops at the first fault and builds no error: the common case is cheap.
        if let Some(validator) = &known.validator
            && !validator.is_valid(data)
        {
            return Err(Error::Invalid(faults("data", validator, data)));
        }
        Ok(known.info.deprecated_at)
    }

    /// The example of a type, for Test Webhook.
    pub(crate) async fn example_of(
        &self,
        event_type: &EventType,
    ) -> Result<Option<serde_json::Value>> {
        if let Some(kind) = Operational::of(event_type.as_str()) {
            return Ok(Some(kind.example()));
        }
        Ok(self
            .event_types
            .get(event_type)
            .await?
            .and_then(|info| info.example))
    }

    /// `name` if it is a type of the catalog, else not found.
    pub(crate) fn catalogued(&self, name: &str) -> Result<EventType> {
        if Operational::of(name).is_some() {
            return Err(Error::NotFound(format!(
                "event type {name} in the catalog: it is one of hookfleet's operational types, described by hookfleet itself"
            )));
        }
        (name.parse::<EventType>().ok())
            .filter(|t| self.config.catalog.contains(t))
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "event type {name} (the catalog is HOOKFLEET_EVENT_TYPES)"
                ))
            })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn faults_carry_json_pointers() {
        let schema = json!({"type": "object", "required": ["agent"],
            "properties": {"agent": {"type": "object", "properties": {"team": {"type": "string"}}},
                           "severity": {"enum": ["low", "high"]}}});
        let validator = compile(&schema).unwrap();
        let data = json!({"agent": {"team": 7}, "severity": "medium"});
        let mut pointers: Vec<String> = faults("data", &validator, &data)
            .into_iter()
            .map(|f| f.pointer.unwrap())
            .collect();
        pointers.sort();
        assert_eq!(pointers, ["/agent/team", "/severity"]);
        assert!(faults("data", &validator, &json!({"agent": {}})).is_empty());
    }

    #[test]
    fn operational_schemas_compile_and_their_examples_meet_them() {
        for kind in Operational::ALL {
            let validator = compile(&kind.schema()).unwrap();
            let faults = faults("example", &validator, &kind.example());
            assert!(faults.is_empty(), "{}: {faults:?}", kind.name());
            assert!(!validator.is_valid(&json!({})), "{}", kind.name());
        }
    }

    #[test]
    fn a_bad_schema_or_a_remote_ref_is_refused() {
        assert!(compile(&json!({"type": "no-such-type"})).is_err());
        assert!(compile(&json!({"$ref": "https://example.com/schema.json"})).is_err());
    }
}
