//! Scenarios: the file a user writes (or takes from `scenarios/`), the World built from it and
//! the manifests, the deterministic run, and the expectations checked on its result.
//!
//! Invariants: nothing is simulated on half-read input (every file is read and every reference
//! resolved before the first event); the same scenario and seed give byte-identical JSON.

pub mod build;
pub mod schema;
pub mod world;

pub use build::{Loaded, RunResult, ScenarioError, load, run};
