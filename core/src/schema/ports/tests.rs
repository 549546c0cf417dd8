//! port tests
