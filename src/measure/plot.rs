//! SVG line plots for reports: no dependency, one self-contained file.

use std::fmt::Write;

/// One named line of `(x, y)` points.
#[derive(Clone, Copy, Debug)]
pub struct Series<'a> {
    /// Legend text.
    pub name: &'a str,
    /// Points, in x order.
    pub points: &'a [(f64, f64)],
}

/// Colours for successive series (colour-blind-safe palette).
const COLOURS: [&str; 8] = [
    "#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442",
];

/// Draws `series` as lines of |y| on a logarithmic y axis between `y_min` and `y_max`
/// (values outside are clipped to the frame), x linear from 0 to the largest x.
/// Magnitudes are what matter for an error plot that spans a second down to nanoseconds.
pub fn log_plot_svg(
    title: &str,
    x_label: &str,
    y_label: &str,
    y_min: f64,
    y_max: f64,
    series: &[Series<'_>],
) -> String {
    let (w, h) = (960.0, 540.0);
    let (left, right, top, bottom) = (80.0, 170.0, 40.0, 60.0);
    let pw = w - left - right;
    let ph = h - top - bottom;
    let x_max = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .fold(0.0f64, f64::max)
        .max(1e-9);
    let (ly0, ly1) = (y_min.log10(), y_max.log10());
    let sx = |x: f64| left + pw * (x / x_max);
    let sy = |y: f64| {
        let l = y.abs().max(y_min).min(y_max).log10();
        top + ph * (1.0 - (l - ly0) / (ly1 - ly0))
    };

    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="{w}" height="{h}" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="24" text-anchor="middle" font-size="15">{}</text>"#,
        left + pw / 2.0,
        escape(title)
    );
    // Decade grid lines.
    let mut d = ly0.ceil() as i32;
    while d as f64 <= ly1 {
        let y = sy(10f64.powi(d));
        let _ = writeln!(
            s,
            r##"<line x1="{left}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">1e{d}</text>"##,
            left + pw,
            left - 6.0,
            y + 4.0
        );
        d += 1;
    }
    for i in 0..=10 {
        let x = x_max * i as f64 / 10.0;
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{}" text-anchor="middle">{}</text>"#,
            sx(x),
            top + ph + 18.0,
            trim_num(x)
        );
    }
    let _ = writeln!(
        s,
        r#"<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="black"/>"#
    );
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
        left + pw / 2.0,
        h - 16.0,
        escape(x_label)
    );
    let _ = writeln!(
        s,
        r#"<text transform="translate(18 {}) rotate(-90)" text-anchor="middle">{}</text>"#,
        top + ph / 2.0,
        escape(y_label)
    );
    for (i, ser) in series.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let mut path = String::with_capacity(ser.points.len() * 16);
        for (j, &(x, y)) in ser.points.iter().enumerate() {
            let _ = write!(
                path,
                "{}{:.1},{:.1}",
                if j == 0 { "M" } else { " L" },
                sx(x),
                sy(y)
            );
        }
        let _ = writeln!(
            s,
            r#"<path d="{path}" fill="none" stroke="{colour}" stroke-width="1.2" opacity="0.85"/>"#
        );
        let ly = top + 16.0 + 20.0 * i as f64;
        let lx = left + pw + 14.0;
        let _ = writeln!(
            s,
            r#"<line x1="{lx}" y1="{ly}" x2="{}" y2="{ly}" stroke="{colour}" stroke-width="3"/><text x="{}" y="{}">{}</text>"#,
            lx + 24.0,
            lx + 30.0,
            ly + 4.0,
            escape(ser.name)
        );
    }
    s.push_str("</svg>\n");
    s
}

fn trim_num(v: f64) -> String {
    let t = format!("{v:.1}");
    t.strip_suffix(".0").map(str::to_string).unwrap_or(t)
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plot_has_one_path_per_series_and_escapes_text() {
        let a = [(0.0, 1.0), (1.0, 10.0), (2.0, 1e9)];
        let b = [(0.0, 0.0), (2.0, -5.0)];
        let svg = log_plot_svg(
            "err <µs>",
            "s",
            "µs",
            0.01,
            1e6,
            &[
                Series {
                    name: "a",
                    points: &a,
                },
                Series {
                    name: "b&c",
                    points: &b,
                },
            ],
        );
        assert!(svg.starts_with("<svg"));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<path").count(), 2);
        assert!(svg.contains("err &lt;µs&gt;"));
        assert!(svg.contains("b&amp;c"));
        // 1e9 is clipped to the top of the frame (y = 40), 0 to the bottom (y = 480).
        assert!(svg.contains(",40.0"));
        assert!(svg.contains(",480.0"));
    }
}
