//! The HTML report: one self-contained page per run, and an index over runs.
//!
//! A page holds the verdict and expectations, the plan's Grafana dashboards drawn as SVG line
//! charts (each panel's own PromQL queries, evaluated as range queries over the simulated
//! store with [`crate::promql::Engine::eval_range`], its own title, and its own `legendFormat`),
//! replicas, Ready and Pending pods per Deployment over time, alert bars (pending and firing
//! intervals), each SLO's burn rate, and the timeline (cluster events, faults, HPA rescales,
//! ejections, alert transitions).
//!
//! Invariants: the page loads nothing (no link, no script, no image; CSS inline, charts inline
//! SVG), so it opens from a file or an artifact store and needs no JavaScript; every text that
//! comes from the run or the manifests is escaped; the bytes are a pure function of the run
//! (series in label-set order, fixed float formatting), so the same scenario and seed give the
//! same page. A chart without data never draws empty axes: its figure carries the class
//! `nodata` and says why in words.

use std::fmt::Write as _;

use crate::engine::SimDuration;
use crate::manifests::grafana::{Dashboard, Panel};
use crate::promql::{Engine, EngineOptions, Value};
use crate::report::{AlertLife, SummaryRow, alert_lives, summary_row};
use crate::scenario::RunResult;
use crate::telemetry::store::Labels;

/// Escapes text for HTML and SVG content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A series' name as Grafana's Prometheus data source writes it in a legend: each `{{ name }}`
/// of `legend_format` replaced by that label's value, or by the name itself when the series
/// lacks the label (Grafana's `renderLegendFormat`); without a format, the series' labels as
/// `metric{k="v", ...}`, or the query when the series has no labels at all.
pub fn legend(legend_format: Option<&str>, labels: &Labels, expr: &str) -> String {
    if let Some(format) = legend_format.filter(|f| !f.trim().is_empty()) {
        let mut out = String::new();
        let mut rest = format;
        while let Some(open) = rest.find("{{") {
            let Some(close) = rest[open + 2..].find("}}") else {
                break;
            };
            out.push_str(&rest[..open]);
            let name = rest[open + 2..open + 2 + close].trim();
            match labels.get(name) {
                Some(value) if !value.is_empty() => out.push_str(value),
                _ => out.push_str(name),
            }
            rest = &rest[open + 2 + close + 2..];
        }
        out.push_str(rest);
        return out;
    }
    if labels.is_empty() {
        return expr.trim().to_string();
    }
    let mut out = labels.metric_name().unwrap_or("").to_string();
    let pairs: Vec<String> = labels
        .iter()
        .filter(|l| l.name.as_str() != "__name__")
        .map(|l| format!("{}={:?}", l.name, l.value.as_str()))
        .collect();
    if !pairs.is_empty() {
        let _ = write!(out, "{{{}}}", pairs.join(", "));
    }
    out
}

/// Grafana's classic palette, in its order: the n-th series of a panel gets the n-th colour.
const PALETTE: [&str; 12] = [
    "#7eb26d", "#eab839", "#6ed0e0", "#ef843c", "#e24d42", "#1f78c1", "#ba43a9", "#705da0",
    "#508642", "#cca300", "#447ebc", "#c15c17",
];

/// One line of a chart: `(seconds from the start, value)` in time order.
#[derive(Clone, Debug, PartialEq)]
pub struct Line {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    /// Drawn as a step series (each value held until the next point, and the last to the end)
    /// rather than joined by straight segments.
    pub step: bool,
    /// Points further apart than this [s] are not joined (a gap in the series).
    pub gap_secs: f64,
}

/// A chart before drawing.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Chart {
    pub title: String,
    /// The queries or the source, under the title.
    pub subtitle: Vec<String>,
    pub lines: Vec<Line>,
    /// Horizontal reference lines `(value, label)`, always inside the y range.
    pub references: Vec<(f64, String)>,
    /// Errors to show (a query that failed).
    pub errors: Vec<String>,
    /// Why the chart has nothing to draw, when it has no point.
    pub no_data: String,
}

/// A vertical marker on every time chart: a fault or a rollback.
#[derive(Clone, Debug, PartialEq)]
pub struct Marker {
    pub at_secs: f64,
    pub label: String,
}

