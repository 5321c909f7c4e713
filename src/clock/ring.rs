//! A fixed-capacity FIFO for estimator windows: allocated once, never grows.

/// A ring buffer of `Copy` items with a capacity fixed at construction. Pushing into a full
/// ring drops the oldest item, so memory stays constant however long an estimator runs.
#[derive(Clone, Debug)]
pub(crate) struct Ring<T: Copy> {
    buf: Box<[T]>,
    head: usize,
    len: usize,
}

impl<T: Copy + Default> Ring<T> {
    /// An empty ring holding at most `capacity` items (at least one).
    pub(crate) fn new(capacity: usize) -> Self {
        Ring {
            buf: vec![T::default(); capacity.max(1)].into_boxed_slice(),
            head: 0,
            len: 0,
        }
    }
}

impl<T: Copy> Ring<T> {
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn clear(&mut self) {
        self.head = 0;
        self.len = 0;
    }

    /// Appends `item`, dropping (and returning) the oldest if the ring is full.
    pub(crate) fn push(&mut self, item: T) -> Option<T> {
        let cap = self.buf.len();
        if self.len == cap {
            let old = self.buf[self.head];
            self.buf[self.head] = item;
            self.head = (self.head + 1) % cap;
            Some(old)
        } else {
            self.buf[(self.head + self.len) % cap] = item;
            self.len += 1;
            None
        }
    }

    pub(crate) fn pop_front(&mut self) -> Option<T> {
        if self.len == 0 {
            return None;
        }
        let item = self.buf[self.head];
        self.head = (self.head + 1) % self.buf.len();
        self.len -= 1;
        Some(item)
    }

    pub(crate) fn front(&self) -> Option<T> {
        (self.len > 0).then(|| self.buf[self.head])
    }

    pub(crate) fn back(&self) -> Option<T> {
        (self.len > 0).then(|| self.buf[(self.head + self.len - 1) % self.buf.len()])
    }

    /// Changes every item in place, oldest first.
    pub(crate) fn update(&mut self, mut f: impl FnMut(&mut T)) {
        let cap = self.buf.len();
        for i in 0..self.len {
            f(&mut self.buf[(self.head + i) % cap]);
        }
    }

    /// The `i`-th newest item (0: the newest).
    /// Keeps only the items `keep` accepts, in order, and returns how many went.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&T) -> bool) -> usize {
        let cap = self.buf.len();
        let mut kept = 0;
        for i in 0..self.len {
            let item = self.buf[(self.head + i) % cap];
            if keep(&item) {
                self.buf[(self.head + kept) % cap] = item;
                kept += 1;
            }
        }
        let gone = self.len - kept;
        self.len = kept;
        gone
    }

    /// Whether the ring holds as many items as it can.
    pub(crate) fn is_full(&self) -> bool {
        self.len == self.buf.len()
    }

    /// Goes over the oldest `n` items in pairs, replacing each pair by the one `merge` gives,
    /// or keeping both where it gives none; the rest keep their order. Returns how many went.
    pub(crate) fn merge_pairs(
        &mut self,
        n: usize,
        mut merge: impl FnMut(T, T) -> Option<T>,
    ) -> usize {
        let cap = self.buf.len();
        let n = n.min(self.len);
        let (mut read, mut kept) = (0, 0);
        while read < self.len {
            let item = self.buf[(self.head + read) % cap];
            let merged = if read + 1 < n {
                merge(item, self.buf[(self.head + read + 1) % cap])
            } else {
                None
            };
            match merged {
                Some(m) => {
                    self.buf[(self.head + kept) % cap] = m;
                    read += 2;
                }
                None => {
                    self.buf[(self.head + kept) % cap] = item;
                    read += 1;
                }
            }
            kept += 1;
        }
        let gone = self.len - kept;
        self.len = kept;
        gone
    }

    pub(crate) fn newest(&self, i: usize) -> Option<T> {
        (i < self.len).then(|| self.buf[(self.head + self.len - 1 - i) % self.buf.len()])
    }

    /// Items oldest first.
    pub(crate) fn iter(&self) -> impl Iterator<Item = T> + '_ {
        (0..self.len).map(move |i| self.buf[(self.head + i) % self.buf.len()])
    }
}

#[cfg(test)]
mod tests {
    use super::Ring;

    #[test]
    fn retain_keeps_the_order_of_what_it_keeps_across_the_wrap() {
        let mut r = Ring::<u32>::new(4);
        for i in 0..6 {
            r.push(i);
        }
        assert_eq!(r.retain(|&x| x != 3), 1);
        assert_eq!(r.iter().collect::<Vec<_>>(), vec![2, 4, 5]);
        r.push(6);
        r.push(7);
        assert_eq!(r.iter().collect::<Vec<_>>(), vec![4, 5, 6, 7]);
        assert_eq!(r.retain(|_| false), 4);
        assert_eq!(r.len(), 0);
    }

    #[test]
    fn a_full_ring_drops_its_oldest() {
        let mut r = Ring::<u32>::new(3);
        for i in 0..5 {
            r.push(i);
        }
        assert_eq!(r.iter().collect::<Vec<_>>(), vec![2, 3, 4]);
        assert_eq!(r.front(), Some(2));
        assert_eq!(r.back(), Some(4));
        assert_eq!(r.pop_front(), Some(2));
        assert_eq!(r.len(), 2);
        r.clear();
        assert_eq!(r.len(), 0);
        assert_eq!(r.back(), None);
    }

    #[test]
    fn merging_pairs_keeps_the_order_across_the_wrap_and_leaves_the_newest_alone() {
        let mut r = Ring::<u32>::new(6);
        for i in 0..8 {
            r.push(i);
        }
        assert!(r.is_full());
        // The oldest four (2, 3, 4, 5) in pairs; the pair (4, 5) is refused and stays.
        let gone = r.merge_pairs(4, |a, b| (a != 4).then_some(a.min(b) + 100));
        assert_eq!(gone, 1);
        assert!(!r.is_full());
        assert_eq!(r.iter().collect::<Vec<_>>(), vec![102, 4, 5, 6, 7]);
        r.push(8);
        assert_eq!(r.iter().collect::<Vec<_>>(), vec![102, 4, 5, 6, 7, 8]);
        // An odd count leaves its last item unpaired.
        assert_eq!(r.merge_pairs(3, |a, _| Some(a)), 1);
        assert_eq!(r.iter().collect::<Vec<_>>(), vec![102, 5, 6, 7, 8]);
    }
}
