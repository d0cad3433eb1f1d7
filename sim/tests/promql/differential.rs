//! The differential arm: the same promqltest statements run by promtool 2.42 (Debian's
//! `prometheus` package), compared with our engine within upstream's `almostEqual`.
//!
//! Each statement becomes a `promql_expr_test` of a `promtool test rules` file that expects our
//! engine's result to the last bit. promtool 2.42 compares floats exactly, so on a mismatch we
//! read its "got" values back and accept them when they are within upstream's relative 1e-6:
//! addition order follows series creation order in Prometheus's head block, which its loaders
//! draw from a Go map, so sums of three or more series may differ in the last bits from run
//! to run (spec/prometheus.md §7 assumes label order; see the promql module doc).
//!
//! promtool's harness differs from the promqltest one in ways the conversion has to undo: it
//! loads samples lazily up to the last evaluation step (so every group gets a final dummy
//! query at its last sample, and an evaluation interval equal to its last time), has one
//! sample interval per group (the gcd of all sample times), and cannot evaluate before t=0.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use twin::promql::promqltest::{self, Command, EvalKind, almost_equal};
use twin::promql::{Engine, Value};
use twin::telemetry::store::{Labels, Store, is_stale_nan};

use super::{repo_root, test_files};

/// One statement: expression, evaluation time, and our result.
struct Check {
    expr: String,
    t_ms: i64,
    want: Vec<(Labels, f64)>,
}

/// One promtool test group: every series loaded so far in a cleared segment, and the
/// statements evaluated on exactly that data.
#[derive(Default, Clone)]
struct Group {
    series: BTreeMap<Labels, Vec<(i64, f64)>>,
    checks: Vec<Check>,
}

impl Clone for Check {
    fn clone(&self) -> Self {
        Check {
            expr: self.expr.clone(),
            t_ms: self.t_ms,
            want: self.want.clone(),
        }
    }
}

/// One sample slot per `interval`; beyond this many slots a series is too long to write out.
const MAX_STEPS: i64 = 200_000;

fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 { a.abs() } else { gcd(b, a % b) }
}