// Geometry of a time chart, in SVG user units.
const WIDTH: f64 = 600.0;
const HEIGHT: f64 = 240.0;
const LEFT: f64 = 58.0;
const RIGHT: f64 = 14.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 26.0;

/// A round step for about `target` intervals over `span`: 1, 2 or 5 times a power of ten.
fn nice_step(span: f64, target: f64) -> f64 {
    let raw = (span / target).max(f64::MIN_POSITIVE);
    let power = 10f64.powf(raw.log10().floor());
    let fraction = raw / power;
    let nice = if fraction <= 1.0 {
        1.0
    } else if fraction <= 2.0 {
        2.0
    } else if fraction <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * power
}

/// A value as an axis or legend shows it: at most four significant digits, SI suffixes from a
/// thousand on, no exponent; `NaN` and infinities spelled out.
pub fn short(value: f64) -> String {
    if value.is_nan() {
        return "NaN".into();
    }
    if value.is_infinite() {
        return if value > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    let (scaled, suffix) = match value.abs() {
        a if a >= 1e12 => (value / 1e12, "T"),
        a if a >= 1e9 => (value / 1e9, "G"),
        a if a >= 1e6 => (value / 1e6, "M"),
        a if a >= 1e3 => (value / 1e3, "k"),
        _ => (value, ""),
    };
    if scaled == 0.0 {
        return "0".into();
    }
    let digits = (3 - scaled.abs().log10().floor() as i32).clamp(0, 9) as usize;
    let mut text = format!("{scaled:.digits$}");
    if text.contains('.') {
        while text.ends_with('0') {
            text.pop();
        }
        if text.ends_with('.') {
            text.pop();
        }
    }
    if text == "-0" {
        text = "0".into();
    }
    format!("{text}{suffix}")
}

/// A time from the start for an axis: `0`, `30s`, `5m`, `1h`, `1h30m`.
pub fn clock(secs: f64) -> String {
    let total = secs.round() as i64;
    if total == 0 {
        return "0".into();
    }
    let (h, m, s) = (total / 3600, total % 3600 / 60, total % 60);
    let mut out = String::new();
    if h > 0 {
        let _ = write!(out, "{h}h");
    }
    if m > 0 {
        let _ = write!(out, "{m}m");
    }
    if s > 0 {
        let _ = write!(out, "{s}s");
    }
    out
}

/// A time from the start for a table: Go's duration format (`14m28.621s`).
fn at(secs: f64) -> String {
    SimDuration::from_secs_f64(secs.max(0.0)).to_string()
}

/// The time-axis tick interval [s] for a run of `end_secs`: at most eight ticks.
fn time_step(end_secs: f64) -> f64 {
    const STEPS: [f64; 16] = [
        10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0, 10800.0, 21600.0,
        43200.0, 86400.0, 172800.0, 604800.0,
    ];
    STEPS
        .iter()
        .copied()
        .find(|s| end_secs / s <= 8.0)
        .unwrap_or(604800.0)
}

fn x_of(secs: f64, end_secs: f64) -> f64 {
    LEFT + (WIDTH - LEFT - RIGHT) * (secs / end_secs).clamp(0.0, 1.0)
}

/// The time axis: ticks, labels and vertical grid lines, and the markers.
fn time_axis(out: &mut String, end_secs: f64, bottom: f64, markers: &[Marker]) {
    let step = time_step(end_secs);
    let mut t = 0.0;
    while t <= end_secs + 1e-9 {
        let x = x_of(t, end_secs);
        let _ = write!(
            out,
            r##"<line class="grid" x1="{x:.1}" y1="{TOP:.1}" x2="{x:.1}" y2="{bottom:.1}"/><text class="tick" x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            bottom + 14.0,
            clock(t)
        );
        t += step;
    }
    for m in markers {
        let x = x_of(m.at_secs, end_secs);
        let _ = write!(
            out,
            r##"<g class="marker"><title>{}</title><line x1="{x:.1}" y1="{TOP:.1}" x2="{x:.1}" y2="{bottom:.1}"/><path d="M{:.1} {TOP:.1}L{:.1} {TOP:.1}L{x:.1} {:.1}Z"/></g>"##,
            escape(&format!("{} {}", at(m.at_secs), m.label)),
            x - 4.0,
            x + 4.0,
            TOP + 6.0,
        );
    }
}

/// The chart's range of values: from zero (or the lowest value, if negative) to the highest
/// value or reference, rounded out to whole ticks.
fn value_range(chart: &Chart) -> (f64, f64, f64) {
    let values = chart
        .lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.1))
        .chain(chart.references.iter().map(|r| r.0))
        .filter(|v| v.is_finite());
    let (mut lo, mut hi) = (0f64, f64::NEG_INFINITY);
    for v in values {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !hi.is_finite() || hi <= lo {
        hi = lo + 1.0;
    }
    let step = nice_step(hi - lo, 4.0);
    let lo = (lo / step).floor() * step;
    let hi = (hi / step).ceil() * step;
    (lo, hi, step)
}

