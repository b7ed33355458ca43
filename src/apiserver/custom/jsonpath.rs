//! The JSONPath subset printer columns use: `.spec.replicas`, `.a[0].b`,
//! `.a[*].b`, `['dotted.key']` and filters like
//! `.status.conditions[?(@.type=="Ready")].status`.

use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
enum Step {
    Key(String),
    Index(i64),
    All,
    /// `[?(@.a.b=="v")]` or `!=`.
    Filter {
        path: Vec<String>,
        equal: bool,
        value: Value,
    },
}

/// A parsed path.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonPath(Vec<Step>);

fn quoted(s: &str) -> Option<&str> {
    let s = s.trim();
    for q in ['"', '\''] {
        if let Some(inner) = s.strip_prefix(q).and_then(|r| r.strip_suffix(q)) {
            return Some(inner);
        }
    }
    None
}

fn filter(expr: &str) -> Result<Step, String> {
    let (lhs, rhs, equal) = if let Some((l, r)) = expr.split_once("==") {
        (l, r, true)
    } else if let Some((l, r)) = expr.split_once("!=") {
        (l, r, false)
    } else {
        return Err(format!("unsupported filter {expr:?}"));
    };
    let lhs = lhs
        .trim()
        .strip_prefix("@.")
        .ok_or_else(|| format!("unsupported filter {expr:?}"))?;
    let value = match quoted(rhs) {
        Some(s) => Value::String(s.to_string()),
        None => serde_json::from_str(rhs.trim()).map_err(|_| format!("bad value in {expr:?}"))?,
    };
    Ok(Step::Filter {
        path: lhs.split('.').map(String::from).collect(),
        equal,
        value,
    })
}

impl JsonPath {
    pub fn parse(text: &str) -> Result<JsonPath, String> {
        let mut s = text.trim();
        if let Some(inner) = s.strip_prefix('{').and_then(|r| r.strip_suffix('}')) {
            s = inner.trim();
        }
        let mut steps = Vec::new();
        let mut rest = s;
        while !rest.is_empty() {
            if let Some(r) = rest.strip_prefix('.') {
                let end = r.find(['.', '[']).unwrap_or(r.len());
                let key = &r[..end];
                if key.is_empty() {
                    return Err(format!("empty field name in {text:?}"));
                }
                steps.push(if key == "*" {
                    Step::All
                } else {
                    Step::Key(key.to_string())
                });
                rest = &r[end..];
            } else if let Some(r) = rest.strip_prefix('[') {
                let end = r
                    .find(']')
                    .ok_or_else(|| format!("unclosed [ in {text:?}"))?;
                let inner = &r[..end];
                steps.push(if inner == "*" {
                    Step::All
                } else if let Some(f) = inner.strip_prefix("?(").and_then(|f| f.strip_suffix(')')) {
                    filter(f)?
                } else if let Some(k) = quoted(inner) {
                    Step::Key(k.to_string())
                } else {
                    Step::Index(
                        inner
                            .trim()
                            .parse()
                            .map_err(|_| format!("bad index {inner:?} in {text:?}"))?,
                    )
                });
                rest = &r[end + 1..];
            } else {
                return Err(format!("unexpected {rest:?} in {text:?}"));
            }
        }
        Ok(JsonPath(steps))
    }

    /// Every value the path reaches, in document order.
    pub fn find<'a>(&self, root: &'a Value) -> Vec<&'a Value> {
        let mut cur = vec![root];
        for step in &self.0 {
            let mut next = Vec::new();
            for v in cur {
                match step {
                    Step::Key(k) => next.extend(v.get(k)),
                    Step::Index(i) => {
                        if let Some(a) = v.as_array() {
                            let idx = if *i < 0 { a.len() as i64 + i } else { *i };
                            next.extend(usize::try_from(idx).ok().and_then(|i| a.get(i)));
                        }
                    }
                    Step::All => match v {
                        Value::Array(a) => next.extend(a.iter()),
                        Value::Object(m) => next.extend(m.values()),
                        _ => {}
                    },
                    Step::Filter { path, equal, value } => {
                        if let Some(a) = v.as_array() {
                            next.extend(a.iter().filter(|e| {
                                let got = path.iter().try_fold(*e, |acc, k| acc.get(k));
                                (got == Some(value)) == *equal
                            }));
                        }
                    }
                }
            }
            cur = next;
        }
        cur
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn simple_paths_and_filters() {
        let o = json!({"spec": {"replicas": 3, "a.b": "dotted", "list": [{"n": 1}, {"n": 2}]},
            "status": {"conditions": [{"type": "Synced", "status": "False"}, {"type": "Ready", "status": "True"}]}});
        let get = |p: &str| -> Vec<Value> {
            JsonPath::parse(p)
                .expect("parses")
                .find(&o)
                .into_iter()
                .cloned()
                .collect()
        };
        assert_eq!(get(".spec.replicas"), [json!(3)]);
        assert_eq!(get("{.spec.replicas}"), [json!(3)]);
        assert_eq!(get(".spec['a.b']"), [json!("dotted")]);
        assert_eq!(get(".spec.list[1].n"), [json!(2)]);
        assert_eq!(get(".spec.list[*].n"), [json!(1), json!(2)]);
        assert_eq!(
            get(r#".status.conditions[?(@.type=="Ready")].status"#),
            [json!("True")]
        );
        assert!(get(".spec.missing").is_empty());
        assert!(JsonPath::parse(".spec[").is_err());
    }
}
