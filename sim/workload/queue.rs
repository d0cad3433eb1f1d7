//! The pod's request queue: a concurrency limit (how many requests it serves at once) in front
//! of a FIFO backlog, as a pure state machine. The caller owns time and service durations; the
//! queue only decides who runs next.
//!
//! Invariants: at most `concurrency_limit` requests are in service; a request waits only while
//! every slot is taken; the backlog is served strictly in arrival order; with a backlog limit,
//! the backlog never holds more than that.

use std::collections::VecDeque;

use super::WorkloadError;
use crate::engine::{SimDuration, SimTime};

/// A request that has just taken a concurrency slot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Started<T> {
    pub item: T,
    /// Time it spent in the backlog [ns]; zero when a slot was free on arrival.
    pub waited: SimDuration,
}

/// What happened to an arriving request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Admission<T> {
    /// A slot was free: the request runs now.
    Started(Started<T>),
    /// Every slot is taken: the request waits in the backlog.
    Queued,
    /// Every slot is taken and the backlog is full: the request is refused, handed back.
    Rejected(T),
}

/// One pod's concurrency slots and FIFO backlog.
#[derive(Clone, Debug)]
pub struct PodQueue<T> {
    concurrency_limit: u32,
    backlog_limit: Option<usize>,
    in_service: u32,
    backlog: VecDeque<(SimTime, T)>,
}

impl<T> PodQueue<T> {
    /// A queue serving `concurrency_limit` requests at once with an unbounded backlog; a
    /// limit of 0 could serve nothing and is refused.
    pub fn new(concurrency_limit: u32) -> Result<Self, WorkloadError> {
        if concurrency_limit == 0 {
            return Err(WorkloadError::InvalidShape {
                field: "concurrency",
                why: "a pod serves at least one request at a time".to_string(),
            });
        }
        Ok(PodQueue {
            concurrency_limit,
            backlog_limit: None,
            in_service: 0,
            backlog: VecDeque::new(),
        })
    }

    /// The same queue with a backlog that holds at most `limit` waiting requests.
    pub fn with_backlog_limit(mut self, limit: usize) -> Self {
        self.backlog_limit = Some(limit);
        self
    }

    pub fn concurrency_limit(&self) -> u32 {
        self.concurrency_limit
    }

    /// Requests holding a slot now.
    pub fn in_service(&self) -> u32 {
        self.in_service
    }

    /// Requests waiting in the backlog now.
    pub fn backlog_len(&self) -> usize {
        self.backlog.len()
    }

    /// A request arrives at `now`.
    #[inline]
    pub fn arrive(&mut self, now: SimTime, item: T) -> Admission<T> {
        if self.in_service < self.concurrency_limit {
            self.in_service += 1;
            return Admission::Started(Started {
                item,
                waited: SimDuration::ZERO,
            });
        }
        if self
            .backlog_limit
            .is_some_and(|limit| self.backlog.len() >= limit)
        {
            return Admission::Rejected(item);
        }
        self.backlog.push_back((now, item));
        Admission::Queued
    }

    /// The pod died: every waiting request is handed back (oldest first) and no slot is held.
    /// The caller fails the requests that were in service itself.
    pub fn drain(&mut self) -> Vec<T> {
        self.in_service = 0;
        self.backlog.drain(..).map(|(_, item)| item).collect()
    }

    /// A request in service finishes at `now`; the oldest waiting request, if any, takes its
    /// slot and is returned. Completing with nothing in service is a bug in the caller.
    #[inline]
    pub fn complete(&mut self, now: SimTime) -> Option<Started<T>> {
        assert!(
            self.in_service > 0,
            "a completion at {now} with no request in service"
        );
        match self.backlog.pop_front() {
            Some((arrived, item)) => Some(Started {
                item,
                waited: now.since(arrived),
            }),
            None => {
                self.in_service -= 1;
                None
            }
        }
    }
}
