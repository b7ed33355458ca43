//! Go's `omitempty` applied to a JSON object of a built-in kind.
//!
//! Upstream decodes every write into Go structs and encodes them again, so
//! an empty map, list or string in an `omitempty` field disappears (a patch
//! that deletes the last annotation leaves no `annotations: {}` behind).
//! The schema tables know which fields are `omitempty`.

use serde_json::Value;

use super::table::*;
use super::{is_zero, kind_message, schema};

/// Deepest nesting walked; built-in kinds are far shallower.
const MAX_DEPTH: usize = 64;

/// Drop zero-valued `omitempty` fields of an object of a known kind.
pub fn drop_empty(api_version: &str, kind: &str, obj: &mut Value) {
    if let Some(idx) = kind_message(api_version, kind) {
        walk(idx, obj, 0);
    }
}

fn walk(idx: usize, obj: &mut Value, depth: usize) {
    let Some(M(_, special, fields)) = schema::MESSAGES.get(idx) else {
        return;
    };
    if *special != 0 || depth > MAX_DEPTH || !obj.is_object() {
        return;
    }
    for F(_, json, flags, msg) in fields.iter() {
        let child = usize::from(*msg);
        if flags & PRESENCE_MASK == IN {
            // An inline struct's fields live in this same object.
            walk(child, obj, depth + 1);
            continue;
        }
        let Some(map) = obj.as_object_mut() else {
            return;
        };
        let Some(v) = map.get_mut(*json) else {
            continue;
        };
        if flags & PRESENCE_MASK == Z && is_zero(v) {
            map.remove(*json);
            continue;
        }
        if flags & KIND_MASK == MSG {
            match (flags & (REP | MAP), v) {
                (REP, Value::Array(items)) => {
                    items.iter_mut().for_each(|i| walk(child, i, depth + 1))
                }
                (MAP, Value::Object(entries)) => {
                    entries.values_mut().for_each(|i| walk(child, i, depth + 1))
                }
                (0, v) => walk(child, v, depth + 1),
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn empty_omitempty_fields_go_and_others_stay() {
        let mut pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "annotations": {}, "labels": {"a": "b"}, "finalizers": []},
            "spec": {
                "containers": [{"name": "c", "image": "i", "env": [], "resources": {}}],
                "volumes": [{"name": "v", "emptyDir": {}}],
                "nodeName": "",
                "securityContext": {},
            },
        });
        drop_empty("v1", "Pod", &mut pod);
        let meta = &pod["metadata"];
        assert!(
            meta.get("annotations").is_none() && meta.get("finalizers").is_none(),
            "{pod}"
        );
        assert_eq!(meta["labels"], json!({"a": "b"}));
        let c = &pod["spec"]["containers"][0];
        assert!(c.get("env").is_none(), "{pod}");
        assert!(pod["spec"].get("nodeName").is_none(), "{pod}");
        // Pointer structs stay, empty or not: emptyDir {} is a volume source.
        assert_eq!(pod["spec"]["volumes"][0]["emptyDir"], json!({}));
        assert_eq!(pod["spec"]["securityContext"], json!({}));
    }
}
