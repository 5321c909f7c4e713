//! A fixed-size jitter buffer keyed by extended RTP sequence number.
//!
//! Packets arrive out of order, twice, or not at all; the buffer hands them back in sequence
//! order and shows where the holes are. It is a ring of `capacity` slots, slot `seq %
//! capacity` for sequence number `seq`, each with room for `max_payload` bytes, all
//! allocated up front: insert and pop are O(1), copy one payload, and allocate nothing.
//!
//! The buffer covers a window of `capacity` sequence numbers starting at the next one to be
//! popped. A packet below the window is late (its turn has passed); a packet beyond it
//! pushes the window forward, and whatever falls off the old end is dropped and counted
//! as evicted: on overflow the oldest goes. Before the first pop, a packet just below the
//! window moves the start back, so reordering at the start of a stream does not lose it.
//!
//! ```
//! use lockstep::media::jitter::{Front, Inserted, JitterBuffer, PacketMeta};
//!
//! let mut jb = JitterBuffer::new(8, 32);
//! let meta = |seq| PacketMeta { seq, timestamp: seq * 240, presentation: None, marker: false };
//! assert!(matches!(jb.insert(meta(11), b"b"), Inserted::Stored { .. }));
//! assert!(matches!(jb.insert(meta(10), b"a"), Inserted::Stored { .. }));
//! assert!(matches!(jb.insert(meta(13), b"d"), Inserted::Stored { .. }));
//! assert!(matches!(jb.front(), Front::Ready(m, b"a") if m.seq == 10));
//! jb.pop();
//! jb.pop();
//! // 12 never came: the front is a gap, and 13 is the next packet present.
//! assert!(matches!(jb.front(), Front::Gap { seq: 12, next, .. } if next.seq == 13));
//! ```

use crate::time::LeaderInstant;

/// What the buffer keeps about a packet besides its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketMeta {
    /// Extended (64-bit) sequence number.
    pub seq: u64,
    /// Extended (64-bit) RTP timestamp.
    pub timestamp: u64,
    /// Leader-clock instant its first sample is to be played, if the packet said so.
    pub presentation: Option<LeaderInstant>,
    /// The RTP marker bit.
    pub marker: bool,
}

/// What [`JitterBuffer::insert`] did with a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    /// Stored.
    Stored {
        /// It arrived after a packet with a higher sequence number.
        reordered: bool,
        /// Packets dropped from the old end of the window to make room (overflow).
        evicted: usize,
        /// Sequence numbers the window moved past without their packet having arrived.
        skipped: u64,
    },
    /// A packet with this sequence number is already held: dropped.
    Duplicate,
    /// Its sequence number is below the window (already popped or skipped): dropped.
    Late,
    /// The payload is longer than a slot: dropped.
    TooLarge,
}

/// The head of the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Front<'a> {
    /// Nothing is held.
    Empty,
    /// The next packet in sequence is here.
    Ready(PacketMeta, &'a [u8]),
    /// The next sequence number `seq` is missing; `next` is the first packet held after it.
    Gap {
        /// The missing sequence number at the head.
        seq: u64,
        /// The first packet held after the gap.
        next: PacketMeta,
        /// Its payload.
        payload: &'a [u8],
    },
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    meta: PacketMeta,
    len: usize,
    full: bool,
}

const EMPTY_SLOT: Slot = Slot {
    meta: PacketMeta {
        seq: 0,
        timestamp: 0,
        presentation: None,
        marker: false,
    },
    len: 0,
    full: false,
};

/// A ring of packet slots ordered by extended sequence number. See the [module docs](self).
#[derive(Debug, Clone)]
pub struct JitterBuffer {
    slots: Box<[Slot]>,
    data: Box<[u8]>,
    max_payload: usize,
    /// The next sequence number to pop; `None` until the first packet.
    next: Option<u64>,
    highest: u64,
    count: usize,
    popped: bool,
    /// Bit `i` set: the packet `next - 1 - i` was held when the head passed it.
    history: u64,
}

impl JitterBuffer {
    /// A buffer of `capacity` packets (at least 1) of up to `max_payload` bytes each.
    pub fn new(capacity: usize, max_payload: usize) -> JitterBuffer {
        let capacity = capacity.max(1);
        JitterBuffer {
            slots: vec![EMPTY_SLOT; capacity].into_boxed_slice(),
            data: vec![0; capacity * max_payload].into_boxed_slice(),
            max_payload,
            next: None,
            highest: 0,
            count: 0,
            popped: false,
            history: 0,
        }
    }

