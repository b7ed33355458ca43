//! SQLite engine for the revisioned log. (Being written.)
pub struct SqliteBackend;
