//! The pure core of maestro: an environment file's text becomes a validated [`model`],
//! a dependency [`graph`] and the orders and selections plays act on.
//!
//! Nothing here does I/O, reads the process environment, talks to Docker or prints: the
//! caller renders Jinja2, reads files through [`Files`] and shows the diagnostics.

pub mod diag;
pub mod graph;
pub mod model;
pub mod plan;
pub mod registry;
pub mod schema;
pub mod spec;
mod variables;
pub mod yaml;

pub use diag::{Diagnostic, Severity};
pub use schema::{Loaded, load};

/// Access to the files an environment file names (env files), relative to its folder.
pub trait Files: Sync {
    /// The file's text, or why it cannot be read (the reason names the path).
    fn read(&self, path: &str) -> Result<String, String>;
}

/// No files at all: every read fails. For environments that name none.
pub struct NoFiles;

impl Files for NoFiles {
    fn read(&self, path: &str) -> Result<String, String> {
        Err(format!("{path}: no such file"))
    }
}
