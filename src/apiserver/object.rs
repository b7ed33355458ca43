//! Small accessors on objects held as JSON.

use serde_json::{json, Map, Value};

pub fn meta(obj: &Value) -> Option<&Map<String, Value>> {
    obj.get("metadata").and_then(Value::as_object)
}

/// The metadata map, created if missing.
pub fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
    match obj.get_mut("metadata").and_then(Value::as_object_mut) {
        Some(m) => m,
        None => unreachable!("metadata was just made an object"),
    }
}

pub fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    meta(obj).and_then(|m| m.get(field)).and_then(Value::as_str)
}

pub fn name(obj: &Value) -> Option<&str> {
    meta_str(obj, "name").filter(|s| !s.is_empty())
}

pub fn namespace(obj: &Value) -> Option<&str> {
    meta_str(obj, "namespace").filter(|s| !s.is_empty())
}

pub fn uid(obj: &Value) -> &str {
    meta_str(obj, "uid").unwrap_or("")
}

pub fn labels(obj: &Value) -> Option<&Map<String, Value>> {
    meta(obj)
        .and_then(|m| m.get("labels"))
        .and_then(Value::as_object)
}

pub fn finalizers(obj: &Value) -> Vec<String> {
    meta(obj)
        .and_then(|m| m.get("finalizers"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

pub fn is_deleting(obj: &Value) -> bool {
    meta(obj).is_some_and(|m| m.get("deletionTimestamp").is_some_and(|v| !v.is_null()))
}

/// Whether two objects agree on every top-level field but those in
/// `ignored` (compared in place: no copies of either side).
pub fn same_except(a: &Value, b: &Value, ignored: &[&str]) -> bool {
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else {
        return a == b;
    };
    let kept =
        |m: &'_ Map<String, Value>| m.keys().filter(|k| !ignored.contains(&k.as_str())).count();
    kept(a) == kept(b)
        && a.iter()
            .filter(|(k, _)| !ignored.contains(&k.as_str()))
            .all(|(k, v)| b.get(k) == Some(v))
}

/// What a generation counts changes of: everything but metadata and status.
pub const NOT_SPEC: &[&str] = &["metadata", "status", "apiVersion", "kind"];

/// RFC 3339 in seconds, UTC, as Kubernetes prints metav1.Time.
pub fn now_rfc3339() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Decode a stored object and stamp the revision it was read at.
pub fn from_stored(bytes: &[u8], mod_revision: i64) -> Result<Value, serde_json::Error> {
    let mut obj: Value = serde_json::from_slice(bytes)?;
    meta_mut(&mut obj).insert("resourceVersion".into(), json!(mod_revision.to_string()));
    Ok(obj)
}

/// Encode an object for storage: the resourceVersion is the key's revision,
/// so it is never stored inside the value.
pub fn to_stored(obj: &Value) -> Vec<u8> {
    serde_json::to_vec(&Stored(obj)).unwrap_or_default()
}

/// An object serialized as stored, without copying it first.
struct Stored<'a>(&'a Value);

/// Metadata the server derives on read: never stored.
const NOT_STORED: &[&str] = &["resourceVersion", "selfLink"];

impl serde::Serialize for Stored<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let Value::Object(top) = self.0 else {
            return self.0.serialize(s);
        };
        let mut out = s.serialize_map(Some(top.len()))?;
        for (k, v) in top {
            match (k.as_str(), v) {
                ("metadata", Value::Object(meta)) => out.serialize_entry(k, &StoredMeta(meta))?,
                _ => out.serialize_entry(k, v)?,
            }
        }
        out.end()
    }
}

struct StoredMeta<'a>(&'a Map<String, Value>);

impl serde::Serialize for StoredMeta<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(
            self.0
                .iter()
                .filter(|(k, _)| !NOT_STORED.contains(&k.as_str())),
        )
    }
}

/// Parse a client-given resourceVersion.
pub fn parse_rv(rv: &str) -> Option<i64> {
    rv.parse::<i64>().ok().filter(|r| *r >= 0)
}

/// A random suffix for generateName, from upstream's alphabet (no vowels,
/// so no words).
pub fn random_suffix(len: usize) -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    (0..len)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_form_drops_and_restores_revision() {
        let obj = json!({"metadata": {"name": "a", "resourceVersion": "7"}, "data": {"k": "v"}});
        let bytes = to_stored(&obj);
        assert!(!String::from_utf8_lossy(&bytes).contains("resourceVersion"));
        let back = from_stored(&bytes, 42).expect("decode");
        assert_eq!(back["metadata"]["resourceVersion"], "42");
    }

    #[test]
    fn spec_comparison_ignores_metadata_and_status() {
        let a = json!({"metadata": {"name": "a"}, "spec": {"x": 1}, "status": {"y": 1}});
        let b = json!({"metadata": {"name": "b"}, "spec": {"x": 1}, "status": {"y": 2}});
        assert!(same_except(&a, &b, NOT_SPEC));
        let c = json!({"metadata": {"name": "a"}, "spec": {"x": 2}});
        assert!(!same_except(&a, &c, NOT_SPEC));
        let d = json!({"metadata": {"name": "a"}, "spec": {"x": 1}, "extra": true});
        assert!(!same_except(&a, &d, NOT_SPEC));
        assert!(!same_except(&d, &a, NOT_SPEC));
    }

    #[test]
    fn suffix_uses_safe_alphabet() {
        let s = random_suffix(5);
        assert_eq!(s.len(), 5);
        assert!(s.chars().all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)));
    }
}
