//! The HTML report in a real browser: headless Chromium (Debian package `chromium`, which
//! ci/test installs) opens a run's page and the index, and the test reads back the DOM the
//! browser built, the console, and a screenshot kept under the target folder.
//!
//! Skipped with a printed reason when Chromium is absent, unless `TWIN_REQUIRE_PEERS=1`.

use std::path::{Path, PathBuf};
use std::process::Command;

use twin::live::{find_peer, peers_required};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

/// What one page looked like to the browser.
struct Opened {
    dom: String,
    /// Console messages and uncaught errors the browser logged.
    console: Vec<String>,
}

/// Opens `page` in headless Chromium: the serialized DOM, the console, and a screenshot at
/// `screenshot` (two runs of the browser, so one cannot disturb the other).
fn open(chromium: &Path, page: &Path, screenshot: &Path) -> Opened {
    let url = format!("file://{}", page.display());
    let base = [
        "--headless",
        "--disable-gpu",
        "--no-sandbox",
        "--hide-scrollbars",
        "--enable-logging=stderr",
        "--v=0",
    ];
    // Chromium could hang on a broken machine; `timeout` bounds each browser run.
    let dump = Command::new("timeout")
        .arg("120")
        .arg(chromium)
        .args(base)
        .arg("--dump-dom")
        .arg(&url)
        .output()
        .expect("chromium starts");
    assert!(
        dump.status.success(),
        "chromium --dump-dom {url} failed: {}\n{}",
        dump.status,
        String::from_utf8_lossy(&dump.stderr)
    );
    let shot = Command::new("timeout")
        .arg("120")
        .arg(chromium)
        .args(base)
        .arg("--window-size=1400,3200")
        .arg(format!("--screenshot={}", screenshot.display()))
        .arg(&url)
        .output()
        .expect("chromium starts");
    assert!(
        shot.status.success() && screenshot.is_file(),
        "chromium --screenshot {url} failed: {}\n{}",
        shot.status,
        String::from_utf8_lossy(&shot.stderr)
    );
    let console = [&dump.stderr, &shot.stderr]
        .iter()
        .flat_map(|err| {
            String::from_utf8_lossy(err)
                .lines()
                .filter(|l| l.contains(":CONSOLE") || l.contains("Uncaught"))
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
    Opened {
        dom: String::from_utf8_lossy(&dump.stdout).into_owned(),
        console,
    }
}

/// One chart as the browser's DOM holds it.
#[derive(Debug)]
struct Figure {
    title: String,
    no_data: bool,
    /// Per series path, its number of points; and the alert bars.
    paths: Vec<usize>,
    bars: usize,
    has_svg: bool,
}

fn attribute(tag: &str, name: &str) -> Option<String> {
    let start = tag.find(&format!("{name}=\""))? + name.len() + 2;
    let end = tag[start..].find('"')? + start;
    Some(tag[start..end].replace("&amp;", "&"))
}

fn figures(dom: &str) -> Vec<Figure> {
    dom.split("<figure ")
        .skip(1)
        .map(|chunk| {
            let body = &chunk[..chunk.find("</figure>").expect("figures are closed")];
            let tag = &body[..body.find('>').expect("the tag ends")];
            let paths = body
                .split("<path ")
                .skip(1)
                .filter(|p| p.starts_with("class=\"series\""))
                .map(|p| {
                    attribute(p, "data-points")
                        .and_then(|n| n.parse().ok())
                        .unwrap_or(0)
                })
                .collect();
            Figure {
                title: attribute(tag, "data-chart").unwrap_or_default(),
                no_data: attribute(tag, "class").is_some_and(|c| c.contains("nodata")),
                paths,
                bars: body.matches("<rect class=\"firing\"").count()
                    + body.matches("<rect class=\"pending\"").count(),
                has_svg: body.contains("<svg"),
            }
        })
        .collect()
}

#[test]
fn chromium_renders_every_chart_of_a_rehearsal_with_data_and_logs_no_console_error() {
    // Goal: the page a user opens shows every dashboard panel, the cluster charts, the alert
    // bars and the SLO burn with data, and the browser reports no error. Method: run the bad
    // canary rehearsal (its alert fires, so every chart has something to draw), write its page
    // and the index, open both in headless Chromium, and read the DOM back: each figure has an
    // SVG with a series of at least two points (or alert bars), and none says "no data" except
    // the one the plan itself leaves empty. A control page that logs to the console first
    // proves the console capture works in this Chromium.
    let chromium = match find_peer("TWIN_CHROMIUM", "chromium") {
        Ok(path) => path,
        Err(why) => {
            assert!(!peers_required(), "chromium is required: {why}");
            eprintln!("skipped: {why}");
            return;
        }
    };
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("twin-html");
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).expect("the output folder is writable");

    let control = out.join("control.html");
    std::fs::write(
        &control,
        "<!DOCTYPE html><html><body><script>console.error('twin-control')</script></body></html>",
    )
    .expect("writable");
    let opened = open(&chromium, &control, &out.join("control.png"));
    assert!(
        opened.console.iter().any(|l| l.contains("twin-control")),
        "the console capture saw nothing of a page that logs an error; stderr lines: {:?}",
        opened.console
    );

    let path = root().join("scenarios/bad-canary-rollback.yaml");
    let loaded = twin::scenario::load(&path).expect("the rehearsal loads");
    let result = twin::scenario::run(&loaded, None).expect("the rehearsal runs");
    let dir = out.join(&result.name);
    std::fs::create_dir_all(&dir).expect("writable");
    let page = dir.join("report.html");
    std::fs::write(&page, twin::report::html::page(&result)).expect("writable");
    let index = out.join("index.html");
    std::fs::write(&index, twin::report::html::index(&[&result])).expect("writable");

    let screenshot = out.join(format!("{}.png", result.name));
    let opened = open(&chromium, &page, &screenshot);
    println!("screenshot of the report: {}", screenshot.display());
    assert!(
        opened.console.is_empty(),
        "the page logged to the console: {:?}",
        opened.console
    );
    // The plan's latency SLI counts le="1" buckets, but client libraries (and the twin) write
    // le="1.0", so the query selects nothing: the page must say so rather than draw axes.
    let expected_empty = ["SLO burn rate: latency (objective 99 %)"];
    let figures = figures(&opened.dom);
    let panels: Vec<String> = result
        .dashboards
        .iter()
        .flat_map(|d| d.all_panels())
        .filter(|p| p.panel_type.as_deref() != Some("row"))
        .map(|p| p.title.clone().unwrap_or_default())
        .collect();
    assert_eq!(panels.len(), 6, "the plan's dashboard has six panels");
    let mut wanted: Vec<String> = panels;
    wanted.extend(
        [
            "Replicas per Deployment",
            "Ready pods per Deployment",
            "Pending pods per Deployment",
            "Alerts",
            "SLO burn rate: availability (objective 99.9 %)",
            "SLO burn rate: gpu-availability (objective 95 %)",
        ]
        .map(String::from),
    );
    wanted.extend(expected_empty.map(String::from));
    let titles: Vec<&str> = figures.iter().map(|f| f.title.as_str()).collect();
    for title in &wanted {
        assert!(
            titles.contains(&title.as_str()),
            "no chart {title:?} in the DOM; charts: {titles:?}"
        );
    }
    assert_eq!(figures.len(), wanted.len(), "charts: {titles:?}");
    for figure in &figures {
        if expected_empty.contains(&figure.title.as_str()) {
            assert!(
                figure.no_data && !figure.has_svg,
                "{figure:?} should say no data"
            );
            continue;
        }
        assert!(!figure.no_data, "{:?} says no data", figure.title);
        assert!(figure.has_svg, "{:?} has no svg", figure.title);
        if figure.title == "Alerts" {
            assert!(
                figure.bars >= 2,
                "the alert went pending then fired: {figure:?}"
            );
        } else {
            assert!(
                !figure.paths.is_empty() && figure.paths.iter().all(|&n| n >= 2),
                "{:?} has a series of fewer than two points: {:?}",
                figure.title,
                figure.paths
            );
        }
    }
    assert!(
        opened.dom.contains("HighErrorRate") && opened.dom.contains("<h2>Timeline</h2>"),
        "the alert and the timeline are on the page"
    );

    let opened = open(&chromium, &index, &out.join("index.png"));
    assert!(opened.console.is_empty(), "{:?}", opened.console);
    assert!(
        opened
            .dom
            .contains(&format!("href=\"{}/report.html\"", result.name)),
        "the index links the run's page"
    );
    let metadata = std::fs::metadata(&screenshot).expect("the screenshot exists");
    assert!(
        metadata.len() > 50_000,
        "the screenshot is suspiciously small"
    );
}
