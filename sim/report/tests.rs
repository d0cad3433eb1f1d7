use std::sync::OnceLock;

use super::html::{self, Chart, Line, Marker};
use crate::manifests::grafana::{Panel, Target};
use crate::promql::Engine;
use crate::scenario::RunResult;
use crate::telemetry::store::{Labels, Store};

/// A two-minute run of the plan as shipped (every request answered 503 UH), shared by the
/// tests that need a whole run.
fn small_run() -> &'static RunResult {
    static RUN: OnceLock<RunResult> = OnceLock::new();
    RUN.get_or_init(run_fixture)
}

fn run_fixture() -> RunResult {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/scenarios/failing-expectation.yaml"
    );
    let loaded = crate::scenario::load(path).expect("the fixture loads");
    crate::scenario::run(&loaded, None).expect("the fixture runs")
}

fn line(name: &str, points: &[(f64, f64)]) -> Line {
    Line {
        name: name.into(),
        points: points.to_vec(),
        step: false,
        gap_secs: 30.0,
    }
}

#[test]
fn escape_replaces_every_character_that_could_open_markup_or_close_an_attribute() {
    // Goal: text from manifests cannot inject markup. Method: a hostile string, escaped.
    assert_eq!(
        html::escape(r#"<script>alert("x") & 'y'</script>"#),
        "&lt;script&gt;alert(&quot;x&quot;) &amp; &#39;y&#39;&lt;/script&gt;"
    );
    assert_eq!(html::escape("p99 ≤ 1s"), "p99 ≤ 1s");
}

#[test]
fn legend_substitutes_labels_as_grafana_does_and_falls_back_to_the_label_set_or_query() {
    // Goal: the panels' own legendFormat, with Grafana's rules. Method: a present label, a
    // spaced template, a missing label (Grafana writes the name), no format, no labels.
    let labels = Labels::from_pairs([("gpu", "0"), ("kubernetes_pod_name", "mcp-0001")]);
    assert_eq!(
        html::legend(
            Some("{{kubernetes_pod_name}} - GPU {{ gpu }}"),
            &labels,
            "x"
        ),
        "mcp-0001 - GPU 0"
    );
    assert_eq!(
        html::legend(Some("{{status}}"), &labels, "x"),
        "status",
        "a missing label is written as its name"
    );
    assert_eq!(html::legend(Some("p99"), &labels, "x"), "p99");
    assert_eq!(
        html::legend(Some("{{gpu"), &labels, "x"),
        "{{gpu",
        "an unclosed template stays as written"
    );
    let named = Labels::from_pairs([("__name__", "up"), ("job", "a")]);
    assert_eq!(html::legend(None, &named, "up"), r#"up{job="a"}"#);
    assert_eq!(
        html::legend(Some(""), &Labels::empty(), " sum(up) "),
        "sum(up)"
    );
}

#[test]
fn numbers_and_times_print_at_fixed_precision() {
    // Goal: axis and legend text that never varies with float noise. Method: a spread of values.
    assert_eq!(html::short(0.0), "0");
    assert_eq!(html::short(0.1 + 0.2), "0.3");
    assert_eq!(html::short(1234.5678), "1.235k");
    assert_eq!(html::short(-2_500_000.0), "-2.5M");
    assert_eq!(html::short(0.000123456), "0.0001235");
    assert_eq!(html::short(f64::NAN), "NaN");
    assert_eq!(html::clock(0.0), "0");
    assert_eq!(html::clock(5400.0), "1h30m");
    assert_eq!(html::clock(90.0), "1m30s");
}

#[test]
fn a_chart_without_points_says_no_data_instead_of_drawing_axes() {
    // Goal: an empty panel is flagged visibly. Method: no lines, then a line of NaNs only, then
    // one real line; the first two carry `nodata` and no <svg>, the third draws a path.
    let mut chart = Chart {
        title: "GPU <Memory>".into(),
        no_data: "the panel's queries returned no series".into(),
        ..Chart::default()
    };
    let empty = html::svg_chart(&chart, 600.0, &[]);
    assert!(empty.contains(r#"class="chart nodata""#), "{empty}");
    assert!(empty.contains("No data: the panel&#39;s queries returned no series"));
    assert!(empty.contains("GPU &lt;Memory&gt;"));
    assert!(!empty.contains("<svg"));
    chart
        .lines
        .push(line("nan", &[(0.0, f64::NAN), (30.0, f64::NAN)]));
    assert!(html::svg_chart(&chart, 600.0, &[]).contains("nodata"));
    chart
        .lines
        .push(line("real", &[(0.0, 1.0), (30.0, 2.0), (60.0, 4.0)]));
    let drawn = html::svg_chart(&chart, 600.0, &[]);
    assert!(!drawn.contains("nodata"), "{drawn}");
    assert!(drawn.contains(r#"data-points="3""#), "{drawn}");
    assert!(drawn.contains("last 4 · max 4"), "{drawn}");
}

#[test]
fn a_gap_in_a_series_breaks_its_line_and_markers_are_drawn() {
    // Goal: missing scrapes show as gaps (as Grafana draws them), faults as markers. Method: a
    // series with a hole wider than its step gets a second `M`; a marker's title is escaped.
    let chart = Chart {
        title: "t".into(),
        lines: vec![line(
            "a",
            &[(0.0, 1.0), (30.0, 1.0), (300.0, 2.0), (330.0, 2.0)],
        )],
        ..Chart::default()
    };
    let marker = Marker {
        at_secs: 120.0,
        label: "Fault <kill>".into(),
    };
    let svg = html::svg_chart(&chart, 600.0, &[marker]);
    let path = svg
        .split(r#"class="series""#)
        .nth(1)
        .expect("one series path");
    let d = path.split(r#"d=""#).nth(1).expect("a d attribute");
    let d = &d[..d.find('"').expect("closed")];
    assert_eq!(d.matches('M').count(), 2, "{d}");
    assert!(
        svg.contains("<title>2m Fault &lt;kill&gt;</title>"),
        "{svg}"
    );
}

#[test]
fn a_panel_is_evaluated_with_its_own_range_query_and_legend() {
    // Goal: panels draw what their PromQL says. Method: a store with two counters, a panel
    // with `sum by (status) (rate(...))` and legend `{{status}}`; one line per status with the
    // rate's value; a failing query is shown as an error, not dropped.
    let mut store = Store::new();
    for (status, per_step) in [("200", 30.0), ("503", 3.0)] {
        let labels = Labels::from_pairs([
            ("__name__", "http_requests_total"),
            ("job", "a"),
            ("status", status),
        ]);
        for step in 0..=20 {
            store
                .append(&labels, step * 30_000, per_step * step as f64)
                .expect("in order");
        }
    }
    let engine = Engine::new(&store);
    let panel = Panel {
        title: Some("Request Rate".into()),
        targets: vec![
            Target {
                expr: Some("sum(rate(http_requests_total[2m])) by (status)".into()),
                legend_format: Some("{{status}}".into()),
                ref_id: None,
            },
            Target {
                expr: Some("rate(".into()),
                legend_format: None,
                ref_id: None,
            },
        ],
        ..Panel::default()
    };
    let chart = html::panel_chart(&engine, &panel, 600_000, 30_000);
    let names: Vec<&str> = chart.lines.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["200", "503"]);
    let (_, last) = *chart.lines[0].points.last().expect("points");
    assert!((last - 1.0).abs() < 1e-9, "30 per 30 s is 1/s, got {last}");
    assert_eq!(chart.errors.len(), 1, "{:?}", chart.errors);
    let no_query = html::panel_chart(&engine, &Panel::default(), 600_000, 30_000);
    assert_eq!(no_query.no_data, "the panel has no query");
}

#[test]
fn the_page_of_a_run_is_self_contained_deterministic_and_flags_panels_without_data() {
    // Goal: same run, same bytes; nothing loaded from outside; every dashboard panel present.
    // Method: run the fixture twice and compare the pages; look for external references; count
    // figures; the plan as shipped routes nothing to a pod, so the latency panel has no data
    // and says so.
    let run = small_run();
    let first = html::page(run);
    assert!(
        first == html::page(&run_fixture()),
        "two runs with the same seed give different pages"
    );
    for external in [
        "<script", "<link", "<img", "src=", "http://", "https://", "url(",
    ] {
        let allowed = external == "http://"
            && first.matches(external).count()
                == first
                    .matches("xmlns=\"http://www.w3.org/2000/svg\"")
                    .count();
        assert!(
            !first.contains(external) || allowed,
            "the page refers to something outside itself: {external}"
        );
    }
    let panels: usize = run.dashboards.iter().map(|d| d.all_panels().len()).sum();
    assert!(panels >= 6, "the plan's dashboard has six panels");
    for dashboard in &run.dashboards {
        for panel in dashboard.all_panels() {
            let title = html::escape(panel.title.as_deref().unwrap_or(""));
            assert!(
                first.contains(&format!(r#"data-chart="{title}""#)),
                "panel {title} is missing"
            );
        }
    }
    let latency = first
        .split(r#"data-chart="Response Time (p50, p95, p99)""#)
        .next()
        .and_then(|before| before.rsplit("<figure").next())
        .expect("the latency panel");
    assert!(latency.contains("nodata"), "{latency}");
    assert!(first.contains(r#"data-chart="Replicas per Deployment""#));
    assert!(first.contains("<h2>Timeline</h2>"));
    assert!(first.contains(r#"<span class="verdict fail">FAIL</span>"#));
    // The rerun line names the file it ran, so it can be pasted as it is.
    let rerun = format!(
        "rerun: <code>twin run {} --seed {}</code>",
        html::escape(&run.source.display().to_string()),
        run.seed
    );
    assert!(first.contains(&rerun), "no `{rerun}` in the page");
    assert!(rerun.contains("fixtures/scenarios/failing-expectation.yaml"));
}

#[test]
fn the_index_links_each_run_to_its_page_and_matches_the_summary_row() {
    // Goal: the index is rehearse's table with links. Method: one run; its row's fields appear
    // and the link is `<name>/report.html`.
    let run = small_run();
    let index = html::index(&[run]);
    let row = super::summary_row(run);
    assert!(index.contains(r#"<a href="failing-expectation/report.html">"#));
    assert!(index.contains(&html::escape(&row.replicas)));
    assert!(index.contains(&html::escape(&row.pending)));
    assert!(index.contains(">FAIL<"));
    assert!(index.contains("1 scenarios, 1 failed."));
}
