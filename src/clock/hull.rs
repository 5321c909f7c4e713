//! Lower convex hulls of delay samples, and the line that best supports them.
//!
//! A one-way delay sample is the true clock relation plus a delay that is never below the
//! path's base delay. The lower envelope of many samples is therefore the clock relation
//! (shifted by the base delay), and the best straight-line envelope — the line that lies
//! below every sample and is as high as possible at a chosen instant — is a lower-hull edge.
//! This is the linear-programming clock fit of Moon, Skelly and Towsley, done in
//! O(n) on samples that arrive in time order.

/// A sample: `t` (local ns, relative to an anchor) and `y` (ns, relative to an anchor).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Point {
    pub t: i64,
    pub y: i64,
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

/// The supporting line of `hull` that is highest at `t`: the hull edge spanning `t` (the end
/// edge if `t` lies outside). With a single vertex the slope is unknown and `fallback_slope`
/// is used through it. `None` for an empty hull.
pub(crate) fn support_at(hull: &[Point], t: i64, fallback_slope: f64) -> Option<Line> {
    match hull.len() {
        0 => None,
        1 => Some(Line {
            at: hull[0].t,
            value: hull[0].y as f64,
            slope: fallback_slope,
        }),
        n => {
            // Index of the first vertex right of t, clamped to a valid edge.
            let i = hull.partition_point(|p| p.t <= t).clamp(1, n - 1);
            let (a, b) = (hull[i - 1], hull[i]);
            let slope = (b.y - a.y) as f64 / (b.t - a.t) as f64;
            Some(Line {
                at: a.t,
                value: a.y as f64,
                slope,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pts(v: &[(i64, i64)]) -> Vec<Point> {
        v.iter().map(|&(t, y)| Point { t, y }).collect()
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

    #[test]
    fn support_line_is_the_edge_under_the_query() {
        let hull = pts(&[(0, 5), (1, 1), (3, 0), (5, 2)]);
        let l = support_at(&hull, 2, 0.0).unwrap();
        assert_eq!((l.at, l.slope), (1, -0.5));
        assert_eq!(l.eval(3), 0.0);
        // Outside the span: the end edges.
        assert_eq!(support_at(&hull, -10, 0.0).unwrap().slope, -4.0);
        assert_eq!(support_at(&hull, 99, 0.0).unwrap().slope, 1.0);
        let single = support_at(&hull[..1], 7, 0.25).unwrap();
        assert_eq!(single.eval(4), 6.0);
        assert!(support_at(&[], 0, 0.0).is_none());
    }

    #[test]
    fn a_line_under_noisy_samples_recovers_slope_and_offset() {
        // y = 1000 + 0.00005·t plus positive "delay" noise; the true line touches every 37th.
        let mut p = Vec::new();
        let mut x: u64 = 12345;
        for i in 0..2000i64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let noise = if i % 37 == 0 {
                0
            } else {
                (x % 5000) as i64 + 1
            };
            let t = i * 62_500_000;
            p.push(Point {
                t,
                y: 1000 + t / 20_000 + noise,
            });
        }
        let mut hull = Vec::new();
        lower_hull(p.iter().copied(), &mut hull);
        let l = support_at(&hull, 1000 * 62_500_000, 0.0).unwrap();
        assert!((l.slope - 0.00005).abs() < 1e-9, "slope {}", l.slope);
        assert!((l.eval(0) - 1000.0).abs() < 1.0);
    }
}
