//! Lower convex hulls of delay samples, and the line that best supports them.
//!
//! A one-way delay sample is the true clock relation plus a delay that is never below the
//! path's base delay. The lower envelope of many samples is therefore the clock relation
//! (shifted by the base delay), and every candidate straight-line envelope — a line below
//! every sample, as high as it can be for its slope — touches the lower hull at a vertex.
//! The hull, built in O(n) from samples in time order, is all the envelope fit needs.

/// A sample: `t` (local ns, relative to an anchor) and `y` (ns, relative to an anchor).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Point {
    pub t: i64,
    pub y: i64,
    /// How many exchanges the sample is the best of (0 counts as 1): a fit weighs it by
    /// that, since the least of `n` exponential delays is exponential with `n` times less
    /// mean. The hull ignores it.
    pub n: u32,
}

/// `(b - a) × (c - a)`: positive when `a → b → c` turns left (counter-clockwise).
fn cross(a: Point, b: Point, c: Point) -> i128 {
    let abt = (b.t - a.t) as i128;
    let aby = (b.y - a.y) as i128;
    let act = (c.t - a.t) as i128;
    let acy = (c.y - a.y) as i128;
    abt * acy - aby * act
}

/// Builds the lower convex hull of `points` (which must come in non-decreasing `t`) into
/// `out`, left to right. `out` is cleared first; it never grows past the number of points,
/// so a caller that reserved that capacity allocates nothing.
pub(crate) fn lower_hull(points: impl Iterator<Item = Point>, out: &mut Vec<Point>) {
    out.clear();
    for p in points {
        if let Some(last) = out.last()
            && last.t == p.t
        {
            // Same instant: only the lower sample can be on the lower hull.
            if p.y >= last.y {
                continue;
            }
            out.pop();
        }
        while out.len() >= 2 && cross(out[out.len() - 2], out[out.len() - 1], p) <= 0 {
            out.pop();
        }
        out.push(p);
    }
}

/// A straight line `y(t) = value + slope·(t - at)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Line {
    pub at: i64,
    pub value: f64,
    pub slope: f64,
}

impl Line {
    pub(crate) fn eval(&self, t: i64) -> f64 {
        self.value + self.slope * (t - self.at) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pts(v: &[(i64, i64)]) -> Vec<Point> {
        v.iter().map(|&(t, y)| Point { t, y, n: 1 }).collect()
    }

    #[test]
    fn hull_keeps_only_the_lower_envelope() {
        let p = pts(&[(0, 5), (1, 1), (2, 4), (3, 0), (4, 3), (5, 6), (5, 2)]);
        let mut out = Vec::with_capacity(p.len());
        lower_hull(p.into_iter(), &mut out);
        assert_eq!(out, pts(&[(0, 5), (1, 1), (3, 0), (5, 2)]));
    }

    #[test]
    fn collinear_points_collapse_to_the_ends() {
        let p = pts(&[(0, 0), (1, 1), (2, 2), (3, 3)]);
        let mut out = Vec::new();
        lower_hull(p.into_iter(), &mut out);
        assert_eq!(out, pts(&[(0, 0), (3, 3)]));
    }
}
