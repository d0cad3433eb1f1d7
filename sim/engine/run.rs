//! The run loop: one virtual clock advanced by the event queue, up to an end time.

use super::queue::EventQueue;
use super::time::{SimDuration, SimTime};

/// What a handler sees: the current instant and the queue to schedule into.
pub struct Scheduler<E> {
    now: SimTime,
    queue: EventQueue<E>,
}

impl<E> Scheduler<E> {
    /// The current virtual instant.
    #[inline]
    pub fn now(&self) -> SimTime {
        self.now
    }

    /// Schedules `event` at the absolute instant `at` (never before now).
    #[inline]
    pub fn at(&mut self, at: SimTime, event: E) {
        self.queue.push(at, event);
    }

    /// Schedules `event` after `delay` from now.
    #[inline]
    pub fn after(&mut self, delay: SimDuration, event: E) {
        self.queue.push(self.now + delay, event);
    }

    /// Events still pending.
    pub fn pending(&self) -> usize {
        self.queue.len()
    }
}

/// Counts of a finished (or paused) run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunStats {
    /// Events handled by this call.
    pub events: u64,
    /// Virtual time when the call returned.
    pub now: SimTime,
}

/// A discrete-event engine over a closed event type `E`.
pub struct Engine<E> {
    scheduler: Scheduler<E>,
    events_total: u64,
}

impl<E> Default for Engine<E> {
    fn default() -> Self {
        Self::new()
    }
}

impl<E> Engine<E> {
    pub fn new() -> Self {
        Engine {
            scheduler: Scheduler {
                now: SimTime::ZERO,
                queue: EventQueue::new(),
            },
            events_total: 0,
        }
    }

    pub fn now(&self) -> SimTime {
        self.scheduler.now
    }

    /// Scheduling access outside the loop (initial events).
    pub fn scheduler(&mut self) -> &mut Scheduler<E> {
        &mut self.scheduler
    }

    /// Total events handled over the engine's life.
    pub fn events_total(&self) -> u64 {
        self.events_total
    }

    /// Handles events in (time, sequence) order until none is due at or before `end`; the clock
    /// then stands at `end` (or stays, if it was already past it). Events after `end` stay queued,
    /// so a later call continues the same run.
    pub fn run_until(
        &mut self,
        end: SimTime,
        mut handle: impl FnMut(&mut Scheduler<E>, E),
    ) -> RunStats {
        let mut events = 0;
        while let Some((time, event)) = self.scheduler.queue.pop_until(end) {
            self.scheduler.now = time;
            handle(&mut self.scheduler, event);
            events += 1;
        }
        if self.scheduler.now < end {
            self.scheduler.now = end;
        }
        self.events_total += events;
        RunStats {
            events,
            now: self.scheduler.now,
        }
    }
}
