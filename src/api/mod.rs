//! What the API serves: the resource registry and selector logic.
pub mod crd;
pub mod fields;
pub mod labels;
pub mod quantity;
pub mod quota;
pub mod registry;
