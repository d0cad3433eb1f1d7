//! The event queue: events come off in order of (time, insertion sequence), so two events
//! scheduled for the same instant leave in the order they were scheduled.
//!
//! It is a radix heap (Ahuja, Mehlhorn, Orlin and Tarjan, 1990) over the 128-bit key
//! `time << 64 | seq`. A discrete-event run never schedules into the past, so keys are monotone:
//! every pushed key is at least the last popped one. Bucket `i` holds the keys whose highest bit
//! differing from the last popped key is bit `i - 1`; a pop empties the lowest non-empty bucket
//! into the buckets below it. Each event moves down a handful of times in all, and every move is
//! a sequential scan of a `Vec`, which is why this beats a binary heap's scattered sift-downs once
//! the pending set outgrows the cache.
//!
//! Invariants: no allocation per event once the bucket vectors have grown; `pop` never returns
//! an event earlier than one it returned before; pushing into the past is a bug and panics.

use super::time::SimTime;

const N_BUCKETS: usize = 129;

/// A monotone priority queue of events keyed by (time, insertion sequence).
pub struct EventQueue<E> {
    buckets: Vec<Vec<(u128, E)>>,
    /// The key of the last popped event (or of the minimum, after a redistribution).
    last: u128,
    /// Insertion counter: the low half of every key.
    next_seq: u64,
    len: usize,
}

impl<E> Default for EventQueue<E> {
    fn default() -> Self {
        Self::new()
    }
}

#[inline]
fn key(time: SimTime, seq: u64) -> u128 {
    (u128::from(time.as_nanos()) << 64) | u128::from(seq)
}

#[inline]
fn time_of(key: u128) -> SimTime {
    SimTime::from_nanos((key >> 64) as u64)
}

impl<E> EventQueue<E> {
    pub fn new() -> Self {
        EventQueue { buckets: (0..N_BUCKETS).map(|_| Vec::new()).collect(), last: 0, next_seq: 0, len: 0 }
    }

    #[inline]
    fn bucket_of(&self, key: u128) -> usize {
        (128 - (key ^ self.last).leading_zeros()) as usize
    }

    /// Number of pending events.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The instant of the earliest pending event, if any.
    pub fn next_time(&mut self) -> Option<SimTime> {
        if self.len == 0 {
            return None;
        }
        self.settle();
        Some(time_of(self.last))
    }

    /// Schedules `event` at `time`. `time` must not precede the last popped event's time.
    #[inline]
    pub fn push(&mut self, time: SimTime, event: E) {
        let k = key(time, self.next_seq);
        assert!(
            k >= self.last,
            "event scheduled at {time}, before the current time {}: the engine never goes back",
            time_of(self.last)
        );
        self.next_seq += 1;
        let bucket = self.bucket_of(k);
        self.buckets[bucket].push((k, event));
        self.len += 1;
    }

    /// Removes and returns the earliest event with its time.
    #[inline]
    pub fn pop(&mut self) -> Option<(SimTime, E)> {
        if self.len == 0 {
            return None;
        }
        self.settle();
        let (k, event) = self.buckets[0].pop().expect("settle leaves the minimum in bucket 0");
        self.len -= 1;
        Some((time_of(k), event))
    }

    /// Removes the earliest event if it is due at or before `end`.
    #[inline]
    pub fn pop_until(&mut self, end: SimTime) -> Option<(SimTime, E)> {
        match self.next_time() {
            Some(t) if t <= end => self.pop(),
            _ => None,
        }
    }

    /// Makes bucket 0 hold the minimum key (keys are unique, so it holds exactly that one).
    #[inline]
    fn settle(&mut self) {
        if !self.buckets[0].is_empty() {
            return;
        }
        let source = (1..N_BUCKETS).find(|&i| !self.buckets[i].is_empty()).expect("len > 0 means a non-empty bucket");
        let mut items = std::mem::take(&mut self.buckets[source]);
        self.last = items.iter().map(|(k, _)| *k).min().expect("bucket is non-empty");
        for (k, event) in items.drain(..) {
            let bucket = self.bucket_of(k);
            debug_assert!(bucket < source);
            self.buckets[bucket].push((k, event));
        }
        // Give the emptied vector's capacity back to its bucket, so no hold allocates.
        self.buckets[source] = items;
    }
}
