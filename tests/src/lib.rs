//! Workspace-level tests of maestro live in `tests/`. The library holds what they and the
//! benchmarks share: [`simship`], the simulated ship, and [`rng`], the generated-input
//! tests' generator.

pub mod rng;
pub mod simship;