    /// How many packets it can hold.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// The largest payload a slot holds, in bytes.
    pub fn max_payload(&self) -> usize {
        self.max_payload
    }

    /// How many packets it holds.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether it holds no packet.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The next sequence number to pop, once a packet has arrived.
    pub fn next_seq(&self) -> Option<u64> {
        self.next
    }

    /// Bytes of heap it owns: the slots and their payload room. Fixed at construction.
    pub fn heap_bytes(&self) -> usize {
        self.slots.len() * std::mem::size_of::<Slot>() + self.data.len()
    }

    fn index(&self, seq: u64) -> usize {
        (seq % self.slots.len() as u64) as usize
    }

    /// Stores a packet. See [`Inserted`] for what can happen to it.
    pub fn insert(&mut self, meta: PacketMeta, payload: &[u8]) -> Inserted {
        if payload.len() > self.max_payload {
            return Inserted::TooLarge;
        }
        let cap = self.slots.len() as u64;
        let seq = meta.seq;
        let mut evicted = 0;
        let mut skipped = 0;
        let mut reordered = false;
        match self.next {
            None => {
                self.next = Some(seq);
                self.highest = seq;
            }
            Some(next) if seq < next => {
                // Reordering at the very start: move the window back if the packets held
                // still fit in it.
                if !self.popped && self.highest - seq < cap {
                    self.next = Some(seq);
                    reordered = true;
                } else if next - seq <= 64 && self.history >> (next - seq - 1) & 1 == 1 {
                    return Inserted::Duplicate;
                } else {
                    return Inserted::Late;
                }
            }
            Some(next) => {
                if seq >= next + cap {
                    let new_next = seq + 1 - cap;
                    (evicted, skipped) = self.advance_to(new_next);
                }
                if seq > self.highest {
                    self.highest = seq;
                } else if seq < self.highest {
                    reordered = true;
                }
            }
        }
        let i = self.index(seq);
        let slot = &mut self.slots[i];
        if slot.full {
            // Within the window a slot holds only its own sequence number.
            return Inserted::Duplicate;
        }
        slot.meta = meta;
        slot.len = payload.len();
        slot.full = true;
        let start = i * self.max_payload;
        self.data[start..start + payload.len()].copy_from_slice(payload);
        self.count += 1;
        Inserted::Stored {
            reordered,
            evicted,
            skipped,
        }
    }

    /// Moves the window start to `new_next`, dropping what falls off. Returns (packets
    /// dropped, sequence numbers passed without a packet).
    fn advance_to(&mut self, new_next: u64) -> (usize, u64) {
        let Some(next) = self.next else {
            return (0, 0);
        };
        if new_next <= next {
            return (0, 0);
        }
        let span = new_next - next;
        let mut evicted = 0;
        if span >= self.slots.len() as u64 {
            evicted = self.count;
            for slot in self.slots.iter_mut() {
                slot.full = false;
            }
            self.count = 0;
        } else {
            for s in next..new_next {
                let i = self.index(s);
                if self.slots[i].full {
                    self.slots[i].full = false;
                    self.count -= 1;
                    evicted += 1;
                }
            }
        }
        self.next = Some(new_next);
        self.highest = self.highest.max(new_next.saturating_sub(1));
        self.popped = true;
        self.history = if span >= 64 { 0 } else { self.history << span };
        (evicted, span - evicted as u64)
    }

