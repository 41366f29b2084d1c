//! What the files under `deploy/` name: rule files, rules, the dashboard's queries, and
//! the metric names in them compared with a scrape.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

pub fn deploy(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(path)
}

/// The rule files `deploy/prometheus/prometheus.yml` lists, as paths.
pub fn rule_files() -> Vec<PathBuf> {
    let config = std::fs::read_to_string(deploy("prometheus/prometheus.yml")).unwrap();
    let list = (config.lines())
        .skip_while(|line| *line != "rule_files:")
        .skip(1)
        .take_while(|line| line.starts_with(' ') || line.is_empty());
    let files: Vec<PathBuf> = list
        .filter_map(|line| line.trim().strip_prefix("- "))
        .map(|file| deploy("prometheus").join(file))
        .collect();
    assert!(!files.is_empty(), "no rule_files in prometheus.yml");
    files
}

/// Every rule file, one after the other.
pub fn rules_text() -> String {
    let texts = rule_files()
        .into_iter()
        .map(|f| std::fs::read_to_string(f).unwrap());
    texts.collect::<Vec<_>>().join("\n")
}

pub fn dashboard() -> Value {
    let text = std::fs::read_to_string(deploy("grafana/dashboards/hookfleet.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Every string of the dashboard (expressions, variable queries, titles), one a line.
pub fn dashboard_text() -> String {
    fn strings(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::String(s) => out.push(s.clone()),
            Value::Array(items) => items.iter().for_each(|v| strings(v, out)),
            Value::Object(fields) => fields.values().for_each(|v| strings(v, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    strings(&dashboard(), &mut out);
    out.join("\n")
}

/// The PromQL of every panel target.
pub fn dashboard_exprs() -> Vec<String> {
    let dashboard = dashboard();
    let panels = dashboard["panels"].as_array().unwrap();
    let targets = panels
        .iter()
        .filter_map(|p| p["targets"].as_array())
        .flatten();
    let exprs: Vec<String> = targets
        .map(|t| t["expr"].as_str().unwrap().to_owned())
        .collect();
    assert!(exprs.len() >= 10, "too few panel expressions: {exprs:?}");
    exprs
}

/// Every name starting with `prefix` in the rule files or the dashboard.
pub fn named(prefix: &str) -> BTreeSet<String> {
    let mut found = tokens(&rules_text(), prefix);
    found.extend(tokens(&dashboard_text(), prefix));
    found
}

/// Every token of `text` that starts with `prefix` at a word boundary, up to the first
/// character that cannot be in a metric or recorded-series name.
pub fn tokens(text: &str, prefix: &str) -> BTreeSet<String> {
    let name_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == ':';
    let mut found = BTreeSet::new();
    for (at, _) in text.match_indices(prefix) {
        let before = text[..at].chars().next_back();
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
            continue;
        }
        let rest = &text[at + prefix.len()..];
        let len = rest.find(|c| !name_char(c)).unwrap_or(rest.len());
        // A bare prefix is prose ("`hookfleet:<what>`"), not a name.
        if len == 0 {
            continue;
        }
        found.insert(text[at..at + prefix.len() + len].to_owned());
    }
    found
}

/// `# TYPE <name> <kind>` of a Prometheus text page: family name to kind.
pub fn families(text: &str) -> BTreeMap<String, String> {
    let types = text.lines().filter_map(|l| l.strip_prefix("# TYPE "));
    let pairs = types.filter_map(|t| t.split_once(' '));
    pairs
        .map(|(name, kind)| (name.to_owned(), kind.trim().to_owned()))
        .collect()
}

/// Whether `name` is an exported family, or a histogram's `_bucket`, `_sum` or `_count`.
pub fn exported(name: &str, families: &BTreeMap<String, String>) -> bool {
    let histogram_part = ["_bucket", "_sum", "_count"].iter().any(|suffix| {
        let base = name.strip_suffix(suffix);
        base.is_some_and(|base| families.get(base).is_some_and(|kind| kind == "histogram"))
    });
    families.contains_key(name) || histogram_part
}
