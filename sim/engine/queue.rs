//! The event queue: events come off in order of (time, insertion sequence), so two events
//! scheduled for the same instant leave in the order they were scheduled.
//!
//! It has two forms and moves its events between them by how many are pending; both give the
//! same order, so the switch never shows in a run's output.
//!
//! - Up to about a hundred thousand pending events, a timing wheel (Varghese and Lauck, 1987)
//!   in front of a binary heap, the shape of a calendar queue (Brown, 1988) with a fixed year.
//!   Time is cut into slots of `2^SLOT_BITS` ns (65.5 µs); the wheel holds the events of the
//!   next `WHEEL_SLOTS` slots (1.07 s), each slot a list threaded through one slab, and a bitmap
//!   of the occupied slots. Events further out wait in the `far` heap and move onto the wheel
//!   as its window slides over them; the events of the current slot sit in `due`, which alone
//!   orders a slot's events. A run schedules most of its events (arrivals, connections,
//!   service completions) less than a second ahead and keeps a few hundred to a few thousand
//!   pending, so most events cost a slab write and a bit on the way in and a pop from a vector
//!   of one or two on the way out.
//! - Beyond that, a radix heap (Ahuja, Mehlhorn, Orlin and Tarjan, 1990) over the 128-bit key
//!   `time << 64 | seq`: bucket `i` holds the keys whose highest bit differing from the last
//!   settled key is bit `i - 1`, and a pop empties the lowest non-empty bucket into the buckets
//!   below it. Every move is a sequential scan of a vector, which is what keeps a million
//!   pending events fast, where the wheel's slots would hold dozens each, scattered over the
//!   slab.
//!
//! Invariants, wheel form: `due` holds every pending event of the slot `cursor` and before it;
//! the wheel holds those of slots `cursor + 1 .. cursor + WHEEL_SLOTS`, slot `s` in list `s %
//! WHEEL_SLOTS`; `far` holds the rest. Radix form: `due` holds the events pushed below the radix
//! heap's settled key (earlier than everything in it), the radix heap the rest. Both: `pop`
//! never returns an event earlier than one it returned before; pushing into the past is a bug
//! and panics; no allocation per event once the vectors have grown.

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
/// Pending counts at which the queue takes the radix form, and goes back to the wheel.
const TO_RADIX: usize = 1 << 17;
const TO_WHEEL: usize = 1 << 15;
const N_BUCKETS: usize = 129;

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
    /// The radix form's heap; `None` in the wheel form.
    radix: Option<Radix<E>>,
    /// The pending counts that switch the form (`TO_RADIX`, `TO_WHEEL` outside tests).
    to_radix: usize,
    to_wheel: usize,
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

#[inline]
fn key(time: u64, seq: u64) -> u128 {
    (u128::from(time) << 64) | u128::from(seq)
}

#[inline]
fn time_of(key: u128) -> SimTime {
    SimTime::from_nanos((key >> 64) as u64)
}

