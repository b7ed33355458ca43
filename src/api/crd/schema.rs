//! A CRD version's structural schema (openAPIV3Schema), parsed once when the
//! definition is loaded so every write walks typed nodes, not raw JSON.

use std::collections::BTreeMap;

use regex::Regex;
use serde_json::Value;

/// What a node says about keys it does not list in `properties`.
#[derive(Debug, Clone, Default)]
pub enum Additional {
    /// Not given: unknown keys are pruned (unless preserved).
    #[default]
    Unspecified,
    /// `additionalProperties: true|false`.
    Allowed(bool),
    /// `additionalProperties: {schema}`: a map whose values follow it.
    Schema(Box<Schema>),
}

/// One schema node. Only what pruning, defaulting and validation use.
#[derive(Debug, Clone, Default)]
pub struct Schema {
    pub ty: Option<String>,
    pub format: Option<String>,
    pub nullable: bool,
    pub properties: BTreeMap<String, Schema>,
    pub additional: Additional,
    pub items: Option<Box<Schema>>,
    pub required: Vec<String>,
    pub enumeration: Vec<Value>,
    pub minimum: Option<f64>,
    pub maximum: Option<f64>,
    pub exclusive_minimum: bool,
    pub exclusive_maximum: bool,
    pub multiple_of: Option<f64>,
    pub min_length: Option<u64>,
    pub max_length: Option<u64>,
    pub min_items: Option<u64>,
    pub max_items: Option<u64>,
    pub min_properties: Option<u64>,
    pub max_properties: Option<u64>,
    pub unique_items: bool,
    pub pattern: Option<Regex>,
    pub default: Option<Value>,
    pub preserve_unknown: bool,
    pub embedded: bool,
    pub int_or_string: bool,
    /// `x-kubernetes-list-type`: atomic, set or map.
    pub list_type: Option<String>,
    pub list_map_keys: Vec<String>,
    /// `x-kubernetes-map-type`: granular or atomic.
    pub map_type: Option<String>,
    pub all_of: Vec<Schema>,
    pub any_of: Vec<Schema>,
    pub one_of: Vec<Schema>,
    pub not: Option<Box<Schema>>,
}

fn float(v: &Value, key: &str) -> Option<f64> {
    v.get(key).and_then(Value::as_f64)
}

fn uint(v: &Value, key: &str) -> Option<u64> {
    v.get(key).and_then(Value::as_u64)
}

fn flag(v: &Value, key: &str) -> bool {
    v.get(key).and_then(Value::as_bool).unwrap_or(false)
}

fn string(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(String::from)
}

fn strings(v: &Value, key: &str) -> Vec<String> {
    v.get(key)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

impl Schema {
    /// Parse a JSONSchemaProps object. Errors name the offending keyword.
    pub fn parse(v: &Value) -> Result<Schema, String> {
        if !v.is_object() {
            return Err("must be an object".into());
        }
        let list = |key: &str| -> Result<Vec<Schema>, String> {
            match v.get(key).and_then(Value::as_array) {
                Some(a) => a.iter().map(Schema::parse).collect(),
                None => Ok(Vec::new()),
            }
        };
        let mut properties = BTreeMap::new();
        if let Some(props) = v.get("properties").and_then(Value::as_object) {
            for (k, p) in props {
                properties.insert(
                    k.clone(),
                    Schema::parse(p).map_err(|e| format!("properties[{k}]: {e}"))?,
                );
            }
        }
        let additional = match v.get("additionalProperties") {
            None | Some(Value::Null) => Additional::Unspecified,
            Some(Value::Bool(b)) => Additional::Allowed(*b),
            Some(s) => Additional::Schema(Box::new(
                Schema::parse(s).map_err(|e| format!("additionalProperties: {e}"))?,
            )),
        };
        let items = match v.get("items") {
            None | Some(Value::Null) => None,
            Some(s) => Some(Box::new(
                Schema::parse(s).map_err(|e| format!("items: {e}"))?,
            )),
        };
        let pattern = match v.get("pattern").and_then(Value::as_str) {
            Some(p) => Some(Regex::new(p).map_err(|e| format!("pattern: {e}"))?),
            None => None,
        };
        let not = match v.get("not") {
            None | Some(Value::Null) => None,
            Some(s) => Some(Box::new(Schema::parse(s)?)),
        };
        Ok(Schema {
            ty: string(v, "type").filter(|t| !t.is_empty()),
            format: string(v, "format").filter(|f| !f.is_empty()),
            nullable: flag(v, "nullable"),
            properties,
            additional,
            items,
            required: strings(v, "required"),
            enumeration: v
                .get("enum")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
            minimum: float(v, "minimum"),
            maximum: float(v, "maximum"),
            exclusive_minimum: flag(v, "exclusiveMinimum"),
            exclusive_maximum: flag(v, "exclusiveMaximum"),
            multiple_of: float(v, "multipleOf"),
            min_length: uint(v, "minLength"),
            max_length: uint(v, "maxLength"),
            min_items: uint(v, "minItems"),
            max_items: uint(v, "maxItems"),
            min_properties: uint(v, "minProperties"),
            max_properties: uint(v, "maxProperties"),
            unique_items: flag(v, "uniqueItems"),
            pattern,
            default: v.get("default").cloned(),
            preserve_unknown: flag(v, "x-kubernetes-preserve-unknown-fields"),
            embedded: flag(v, "x-kubernetes-embedded-resource"),
            int_or_string: flag(v, "x-kubernetes-int-or-string"),
            list_type: string(v, "x-kubernetes-list-type"),
            list_map_keys: strings(v, "x-kubernetes-list-map-keys"),
            map_type: string(v, "x-kubernetes-map-type"),
            all_of: list("allOf")?,
            any_of: list("anyOf")?,
            one_of: list("oneOf")?,
            not,
        })
    }

    /// The schema of a map value or an unlisted key, if any.
    pub fn child(&self, key: &str) -> Option<&Schema> {
        self.properties.get(key).or(match &self.additional {
            Additional::Schema(s) => Some(s),
            _ => None,
        })
    }

    /// Whether keys the schema does not list are kept.
    pub fn keeps_unknown(&self) -> bool {
        self.preserve_unknown || matches!(self.additional, Additional::Allowed(true))
    }
}