/// The SVG path of one line, with `M` wherever the series restarts after a gap; and how many
/// points it joins.
fn line_path(line: &Line, end_secs: f64, y_of: &dyn Fn(f64) -> f64) -> (String, usize) {
    let mut d = String::new();
    let mut n = 0;
    let mut last: Option<(f64, f64)> = None;
    for &(t, v) in &line.points {
        if !v.is_finite() {
            last = None;
            continue;
        }
        let (x, y) = (x_of(t, end_secs), y_of(v));
        match last {
            Some((last_t, last_y)) if t - last_t <= line.gap_secs + 1e-9 => {
                if line.step {
                    let _ = write!(d, "L{x:.1} {last_y:.1}");
                }
                let _ = write!(d, "L{x:.1} {y:.1}");
            }
            _ => {
                let _ = write!(d, "M{x:.1} {y:.1}");
            }
        }
        n += 1;
        last = Some((t, y));
    }
    if line.step
        && let Some((last_t, last_y)) = last
        && last_t < end_secs
    {
        let _ = write!(d, "L{:.1} {last_y:.1}", x_of(end_secs, end_secs));
        n += 1;
    }
    (d, n)
}

fn figure_open(out: &mut String, chart: &Chart, class: &str) {
    let _ = write!(
        out,
        r#"<figure class="{class}" data-chart="{}"><figcaption><b>{}</b>"#,
        escape(&chart.title),
        escape(&chart.title)
    );
    for s in &chart.subtitle {
        let _ = write!(out, r#"<code>{}</code>"#, escape(s));
    }
    out.push_str("</figcaption>");
    for e in &chart.errors {
        let _ = write!(out, r#"<p class="error">{}</p>"#, escape(e));
    }
}

/// Draws a time chart over `[0, end_secs]`, or its "no data" figure.
pub fn svg_chart(chart: &Chart, end_secs: f64, markers: &[Marker]) -> String {
    let mut out = String::new();
    let drawn = chart
        .lines
        .iter()
        .any(|l| l.points.iter().any(|p| p.1.is_finite()));
    if !drawn {
        figure_open(&mut out, chart, "chart nodata");
        let why = if chart.no_data.is_empty() {
            "the queries returned no series"
        } else {
            chart.no_data.as_str()
        };
        let _ = write!(
            out,
            r#"<div class="nodata-box">No data: {}</div></figure>"#,
            escape(why)
        );
        return out;
    }
    figure_open(&mut out, chart, "chart");
    let end_secs = end_secs.max(1.0);
    let (lo, hi, step) = value_range(chart);
    let bottom = HEIGHT - BOTTOM;
    let y_of = |v: f64| bottom - (bottom - TOP) * ((v - lo) / (hi - lo));
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{}">"#,
        escape(&chart.title)
    );
    let mut v = lo;
    while v <= hi + step * 1e-6 {
        let y = y_of(v);
        let _ = write!(
            out,
            r##"<line class="grid" x1="{LEFT:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}"/><text class="tick" x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            WIDTH - RIGHT,
            LEFT - 6.0,
            y + 4.0,
            short(v)
        );
        v += step;
    }
    time_axis(&mut out, end_secs, bottom, markers);
    for (value, label) in &chart.references {
        let y = y_of(*value);
        let _ = write!(
            out,
            r##"<g class="reference"><title>{}</title><line x1="{LEFT:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}"/></g>"##,
            escape(label),
            WIDTH - RIGHT
        );
    }
    let mut legend_items = String::new();
    for (idx, line) in chart.lines.iter().enumerate() {
        let color = PALETTE[idx % PALETTE.len()];
        let (d, n) = line_path(line, end_secs, &y_of);
        if n == 0 {
            continue;
        }
        let _ = write!(
            out,
            r#"<path class="series" data-points="{n}" stroke="{color}" d="{d}"><title>{}</title></path>"#,
            escape(&line.name)
        );
        let finite: Vec<f64> = line
            .points
            .iter()
            .map(|p| p.1)
            .filter(|v| v.is_finite())
            .collect();
        let last = finite.last().copied().unwrap_or(f64::NAN);
        let max = finite.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let _ = write!(
            legend_items,
            r#"<li><span class="swatch" style="background:{color}"></span>{} <span class="stat">last {} · max {}</span></li>"#,
            escape(&line.name),
            short(last),
            short(max)
        );
    }
    out.push_str("</svg>");
    let _ = write!(out, r#"<ul class="legend">{legend_items}</ul></figure>"#);
    out
}

/// The range-query step [ms] for a run of `end_ms`: the scrape interval, or coarser so that a
/// chart has at most about 400 points (Grafana's max data points for a panel this wide).
fn query_step_ms(end_ms: i64, scrape_ms: i64) -> i64 {
    let per_point = (end_ms / 400 + 999) / 1000 * 1000;
    per_point.max(scrape_ms).max(1000)
}

/// A dashboard panel as a chart: each target's expression evaluated as a range query over the
/// run, each resulting series named by the target's `legendFormat`.
pub fn panel_chart(engine: &Engine<'_>, panel: &Panel, end_ms: i64, step_ms: i64) -> Chart {
    let mut chart = Chart {
        title: panel
            .title
            .clone()
            .unwrap_or_else(|| "(untitled panel)".into()),
        ..Chart::default()
    };
    let gap_secs = step_ms as f64 / 1000.0;
    for target in &panel.targets {
        let Some(expr) = target.expr.as_deref().filter(|e| !e.trim().is_empty()) else {
            continue;
        };
        chart.subtitle.push(expr.trim().to_string());
        match engine.eval_range(expr, 0, end_ms, step_ms) {
            Ok(Value::Matrix(series)) => {
                for s in series {
                    chart.lines.push(Line {
                        name: legend(target.legend_format.as_deref(), &s.labels, expr),
                        points: s
                            .samples
                            .iter()
                            .map(|p| (p.t_ms as f64 / 1000.0, p.value))
                            .collect(),
                        step: false,
                        gap_secs,
                    });
                }
            }
            Ok(other) => chart.errors.push(format!(
                "{expr}: a range query gave a {}",
                other.type_name()
            )),
            Err(e) => chart.errors.push(format!("{expr}: {e}")),
        }
    }
    chart.no_data = if chart.subtitle.is_empty() {
        "the panel has no query".into()
    } else if chart.lines.is_empty() {
        "the panel's queries returned no series over the simulated metrics".into()
    } else {
        "every value the panel's queries returned is NaN or infinite".into()
    };
    chart
}

/// Step lines of replicas, Ready and Pending pods per Deployment, from the run's history.
fn replica_charts(result: &RunResult) -> [Chart; 3] {
    let w = &result.world;
    let end_secs = result.duration.as_secs_f64();
    let kinds: [(
        &str,
        &str,
        fn(&crate::scenario::world::ReplicaSample) -> f64,
    ); 3] = [
        (
            "Replicas per Deployment",
            "spec.replicas (the HPA writes it)",
            |s| f64::from(s.spec),
        ),
        (
            "Ready pods per Deployment",
            "pods with the Ready condition",
            |s| f64::from(s.ready),
        ),
        (
            "Pending pods per Deployment",
            "pods bound to no node",
            |s| f64::from(s.pending),
        ),
    ];
    kinds.map(|(title, subtitle, value)| Chart {
        title: title.into(),
        subtitle: vec![subtitle.into()],
        lines: w
            .deployment_names
            .iter()
            .enumerate()
            .map(|(idx, name)| Line {
                name: name.clone(),
                points: w
                    .replica_history
                    .iter()
                    .filter(|s| s.deployment == idx)
                    .map(|s| (s.at.as_secs_f64(), value(s)))
                    .collect(),
                step: true,
                gap_secs: end_secs,
            })
            .collect(),
        no_data: "the run has no Deployment".into(),
        ..Chart::default()
    })
}

/// Each SLO's burn rate each minute (its SLI's error ratio over its budget ratio).
fn slo_charts(result: &RunResult) -> Vec<Chart> {
    result
        .slo_ratios
        .iter()
        .map(|slo| {
            let budget = slo.budget_ratio();
            let used = result
                .slo_budget
                .iter()
                .find(|(n, _)| n == &slo.name)
                .map_or(f64::NAN, |(_, u)| *u);
            Chart {
                title: format!(
                    "SLO burn rate: {} (objective {} %)",
                    slo.name,
                    short(slo.objective)
                ),
                subtitle: vec![format!(
                    "error ratio / {} each minute; the run used {} % of the 30-day budget",
                    short(budget),
                    short(used * 100.0)
                )],
                lines: vec![Line {
                    name: format!("{} burn rate", slo.name),
                    points: slo
                        .points
                        .iter()
                        .filter_map(|(t, r)| {
                            r.filter(|_| budget > 0.0)
                                .map(|r| (*t as f64 / 1000.0, r / budget))
                        })
                        .collect(),
                    step: false,
                    gap_secs: 60.0,
                }],
                references: vec![(1.0, "burn rate 1: the budget lasts exactly 30 days".into())],
                no_data: "the SLI's queries returned no value at any minute of the run".into(),
                ..Chart::default()
            }
        })
        .collect()
}

/// The alerts' pending and firing intervals, one row per alert (label set).
fn alert_bars(lives: &[AlertLife], end_secs: f64, markers: &[Marker]) -> String {
    let mut out = String::new();
    let chart = Chart {
        title: "Alerts".into(),
        subtitle: vec!["pending (amber) and firing (red), one row per label set".into()],
        ..Chart::default()
    };
    if lives.is_empty() {
        figure_open(&mut out, &chart, "chart nodata alerts");
        out.push_str(
            r#"<div class="nodata-box">No data: no alert was pending or firing during the run</div></figure>"#,
        );
        return out;
    }
    figure_open(&mut out, &chart, "chart alerts");
    let end_secs = end_secs.max(1.0);
    // Each row: the alert's name, then its bar under it.
    let row = 32.0;
    let bottom = TOP + row * lives.len() as f64;
    let height = bottom + BOTTOM;
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height:.1}" role="img" aria-label="Alerts">"#
    );
    time_axis(&mut out, end_secs, bottom, markers);
    for (idx, life) in lives.iter().enumerate() {
        let y = TOP + row * idx as f64 + 15.0;
        let labels: Vec<String> = life
            .labels
            .iter()
            .filter(|(k, _)| k.as_str() != "alertname")
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let name = format!("{} {{{}}}", life.alert, labels.join(", "));
        let end = life.resolved_at_secs.unwrap_or(end_secs);
        let mut bar = |from: f64, to: f64, class: &str, what: &str, n: &mut usize| {
            let (x1, x2) = (x_of(from, end_secs), x_of(to, end_secs));
            let _ = write!(
                out,
                r#"<rect class="{class}" x="{x1:.1}" y="{y:.1}" width="{:.1}" height="12.0"><title>{}</title></rect>"#,
                (x2 - x1).max(1.0),
                escape(&format!("{name} {what} {} to {}", at(from), at(to)))
            );
            *n += 1;
        };
        let mut n = 0;
        if let Some(p) = life.pending_at_secs {
            bar(
                p,
                life.firing_at_secs.unwrap_or(end),
                "pending",
                "pending",
                &mut n,
            );
        }
        if let Some(f) = life.firing_at_secs {
            bar(f, end, "firing", "firing", &mut n);
        }
        let _ = write!(
            out,
            r#"<text class="bar-label" x="{:.1}" y="{:.1}">{}</text>"#,
            LEFT + 2.0,
            y - 4.0,
            escape(&name)
        );
    }
    out.push_str("</svg></figure>");
    out
}

