//! The generated CRD schema (`crds/cdcpipeline.yaml`) applied to a document, as the apiserver applies
//! it: every `minimum`/`maximum`, `minLength`/`maxLength`, `minItems`/`maxItems`, `enum` and `pattern`
//! it declares ([`schema_violations`], used by [`crate::validate()`]), and every field it does not
//! declare ([`unknown_fields`], what `kubectl apply --validate=strict` refuses).
//!
//! The schema is the one [`crate::crd::crd`] generates from the Rust types, so a bound declared with a
//! `#[schemars(...)]` attribute is enforced by `validate()` without being written a second time.
//! CEL rules (`x-kubernetes-validations`) are not evaluated here: `validate()` has its own rule for each.
//!
//! Over 400 lines: more than half is tests walking every bound of the generated schema.

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};

use regex::Regex;
use serde_json::{Map, Value};

use crate::validate::ValidationError;

/// The `openAPIV3Schema` of the generated CRD, as JSON.
pub fn open_api_schema() -> &'static Value {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let crd = crate::crd::crd();
        let schema = crd
            .spec
            .versions
            .first()
            .and_then(|version| version.schema.as_ref())
            .and_then(|schema| schema.open_api_v3_schema.as_ref())
            .expect("the generated CRD has an openAPIV3Schema");
        serde_json::to_value(schema).expect("a JSON schema serialises to JSON")
    })
}

/// The schema of `spec`.
fn spec_schema() -> &'static Value {
    &open_api_schema()["properties"]["spec"]
}

/// Every value of `spec` (a `CdcPipeline`'s spec as JSON) past a bound, outside an enum or not
/// matching a pattern of the schema, with its path (`spec.sink.workload.replicas`).
pub fn schema_violations(spec: &Value) -> Vec<ValidationError> {
    let mut walk = Walk::default();
    walk.node(spec_schema(), spec, "spec");
    walk.violations
}

/// Every field of `document` (a whole `CdcPipeline` as JSON) its schema does not declare, as the
/// path of the field (`spec.source.replicaIdentityFul`). `metadata` is Kubernetes' own and not
/// walked.
pub fn unknown_fields(document: &Value) -> Vec<ValidationError> {
    let mut walk = Walk::default();
    let Some(object) = document.as_object() else {
        return Vec::new();
    };
    let known_top_level = ["apiVersion", "kind", "metadata", "spec", "status"];
    for (name, value) in object {
        if !known_top_level.contains(&name.as_str()) {
            walk.unknown(name);
        } else if let Some(schema) = open_api_schema()["properties"].get(name) {
            walk.node(schema, value, name);
        }
    }
    walk.unknown
}

#[derive(Default)]
struct Walk {
    violations: Vec<ValidationError>,
    unknown: Vec<ValidationError>,
}

impl Walk {
    fn violation(&mut self, path: &str, message: String) {
        self.violations.push(ValidationError {
            path: path.to_owned(),
            message,
        });
    }

    fn unknown(&mut self, path: &str) {
        self.unknown.push(ValidationError {
            path: path.to_owned(),
            message: "unknown field (not in the CdcPipeline schema)".to_owned(),
        });
    }

    fn node(&mut self, schema: &Value, value: &Value, path: &str) {
        if value.is_null() {
            return;
        }
        if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
            && !allowed.contains(value)
        {
            let list: Vec<String> = allowed.iter().map(Value::to_string).collect();
            self.violation(path, format!("{value} is not one of {}", list.join(", ")));
        }
        match value {
            Value::String(text) => self.string(schema, text, path),
            Value::Number(number) => self.number(schema, number.as_f64(), path),
            Value::Array(items) => self.array(schema, items, path),
            Value::Object(fields) => self.object(schema, fields, path),
            Value::Bool(_) | Value::Null => {}
        }
    }