    /// The head: the next packet in order, a gap before the next packet held, or nothing.
    pub fn front(&self) -> Front<'_> {
        let Some(next) = self.next else {
            return Front::Empty;
        };
        if self.count == 0 {
            return Front::Empty;
        }
        let i = self.index(next);
        let slot = &self.slots[i];
        if slot.full {
            let start = i * self.max_payload;
            return Front::Ready(slot.meta, &self.data[start..start + slot.len]);
        }
        // Some packet is held within the window: find the first one.
        for s in next + 1..=self.highest {
            let i = self.index(s);
            let slot = &self.slots[i];
            if slot.full {
                let start = i * self.max_payload;
                return Front::Gap {
                    seq: next,
                    next: slot.meta,
                    payload: &self.data[start..start + slot.len],
                };
            }
        }
        Front::Empty
    }

    /// Drops the head: the packet at the front, or the missing sequence number of a gap.
    /// Returns whether a packet was dropped (`false` for a gap). An empty buffer stays
    /// where it is.
    pub fn pop(&mut self) -> bool {
        let Some(next) = self.next else {
            return false;
        };
        if self.count == 0 {
            return false;
        }
        let i = self.index(next);
        let had = self.slots[i].full;
        if had {
            self.slots[i].full = false;
            self.count -= 1;
        }
        self.next = Some(next + 1);
        self.highest = self.highest.max(next);
        self.popped = true;
        self.history = self.history << 1 | u64::from(had);
        had
    }

    /// Moves the head forward to `seq`, dropping everything before it. Returns (packets
    /// dropped, sequence numbers passed without a packet).
    pub fn skip_to(&mut self, seq: u64) -> (usize, u64) {
        self.advance_to(seq)
    }

    /// Forgets every packet and the sequence position: the next packet starts afresh.
    pub fn clear(&mut self) {
        for slot in self.slots.iter_mut() {
            slot.full = false;
        }
        self.count = 0;
        self.next = None;
        self.highest = 0;
        self.popped = false;
        self.history = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(seq: u64) -> PacketMeta {
        PacketMeta {
            seq,
            timestamp: seq * 240,
            presentation: None,
            marker: false,
        }
    }

    fn drain(jb: &mut JitterBuffer) -> Vec<Option<u64>> {
        let mut out = Vec::new();
        loop {
            match jb.front() {
                Front::Empty => return out,
                Front::Ready(m, p) => {
                    assert_eq!(p, &[m.seq as u8][..]);
                    out.push(Some(m.seq));
                }
                Front::Gap { .. } => out.push(None),
            }
            jb.pop();
        }
    }

    #[test]
    fn reorders_and_reports_gaps() {
        let mut jb = JitterBuffer::new(16, 4);
        for s in [5u64, 7, 6, 9] {
            jb.insert(meta(s), &[s as u8]);
        }
        assert_eq!(
            drain(&mut jb),
            vec![Some(5), Some(6), Some(7), None, Some(9)]
        );
        assert!(jb.is_empty());
    }

    #[test]
    fn duplicates_and_late_packets_are_refused() {
        let mut jb = JitterBuffer::new(16, 4);
        jb.insert(meta(5), &[5]);
        assert_eq!(jb.insert(meta(5), &[5]), Inserted::Duplicate);
        jb.pop();
        // Played already: still a duplicate. Never held: late.
        assert_eq!(jb.insert(meta(5), &[5]), Inserted::Duplicate);
        assert_eq!(jb.insert(meta(4), &[4]), Inserted::Late);
        jb.insert(meta(7), &[7]);
        jb.pop(); // the gap at 6
        assert_eq!(jb.insert(meta(6), &[6]), Inserted::Late);
        assert_eq!(jb.insert(meta(6), &[0; 5]), Inserted::TooLarge);
    }

    #[test]
    fn early_reordering_moves_the_start_back() {
        let mut jb = JitterBuffer::new(16, 4);
        jb.insert(meta(10), &[10]);
        assert!(matches!(
            jb.insert(meta(9), &[9]),
            Inserted::Stored {
                reordered: true,
                ..
            }
        ));
        assert_eq!(drain(&mut jb), vec![Some(9), Some(10)]);
    }

    #[test]
    fn overflow_drops_the_oldest() {
        let mut jb = JitterBuffer::new(4, 4);
        for s in 0..4u64 {
            jb.insert(meta(s), &[s as u8]);
        }
        assert_eq!(
            jb.insert(meta(5), &[5]),
            Inserted::Stored {
                reordered: false,
                evicted: 2,
                skipped: 0
            }
        );
        assert_eq!(drain(&mut jb), vec![Some(2), Some(3), None, Some(5)]);
        // A jump far beyond the window clears it.
        jb.insert(meta(6), &[6]);
        assert!(matches!(
            jb.insert(meta(1000), &[(1000u64 % 256) as u8]),
            Inserted::Stored { evicted: 1, .. }
        ));
        assert_eq!(jb.len(), 1);
    }

    #[test]
    fn memory_is_fixed() {
        let mut jb = JitterBuffer::new(64, 100);
        let before = jb.heap_bytes();
        let mut x = 1u64;
        for _ in 0..10_000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            jb.insert(meta(x >> 54), &[0; 7]);
            if x & 3 == 0 {
                jb.pop();
            }
            assert!(jb.len() <= jb.capacity());
        }
        assert_eq!(jb.heap_bytes(), before);
    }
}