fn yaml_quoted(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

/// A float as the series notation reads it back exactly.
fn series_value(v: f64) -> String {
    if is_stale_nan(v) {
        "stale".to_string()
    } else if v.is_nan() {
        "NaN".to_string()
    } else if v.is_infinite() {
        if v > 0.0 {
            "Inf".to_string()
        } else {
            "-Inf".to_string()
        }
    } else {
        format!("{v:?}")
    }
}

/// A float as YAML hands it to Go exactly.
fn yaml_float(v: f64) -> String {
    if v.is_infinite() {
        if v > 0.0 {
            ".inf".to_string()
        } else {
            "-.inf".to_string()
        }
    } else {
        format!("{v:?}")
    }
}

/// Prometheus's `model.Duration.String()`, which promtool prints in its failures.
fn prometheus_duration(ms: i64) -> String {
    if ms == 0 {
        return "0s".to_string();
    }
    let mut rest = ms;
    let mut out = String::new();
    for (unit, mult, exact) in [
        ("y", 365 * 86_400_000, true),
        ("w", 7 * 86_400_000, true),
        ("d", 86_400_000, false),
        ("h", 3_600_000, false),
        ("m", 60_000, false),
        ("s", 1000, false),
        ("ms", 1, false),
    ] {
        if exact && rest % mult != 0 {
            continue;
        }
        let v = rest / mult;
        if v > 0 {
            out.push_str(&format!("{v}{unit}"));
            rest -= v * mult;
        }
    }
    out
}

/// Splits a promqltest file into promtool groups with our results.
fn groups_of(path: &Path) -> Vec<Group> {
    let text = std::fs::read_to_string(path).expect("test file is readable");
    let file =
        promqltest::parse(path, &text).unwrap_or_else(|d| panic!("{}", d.render_from_disk()));
    let mut groups: Vec<Group> = vec![Group::default()];
    let mut store = Store::new();
    for command in &file.commands {
        match command {
            Command::Clear => {
                store.clear();
                groups.push(Group::default());
            }
            Command::Load { series, .. } => {
                let current = groups.last().expect("there is always a current group");
                if !current.checks.is_empty() {
                    // Data loaded after a statement must not be visible to it.
                    let next = Group {
                        series: current.series.clone(),
                        checks: Vec::new(),
                    };
                    groups.push(next);
                }
                let group = groups.last_mut().expect("there is always a current group");
                for (labels, samples) in series {
                    for (t_ms, v) in samples {
                        store
                            .append(labels, *t_ms, *v)
                            .expect("test loads are in time order");
                    }
                    group
                        .series
                        .entry(labels.clone())
                        .or_default()
                        .extend(samples.iter().copied());
                }
            }
            Command::Eval(statement) => {
                if statement.kind == EvalKind::Fail || statement.t_ms < 0 {
                    continue;
                }
                let engine = Engine::new(&store);
                let want: Vec<(Labels, f64)> = match engine
                    .eval_instant(&statement.expr, statement.t_ms)
                {
                    Ok(Value::Vector(v)) => v.into_iter().map(|s| (s.labels, s.value)).collect(),
                    Ok(Value::Scalar(v)) => vec![(Labels::empty(), v)],
                    _ => continue,
                };
                // promtool can never match a NaN.
                if want.iter().any(|(_, v)| v.is_nan()) {
                    continue;
                }
                let group = groups.last_mut().expect("there is always a current group");
                group.checks.push(Check {
                    expr: statement.expr.clone(),
                    t_ms: statement.t_ms,
                    want,
                });
            }
        }
    }
    groups.retain(|g| !g.checks.is_empty());
    groups
}

/// The promtool file of one group, or `None` when its samples need too many slots at one interval.
fn promtool_yaml(group: &Group) -> Option<String> {
    let sample_times = group.series.values().flatten().map(|(t, _)| *t);
    let step_ms = sample_times.clone().fold(0, gcd).max(1);
    let last_sample_ms = sample_times.max().unwrap_or(0);
    let max_t = group
        .checks
        .iter()
        .map(|c| c.t_ms)
        .chain([last_sample_ms])
        .max()
        .unwrap_or(0);
    // promtool steps from 0 to the last eval_time by this interval, loading samples up to each
    // step, then runs the expression tests: an interval of max_t loads everything.
    let eval_interval_ms = if max_t > 0 { max_t } else { 60_000 };
    if last_sample_ms / step_ms > MAX_STEPS {
        return None;
    }
    let mut yaml = format!(
        "rule_files: []\nevaluation_interval: {eval_interval_ms}ms\ntests:\n  - interval: {step_ms}ms\n    input_series:\n"
    );
    for (labels, samples) in &group.series {
        let last_slot = samples.last().map(|(t, _)| t / step_ms).unwrap_or(0);
        let mut slots = vec!["_".to_string(); last_slot as usize + 1];
        for (t_ms, v) in samples {
            slots[(t_ms / step_ms) as usize] = series_value(*v);
        }
        yaml.push_str(&format!(
            "      - series: {}\n        values: {}\n",
            yaml_quoted(&labels.to_string()),
            yaml_quoted(&slots.join(" "))
        ));
    }
    yaml.push_str("    promql_expr_test:\n");
    for check in &group.checks {
        yaml.push_str(&format!(
            "      - expr: {}\n        eval_time: {}ms\n",
            yaml_quoted(&check.expr),
            check.t_ms
        ));
        if check.want.is_empty() {
            yaml.push_str("        exp_samples: []\n");
            continue;
        }
        yaml.push_str("        exp_samples:\n");
        for (labels, v) in &check.want {
            yaml.push_str(&format!(
                "          - labels: {}\n            value: {}\n",
                yaml_quoted(&labels.to_string()),
                yaml_float(*v)
            ));
        }
    }
    // Makes promtool load every sample, as the promqltest harness does up front.
    yaml.push_str(&format!(
        "      - expr: \"vector(1)\"\n        eval_time: {last_sample_ms}ms\n        exp_samples:\n          - labels: \"{{}}\"\n            value: 1\n"
    ));
    Some(yaml)
}

/// Reads a Go-quoted string (`%q`) starting at `text[0] == '"'`; returns it and the rest.
fn go_unquote(text: &str) -> Option<(String, &str)> {
    let mut chars = text.char_indices();
    if chars.next()?.1 != '"' {
        return None;
    }
    let mut out = String::new();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((out, &text[i + 1..])),
            '\\' => match chars.next()?.1 {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                'r' => out.push('\r'),
                other => out.push(other),
            },
            c => out.push(c),
        }
    }
    None
}

