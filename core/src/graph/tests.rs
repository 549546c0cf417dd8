//! graph tests
