//! Defaulting and validation of built-in kinds.
pub mod defaults;
pub mod validation;
