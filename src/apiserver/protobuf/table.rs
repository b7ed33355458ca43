//! The shapes of the generated schema tables (`schema.rs`).

/// A protobuf message: short name (e.g. `core.v1.Pod`, for errors and
/// tests), special JSON form (0 = plain object, see the `SP_*` constants) and
/// fields in Go struct order (the order Go's JSON encoder writes them).
pub struct M(pub &'static str, pub u8, pub &'static [F]);

/// A field: protobuf tag, JSON name, flags (value kind | cardinality |
/// presence rule), and the message index (into `MESSAGES`) of message values.
pub struct F(pub u32, pub &'static str, pub u8, pub u16);

// Value kinds (bits 0-2).
pub const STR: u8 = 0;
pub const BOOL: u8 = 1;
pub const I32: u8 = 2;
pub const I64: u8 = 3;
pub const F64: u8 = 4;
pub const BYTES: u8 = 5;
pub const MSG: u8 = 6;
pub const KIND_MASK: u8 = 0x07;

// Cardinality (bits 3-4); neither bit: a single value.
pub const REP: u8 = 0x08;
/// `map<string, V>`: entries with key 1, value 2.
pub const MAP: u8 = 0x10;

// Presence rule (bits 5-6); neither bit: emit when present on the wire (Go
// pointer fields: presence is meaningful, zero values included).
/// Go `omitempty` non-pointer field: omitted when zero/empty.
pub const Z: u8 = 0x20;
/// Go non-pointer field without `omitempty`, or non-pointer struct: always
/// emitted, with its zero value when absent.
pub const A: u8 = 0x40;
/// Go `json:",inline"` struct: its fields are merged into the parent object.
pub const IN: u8 = 0x60;
pub const PRESENCE_MASK: u8 = 0x60;

// Special JSON forms of messages.
pub const SP_INT_OR_STRING: u8 = 1;
pub const SP_QUANTITY: u8 = 2;
pub const SP_TIME: u8 = 3;
pub const SP_MICRO_TIME: u8 = 4;
pub const SP_DURATION: u8 = 5;
/// RawExtension, FieldsV1, apiextensions JSON: field 1 holds JSON text.
pub const SP_RAW_JSON: u8 = 6;
pub const SP_SCHEMA_OR_ARRAY: u8 = 7;
pub const SP_SCHEMA_OR_BOOL: u8 = 8;
pub const SP_SCHEMA_OR_STRING_ARRAY: u8 = 9;
/// A named slice type wrapped in a message (`ExtraValue`, `Verbs`): field 1
/// holds the items, and the JSON is the array itself.
pub const SP_ITEMS: u8 = 10;
