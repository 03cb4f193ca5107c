//! A report in, an SVG picture out: end-of-speech-to-final percentiles over
//! time, the server's memory over time and its CPU over time, drawn by hand.

use std::fmt::Write;

use crate::report::Report;

const WIDTH: f64 = 900.0;
const PANEL_H: f64 = 220.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 150.0;
const TOP: f64 = 50.0;
const GAP: f64 = 60.0;

struct Series<'a> {
    name: &'a str,
    color: &'a str,
    points: Vec<(f64, f64)>,
    /// Dots (one per utterance) instead of a line.
    dots: bool,
}

/// A horizontal reference line (a target).
struct Mark<'a> {
    label: &'a str,
    y: f64,
}

pub fn render(r: &Report) -> String {
    let t_max = r
        .server
        .samples
        .iter()
        .map(|s| s.t)
        .chain(r.timeline.iter().map(|p| p.t))
        .fold(r.wall_s, f64::max)
        .max(1.0);
    let latency = |f: fn(&crate::analysis::Stats) -> f64| {
        r.timeline
            .iter()
            .map(|p| (p.t, f(&p.eos_to_final_s)))
            .collect()
    };
    let samples = |f: fn(&crate::server::ResourceSample) -> f64| {
        r.server.samples.iter().map(|s| (s.t, f(s))).collect()
    };
    let s = &r.settings;
    let mut out = String::new();
    let height = TOP + 4.0 * (PANEL_H + GAP);
    writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" font-family="sans-serif" font-size="12">"#
    )
    .unwrap();
    writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#).unwrap();
    writeln!(
        out,
        r#"<text x="{LEFT}" y="24" font-size="15" font-weight="bold">steno-loadgen: {} users + {} idle + {} extra, {:.0} s, pace {}; p95 {:.2} s, peak RSS {:.0} MB</text>"#,
        s.users,
        s.idle_users,
        s.extra_users,
        s.duration_s,
        s.pace,
        r.eos_to_final_s.p95,
        r.server.peak_rss_mb
    )
    .unwrap();
    panel(
        &mut out,
        0,
        "end of speech to final (s), by arrival time",
        t_max,
        &[
            Series {
                name: "each utterance",
                color: "#bbbbbb",
                points: r
                    .utterance_results
                    .iter()
                    .filter_map(|u| Some((u.t_final?, u.eos_to_final_s?)))
                    .collect(),
                dots: true,
            },
            Series {
                name: "p50",
                color: "#1f77b4",
                points: latency(|s| s.p50),
                dots: false,
            },
            Series {
                name: "p95",
                color: "#ff7f0e",
                points: latency(|s| s.p95),
                dots: false,
            },
            Series {
                name: "p99",
                color: "#d62728",
                points: latency(|s| s.p99),
                dots: false,
            },
        ],
        &[
            Mark {
                label: "p50 target 0.8 s",
                y: 0.8,
            },
            Mark {
                label: "p95 target 1.5 s",
                y: 1.5,
            },
        ],
    );
    panel(
        &mut out,
        1,
        "server resident memory (MB)",
        t_max,
        &[Series {
            name: "RSS",
            color: "#2ca02c",
            points: samples(|s| s.rss_mb),
            dots: false,
        }],
        &[Mark {
            label: "400 MB",
            y: 400.0,
        }],
    );
    panel(
        &mut out,
        2,
        "server CPU (% of one core)",
        t_max,
        &[Series {
            name: "CPU %",
            color: "#9467bd",
            points: samples(|s| s.cpu_pct),
            dots: false,
        }],
        &[],
    );
    panel(
        &mut out,
        3,
        "sessions open (this load generator's)",
        t_max,
        &[Series {
            name: "open",
            color: "#7f7f7f",
            points: samples(|s| s.open_sessions as f64),
            dots: false,
        }],
        &[],
    );
    out.push_str("</svg>\n");
    out
}

