//! A queue of timed events for driving a simulation in virtual time.
//!
//! A driver pushes what should happen later (a packet's arrival, a node's wake-up) with the
//! true time it happens at, then repeatedly pops the earliest and handles it, jumping virtual
//! time straight to it. Events due at the same time come out in the order they were pushed,
//! so a run never depends on the heap's internal layout.
//!
//! The queue grows with what is pushed; keeping it bounded (for instance one pending wake-up
//! per node) is the driver's job.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use super::SimTime;

/// A min-queue of items keyed by [`SimTime`], first in first out among equal times.
#[derive(Clone, Debug)]
pub struct EventQueue<T> {
    heap: BinaryHeap<Entry<T>>,
    /// Sequence number of the next push, the tie-break between equal times.
    next_seq: u64,
}

#[derive(Clone, Debug)]
struct Entry<T> {
    at: SimTime,
    seq: u64,
    item: T,
}

impl<T> Entry<T> {
    fn key(&self) -> (SimTime, u64) {
        (self.at, self.seq)
    }
}

// The order looks only at time and sequence number, so items need no ordering of their own,
// and it is reversed because `BinaryHeap` is a max-heap.
impl<T> Ord for Entry<T> {
    fn cmp(&self, other: &Self) -> Ordering {
        other.key().cmp(&self.key())
    }
}

impl<T> PartialOrd for Entry<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<T> PartialEq for Entry<T> {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl<T> Eq for Entry<T> {}

impl<T> Default for EventQueue<T> {
    fn default() -> Self {
        EventQueue::new()
    }
}

impl<T> EventQueue<T> {
    /// An empty queue.
    pub fn new() -> Self {
        EventQueue {
            heap: BinaryHeap::new(),
            next_seq: 0,
        }
    }

    /// Schedules `item` at true time `at`.
    pub fn push(&mut self, at: SimTime, item: T) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.heap.push(Entry { at, seq, item });
    }

    /// Removes and returns the earliest event (the first pushed, among equally early ones).
    pub fn pop(&mut self) -> Option<(SimTime, T)> {
        self.heap.pop().map(|e| (e.at, e.item))
    }

    /// When the earliest event is due, without removing it: the time to jump to next.
    pub fn peek_time(&self) -> Option<SimTime> {
        self.heap.peek().map(|e| e.at)
    }

    /// The number of pending events.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Whether no event is pending.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_come_out_by_time_then_in_push_order() {
        let mut q = EventQueue::new();
        assert!(q.is_empty());
        assert_eq!(q.peek_time(), None);
        q.push(SimTime(30), "late");
        q.push(SimTime(10), "first at 10");
        q.push(SimTime(20), "twenty");
        q.push(SimTime(10), "second at 10");
        q.push(SimTime(10), "third at 10");
        assert_eq!(q.len(), 5);
        assert_eq!(q.peek_time(), Some(SimTime(10)));
        let order: Vec<_> = std::iter::from_fn(|| q.pop()).collect();
        assert_eq!(
            order,
            [
                (SimTime(10), "first at 10"),
                (SimTime(10), "second at 10"),
                (SimTime(10), "third at 10"),
                (SimTime(20), "twenty"),
                (SimTime(30), "late"),
            ]
        );
        assert!(q.is_empty());
    }

    #[test]
    fn ties_stay_in_order_through_interleaved_pops() {
        let mut q = EventQueue::default();
        for i in 0..100 {
            q.push(SimTime(i % 3), i);
            if i % 10 == 9 {
                q.pop();
            }
        }
        let mut last = (SimTime(i64::MIN), -1);
        while let Some((at, i)) = q.pop() {
            assert!((at, i) > last, "{at:?} {i} after {last:?}");
            last = (at, i);
        }
    }
}