/// One line of the page's timeline table.
struct Event {
    at_secs: f64,
    kind: String,
    object: String,
    message: String,
}

fn timeline(result: &RunResult) -> Vec<Event> {
    let w = &result.world;
    let mut events: Vec<Event> = w
        .cluster
        .records
        .iter()
        .map(|r| Event {
            at_secs: r.at.as_secs_f64(),
            kind: r.reason.to_string(),
            object: r.object.clone(),
            message: r.message.clone(),
        })
        .chain(w.timeline.iter().map(|t| Event {
            at_secs: t.at_secs,
            kind: t.kind.clone(),
            object: t.object.clone(),
            message: t.message.clone(),
        }))
        .collect();
    for c in &w.clusters {
        for e in c.outlier_log() {
            let kind = match e.action {
                crate::mesh::outlier::OutlierAction::Ejected => "Ejected",
                crate::mesh::outlier::OutlierAction::Unejected => "Unejected",
                _ => continue,
            };
            let pod = c
                .pod_of(e.host)
                .and_then(|k| w.cluster.pods.get(&k))
                .map(|p| p.name.clone())
                .unwrap_or_else(|| format!("host-{}", e.host.0));
            events.push(Event {
                at_secs: e.time.as_secs_f64(),
                kind: kind.into(),
                object: format!("pod/{pod}"),
                message: format!(
                    "outlier detection of cluster {}|{}",
                    c.service,
                    c.subset.as_deref().unwrap_or("")
                ),
            });
        }
    }
    for t in &w.alert_transitions {
        let labels: Vec<String> = t
            .labels
            .iter()
            .filter(|(k, _)| k.as_str() != "alertname")
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        events.push(Event {
            at_secs: t.at_ms as f64 / 1000.0,
            kind: format!("Alert{:?}", t.to),
            object: format!("alert/{}", t.alertname),
            message: format!("{{{}}} value {}", labels.join(", "), short(t.value)),
        });
    }
    // Stable: same-time events keep the order above (cluster, faults, mesh, alerts).
    events.sort_by(|a, b| a.at_secs.total_cmp(&b.at_secs));
    events
}

