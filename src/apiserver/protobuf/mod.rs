//! Kubernetes protobuf request bodies (`application/vnd.kubernetes.protobuf`)
//! decoded into the JSON upstream would produce for the same object.
//!
//! A body is the magic `k8s\0` and a `runtime.Unknown` message (typeMeta,
//! raw, contentEncoding, contentType); `raw` is the object's own message. The
//! messages are described by the generated tables in `schema.rs` (see
//! `scripts/gen-protobuf-schema.py`), which also carry Go's JSON rules per
//! field: Go's protobuf code writes every non-pointer field, zero or not, and
//! Go's JSON encoder then drops zero `omitempty` fields, keeps pointer fields
//! that are set, writes non-pointer structs always (`{}`, `null` for a zero
//! Time) and inlines `json:",inline"` structs. Field order follows the Go
//! structs and map keys are sorted, as encoding/json does.
//!
//! Input is untrusted: every read is bounds-checked, and nesting depth and
//! the number of rendered objects are capped.

mod omitempty;
mod table;
#[rustfmt::skip]
mod schema;
mod wire;

use base64::Engine as _;
pub use omitempty::drop_empty;
use serde_json::{Map, Value};
use std::cell::Cell;
use std::collections::BTreeMap;
use table::*;
use wire::{Raw, Reader};

/// The content type of Kubernetes protobuf bodies.
pub const CONTENT_TYPE: &str = "application/vnd.kubernetes.protobuf";
/// The 4-byte prefix of every Kubernetes protobuf body.
pub const MAGIC: &[u8; 4] = b"k8s\x00";
/// Maximum nesting of messages (and embedded objects) in one body.
const MAX_DEPTH: usize = 100;
/// Messages one body may render: a fixed allowance plus one per input byte
/// (a message on the wire takes at least two). This bounds what absent
/// non-pointer structs, filled with their zero values, can amplify.
const RENDER_ALLOWANCE: usize = 10_000;

/// Decoding context: nesting depth and the remaining render budget.
#[derive(Clone, Copy)]
struct Cx<'b> {
    depth: usize,
    budget: &'b Cell<usize>,
}

impl Cx<'_> {
    fn deeper(self) -> Self {
        Cx {
            depth: self.depth + 1,
            budget: self.budget,
        }
    }
}

/// Decodes a Kubernetes protobuf body into its JSON object, with `kind` and
/// `apiVersion` first.
pub fn decode(body: &[u8]) -> Result<Value, String> {
    let budget = Cell::new(RENDER_ALLOWANCE.saturating_add(body.len()));
    let cx = Cx {
        depth: 0,
        budget: &budget,
    };
    decode_at(body, cx).map_err(|e| format!("invalid protobuf body: {e}"))
}

/// The message index of a top-level kind, if its protobuf form is known.
fn kind_message(api_version: &str, kind: &str) -> Option<usize> {
    if let Ok(i) = schema::KINDS.binary_search_by(|(av, k, _)| (*av, *k).cmp(&(api_version, kind)))
    {
        return Some(usize::from(schema::KINDS[i].2));
    }
    // The meta/v1 option kinds are registered in every group version.
    let known = api_version == "meta.k8s.io/v1"
        || schema::KINDS.iter().any(|(av, _, _)| *av == api_version);
    if known {
        if let Some((_, m)) = schema::META_KINDS.iter().find(|(k, _)| *k == kind) {
            return Some(usize::from(*m));
        }
    }
    None
}

/// Whether a protobuf schema exists for this apiVersion and kind.
pub fn supports(api_version: &str, kind: &str) -> bool {
    kind_message(api_version, kind).is_some()
}