fn panel(
    out: &mut String,
    index: usize,
    title: &str,
    t_max: f64,
    series: &[Series],
    marks: &[Mark],
) {
    let y0 = TOP + index as f64 * (PANEL_H + GAP);
    let w = WIDTH - LEFT - RIGHT;
    let data_max = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .fold(0.0, f64::max);
    let mark_max = marks.iter().map(|m| m.y).fold(0.0, f64::max);
    let y_max = nice_ceiling(data_max.max(mark_max * 1.1));
    let x = |t: f64| LEFT + t / t_max * w;
    let y = |v: f64| y0 + PANEL_H - v / y_max * PANEL_H;
    writeln!(
        out,
        r#"<text x="{LEFT}" y="{}" font-weight="bold">{title}</text>"#,
        y0 - 8.0
    )
    .unwrap();
    writeln!(
        out,
        r##"<rect x="{LEFT}" y="{y0}" width="{w}" height="{PANEL_H}" fill="none" stroke="#444"/>"##
    )
    .unwrap();
    for i in 0..=4 {
        let v = y_max * i as f64 / 4.0;
        let (x1, yv, tx, text) = (LEFT + w, y(v), LEFT - 6.0, label(v));
        writeln!(
            out,
            r##"<line x1="{LEFT}" x2="{x1}" y1="{yv:.1}" y2="{yv:.1}" stroke="#ddd"/><text x="{tx}" y="{:.1}" text-anchor="end">{text}</text>"##,
            yv + 4.0,
        )
        .unwrap();
    }
    let t_step = nice_ceiling(t_max / 8.0);
    let mut t = 0.0;
    while t <= t_max + 1e-9 {
        writeln!(
            out,
            r#"<text x="{:.1}" y="{}" text-anchor="middle">{}s</text>"#,
            x(t),
            y0 + PANEL_H + 16.0,
            label(t)
        )
        .unwrap();
        t += t_step;
    }
    let mut last_label_y = f64::MAX;
    for m in marks {
        let (x1, ym, tx) = (LEFT + w, y(m.y), LEFT + w + 6.0);
        // Keep labels of close marks apart.
        let label_y = (ym + 4.0).min(last_label_y - 14.0);
        last_label_y = label_y;
        writeln!(
            out,
            r##"<line x1="{LEFT}" x2="{x1}" y1="{ym:.1}" y2="{ym:.1}" stroke="#000" stroke-dasharray="5,4"/><text x="{tx}" y="{label_y:.1}">{}</text>"##,
            m.label
        )
        .unwrap();
    }
    for (i, s) in series.iter().enumerate() {
        if s.dots {
            for &(t, v) in &s.points {
                writeln!(
                    out,
                    r#"<circle cx="{:.1}" cy="{:.1}" r="2" fill="{}"/>"#,
                    x(t),
                    y(v),
                    s.color
                )
                .unwrap();
            }
        } else if !s.points.is_empty() {
            let points: Vec<String> = s
                .points
                .iter()
                .map(|&(t, v)| format!("{:.1},{:.1}", x(t), y(v)))
                .collect();
            writeln!(
                out,
                r#"<polyline fill="none" stroke="{}" stroke-width="2" points="{}"/>"#,
                s.color,
                points.join(" ")
            )
            .unwrap();
        }
        let ly = y0 + 14.0 + i as f64 * 16.0;
        writeln!(
            out,
            r#"<rect x="{}" y="{}" width="12" height="4" fill="{}"/><text x="{}" y="{}">{}</text>"#,
            LEFT + w + 6.0,
            ly - 6.0,
            s.color,
            LEFT + w + 22.0,
            ly,
            s.name
        )
        .unwrap();
    }
}

/// 1, 2, 2.5 or 5 times a power of ten, at least `v`.
fn nice_ceiling(v: f64) -> f64 {
    if v <= 0.0 {
        return 1.0;
    }
    let base = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0]
        .into_iter()
        .map(|m| m * base)
        .find(|&c| c >= v)
        .unwrap_or(10.0 * base)
}

fn label(v: f64) -> String {
    if v == v.round() {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_ceilings_are_round() {
        assert_eq!(nice_ceiling(0.93), 1.0);
        assert_eq!(nice_ceiling(1.6), 2.0);
        assert_eq!(nice_ceiling(312.0), 500.0);
        assert_eq!(nice_ceiling(201.0), 250.0);
        assert_eq!(nice_ceiling(0.0), 1.0);
    }
}
