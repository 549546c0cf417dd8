//! Scheduler tests