fn decode_at(body: &[u8], cx: Cx) -> Result<Value, String> {
    let rest = body
        .strip_prefix(MAGIC.as_slice())
        .ok_or("the body does not start with the protobuf magic k8s\\0")?;
    let mut api_version = String::new();
    let mut kind = String::new();
    let mut raw: &[u8] = &[];
    let mut content_encoding = String::new();
    let mut r = Reader::new(rest);
    while !r.at_end() {
        let (tag, wt) = r.key()?;
        let v = r.value(tag, wt)?;
        match (tag, v) {
            (1, Raw::Bytes(tm)) => {
                let mut t = Reader::new(tm);
                while !t.at_end() {
                    let (tag, wt) = t.key()?;
                    match (tag, t.value(tag, wt)?) {
                        (1, Raw::Bytes(b)) => api_version = lossy(b),
                        (2, Raw::Bytes(b)) => kind = lossy(b),
                        (1 | 2, _) => return Err("wrong wire type in typeMeta".into()),
                        _ => {}
                    }
                }
            }
            (2, Raw::Bytes(b)) => raw = b,
            (3, Raw::Bytes(b)) => content_encoding = lossy(b),
            (4, Raw::Bytes(_)) => {}
            (1..=4, _) => return Err(format!("wrong wire type for runtime.Unknown field {tag}")),
            _ => {}
        }
    }
    if !content_encoding.is_empty() {
        return Err(format!("unsupported contentEncoding {content_encoding:?}"));
    }
    if kind.is_empty() {
        return Err("typeMeta has no kind".into());
    }
    let idx = kind_message(&api_version, &kind)
        .ok_or_else(|| format!("no protobuf schema for {api_version} {kind}"))?;
    let Value::Object(fields) = render(idx, raw, cx.deeper())? else {
        return Err(format!("{api_version} {kind} is not an object"));
    };
    let mut out = Map::with_capacity(fields.len() + 2);
    out.insert("kind".into(), Value::String(kind));
    out.insert("apiVersion".into(), Value::String(api_version));
    for (k, v) in fields {
        out.entry(k).or_insert(v);
    }
    Ok(Value::Object(out))
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// What the wire held for one field of a message.
enum Slot<'a> {
    Empty,
    /// A singular scalar (the last occurrence wins).
    One(Raw<'a>),
    /// A singular message: its occurrences, merged by concatenation.
    Chunks(Vec<&'a [u8]>),
    List(Vec<Value>),
    Map(BTreeMap<String, Value>),
}

fn wrong_type(m: &M, f: &F) -> String {
    format!("wrong wire type for {}.{}", m.0, f.1)
}

/// Reads one message's fields into slots (unknown fields are skipped).
fn parse<'a>(m: &M, buf: &'a [u8], cx: Cx) -> Result<Vec<Slot<'a>>, String> {
    let mut slots: Vec<Slot<'a>> = m.2.iter().map(|_| Slot::Empty).collect();
    let mut r = Reader::new(buf);
    while !r.at_end() {
        let (tag, wt) = r.key().map_err(|e| format!("{e} in {}", m.0))?;
        let v = r.value(tag, wt).map_err(|e| format!("{e} in {}", m.0))?;
        let Some(i) = m.2.iter().position(|f| f.0 == tag) else {
            continue;
        };
        let f = &m.2[i];
        let kind = f.2 & KIND_MASK;
        if f.2 & MAP != 0 {
            let Raw::Bytes(entry) = v else {
                return Err(wrong_type(m, f));
            };
            let (k, val) = map_entry(m, f, entry, cx)?;
            if !matches!(slots[i], Slot::Map(_)) {
                slots[i] = Slot::Map(BTreeMap::new());
            }
            if let Slot::Map(map) = &mut slots[i] {
                map.insert(k, val);
            }
        } else if f.2 & REP != 0 {
            if !matches!(slots[i], Slot::List(_)) {
                slots[i] = Slot::List(Vec::new());
            }
            let Slot::List(list) = &mut slots[i] else {
                continue;
            };
            match (kind, v) {
                (BOOL | I32 | I64, Raw::Bytes(packed)) => {
                    let mut p = Reader::new(packed);
                    while !p.at_end() {
                        let n = p.varint().map_err(|e| format!("{e} in {}.{}", m.0, f.1))?;
                        list.push(scalar(m, f, Raw::Varint(n))?);
                    }
                }
                (F64, Raw::Bytes(packed)) => {
                    if packed.len() % 8 != 0 {
                        return Err(format!("truncated packed field {}.{}", m.0, f.1));
                    }
                    for c in packed.chunks_exact(8) {
                        let mut a = [0u8; 8];
                        a.copy_from_slice(c);
                        list.push(scalar(m, f, Raw::Fixed64(u64::from_le_bytes(a)))?);
                    }
                }
                (MSG, Raw::Bytes(b)) => list.push(render(usize::from(f.3), b, cx.deeper())?),
                (_, v) => list.push(scalar(m, f, v)?),
            }
        } else if kind == MSG {
            let Raw::Bytes(b) = v else {
                return Err(wrong_type(m, f));
            };
            match &mut slots[i] {
                Slot::Chunks(c) => c.push(b),
                s => *s = Slot::Chunks(vec![b]),
            }
        } else {
            scalar(m, f, v)?; // checks the wire type
            slots[i] = Slot::One(v);
        }
    }
    Ok(slots)
}

