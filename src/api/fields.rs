//! Field selectors. (Being written.)
