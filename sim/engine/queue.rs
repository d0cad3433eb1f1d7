//! The event queue: events come off in order of (time, insertion sequence), so two events
//! scheduled for the same instant leave in the order they were scheduled.
//!
//! It is a timing wheel (Varghese and Lauck, 1987) in front of a binary heap, the shape of a
//! calendar queue (Brown, 1988) with a fixed year. Time is cut into slots of `2^SLOT_BITS` ns
//! (65.5 µs); the wheel holds the events of the next `WHEEL_SLOTS` slots (1.07 s), each slot a
//! list threaded through one slab, and a bitmap of the occupied slots. Events further out wait in
//! the `far` heap and move onto the wheel as its window slides over them; the events of the
//! current slot sit in the small `due` heap, which alone decides the order within a slot. A run
//! schedules most of its events (arrivals, connections, service completions) less than a second
//! ahead, so most events cost a slab write and a bit on the way in and a heap of one or two on
//! the way out, instead of the logarithmic sift of a heap over everything pending.
//!
//! Invariants: `due` holds every pending event of the slot `cursor` and before it; the wheel
//! holds those of slots `cursor + 1 .. cursor + WHEEL_SLOTS`, slot `s` in list `s %
//! WHEEL_SLOTS`; `far` holds the rest. `pop` never returns an event earlier than one it
//! returned before; pushing into the past is a bug and panics. No allocation per event once the
//! slab and the heaps have grown.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use super::time::SimTime;

/// A slot is `2^SLOT_BITS` ns wide.
const SLOT_BITS: u32 = 16;
/// Slots on the wheel (a power of two): with 65.5 µs slots, a window of 1.07 s.
const WHEEL_SLOTS: u64 = 1 << 14;
const WORDS: usize = (WHEEL_SLOTS / 64) as usize;
/// The end of a slot's list.
const NIL: u32 = u32::MAX;

/// One pending event with its key, ordered so that `BinaryHeap` (a max-heap) yields the earliest.
struct Keyed<E> {
    time: u64,
    seq: u64,
    event: E,
}

impl<E> PartialEq for Keyed<E> {
    fn eq(&self, other: &Self) -> bool {
        (self.time, self.seq) == (other.time, other.seq)
    }
}

impl<E> Eq for Keyed<E> {}

impl<E> PartialOrd for Keyed<E> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<E> Ord for Keyed<E> {
    fn cmp(&self, other: &Self) -> Ordering {
        (other.time, other.seq).cmp(&(self.time, self.seq))
    }
}

/// A wheel entry: the event and the next entry of its slot.
struct Node<E> {
    time: u64,
    seq: u64,
    event: Option<E>,
    next: u32,
}

/// A monotone priority queue of events keyed by (time, insertion sequence).
pub struct EventQueue<E> {
    /// Pending events of the current slot (and any pushed behind it), latest first, so the
    /// earliest pops off the end. A slot holds a handful at most in a run, so a sorted vector
    /// beats a heap here.
    due: Vec<Keyed<E>>,
    /// The absolute slot number (`time >> SLOT_BITS`) `due` stands at.
    cursor: u64,
    /// First entry of each wheel slot's list, `NIL` when empty.
    heads: Box<[u32]>,
    /// Bit `s % 64` of word `s / 64` is set when wheel slot `s` is non-empty; bit `w` of
    /// `summary[w / 64]` when word `w` is non-zero.
    occupied: Box<[u64; WORDS]>,
    summary: [u64; WORDS / 64],
    /// Every entry, free ones chained from `free`.
    slab: Vec<Node<E>>,
    free: u32,
    /// Events beyond the wheel's window.
    far: BinaryHeap<Keyed<E>>,
    /// The time of the last popped event.
    last_time: u64,
    /// Insertion counter: the tie-break of equal times.
    next_seq: u64,
    len: usize,
}

impl<E> Default for EventQueue<E> {
    fn default() -> Self {
        Self::new()
    }
}

#[inline]
fn slot_of(time: u64) -> u64 {
    time >> SLOT_BITS
}

impl<E> EventQueue<E> {
    pub fn new() -> Self {
        EventQueue {
            due: Vec::new(),
            cursor: 0,
            heads: vec![NIL; WHEEL_SLOTS as usize].into_boxed_slice(),
            occupied: Box::new([0; WORDS]),
            summary: [0; WORDS / 64],
            slab: Vec::new(),
            free: NIL,
            far: BinaryHeap::new(),
            last_time: 0,
            next_seq: 0,
            len: 0,
        }
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
        self.due.last().map(|k| SimTime::from_nanos(k.time))
    }

    /// Schedules `event` at `time`. `time` must not precede the last popped event's time.
    #[inline]
    pub fn push(&mut self, time: SimTime, event: E) {
        let time = time.as_nanos();
        assert!(
            time >= self.last_time,
            "event scheduled at {}, before the current time {}: the engine never goes back",
            SimTime::from_nanos(time),
            SimTime::from_nanos(self.last_time)
        );
        let seq = self.next_seq;
        self.next_seq += 1;
        self.len += 1;
        self.place(time, seq, event);
    }

