//! Label selectors. (Being written.)
