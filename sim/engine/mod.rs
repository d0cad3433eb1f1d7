//! The bottom of the stack: virtual time, the event queue, the RNG tree and the run loop.
//!
//! Invariants: `engine` reads no wall clock and spawns no thread; events leave the queue in
//! (time, insertion sequence) order; virtual time never goes backwards; every random draw comes
//! from a named stream of the run's [`RngTree`].

mod queue;
mod rng;
mod run;
mod time;

pub use queue::EventQueue;
pub use rng::{ChildTree, RngTree, SimRng};
pub use run::{Engine, RunStats, Scheduler};
pub use time::{DurationError, SimDuration, SimTime, parse_duration};

#[cfg(test)]
mod tests;