/// One entry of a `map<string, V>` field.
fn map_entry(m: &M, f: &F, entry: &[u8], cx: Cx) -> Result<(String, Value), String> {
    let mut key = String::new();
    let mut value: Option<Raw> = None;
    let mut chunks: Vec<&[u8]> = Vec::new();
    let mut r = Reader::new(entry);
    while !r.at_end() {
        let (tag, wt) = r.key().map_err(|e| format!("{e} in {}.{}", m.0, f.1))?;
        let v = r
            .value(tag, wt)
            .map_err(|e| format!("{e} in {}.{}", m.0, f.1))?;
        match (tag, v) {
            (1, Raw::Bytes(b)) => key = lossy(b),
            (1, _) => return Err(wrong_type(m, f)),
            (2, Raw::Bytes(b)) if f.2 & KIND_MASK == MSG => chunks.push(b),
            (2, _) if f.2 & KIND_MASK == MSG => return Err(wrong_type(m, f)),
            (2, v) => value = Some(v),
            _ => {}
        }
    }
    let val = match (f.2 & KIND_MASK, value) {
        (MSG, _) => render_chunks(usize::from(f.3), &chunks, cx)?,
        (_, Some(v)) => scalar(m, f, v)?,
        // An absent value is the zero value (an empty, non-nil []byte).
        (BYTES, None) => Value::String(String::new()),
        (k, None) => zero(k),
    };
    Ok((key, val))
}

/// A scalar field's JSON value, checking the wire type.
fn scalar(m: &M, f: &F, v: Raw) -> Result<Value, String> {
    Ok(match (f.2 & KIND_MASK, v) {
        (STR, Raw::Bytes(b)) => Value::String(lossy(b)),
        (BYTES, Raw::Bytes(b)) => {
            Value::String(base64::engine::general_purpose::STANDARD.encode(b))
        }
        (BOOL, Raw::Varint(n)) => Value::Bool(n != 0),
        (I32, Raw::Varint(n)) => Value::from(n as i32),
        (I64, Raw::Varint(n)) => Value::from(n as i64),
        (F64, Raw::Fixed64(n)) => double(f64::from_bits(n))
            .ok_or_else(|| format!("{}.{} is not a finite number", m.0, f.1))?,
        _ => return Err(wrong_type(m, f)),
    })
}

/// A float64 as Go's encoding/json writes it: integral values without a
/// fraction.
fn double(x: f64) -> Option<Value> {
    if !x.is_finite() {
        return None;
    }
    if x.fract() == 0.0 && x.abs() < 1e15 {
        return Some(Value::from(x as i64));
    }
    serde_json::Number::from_f64(x).map(Value::Number)
}

/// The JSON zero value of a scalar kind.
fn zero(kind: u8) -> Value {
    match kind {
        STR => Value::String(String::new()),
        BOOL => Value::Bool(false),
        I32 | I64 | F64 => Value::from(0),
        _ => Value::Null,
    }
}

fn is_zero(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
    }
}

/// A singular message field from its (merged) occurrences.
fn render_chunks(idx: usize, chunks: &[&[u8]], cx: Cx) -> Result<Value, String> {
    match chunks {
        [] => render(idx, &[], cx.deeper()),
        [one] => render(idx, one, cx.deeper()),
        many => render(idx, &many.concat(), cx.deeper()),
    }
}

