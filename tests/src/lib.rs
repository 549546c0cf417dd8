//! Workspace-level tests of maestro live in `tests/`: generated inputs against the core.
//! This library is empty; it exists because a package needs a target.