/// Parses promtool's `got:` list: `nil`, or `{a="1", b="2"} 1.5E+00, {...} ...`.
fn parse_got(text: &str) -> Option<Vec<(Labels, f64)>> {
    let mut rest = text.trim();
    if rest == "nil" {
        return Some(Vec::new());
    }
    let mut out = Vec::new();
    while !rest.is_empty() {
        rest = rest.strip_prefix('{')?;
        let mut pairs: Vec<(String, String)> = Vec::new();
        loop {
            rest = rest.trim_start_matches([',', ' ']);
            if let Some(after) = rest.strip_prefix('}') {
                rest = after;
                break;
            }
            let (name, after) = rest.split_once('=')?;
            let (value, after) = go_unquote(after)?;
            pairs.push((name.to_string(), value));
            rest = after;
        }
        rest = rest.trim_start();
        let end = rest.find(", {").unwrap_or(rest.len());
        let number = rest[..end].trim();
        let value = match number {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            "NaN" => f64::NAN,
            n => n.parse().ok()?,
        };
        out.push((Labels::from_pairs(pairs), value));
        rest = rest[end..].trim_start_matches([',', ' ']);
    }
    Some(out)
}

fn agree(want: &[(Labels, f64)], got: &[(Labels, f64)]) -> bool {
    want.len() == got.len()
        && want
            .iter()
            .all(|(labels, v)| got.iter().any(|(l, g)| l == labels && almost_equal(*v, *g)))
}

/// Runs promtool on every group of a file; returns the statements compared and a line per
/// disagreement (statements promtool's values match only bit-inexactly but within 1e-6 agree).
fn compare_file(path: &Path, out_dir: &Path) -> (usize, Vec<String>) {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_default();
    let mut n_compared = 0;
    let mut problems = Vec::new();
    for (group_idx, group) in groups_of(path).iter().enumerate() {
        let Some(yaml) = promtool_yaml(group) else {
            println!(
                "{}: group {group_idx} left out ({} statements): its samples need too many slots at one interval",
                path.display(),
                group.checks.len()
            );
            continue;
        };
        let yaml_path = out_dir.join(format!("{stem}-{group_idx}.yml"));
        std::fs::write(&yaml_path, &yaml).expect("target tmp dir is writable");
        let run = std::process::Command::new("promtool")
            .arg("test")
            .arg("rules")
            .arg(&yaml_path)
            .output()
            .expect("promtool runs");
        n_compared += group.checks.len();
        if run.status.success() {
            continue;
        }
        // promtool writes its failures to stderr.
        let stdout = String::from_utf8_lossy(&run.stdout).to_string()
            + &String::from_utf8_lossy(&run.stderr);
        let lines: Vec<&str> = stdout.lines().collect();
        let mut matched = vec![false; group.checks.len()];
        let mut i = 0;
        while i < lines.len() {
            let line = lines[i].trim();
            let Some(after) = line.strip_prefix("expr: ") else {
                i += 1;
                continue;
            };
            let parsed = go_unquote(after).and_then(|(expr, rest)| {
                let time = rest
                    .trim_start_matches(", time: ")
                    .trim_end_matches(',')
                    .to_string();
                let got = lines
                    .get(i + 2)?
                    .trim()
                    .strip_prefix("got:")
                    .and_then(parse_got)?;
                Some((expr, time, got))
            });
            let Some((expr, time, got)) = parsed else {
                problems.push(format!(
                    "{}: unreadable promtool output near: {line}\n{stdout}",
                    yaml_path.display()
                ));
                break;
            };
            let position = group.checks.iter().enumerate().position(|(k, c)| {
                !matched[k] && c.expr == expr && prometheus_duration(c.t_ms) == time
            });
            match position {
                Some(k) => {
                    matched[k] = true;
                    if !agree(&group.checks[k].want, &got) {
                        problems.push(format!(
                            "{}: {expr} at {time}: ours {:?}, promtool {:?}",
                            path.display(),
                            group.checks[k]
                                .want
                                .iter()
                                .map(|(l, v)| format!("{l} {v:?}"))
                                .collect::<Vec<_>>(),
                            got.iter()
                                .map(|(l, v)| format!("{l} {v:?}"))
                                .collect::<Vec<_>>()
                        ));
                    }
                }
                None if expr == "vector(1)" => problems.push(format!(
                    "{}: promtool did not load the data",
                    yaml_path.display()
                )),
                None => problems.push(format!(
                    "{}: promtool failed {expr} at {time}, not one of ours",
                    yaml_path.display()
                )),
            }
            i += 3;
        }
        if !stdout.contains("expr: ") {
            problems.push(format!(
                "{}: promtool failed without a comparison:\n{stdout}",
                yaml_path.display()
            ));
        }
    }
    (n_compared, problems)
}