    /// Files an event by its slot: `due`, the wheel or `far`.
    #[inline]
    fn place(&mut self, time: u64, seq: u64, event: E) {
        let slot = slot_of(time);
        if slot <= self.cursor {
            self.push_due(Keyed { time, seq, event });
        } else if slot - self.cursor < WHEEL_SLOTS {
            self.link(slot, time, seq, event);
        } else {
            self.far.push(Keyed { time, seq, event });
        }
    }

    #[inline]
    fn link(&mut self, slot: u64, time: u64, seq: u64, event: E) {
        let index = (slot % WHEEL_SLOTS) as usize;
        let node = Node {
            time,
            seq,
            event: Some(event),
            next: self.heads[index],
        };
        let at = if self.free == NIL {
            self.slab.push(node);
            (self.slab.len() - 1) as u32
        } else {
            let at = self.free;
            self.free = self.slab[at as usize].next;
            self.slab[at as usize] = node;
            at
        };
        self.heads[index] = at;
        self.occupied[index / 64] |= 1 << (index % 64);
        self.summary[index / 4096] |= 1 << ((index / 64) % 64);
    }

    /// Removes and returns the earliest event with its time.
    #[inline]
    pub fn pop(&mut self) -> Option<(SimTime, E)> {
        if self.len == 0 {
            return None;
        }
        self.settle();
        let Keyed { time, event, .. } = self.due.pop().expect("settle leaves an event due");
        self.len -= 1;
        self.last_time = time;
        Some((SimTime::from_nanos(time), event))
    }

    /// Removes the earliest event if it is due at or before `end`.
    #[inline]
    pub fn pop_until(&mut self, end: SimTime) -> Option<(SimTime, E)> {
        match self.next_time() {
            Some(t) if t <= end => self.pop(),
            _ => None,
        }
    }

    /// Makes `due` non-empty when anything is pending, moving the cursor to the next occupied
    /// slot and the events of that slot into `due`.
    #[inline]
    fn settle(&mut self) {
        if self.due.is_empty() {
            self.advance();
        }
    }

    fn advance(&mut self) {
        debug_assert!(self.len > 0);
        let next = match self.next_occupied() {
            Some(slot) => slot,
            None => slot_of(self.far.peek().expect("len > 0 means an event somewhere").time),
        };
        self.cursor = next;
        // The window now reaches `cursor + WHEEL_SLOTS`: bring the far events it covers on.
        while let Some(top) = self.far.peek() {
            let slot = slot_of(top.time);
            if slot - self.cursor >= WHEEL_SLOTS {
                break;
            }
            let Keyed { time, seq, event } = self.far.pop().expect("peeked");
            if slot == self.cursor {
                self.push_due(Keyed { time, seq, event });
            } else {
                self.link(slot, time, seq, event);
            }
        }
        // Empty the cursor's slot into `due`.
        let index = (self.cursor % WHEEL_SLOTS) as usize;
        let mut at = std::mem::replace(&mut self.heads[index], NIL);
        if at != NIL {
            self.occupied[index / 64] &= !(1 << (index % 64));
            if self.occupied[index / 64] == 0 {
                self.summary[index / 4096] &= !(1 << ((index / 64) % 64));
            }
        }
        while at != NIL {
            let node = &mut self.slab[at as usize];
            let event = node.event.take().expect("a linked node holds its event");
            self.due.push(Keyed {
                time: node.time,
                seq: node.seq,
                event,
            });
            let next = node.next;
            node.next = self.free;
            self.free = at;
            at = next;
        }
        if self.due.len() > 1 {
            self.due.sort_unstable();
        }
    }

    /// Inserts into `due` in order (`Keyed`'s order is reversed: the latest sorts first).
    #[inline]
    fn push_due(&mut self, item: Keyed<E>) {
        let at = self.due.partition_point(|k| *k < item);
        self.due.insert(at, item);
    }

    /// The absolute number of the first occupied wheel slot after the cursor.
    fn next_occupied(&self) -> Option<u64> {
        let start = ((self.cursor + 1) % WHEEL_SLOTS) as usize;
        let found = self
            .first_set_from(start)
            .or_else(|| self.first_set_from(0).filter(|&index| index < start))?;
        // Distance forward from the cursor's index, round the wheel.
        let from = (self.cursor % WHEEL_SLOTS) as usize;
        let ahead = (found + WHEEL_SLOTS as usize - from) % WHEEL_SLOTS as usize;
        Some(self.cursor + ahead as u64)
    }

    /// The lowest occupied wheel index at or above `start`.
    fn first_set_from(&self, start: usize) -> Option<usize> {
        let word = start / 64;
        let bits = self.occupied[word] & (!0u64 << (start % 64));
        if bits != 0 {
            return Some(word * 64 + bits.trailing_zeros() as usize);
        }
        // Words after `word`, found through the summary.
        let first_word = word + 1;
        for group in first_word / 64..self.summary.len() {
            let mut mask = self.summary[group];
            if group == first_word / 64 {
                mask &= !0u64 << (first_word % 64);
            }
            if mask != 0 {
                let w = group * 64 + mask.trailing_zeros() as usize;
                return Some(w * 64 + self.occupied[w].trailing_zeros() as usize);
            }
        }
        None
    }
}