    fn string(&mut self, schema: &Value, text: &str, path: &str) {
        // NB: the apiserver counts characters (code points), not bytes.
        let length = text.chars().count() as u64;
        if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
            && length < min
        {
            self.violation(path, format!("must be at least {min} character(s) long"));
        }
        if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
            && length > max
        {
            self.violation(
                path,
                format!("is {length} characters long; at most {max} allowed"),
            );
        }
        if let Some(pattern) = schema.get("pattern").and_then(Value::as_str)
            && !pattern_matches(pattern, text)
        {
            self.violation(path, format!("{text:?} does not match {pattern}"));
        }
    }

    fn number(&mut self, schema: &Value, number: Option<f64>, path: &str) {
        let Some(number) = number else { return };
        if let Some(min) = schema.get("minimum").and_then(Value::as_f64)
            && number < min
        {
            self.violation(path, format!("{number} is less than the minimum {min}"));
        }
        if let Some(max) = schema.get("maximum").and_then(Value::as_f64)
            && number > max
        {
            self.violation(path, format!("{number} is more than the maximum {max}"));
        }
    }

    fn array(&mut self, schema: &Value, items: &[Value], path: &str) {
        let count = items.len() as u64;
        if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
            && count < min
        {
            self.violation(path, format!("has {count} item(s); at least {min} needed"));
        }
        if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
            && count > max
        {
            self.violation(path, format!("has {count} items; at most {max} allowed"));
        }
        if let Some(item_schema) = schema.get("items") {
            for (i, item) in items.iter().enumerate() {
                self.node(item_schema, item, &format!("{path}[{i}]"));
            }
        }
    }

    fn object(&mut self, schema: &Value, fields: &Map<String, Value>, path: &str) {
        if schema.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true)) {
            return;
        }
        let properties = schema.get("properties").and_then(Value::as_object);
        let additional = schema.get("additionalProperties").filter(|s| s.is_object());
        for (name, value) in fields {
            let child = format!("{path}.{name}");
            match (properties.and_then(|p| p.get(name)), additional) {
                (Some(property), _) => self.node(property, value, &child),
                (None, Some(additional)) => self.node(additional, value, &child),
                (None, None) => self.unknown(&child),
            }
        }
    }
}