/// A message's JSON value.
fn render(idx: usize, buf: &[u8], cx: Cx) -> Result<Value, String> {
    if cx.depth > MAX_DEPTH {
        return Err("objects nested too deeply".into());
    }
    let left = cx.budget.get();
    if left == 0 {
        return Err("too many objects for the body size".into());
    }
    cx.budget.set(left - 1);
    let m = schema::MESSAGES
        .get(idx)
        .ok_or_else(|| format!("schema has no message {idx}"))?;
    let slots = parse(m, buf, cx)?;
    if m.1 != 0 {
        return special(m, buf, slots, cx);
    }
    let mut out = Map::new();
    for (f, slot) in m.2.iter().zip(slots) {
        let presence = f.2 & PRESENCE_MASK;
        let kind = f.2 & KIND_MASK;
        if f.2 & (REP | MAP) != 0 {
            match slot {
                Slot::List(l) if !l.is_empty() => {
                    out.insert(f.1.into(), Value::Array(l));
                }
                Slot::Map(mp) if !mp.is_empty() => {
                    out.insert(f.1.into(), Value::Object(mp.into_iter().collect()));
                }
                _ if presence == A => {
                    out.insert(f.1.into(), Value::Null);
                }
                _ => {}
            }
        } else if kind == MSG {
            let v = match slot {
                Slot::Chunks(c) => Some(render_chunks(usize::from(f.3), &c, cx)?),
                _ if presence == A || presence == IN => {
                    Some(render_chunks(usize::from(f.3), &[], cx)?)
                }
                _ => None,
            };
            match v {
                Some(Value::Object(o)) if presence == IN => {
                    for (k, v) in o {
                        out.insert(k, v);
                    }
                }
                Some(v) if presence != IN => {
                    out.insert(f.1.into(), v);
                }
                _ => {}
            }
        } else {
            match slot {
                Slot::One(raw) => {
                    let v = scalar(m, f, raw)?;
                    if !(presence == Z && is_zero(&v)) {
                        out.insert(f.1.into(), v);
                    }
                }
                _ if presence == A => {
                    out.insert(f.1.into(), zero(kind));
                }
                _ => {}
            }
        }
    }
    Ok(Value::Object(out))
}

/// Takes the slot of field `tag` of a special message.
fn take<'a>(m: &M, slots: &mut [Slot<'a>], tag: u32) -> Slot<'a> {
    m.2.iter()
        .position(|f| f.0 == tag)
        .and_then(|i| slots.get_mut(i))
        .map(|s| std::mem::replace(s, Slot::Empty))
        .unwrap_or(Slot::Empty)
}

fn varint_of(s: Slot) -> Option<u64> {
    match s {
        Slot::One(Raw::Varint(n)) => Some(n),
        _ => None,
    }
}

fn bytes_of<'a>(s: Slot<'a>) -> Option<&'a [u8]> {
    match s {
        Slot::One(Raw::Bytes(b)) => Some(b),
        _ => None,
    }
}

/// Seconds between 0001-01-01 and 1970-01-01: Go's zero time.
const GO_ZERO_UNIX: i64 = -62_135_596_800;

