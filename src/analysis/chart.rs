//! Inline SVG charts for the report: no scripts, no external assets, so the report opens from the
//! bag anywhere. Labels that came from logs are escaped by the caller's `escape`.

use std::fmt::Write;

use super::report::escape;
use super::summary::Minute;

/// At most this many columns in the timeline; longer timelines are binned.
const MAX_POINTS: usize = 600;
const WIDTH: f64 = 900.0;

/// Requests and authentication failures per minute, as two lines over a shared time axis.
pub fn timeline(minutes: &[Minute]) -> String {
    if minutes.is_empty() {
        return "<p>No request had a time.</p>\n".into();
    }
    let bin = minutes.len().div_ceil(MAX_POINTS);
    let binned: Vec<(u64, u64)> = minutes
        .chunks(bin)
        .map(|c| {
            (
                c.iter().map(|m| m.requests).sum(),
                c.iter().map(|m| m.auth_failures).sum(),
            )
        })
        .collect();
    let max = binned.iter().map(|b| b.0).max().unwrap_or(1).max(1) as f64;
    let (h, top, left) = (200.0, 10.0, 60.0);
    let plot = WIDTH - left - 10.0;
    let x = |i: usize| left + plot * i as f64 / (binned.len().max(2) - 1) as f64;
    let y = |v: u64| top + h - h * v as f64 / max;
    let line = |pick: fn(&(u64, u64)) -> u64| {
        binned
            .iter()
            .enumerate()
            .map(|(i, b)| format!("{:.1},{:.1}", x(i), y(pick(b))))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut s = String::new();
    let _ = writeln!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" role=\"img\" width=\"{WIDTH}\" height=\"{}\" \
         viewBox=\"0 0 {WIDTH} {}\"><title>Requests and authentication failures per {}</title>\
         <rect x=\"{left}\" y=\"{top}\" width=\"{plot}\" height=\"{h}\" fill=\"#fafafa\" stroke=\"#ccc\"/>\
         <polyline fill=\"none\" stroke=\"#2b6cb0\" stroke-width=\"1.5\" points=\"{}\"/>\
         <polyline fill=\"none\" stroke=\"#c53030\" stroke-width=\"1.5\" points=\"{}\"/>\
         <text x=\"{}\" y=\"{}\" font-size=\"11\" text-anchor=\"end\">{}</text>\
         <text x=\"{}\" y=\"{}\" font-size=\"11\" text-anchor=\"end\">0</text>\
         <text x=\"{left}\" y=\"{}\" font-size=\"11\">{}</text>\
         <text x=\"{}\" y=\"{}\" font-size=\"11\" text-anchor=\"end\">{}</text></svg>",
        h + 40.0,
        h + 40.0,
        if bin == 1 { "minute".to_string() } else { format!("{bin} minutes") },
        line(|b| b.0),
        line(|b| b.1),
        left - 4.0,
        top + 10.0,
        max as u64,
        left - 4.0,
        top + h,
        top + h + 16.0,
        escape(&minutes[0].minute),
        left + plot,
        top + h + 16.0,
        escape(&minutes[minutes.len() - 1].minute),
    );
    s.push_str(
        "<p><span style=\"color:#2b6cb0\">&#9632;</span> requests &nbsp; \
         <span style=\"color:#c53030\">&#9632;</span> authentication failures (401/403/419/429)</p>\n",
    );
    s
}

/// Horizontal bars: a label, a total and a highlighted part of it (drawn over the total).
pub fn bars(title: &str, rows: &[(String, u64, u64)]) -> String {
    if rows.is_empty() {
        return String::new();
    }
    let max = rows.iter().map(|r| r.1).max().unwrap_or(1).max(1) as f64;
    let (row_h, label_w) = (18.0, 260.0);
    let plot = WIDTH - label_w - 80.0;
    let height = row_h * rows.len() as f64 + 10.0;
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" role=\"img\" width=\"{WIDTH}\" height=\"{height}\" \
         viewBox=\"0 0 {WIDTH} {height}\"><title>{}</title>",
        escape(title)
    );
    for (i, (label, total, part)) in rows.iter().enumerate() {
        let y = 5.0 + row_h * i as f64;
        let w = plot * *total as f64 / max;
        let wp = plot * *part as f64 / max;
        let _ = write!(
            s,
            "<text x=\"{}\" y=\"{}\" font-size=\"11\" text-anchor=\"end\">{}</text>\
             <rect x=\"{label_w}\" y=\"{y}\" width=\"{w:.1}\" height=\"{}\" fill=\"#90cdf4\"/>\
             <rect x=\"{label_w}\" y=\"{y}\" width=\"{wp:.1}\" height=\"{}\" fill=\"#c53030\"/>\
             <text x=\"{}\" y=\"{}\" font-size=\"11\">{total}</text>",
            label_w - 6.0,
            y + 12.0,
            escape(label),
            row_h - 4.0,
            row_h - 4.0,
            label_w + w + 4.0,
            y + 12.0,
        );
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minute(i: u64) -> Minute {
        Minute {
            minute: format!("m{i}"),
            requests: i,
            client_errors: 0,
            server_errors: 0,
            auth_failures: i / 2,
        }
    }

    #[test]
    fn long_timelines_are_binned_and_labels_escaped() {
        let minutes: Vec<Minute> = (0..5000).map(minute).collect();
        let svg = timeline(&minutes);
        let points = svg
            .split("points=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        assert!(points.split(' ').count() <= MAX_POINTS);
        let svg = bars("t", &[("<script>".into(), 10, 3)]);
        assert!(svg.contains("&lt;script&gt;") && !svg.contains("<script>"));
        assert!(timeline(&[]).contains("No request"));
    }
}
