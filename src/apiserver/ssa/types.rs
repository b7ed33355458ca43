//! The shape server-side apply needs of a type: which objects are
//! granular (merged key by key) or atomic, and which lists are atomic, sets
//! or maps keyed by some fields. Read from the OpenAPI extensions
//! (`x-kubernetes-list-type`, `x-kubernetes-list-map-keys`,
//! `x-kubernetes-map-type`) of the built-in definitions and of a CRD's
//! structural schema, so no kind is described by hand.

use std::collections::HashMap;
use std::sync::OnceLock;

use serde_json::{Map, Value};

use crate::api::crd::schema::{Additional, Schema};
use crate::apiserver::openapi::schemas;

pub type TypeId = u32;

/// How a list's items are told apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListKind {
    Atomic,
    Set,
    /// Keyed by these fields.
    Map(Vec<String>),
}

#[derive(Debug, Clone)]
pub enum Ty {
    /// A scalar, or anything replaced as a whole.
    Atomic,
    /// Unknown content: objects are granular, lists atomic (upstream's
    /// "deduced" type).
    Deduced,
    Object {
        fields: HashMap<String, TypeId>,
        /// The type of keys not in `fields` (a map's values).
        rest: Option<TypeId>,
    },
    List {
        kind: ListKind,
        item: TypeId,
    },
}

/// Types in an arena; `TyRef` points into one.
#[derive(Debug, Default)]
pub struct Types {
    nodes: Vec<Ty>,
    /// For a custom resource: the built-in ObjectMeta serves `metadata`.
    meta: Option<TyRef<'static>>,
}

#[derive(Debug, Clone, Copy)]
pub struct TyRef<'a> {
    types: &'a Types,
    id: TypeId,
}

const ATOMIC: TypeId = 0;
const DEDUCED: TypeId = 1;
/// The first node `from_crd` adds.
const CRD_ROOT: TypeId = 2;

impl Types {
    fn new() -> Types {
        Types {
            nodes: vec![Ty::Atomic, Ty::Deduced],
            meta: None,
        }
    }

    fn push(&mut self, ty: Ty) -> TypeId {
        self.nodes.push(ty);
        (self.nodes.len() - 1) as TypeId
    }

    #[cfg(test)]
    pub fn deduced() -> TyRef<'static> {
        let b = builtin();
        TyRef {
            types: &b.types,
            id: DEDUCED,
        }
    }

    /// The type of a CRD version's objects (deduced without a schema).
    pub fn from_crd(schema: Option<&Schema>) -> Types {
        let mut t = Types::new();
        let b = builtin();
        t.meta = b.object_meta.map(|id| TyRef {
            types: &b.types,
            id,
        });
        if let Some(s) = schema {
            t.add_schema(s);
        } else {
            t.push(Ty::Deduced);
        }
        t
    }

    /// The root of an arena built by `from_crd`.
    pub fn root(&self) -> TyRef<'_> {
        TyRef {
            types: self,
            id: CRD_ROOT,
        }
    }

    fn add_schema(&mut self, s: &Schema) -> TypeId {
        let id = self.push(Ty::Atomic);
        let ty = match s.ty.as_deref() {
            Some("object")
                if !s.properties.is_empty()
                    || !matches!(
                        s.additional,
                        Additional::Unspecified | Additional::Allowed(false)
                    )
                    || s.preserve_unknown
                    || s.embedded =>
            {
                let fields = s
                    .properties
                    .iter()
                    .map(|(k, v)| (k.clone(), self.add_schema(v)))
                    .collect();
                let rest = match &s.additional {
                    Additional::Schema(v) => Some(self.add_schema(v)),
                    _ if s.preserve_unknown => Some(DEDUCED),
                    _ => None,
                };
                if s.map_type.as_deref() == Some("atomic") {
                    Ty::Atomic
                } else {
                    Ty::Object { fields, rest }
                }
            }
            Some("object") => Ty::Object {
                fields: HashMap::new(),
                rest: None,
            },
            Some("array") => {
                let item = match &s.items {
                    Some(i) => self.add_schema(i),
                    None => DEDUCED,
                };
                Ty::List {
                    kind: list_kind(s.list_type.as_deref(), &s.list_map_keys, None),
                    item,
                }
            }
            None if s.preserve_unknown => Ty::Deduced,
            _ => Ty::Atomic,
        };
        self.nodes[id as usize] = ty;
        id
    }
}

fn list_kind(list_type: Option<&str>, keys: &[String], merge_key: Option<&str>) -> ListKind {
    match list_type {
        Some("map") if !keys.is_empty() => ListKind::Map(keys.to_vec()),
        Some("set") => ListKind::Set,
        Some(_) => ListKind::Atomic,
        // Untagged built-in lists with a patch merge key merge by it, as
        // upstream's conversion of the OpenAPI documents does.
        None => match merge_key {
            Some(k) => ListKind::Map(vec![k.to_string()]),
            None => ListKind::Atomic,
        },
    }
}