/// Whether `text` matches the schema's `pattern`, compiled once per pattern.
fn pattern_matches(pattern: &str, text: &str) -> bool {
    static COMPILED: OnceLock<Mutex<BTreeMap<String, Regex>>> = OnceLock::new();
    let mut compiled = COMPILED
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if !compiled.contains_key(pattern) {
        let regex = Regex::new(pattern).expect("the CRD's patterns are valid regular expressions");
        compiled.insert(pattern.to_owned(), regex);
    }
    compiled[pattern].is_match(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_fixtures::SHOP_PIPELINE_YAML;

    fn example() -> Value {
        serde_yaml::from_str(SHOP_PIPELINE_YAML).unwrap()
    }

    #[test]
    fn the_example_has_no_unknown_field() {
        assert_eq!(unknown_fields(&example()), []);
    }

    #[test]
    fn unknown_fields_are_named_with_their_path() {
        let mut document = example();
        document["spec"]["source"]["replicaIdentityFul"] = Value::Bool(true);
        document["spec"]["starSchema"]["facts"][0]["lookups"][0]["via"][0]["extra"] = 1.into();
        document["spex"] = Value::Null;
        let paths: Vec<String> = unknown_fields(&document)
            .into_iter()
            .map(|e| e.path)
            .collect();
        assert_eq!(
            paths,
            [
                "spec.source.replicaIdentityFul",
                "spec.starSchema.facts[0].lookups[0].via[0].extra",
                "spex",
            ]
        );
    }

    #[test]
    fn every_pattern_of_the_schema_compiles() {
        fn walk(node: &Value) {
            if let Some(pattern) = node.get("pattern").and_then(Value::as_str) {
                Regex::new(pattern).unwrap_or_else(|e| panic!("{pattern}: {e}"));
            }
            match node {
                Value::Object(map) => map.values().for_each(walk),
                Value::Array(items) => items.iter().for_each(walk),
                _ => {}
            }
        }
        walk(open_api_schema());
    }

    /// One step from a schema node to a child: a field, an array's first item or a map's entry.
    #[derive(Debug, Clone)]
    enum Step {
        Field(String),
        FirstItem,
        Entry,
    }

    /// A schema node declaring at least one bound, with the steps from `spec` to it.
    struct Site {
        steps: Vec<Step>,
        schema: Value,
    }

    const BOUND_KEYWORDS: [&str; 7] = [
        "minimum",
        "maximum",
        "minLength",
        "maxLength",
        "minItems",
        "maxItems",
        "enum",
    ];

    fn bounded_sites(schema: &Value, steps: Vec<Step>, out: &mut Vec<Site>) {
        if BOUND_KEYWORDS
            .iter()
            .chain(&["pattern"])
            .any(|k| schema.get(*k).is_some())
        {
            out.push(Site {
                steps: steps.clone(),
                schema: schema.clone(),
            });
        }
        if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
            for (name, child) in properties {
                let mut next = steps.clone();
                next.push(Step::Field(name.clone()));
                bounded_sites(child, next, out);
            }
        }
        if let Some(items) = schema.get("items") {
            let mut next = steps.clone();
            next.push(Step::FirstItem);
            bounded_sites(items, next, out);
        }
        if let Some(additional) = schema.get("additionalProperties").filter(|s| s.is_object()) {
            let mut next = steps;
            next.push(Step::Entry);
            bounded_sites(additional, next, out);
        }
    }

    fn path_of(steps: &[Step]) -> String {
        let mut path = "spec".to_owned();
        for step in steps {
            match step {
                Step::Field(name) => path.push_str(&format!(".{name}")),
                Step::FirstItem => path.push_str("[0]"),
                Step::Entry => path.push_str(".entry"),
            }
        }
        path
    }

    /// A string within `schema`'s length bounds that matches its pattern (if it has one).
    fn valid_string(schema: &Value) -> String {
        let min = schema.get("minLength").and_then(Value::as_u64).unwrap_or(1);
        let candidates = [
            "a".repeat(min.max(1) as usize),
            "http://a".into(),
            "String".into(),
            format!("{}s", "1".repeat(min.saturating_sub(1).max(1) as usize)),
            format!("/{}", "a".repeat(min.saturating_sub(1).max(1) as usize)),
            "1".repeat(min.max(1) as usize),
        ];
        candidates
            .into_iter()
            .find(|c| {
                schema
                    .get("pattern")
                    .and_then(Value::as_str)
                    .is_none_or(|p| Regex::new(p).unwrap().is_match(c))
            })
            .unwrap_or_else(|| panic!("no valid string for {schema}; extend the candidates"))
    }

    /// The smallest value `schema` accepts: its required fields, filled the same way.
    fn minimal_value(schema: &Value) -> Value {
        if let Some(first) = schema.get("enum").and_then(|e| e.get(0)) {
            return first.clone();
        }
        match schema.get("type").and_then(Value::as_str) {
            Some("string") => Value::String(valid_string(schema)),
            Some("integer") | Some("number") => schema.get("minimum").cloned().unwrap_or(0.into()),
            Some("boolean") => Value::Bool(false),
            Some("array") => {
                let count = schema.get("minItems").and_then(Value::as_u64).unwrap_or(0);
                let item = minimal_value(&schema["items"]);
                Value::Array(vec![item; count as usize])
            }
            _ => {
                let mut object = Map::new();
                for name in schema
                    .get("required")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                {
                    object.insert(name.to_owned(), minimal_value(&schema["properties"][name]));
                }
                Value::Object(object)
            }
        }
    }

    /// The node at `steps` below `spec`, created from the schema where the example lacks it.
    fn node_at<'a>(spec: &'a mut Value, steps: &[Step]) -> &'a mut Value {
        let mut node = spec;
        let mut schema = spec_schema();
        for step in steps {
            match step {
                Step::Field(name) => {
                    schema = &schema["properties"][name];
                    let object = node.as_object_mut().expect("an object on the way");
                    node = object
                        .entry(name.clone())
                        .or_insert_with(|| minimal_value(schema));
                    if node.is_null() {
                        *node = minimal_value(schema);
                    }
                }
                Step::FirstItem => {
                    schema = &schema["items"];
                    let items = node.as_array_mut().expect("an array on the way");
                    if items.is_empty() {
                        items.push(minimal_value(schema));
                    }
                    node = &mut items[0];
                }
                Step::Entry => {
                    schema = &schema["additionalProperties"];
                    let object = node.as_object_mut().expect("a map on the way");
                    node = object
                        .entry("entry")
                        .or_insert_with(|| minimal_value(schema));
                }
            }
        }
        node
    }

    /// Values just past each bound `schema` declares, named by the bound.
    fn values_past_bounds(schema: &Value, current: &Value) -> Vec<(String, Value)> {
        let mut out = Vec::new();
        let number = |key: &str| schema.get(key).and_then(Value::as_f64);
        let count = |key: &str| schema.get(key).and_then(Value::as_u64);
        if let Some(min) = number("minimum") {
            out.push((format!("minimum {min}"), (min as i64 - 1).into()));
        }
        if let Some(max) = number("maximum") {
            out.push((format!("maximum {max}"), (max as i64 + 1).into()));
        }
        if let Some(min) = count("minLength").filter(|&m| m > 0) {
            out.push((
                format!("minLength {min}"),
                "a".repeat(min as usize - 1).into(),
            ));
        }
        if let Some(max) = count("maxLength") {
            out.push((
                format!("maxLength {max}"),
                "a".repeat(max as usize + 1).into(),
            ));
        }
        let item = || {
            current
                .as_array()
                .and_then(|items| items.first().cloned())
                .unwrap_or_else(|| minimal_value(&schema["items"]))
        };
        if let Some(min) = count("minItems").filter(|&m| m > 0) {
            out.push((
                format!("minItems {min}"),
                Value::Array(vec![item(); min as usize - 1]),
            ));
        }
        if let Some(max) = count("maxItems") {
            out.push((
                format!("maxItems {max}"),
                Value::Array(vec![item(); max as usize + 1]),
            ));
        }
        if schema.get("enum").is_some() {
            out.push(("enum".into(), "notInTheEnum".into()));
        }
        if let Some(pattern) = schema.get("pattern").and_then(Value::as_str) {
            let regex = Regex::new(pattern).unwrap();
            let mismatch = ["-", " ", "a b", "!", "a;"]
                .into_iter()
                .find(|c| !regex.is_match(c))
                .unwrap_or_else(|| panic!("no string outside {pattern}; extend the candidates"));
            out.push((format!("pattern {pattern}"), mismatch.into()));
        }
        out
    }

    /// Whether the document is refused at `path`: by parsing (a value the Rust type cannot hold)
    /// or by `validate()`.
    fn refused_at(document: &Value, path: &str) -> Result<(), String> {
        let pipeline: crate::CdcPipeline = match serde_path_to_error::deserialize(document) {
            Ok(pipeline) => pipeline,
            Err(err) if err.path().to_string() == path => return Ok(()),
            Err(err) => return Err(format!("parse error elsewhere: {} {err}", err.path())),
        };
        match crate::validate(&pipeline) {
            Ok(()) => Err("accepted".into()),
            Err(errors) if errors.has_path(path) => Ok(()),
            Err(errors) => Err(format!("refused elsewhere: {errors}")),
        }
    }

    #[test]
    fn validate_refuses_a_value_past_every_bound_of_the_schema() {
        let mut sites = Vec::new();
        bounded_sites(spec_schema(), Vec::new(), &mut sites);
        let mut checked = 0;
        let mut failures = Vec::new();
        for site in &sites {
            let path = path_of(&site.steps);
            let mut base = example();
            let current = node_at(&mut base["spec"], &site.steps).clone();
            for (bound, past) in values_past_bounds(&site.schema, &current) {
                let mut document = base.clone();
                *node_at(&mut document["spec"], &site.steps) = past.clone();
                checked += 1;
                if let Err(why) = refused_at(&document, &path) {
                    let past: String = past.to_string().chars().take(60).collect();
                    let why: String = why.chars().take(200).collect();
                    failures.push(format!("{path} = {past}... (past {bound}): {why}"));
                }
            }
        }
        assert!(checked >= 50, "only {checked} bounds found in the schema");
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }
}