#[inline]
fn seq_of(key: u128) -> u64 {
    key as u64
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
            radix: None,
            to_radix: TO_RADIX,
            to_wheel: TO_WHEEL,
            last_time: 0,
            next_seq: 0,
            len: 0,
        }
    }

    /// A queue that changes form at other pending counts, so that tests cross the switch often.
    #[cfg(test)]
    pub(crate) fn with_switch_at(to_radix: usize, to_wheel: usize) -> Self {
        EventQueue {
            to_radix,
            to_wheel,
            ..Self::new()
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
        if let Some(radix) = &mut self.radix
            && self.due.is_empty()
        {
            return Some(time_of(radix.peek_key()));
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
        match &mut self.radix {
            Some(radix) => {
                let k = key(time, seq);
                if k >= radix.last {
                    radix.push(k, event);
                } else {
                    // Behind a key the heap settled on to answer `next_time`: before
                    // everything in it.
                    self.push_due(Keyed { time, seq, event });
                }
            }
            None => {
                self.place(time, seq, event);
                if self.len > self.to_radix {
                    self.become_radix();
                }
            }
        }
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
        let (time, event) = match &mut self.radix {
            Some(radix) => match self.due.pop() {
                Some(Keyed { time, event, .. }) => (time, event),
                None => {
                    let (k, event) = radix.pop();
                    (time_of(k).as_nanos(), event)
                }
            },
            None => {
                self.settle();
                let Keyed { time, event, .. } = self.due.pop().expect("settle leaves an event due");
                (time, event)
            }
        };
        self.len -= 1;
        self.last_time = time;
        if self.radix.is_some() && self.len < self.to_wheel {
            self.become_wheel();
        }
        Some((SimTime::from_nanos(time), event))
    }

    /// Moves every pending event into a radix heap.
    #[cold]
    #[inline(never)]
    fn become_radix(&mut self) {
        let mut radix = Radix::new(key(self.last_time, 0));
        for Keyed { time, seq, event } in self.due.drain(..).chain(self.far.drain()) {
            radix.push(key(time, seq), event);
        }
        for node in self.slab.drain(..) {
            if let Some(event) = node.event {
                radix.push(key(node.time, node.seq), event);
            }
        }
        self.free = NIL;
        self.heads.fill(NIL);
        self.occupied.fill(0);
        self.summary = [0; WORDS / 64];
        self.radix = Some(radix);
    }

    /// Moves every pending event back onto the wheel, its window starting at the current time.
    #[cold]
    #[inline(never)]
    fn become_wheel(&mut self) {
        let Some(mut radix) = self.radix.take() else {
            return;
        };
        self.cursor = slot_of(self.last_time);
        let behind = std::mem::take(&mut self.due);
        for Keyed { time, seq, event } in behind {
            self.place(time, seq, event);
        }
        while !radix.is_empty() {
            let (k, event) = radix.pop();
            self.place(time_of(k).as_nanos(), seq_of(k), event);
        }
    }

    /// Removes the earliest event if it is due at or before `end`.
    #[inline]
    pub fn pop_until(&mut self, end: SimTime) -> Option<(SimTime, E)> {
        if self.len == 0 {
            return None;
        }
        if self.radix.is_none() {
            // The wheel form, every event of a run's usual size: one settle, one look.
            self.settle();
            if self.due.last().expect("settle leaves an event due").time > end.as_nanos() {
                return None;
            }
            let Keyed { time, event, .. } = self.due.pop().expect("looked at above");
            self.len -= 1;
            self.last_time = time;
            return Some((SimTime::from_nanos(time), event));
        }
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
            None => slot_of(
                self.far
                    .peek()
                    .expect("len > 0 means an event somewhere")
                    .time,
            ),
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

/// The radix heap of the radix form: monotone, keyed by `time << 64 | seq`.
struct Radix<E> {
    buckets: Box<[Vec<(u128, E)>]>,
    /// Bit `i - 1` is set when bucket `i` (1..=128) is non-empty, so finding the lowest
    /// non-empty bucket is one `trailing_zeros` rather than a scan.
    occupied: u128,
    /// The key of the last popped event, or of the minimum after a redistribution: no key in
    /// the heap is below it.
    last: u128,
    len: usize,
}

impl<E> Radix<E> {
    fn new(last: u128) -> Self {
        Radix {
            buckets: (0..N_BUCKETS).map(|_| Vec::new()).collect(),
            occupied: 0,
            last,
            len: 0,
        }
    }

    fn is_empty(&self) -> bool {
        self.len == 0
    }

    #[inline]
    fn bucket_of(&self, key: u128) -> usize {
        (128 - (key ^ self.last).leading_zeros()) as usize
    }

    /// `key` must not be below `last`.
    #[inline]
    fn push(&mut self, key: u128, event: E) {
        debug_assert!(key >= self.last);
        let bucket = self.bucket_of(key);
        self.buckets[bucket].push((key, event));
        if bucket > 0 {
            self.occupied |= 1u128 << (bucket - 1);
        }
        self.len += 1;
    }

    /// The least key; the heap must not be empty.
    #[inline]
    fn peek_key(&mut self) -> u128 {
        self.settle();
        self.buckets[0].last().expect("settled").0
    }

    /// Removes the least key; the heap must not be empty.
    #[inline]
    fn pop(&mut self) -> (u128, E) {
        self.settle();
        self.len -= 1;
        self.buckets[0]
            .pop()
            .expect("settle leaves the minimum in bucket 0")
    }

    /// Makes bucket 0 hold the minimum key (keys are unique, so it holds exactly that one).
    #[inline]
    fn settle(&mut self) {
        if !self.buckets[0].is_empty() {
            return;
        }
        debug_assert!(self.occupied != 0, "len > 0 means a non-empty bucket");
        let source = self.occupied.trailing_zeros() as usize + 1;
        self.occupied &= !(1u128 << (source - 1));
        let mut items = std::mem::take(&mut self.buckets[source]);
        self.last = items
            .iter()
            .map(|(k, _)| *k)
            .min()
            .expect("bucket is non-empty");
        for (k, event) in items.drain(..) {
            let bucket = self.bucket_of(k);
            debug_assert!(bucket < source);
            self.buckets[bucket].push((k, event));
            if bucket > 0 {
                self.occupied |= 1u128 << (bucket - 1);
            }
        }
        // Give the emptied vector's capacity back to its bucket, so no hold allocates.
        self.buckets[source] = items;
    }
}