/// Whether promtool 2.42 is installed; prints why not.
fn promtool_2_42() -> bool {
    let Ok(version) = std::process::Command::new("promtool")
        .arg("--version")
        .output()
    else {
        println!("skipped: promtool is not installed (Debian package `prometheus` provides 2.42)");
        return false;
    };
    let text = String::from_utf8_lossy(&version.stdout).to_string()
        + &String::from_utf8_lossy(&version.stderr);
    if !text.contains("version 2.42.") {
        println!(
            "skipped: promtool is not 2.42 ({})",
            text.lines().next().unwrap_or("")
        );
        return false;
    }
    true
}

fn compare_dir(dir: &Path, tmp_name: &str) -> (usize, Vec<String>) {
    let out_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(tmp_name);
    std::fs::create_dir_all(&out_dir).expect("target tmp dir is writable");
    let mut total = 0;
    let mut problems = Vec::new();
    for path in test_files(dir) {
        let (n, p) = compare_file(&path, &out_dir);
        total += n;
        problems.extend(p);
    }
    (total, problems)
}

#[test]
fn promtool_2_42_agrees_on_the_fixture_statements() {
    // Goal: our hand-derived fixtures hold for real Prometheus 2.42 too. Method: run every
    // fixtures/promql statement through promtool and compare (module doc); skipped with a
    // reason when promtool 2.42 is not installed.
    if !promtool_2_42() {
        return;
    }
    let (n_compared, problems) = compare_dir(
        &repo_root().join("fixtures/promql"),
        "promql-promtool-fixtures",
    );
    assert!(
        problems.is_empty(),
        "promtool disagrees:\n{}",
        problems.join("\n")
    );
    assert!(
        n_compared >= 25,
        "most fixture statements were compared ({n_compared})"
    );
}

#[test]
fn promtool_2_42_agrees_on_the_upstream_suite_statements() {
    // Goal: the engine agrees with real Prometheus 2.42 beyond the suite's own expectations
    // (which hold only within 1e-6 and were written for upstream's harness). Method: as above,
    // over ../shared/upstream; skipped with a reason when the suite or promtool is absent.
    let upstream = repo_root().join("../shared/upstream/prometheus-v2.42.0-promqltest");
    if !upstream.is_dir() {
        println!("skipped: {} is absent", upstream.display());
        return;
    }
    if !promtool_2_42() {
        return;
    }
    let (n_compared, problems) = compare_dir(&upstream, "promql-promtool-upstream");
    println!("compared {n_compared} upstream statements with promtool");
    assert!(
        problems.is_empty(),
        "promtool disagrees:\n{}",
        problems.join("\n")
    );
    assert!(
        n_compared >= 400,
        "most upstream statements were compared ({n_compared})"
    );
}