fn special(m: &M, buf: &[u8], mut slots: Vec<Slot>, cx: Cx) -> Result<Value, String> {
    let mut field = |tag| take(m, &mut slots, tag);
    let schema_of = |s: Slot, tag| -> Result<Option<Value>, String> {
        let f = m.2.iter().find(|f| f.0 == tag);
        match (f, s) {
            (Some(f), Slot::Chunks(c)) => Ok(Some(render_chunks(usize::from(f.3), &c, cx)?)),
            _ => Ok(None),
        }
    };
    let list_of = |s: Slot| match s {
        Slot::List(l) if !l.is_empty() => Some(Value::Array(l)),
        _ => None,
    };
    match m.1 {
        SP_INT_OR_STRING => match varint_of(field(1)).unwrap_or(0) {
            0 => Ok(Value::from(varint_of(field(2)).unwrap_or(0) as i32)),
            1 => Ok(Value::String(lossy(bytes_of(field(3)).unwrap_or_default()))),
            t => Err(format!("invalid IntOrString type {t}")),
        },
        SP_QUANTITY => match bytes_of(field(1)) {
            None => Ok(Value::String("0".into())),
            Some([]) => Err("invalid quantity \"\"".into()),
            Some(b) => Ok(Value::String(lossy(b))),
        },
        SP_TIME | SP_MICRO_TIME => {
            if buf.is_empty() {
                return Ok(Value::Null);
            }
            let secs = varint_of(field(1)).unwrap_or(0) as i64;
            let nanos = if m.1 == SP_MICRO_TIME {
                i64::from(varint_of(field(2)).unwrap_or(0) as i32)
            } else {
                0 // metav1.Time keeps whole seconds only
            };
            let secs = secs
                .checked_add(nanos.div_euclid(1_000_000_000))
                .ok_or("time out of range")?;
            let nanos = nanos.rem_euclid(1_000_000_000);
            if secs == GO_ZERO_UNIX && nanos == 0 {
                return Ok(Value::Null);
            }
            format_time(secs, nanos, m.1 == SP_MICRO_TIME).map(Value::String)
        }
        SP_DURATION => Ok(Value::String(go_duration(
            varint_of(field(1)).unwrap_or(0) as i64
        ))),
        SP_RAW_JSON => match bytes_of(field(1)) {
            None | Some([]) => Ok(Value::Null),
            Some(b) if b.starts_with(MAGIC) => decode_at(b, cx.deeper()),
            Some(b) => {
                serde_json::from_slice(b).map_err(|e| format!("invalid JSON in {}: {e}", m.0))
            }
        },
        SP_SCHEMA_OR_ARRAY | SP_SCHEMA_OR_STRING_ARRAY => match list_of(field(2)) {
            Some(a) => Ok(a),
            None => Ok(schema_of(field(1), 1)?.unwrap_or(Value::Null)),
        },
        SP_SCHEMA_OR_BOOL => match schema_of(field(2), 2)? {
            Some(s) => Ok(s),
            None => Ok(Value::Bool(varint_of(field(1)).unwrap_or(0) != 0)),
        },
        SP_ITEMS => Ok(list_of(field(1)).unwrap_or(Value::Null)),
        s => Err(format!("unknown special message form {s}")),
    }
}

/// RFC 3339 in UTC, as metav1.Time ("2006-01-02T15:04:05Z") or
/// metav1.MicroTime ("2006-01-02T15:04:05.000000Z") marshal.
fn format_time(secs: i64, nanos: i64, micro: bool) -> Result<String, String> {
    let t = chrono::DateTime::from_timestamp(secs, 0).ok_or("time out of range")?;
    let year = chrono::Datelike::year(&t);
    if !(0..=9999).contains(&year) {
        return Err("time out of range".into());
    }
    let base = t.format("%Y-%m-%dT%H:%M:%S");
    Ok(if micro {
        format!("{base}.{:06}Z", nanos / 1000)
    } else {
        format!("{base}Z")
    })
}

/// Go's time.Duration.String: "1h0m0s", "30s", "1.5s", "2ms", "0s".
fn go_duration(d: i64) -> String {
    let neg = d < 0;
    let mut u = d.unsigned_abs();
    if u == 0 {
        return "0s".into();
    }
    // the fraction of u / 10^prec without trailing zeros, and u's integer part
    fn frac(u: u64, prec: u32) -> (String, u64) {
        let p = 10u64.pow(prec);
        let f = u % p;
        let mut s = String::new();
        if f != 0 {
            let digits = format!("{:0width$}", f, width = prec as usize);
            s = format!(".{}", digits.trim_end_matches('0'));
        }
        (s, u / p)
    }
    let mut out = String::new();
    if u < 1_000_000_000 {
        let (prec, unit) = if u < 1_000 {
            (0, "ns")
        } else if u < 1_000_000 {
            (3, "µs")
        } else {
            (6, "ms")
        };
        let (f, whole) = frac(u, prec);
        out.push_str(&format!("{whole}{f}{unit}"));
    } else {
        let (f, secs) = frac(u, 9);
        u = secs / 60;
        let s = format!("{}{f}s", secs % 60);
        if u > 0 {
            let m = u % 60;
            u /= 60;
            if u > 0 {
                out.push_str(&format!("{u}h"));
            }
            out.push_str(&format!("{m}m"));
        }
        out.push_str(&s);
    }
    if neg {
        out.insert(0, '-');
    }
    out
}

#[cfg(test)]
mod tests;
