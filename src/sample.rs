//! sample (in progress)
