//! The discovery-variable contract shared by the controller and `maestro-guest`.
//!
//! The controller injects these variables into every container it creates; the guest
//! (and any script in the container) reads them back. Both sides use this crate, so the
//! names, the normalisation and the parsing are defined exactly once.
//!
//! The contract is MaestroNG 0.8.3's: see `names` for the variable names and `discovery`
//! for the queries (`get_node_list` and friends), with MaestroNG's defaults and messages.
//!
//! This crate does no I/O and never reads the process environment: callers hand it a
//! [`Vars`] view of the variables.
//!
//! [`jinja`] is the other thing both sides share: Jinja2's data model (lists and dicts
//! changed in place, Python's string methods) on minijinja, for the environment file and
//! for `maestro-guest render`.

pub mod discovery;
pub mod jinja;
pub mod names;
pub mod net;
pub mod redact;

pub use discovery::{DiscoveryError, Vars};
pub use names::env_var_name;
