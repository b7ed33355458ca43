//! Small helpers for walking and filling `serde_json` objects.
//!
//! Objects reaching admission have already been decoded through their typed
//! form, so a field of the wrong JSON type is not expected; these helpers
//! skip such fields rather than fail, leaving validation to report them.

use serde_json::{Map, Value};

pub type Obj = Map<String, Value>;

/// Set `key` when it is absent or null.
pub fn default(m: &mut Obj, key: &str, value: Value) {
    if m.get(key).is_none_or(Value::is_null) {
        m.insert(key.to_string(), value);
    }
}

/// The child object at `key`, created empty when absent or null. `None` if
/// something else is there.
pub fn ensure_obj<'a>(m: &'a mut Obj, key: &str) -> Option<&'a mut Obj> {
    default(m, key, Value::Object(Map::new()));
    m.get_mut(key).and_then(Value::as_object_mut)
}

/// The child object at `key` when it exists.
pub fn obj_mut<'a>(m: &'a mut Obj, key: &str) -> Option<&'a mut Obj> {
    m.get_mut(key).and_then(Value::as_object_mut)
}

/// Run `f` on every object in the array at `key`.
pub fn each_obj_mut(m: &mut Obj, key: &str, mut f: impl FnMut(&mut Obj)) {
    if let Some(items) = m.get_mut(key).and_then(Value::as_array_mut) {
        for item in items.iter_mut().filter_map(Value::as_object_mut) {
            f(item);
        }
    }
}

/// The value at a dotted path (`spec.template.spec`).
pub fn at<'a>(v: &'a Value, dotted: &str) -> Option<&'a Value> {
    dotted.split('.').try_fold(v, |v, k| v.get(k))
}

/// The array at a dotted path, empty when absent.
pub fn arr_at<'a>(v: &'a Value, dotted: &str) -> &'a [Value] {
    at(v, dotted)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// A string field, "" when absent (Go's zero value).
pub fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// True when the field holds something other than null.
pub fn has(v: &Value, key: &str) -> bool {
    v.get(key).is_some_and(|x| !x.is_null())
}

/// A copy without nulls and empty arrays, the differences upstream's
/// semantic equality does not see (nil and empty slices are equal there).
pub fn semantic(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, x)| !x.is_null() && !x.as_array().is_some_and(Vec::is_empty))
                .map(|(k, x)| (k.clone(), semantic(x)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(semantic).collect()),
        other => other.clone(),
    }
}

pub fn semantic_eq(a: Option<&Value>, b: Option<&Value>) -> bool {
    let norm = |v: Option<&Value>| semantic(v.unwrap_or(&Value::Null));
    let (a, b) = (norm(a), norm(b));
    let empty = |v: &Value| v.is_null() || v.as_array().is_some_and(Vec::is_empty);
    a == b || (empty(&a) && empty(&b))
}
