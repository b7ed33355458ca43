//! Sets of field paths, as managedFields carry them (FieldsV1): a tree whose
//! edges are path elements written the upstream way (`f:name` for a field,
//! `k:{"name":"web"}` for a list-map item, `v:"x"` for a set item) and
//! whose nodes may themselves be members (`.` when they have children).

use std::collections::BTreeMap;

use serde_json::{Map, Value};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Set {
    /// The path leading here is in the set.
    pub member: bool,
    pub children: BTreeMap<String, Set>,
}

/// The element of a field.
pub fn field(name: &str) -> String {
    format!("f:{name}")
}

/// The element of a set item.
pub fn value(v: &Value) -> String {
    format!("v:{v}")
}

/// The element of a list-map item: its key fields, sorted by name (those
/// it lacks are left out).
pub fn key(item: &Value, keys: &[String]) -> String {
    let mut names: Vec<&String> = keys.iter().collect();
    names.sort();
    let parts: Vec<String> = names
        .into_iter()
        .filter_map(|k| {
            let v = item.get(k.as_str())?;
            Some(format!("{}:{v}", Value::String(k.clone())))
        })
        .collect();
    format!("k:{{{}}}", parts.join(","))
}

impl Set {
    pub fn leaf() -> Set {
        Set {
            member: true,
            children: BTreeMap::new(),
        }
    }

    pub fn is_empty(&self) -> bool {
        !self.member && self.children.is_empty()
    }

    pub fn child(&mut self, element: String) -> &mut Set {
        self.children.entry(element).or_default()
    }

    /// Attach `sub` under `element` unless it is empty.
    pub fn put(&mut self, element: String, sub: Set) {
        if sub.is_empty() {
            return;
        }
        self.child(element).union(&sub);
    }

    pub fn union(&mut self, other: &Set) {
        self.member |= other.member;
        for (k, v) in &other.children {
            self.child(k.clone()).union(v);
        }
    }

    /// Members of `self` that are not members of `other`.
    pub fn difference(&self, other: &Set) -> Set {
        let mut out = Set {
            member: self.member && !other.member,
            children: BTreeMap::new(),
        };
        for (k, v) in &self.children {
            let d = match other.children.get(k) {
                Some(o) => v.difference(o),
                None => v.clone(),
            };
            if !d.is_empty() {
                out.children.insert(k.clone(), d);
            }
        }
        out
    }

    pub fn intersection(&self, other: &Set) -> Set {
        let mut out = Set {
            member: self.member && other.member,
            children: BTreeMap::new(),
        };
        for (k, v) in &self.children {
            if let Some(o) = other.children.get(k) {
                let i = v.intersection(o);
                if !i.is_empty() {
                    out.children.insert(k.clone(), i);
                }
            }
        }
        out
    }

    /// Drop every path at or below a member of `gone` (what was removed
    /// from the object is owned by nobody).
    pub fn remove_subtrees(&mut self, gone: &Set) {
        for (k, g) in &gone.children {
            if g.member {
                self.children.remove(k);
            } else if let Some(c) = self.children.get_mut(k) {
                c.remove_subtrees(g);
                if c.is_empty() {
                    self.children.remove(k);
                }
            }
        }
    }

    /// The FieldsV1 form.
    pub fn to_fields_v1(&self) -> Value {
        let mut m = Map::new();
        if self.member && !self.children.is_empty() {
            m.insert(".".into(), Value::Object(Map::new()));
        }
        for (k, v) in &self.children {
            m.insert(k.clone(), v.to_fields_v1());
        }
        Value::Object(m)
    }

    pub fn from_fields_v1(v: &Value) -> Set {
        let Some(m) = v.as_object() else {
            return Set::default();
        };
        let mut out = Set {
            member: m.is_empty(),
            children: BTreeMap::new(),
        };
        for (k, v) in m {
            if k == "." {
                out.member = true;
            } else {
                let c = Set::from_fields_v1(v);
                out.children.insert(k.clone(), c);
            }
        }
        out
    }

    /// The members as upstream prints paths: `.spec.replicas`,
    /// `.spec.containers[name="web"].image`.
    pub fn paths(&self) -> Vec<String> {
        let mut out = Vec::new();
        self.collect_paths(String::new(), &mut out);
        out
    }

    fn collect_paths(&self, prefix: String, out: &mut Vec<String>) {
        if self.member {
            out.push(prefix.clone());
        }
        for (k, v) in &self.children {
            v.collect_paths(format!("{prefix}{}", display(k)), out);
        }
    }
}

/// One element as upstream's fieldpath prints it.
fn display(element: &str) -> String {
    if let Some(f) = element.strip_prefix("f:") {
        return format!(".{f}");
    }
    if let Some(v) = element.strip_prefix("v:") {
        return format!("[={v}]");
    }
    if let Some(k) = element.strip_prefix("k:") {
        if let Ok(Value::Object(m)) = serde_json::from_str::<Value>(k) {
            let parts: Vec<String> = m.iter().map(|(k, v)| format!("{k}={v}")).collect();
            return format!("[{}]", parts.join(","));
        }
    }
    if let Some(i) = element.strip_prefix("i:") {
        return format!("[{i}]");
    }
    element.to_string()
}