impl<'a> TyRef<'a> {
    pub fn ty(&self) -> &'a Ty {
        &self.types.nodes[self.id as usize]
    }

    fn at(&self, id: TypeId) -> TyRef<'a> {
        TyRef {
            types: self.types,
            id,
        }
    }

    /// The type of an object's field (a custom resource's metadata is the
    /// built-in ObjectMeta).
    pub fn field(&self, name: &str) -> TyRef<'a> {
        if let (Some(meta), CRD_ROOT, "metadata") = (self.types.meta, self.id, name) {
            return meta;
        }
        match self.ty() {
            Ty::Object { fields, rest } => match fields.get(name) {
                Some(id) => self.at(*id),
                None => self.at(rest.unwrap_or(DEDUCED)),
            },
            _ => self.at(DEDUCED),
        }
    }

    pub fn item(&self) -> TyRef<'a> {
        match self.ty() {
            Ty::List { item, .. } => self.at(*item),
            _ => self.at(DEDUCED),
        }
    }

    /// Whether this value merges part by part.
    pub fn granular_object(&self) -> bool {
        matches!(self.ty(), Ty::Object { .. } | Ty::Deduced)
    }

    /// The list kind of a list type (atomic for anything else).
    pub fn list_kind(&self) -> &'a ListKind {
        static ATOMIC_LIST: ListKind = ListKind::Atomic;
        match self.ty() {
            Ty::List { kind, .. } => kind,
            _ => &ATOMIC_LIST,
        }
    }

    /// A map of arbitrary keys (labels), not a struct.
    pub fn is_map(&self) -> bool {
        matches!(self.ty(), Ty::Object { fields, rest: Some(_) } if fields.is_empty())
            || matches!(self.ty(), Ty::Deduced)
    }
}

/// The built-in types, converted once from the embedded definitions.
pub struct Builtin {
    types: Types,
    kinds: HashMap<(String, String), TypeId>,
    object_meta: Option<TypeId>,
}

pub fn builtin() -> &'static Builtin {
    static B: OnceLock<Builtin> = OnceLock::new();
    B.get_or_init(|| {
        let defs = schemas::builtin();
        let mut conv = Converter {
            defs: &defs,
            types: Types::new(),
            named: HashMap::new(),
        };
        let mut kinds = HashMap::new();
        for (name, def) in &defs {
            let Some(gvks) = def["x-kubernetes-group-version-kind"].as_array() else {
                continue;
            };
            let id = conv.named(name);
            for g in gvks {
                let (group, version, kind) = (
                    g["group"].as_str().unwrap_or(""),
                    g["version"].as_str().unwrap_or(""),
                    g["kind"].as_str().unwrap_or(""),
                );
                let api_version = if group.is_empty() {
                    version.to_string()
                } else {
                    format!("{group}/{version}")
                };
                kinds.insert((api_version, kind.to_string()), id);
            }
        }
        let object_meta = Some(conv.named("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"));
        Builtin {
            types: conv.types,
            kinds,
            object_meta,
        }
    })
}

impl Builtin {
    /// The type of a built-in kind; deduced for anything unknown.
    pub fn kind(&'static self, api_version: &str, kind: &str) -> TyRef<'static> {
        let id = self
            .kinds
            .get(&(api_version.to_string(), kind.to_string()))
            .copied()
            .unwrap_or(DEDUCED);
        TyRef {
            types: &self.types,
            id,
        }
    }
}

struct Converter<'d> {
    defs: &'d Map<String, Value>,
    types: Types,
    named: HashMap<String, TypeId>,
}

impl Converter<'_> {
    fn named(&mut self, name: &str) -> TypeId {
        if let Some(id) = self.named.get(name) {
            return *id;
        }
        let id = self.types.push(Ty::Atomic);
        self.named.insert(name.to_string(), id);
        let defs = self.defs;
        if let Some(def) = defs.get(name) {
            let ty = self.convert(def);
            self.types.nodes[id as usize] = ty;
        }
        id
    }

    fn schema(&mut self, s: &Value) -> TypeId {
        if let Some(r) = reference(s) {
            return self.named(r);
        }
        let ty = self.convert(s);
        match ty {
            Ty::Atomic => ATOMIC,
            Ty::Deduced => DEDUCED,
            other => self.types.push(other),
        }
    }

    fn convert(&mut self, s: &Value) -> Ty {
        if let Some(r) = reference(s) {
            let id = self.named(r);
            return self.types.nodes[id as usize].clone();
        }
        match s["type"].as_str() {
            Some("object") => {
                if s["x-kubernetes-map-type"] == "atomic" {
                    return Ty::Atomic;
                }
                let mut fields = HashMap::new();
                if let Some(props) = s["properties"].as_object() {
                    for (k, v) in props {
                        let id = self.schema(v);
                        fields.insert(k.clone(), id);
                    }
                }
                let rest = match &s["additionalProperties"] {
                    Value::Object(_) => Some(self.schema(&s["additionalProperties"])),
                    _ if fields.is_empty() => Some(DEDUCED),
                    _ => None,
                };
                Ty::Object { fields, rest }
            }
            Some("array") => {
                let item = self.schema(&s["items"]);
                let keys: Vec<String> = s["x-kubernetes-list-map-keys"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(Value::as_str)
                            .map(String::from)
                            .collect()
                    })
                    .unwrap_or_default();
                let kind = list_kind(
                    s["x-kubernetes-list-type"].as_str(),
                    &keys,
                    s["x-kubernetes-patch-merge-key"].as_str(),
                );
                Ty::List { kind, item }
            }
            _ => Ty::Atomic,
        }
    }
}

/// The definition a schema refers to, directly or as `allOf: [{$ref}]`.
fn reference(s: &Value) -> Option<&str> {
    let r = s["$ref"]
        .as_str()
        .or_else(|| s["allOf"].get(0).and_then(|a| a["$ref"].as_str()))?;
    r.strip_prefix(schemas::REF_V2)
}
