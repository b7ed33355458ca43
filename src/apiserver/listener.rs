//! HTTPS listener. (Being written.)