/// The markers of the time charts: faults and rollbacks.
fn markers(result: &RunResult) -> Vec<Marker> {
    result
        .world
        .timeline
        .iter()
        .filter(|t| t.kind == "Fault" || t.kind == "Rollback")
        .map(|t| Marker {
            at_secs: t.at_secs,
            label: format!("{} {}: {}", t.kind, t.object, t.message),
        })
        .collect()
}

const STYLE: &str = "\
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:0;background:#f4f5f7;color:#1d2330}
header{background:#1d2330;color:#fff;padding:18px 28px}
header h1{margin:0 0 4px;font-size:22px}
header p{margin:4px 0;max-width:70em;color:#d5d9e2}
main{padding:10px 28px 40px}
h2{margin:28px 0 10px;font-size:18px}
h3{margin:18px 0 8px;font-size:15px}
.verdict{display:inline-block;padding:2px 10px;border-radius:4px;font-weight:700;margin-left:8px;font-size:14px;vertical-align:middle}
.pass{background:#2e7d32;color:#fff}.fail{background:#c62828;color:#fff}
table{border-collapse:collapse;background:#fff;margin:6px 0;font-size:13px}
th,td{border:1px solid #dde1e8;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#eceff4}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.grid-2{display:grid;grid-template-columns:repeat(auto-fill,minmax(520px,1fr));gap:14px}
figure.chart{background:#fff;border:1px solid #dde1e8;border-radius:6px;margin:0;padding:10px 12px}
figcaption b{display:block;font-size:14px}
figcaption code{display:block;font-size:11px;color:#5a6270;white-space:pre-wrap;word-break:break-all}
svg{width:100%;height:auto;display:block;margin-top:6px}
svg .grid{stroke:#e3e6ec;stroke-width:1}
svg .tick{font-size:10px;fill:#5a6270}
svg path.series{fill:none;stroke-width:1.6;stroke-linejoin:round}
svg .marker line{stroke:#8e24aa;stroke-width:1;stroke-dasharray:4 3}
svg .marker path{fill:#8e24aa}
svg .reference line{stroke:#c62828;stroke-width:1;stroke-dasharray:6 4}
svg rect.pending{fill:#f9a825}svg rect.firing{fill:#d32f2f}
svg .bar-label{font-size:11px;fill:#1d2330}
ul.legend{list-style:none;margin:6px 0 0;padding:0;font-size:12px;columns:2}
ul.legend li{break-inside:avoid}
.swatch{display:inline-block;width:12px;height:3px;margin-right:6px;vertical-align:middle}
.stat{color:#5a6270}
.nodata-box{margin-top:8px;padding:28px;text-align:center;background:#fff8e1;border:1px dashed #f9a825;color:#6d4c00;font-weight:600}
p.error{color:#c62828;font-size:12px;margin:4px 0}
.ok{color:#2e7d32;font-weight:700}.bad{color:#c62828;font-weight:700}
td.kind,td a{white-space:nowrap}
";

fn head(out: &mut String, title: &str) {
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>{}</title><style>\n{STYLE}</style></head>\n",
        escape(title)
    );
}

fn verdict(passed: bool) -> &'static str {
    if passed {
        r#"<span class="verdict pass">PASS</span>"#
    } else {
        r#"<span class="verdict fail">FAIL</span>"#
    }
}

/// The run's page.
pub fn page(result: &RunResult) -> String {
    let w = &result.world;
    let end_secs = result.duration.as_secs_f64();
    let end_ms = result.duration.as_millis() as i64;
    let markers = markers(result);
    let mut out = String::new();
    head(&mut out, &format!("twin: {}", result.name));
    let _ = write!(
        out,
        "<body><header><h1>{}{}</h1><p>{}</p><p>seed {} · {} simulated · {} requests · {} engine events · rerun: <code>twin run {} --seed {}</code></p></header>\n<main>\n",
        escape(&result.name),
        verdict(result.passed()),
        escape(result.description.trim()),
        result.seed,
        escape(&result.duration.to_string()),
        w.arrivals,
        result.events,
        escape(&result.source.display().to_string()),
        result.seed
    );
    // Verdict and expectations.
    out.push_str(
        "<h2>Expectations</h2><table><tr><th>expectation</th><th>held</th><th>observed</th></tr>",
    );
    for (what, ok, detail) in &result.expectations {
        let _ = write!(
            out,
            "<tr><td>{}</td><td class=\"{}\">{}</td><td>{}</td></tr>",
            escape(what),
            if *ok { "ok" } else { "bad" },
            if *ok { "yes" } else { "NO" },
            escape(detail)
        );
    }
    out.push_str("</table>\n");
    // Requests, latency and budget.
    out.push_str("<h2>Requests and error budget</h2><table><tr><th>load</th><th>outcome</th><th>requests</th></tr>");
    for (idx, l) in w.loads.iter().enumerate() {
        for (outcome, n) in &w.outcomes[idx] {
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{}</td><td class=\"num\">{n}</td></tr>",
                escape(&l.name),
                escape(&outcome.to_string())
            );
        }
    }
    out.push_str("</table><table><tr><th>Deployment</th><th>requests</th><th>p50</th><th>p95</th><th>p99</th><th>most replicas</th></tr>");
    for (idx, name) in w.deployment_names.iter().enumerate() {
        let h = &w.stats[idx].latency_us;
        let q = |q: f64| {
            if h.is_empty() {
                "-".to_string()
            } else {
                format!("{} ms", short(h.value_at_quantile(q) as f64 / 1000.0))
            }
        };
        let _ = write!(
            out,
            "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            escape(name),
            h.len(),
            q(0.5),
            q(0.95),
            q(0.99),
            w.most_replicas.get(idx).copied().unwrap_or(0)
        );
    }
    out.push_str("</table><table><tr><th>SLO</th><th>30-day budget used</th></tr>");
    for (name, used) in &result.slo_budget {
        let _ = write!(
            out,
            "<tr><td>{}</td><td class=\"num\">{} %</td></tr>",
            escape(name),
            short(used * 100.0)
        );
    }
    let _ = write!(
        out,
        "</table><p>Longest Pending pod: {}.</p>\n",
        escape(&w.longest_pending.to_string())
    );
    // Dashboards.
    let engine = Engine::with_options(&w.storage.store, EngineOptions::default());
    let step_ms = query_step_ms(end_ms, w.scrape_interval.as_millis() as i64);
    for dashboard in &result.dashboards {
        dashboard_section(&mut out, &engine, dashboard, end_ms, step_ms, &markers);
    }
    if result.dashboards.is_empty() {
        out.push_str("<h2>Dashboards</h2><p>The manifests hold no Grafana dashboard.</p>\n");
    }
    // Cluster.
    out.push_str("<h2>Replicas and Pending pods</h2><div class=\"grid-2\">");
    for chart in replica_charts(result) {
        out.push_str(&svg_chart(&chart, end_secs, &markers));
    }
    out.push_str("</div>\n<h2>Alerts and SLO burn</h2><div class=\"grid-2\">");
    out.push_str(&alert_bars(&alert_lives(result), end_secs, &markers));
    for chart in slo_charts(result) {
        out.push_str(&svg_chart(&chart, end_secs, &markers));
    }
    out.push_str("</div>\n");
    if !w.rule_errors.is_empty() {
        out.push_str("<h2>Rule evaluation errors</h2><ul>");
        for e in &w.rule_errors {
            let _ = write!(out, "<li>{}</li>", escape(e));
        }
        out.push_str("</ul>\n");
    }
    // Timeline.
    out.push_str("<h2>Timeline</h2><table class=\"timeline\"><tr><th>at</th><th>kind</th><th>object</th><th>message</th></tr>");
    for e in timeline(result) {
        let _ = write!(
            out,
            "<tr><td class=\"num\">{}</td><td class=\"kind\">{}</td><td>{}</td><td>{}</td></tr>",
            escape(&at(e.at_secs)),
            escape(&e.kind),
            escape(&e.object),
            escape(&e.message)
        );
    }
    out.push_str("</table>\n</main></body></html>\n");
    out
}

fn dashboard_section(
    out: &mut String,
    engine: &Engine<'_>,
    dashboard: &Dashboard,
    end_ms: i64,
    step_ms: i64,
    markers: &[Marker],
) {
    let _ = write!(
        out,
        "<h2>Dashboard: {}</h2><p>Each panel's own queries, evaluated every {} over the simulated series; purple marks are faults and rollbacks.</p><div class=\"grid-2\">",
        escape(&dashboard.title),
        escape(&SimDuration::from_millis(step_ms as u64).to_string())
    );
    for panel in dashboard.all_panels() {
        if panel.panel_type.as_deref() == Some("row") {
            let _ = write!(
                out,
                "</div><h3>{}</h3><div class=\"grid-2\">",
                escape(panel.title.as_deref().unwrap_or(""))
            );
            continue;
        }
        let chart = panel_chart(engine, panel, end_ms, step_ms);
        out.push_str(&svg_chart(&chart, end_ms as f64 / 1000.0, markers));
    }
    out.push_str("</div>\n");
}

/// The index over runs: one row per run, as `twin rehearse`'s summary table, each linking to
/// `<scenario>/report.html`.
pub fn index(results: &[&RunResult]) -> String {
    let rows: Vec<SummaryRow> = results.iter().map(|r| summary_row(r)).collect();
    let failed = rows.iter().filter(|r| !r.passed).count();
    let mut out = String::new();
    head(&mut out, "twin: rehearsals");
    let _ = write!(
        out,
        "<body><header><h1>Rehearsals{}</h1><p>{} scenarios, {} failed.</p></header>\n<main><table><tr><th>scenario</th><th>verdict</th><th>alerts fired</th><th>budget used</th><th>p99</th><th>most replicas</th><th>longest Pending</th></tr>",
        verdict(failed == 0),
        rows.len(),
        failed
    );
    for (row, result) in rows.iter().zip(results) {
        let _ = write!(
            out,
            "<tr><td><a href=\"{}/report.html\">{}</a><br><small>seed {}</small></td><td class=\"{}\">{}</td><td>{}</td><td class=\"num\">{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td></tr>",
            escape(&href_segment(&row.name)),
            escape(&row.name),
            result.seed,
            if row.passed { "ok" } else { "bad" },
            if row.passed { "pass" } else { "FAIL" },
            escape(&row.alerts),
            escape(&row.budget),
            escape(&row.p99),
            escape(&row.replicas),
            escape(&row.pending)
        );
    }
    out.push_str("</table></main></body></html>\n");
    out
}

/// A scenario name as one relative URL path segment (percent-encoding all but unreserved
/// characters, so a name cannot leave its folder or break the link).
fn href_segment(name: &str) -> String {
    let mut out = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}
