//! The differential arm: the same promqltest statements run by promtool 2.42 (Debian's
//! `prometheus` package), compared with our engine within upstream's `almostEqual`.
//!
//! Each statement becomes a `promql_expr_test` of a `promtool test rules` file that expects our
//! engine's result to the last bit. promtool 2.42 compares floats exactly, so on a mismatch we
//! read its "got" values back and accept them when they are within upstream's relative 1e-6:
//! addition order follows series creation order in Prometheus's head block, which its loaders
//! draw from a Go map, so sums of three or more series may differ in the last bits from run
//! to run (spec/prometheus.md §7 assumes label order; see the promql module doc). NaN never
//! equals in promtool either, so NaN results are read back the same way; an `eval_fail`
//! statement expects no samples and must make promtool report an error.
//!
//! promtool's harness differs from the promqltest one in ways the conversion has to undo: it
//! loads samples lazily up to the last evaluation step (so every group gets a final dummy
//! query at its last sample, and an evaluation interval equal to its last time), has one
//! sample interval per group (the gcd of all sample times; groups that would need too many
//! slots are split by the metrics each statement names), and cannot evaluate before t=0.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use twin::promql::promqltest::{self, Command, EvalKind, almost_equal};
use twin::promql::{Engine, Value};
use twin::telemetry::store::{Labels, Store, is_stale_nan};

use super::{repo_root, test_files};

/// One statement: expression, evaluation time, and our result.
#[derive(Clone)]
struct Check {
    expr: String,
    t_ms: i64,
    want: Vec<(Labels, f64)>,
    /// An `eval_fail` statement: promtool must report an error for it.
    expect_error: bool,
}

/// One promtool test group: every series loaded so far in a cleared segment, and the
/// statements evaluated on exactly that data.
#[derive(Default, Clone)]
struct Group {
    series: BTreeMap<Labels, Vec<(i64, f64)>>,
    checks: Vec<Check>,
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
    if v.is_nan() {
        // promtool never matches a NaN; its "got" value is read back and compared (NaN == NaN).
        ".nan".to_string()
    } else if v.is_infinite() {
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
                if statement.t_ms < 0 {
                    continue;
                }
                let engine = Engine::new(&store);
                let expect_error = statement.kind == EvalKind::Fail;
                let want: Vec<(Labels, f64)> = match engine
                    .eval_instant(&statement.expr, statement.t_ms)
                {
                    Ok(Value::Vector(v)) => v.into_iter().map(|s| (s.labels, s.value)).collect(),
                    Ok(Value::Scalar(v)) => vec![(Labels::empty(), v)],
                    Err(_) if expect_error => Vec::new(),
                    _ => continue,
                };
                let group = groups.last_mut().expect("there is always a current group");
                group.checks.push(Check {
                    expr: statement.expr.clone(),
                    t_ms: statement.t_ms,
                    want,
                    expect_error,
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

/// A group whose series need too many slots at one shared interval (say a 1ms series next to
/// a 10s one over hours) is split: each statement gets only the series whose metric name it
/// mentions, unless it selects by `__name__`.
fn split_wide(group: Group) -> Vec<Group> {
    if promtool_yaml(&group).is_some() {
        return vec![group];
    }
    let mut by_subset: BTreeMap<Vec<Labels>, Group> = BTreeMap::new();
    for check in group.checks {
        let subset: Vec<Labels> = group
            .series
            .keys()
            .filter(|labels| {
                check.expr.contains("__name__")
                    || labels
                        .metric_name()
                        .is_none_or(|name| mentions(&check.expr, name))
            })
            .cloned()
            .collect();
        let entry = by_subset.entry(subset.clone()).or_insert_with(|| Group {
            series: subset
                .iter()
                .map(|l| (l.clone(), group.series[l].clone()))
                .collect(),
            checks: Vec::new(),
        });
        entry.checks.push(check);
    }
    by_subset.into_values().collect()
}

/// Whether `expr` names `metric` as a whole identifier.
fn mentions(expr: &str, metric: &str) -> bool {
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    expr.match_indices(metric).any(|(at, _)| {
        let before = expr[..at].chars().next_back();
        let after = expr[at + metric.len()..].chars().next();
        !before.is_some_and(is_ident) && !after.is_some_and(is_ident)
    })
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

/// What promtool reported for one failing expression test.
#[derive(Clone, Debug)]
enum PromtoolOutcome {
    Got(Vec<(Labels, f64)>),
    Error(String),
}

/// Parses one failure, from just after `expr: `: either `"<expr>", time: <t>, err: <msg>` on
/// one line, or `"<expr>", time: <t>,` followed by `exp: ...` and `got: ...` lines. Returns
/// the expression, the time as promtool prints it, the outcome and the lines consumed.
fn parse_failure(after: &str, next: &[&str]) -> Option<(String, String, PromtoolOutcome, usize)> {
    let (expr, rest) = go_unquote(after)?;
    let rest = rest.strip_prefix(", time: ")?;
    if let Some((time, err)) = rest.split_once(", err: ") {
        return Some((
            expr,
            time.to_string(),
            PromtoolOutcome::Error(err.to_string()),
            1,
        ));
    }
    let time = rest.trim_end_matches(',').to_string();
    let got = next
        .get(1)?
        .trim()
        .strip_prefix("got:")
        .and_then(parse_got)?;
    Some((expr, time, PromtoolOutcome::Got(got), 3))
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
    for (group_idx, group) in groups_of(path).into_iter().flat_map(split_wide).enumerate() {
        let Some(yaml) = promtool_yaml(&group) else {
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
        // promtool writes its failures to stderr.
        let output = String::from_utf8_lossy(&run.stdout).to_string()
            + &String::from_utf8_lossy(&run.stderr);
        let mut outcomes: Vec<Option<PromtoolOutcome>> = vec![None; group.checks.len()];
        let lines: Vec<&str> = output.lines().collect();
        let mut i = 0;
        while i < lines.len() {
            let Some(after) = lines[i].trim().strip_prefix("expr: ") else {
                i += 1;
                continue;
            };
            let Some((expr, time, outcome, n_lines)) = parse_failure(after, &lines[i + 1..]) else {
                problems.push(format!(
                    "{}: unreadable promtool output:\n{output}",
                    yaml_path.display()
                ));
                break;
            };
            i += n_lines;
            let position = group.checks.iter().enumerate().position(|(k, c)| {
                outcomes[k].is_none() && c.expr == expr && prometheus_duration(c.t_ms) == time
            });
            match position {
                Some(k) => outcomes[k] = Some(outcome),
                None if expr == "vector(1)" => problems.push(format!(
                    "{}: promtool did not load the data",
                    yaml_path.display()
                )),
                None => problems.push(format!(
                    "{}: promtool failed {expr} at {time}, not one of ours",
                    yaml_path.display()
                )),
            }
        }
        for (check, outcome) in group.checks.iter().zip(outcomes) {
            let at = prometheus_duration(check.t_ms);
            let problem = match (check.expect_error, outcome) {
                // promtool accepted our exact expectation.
                (false, None) => None,
                (false, Some(PromtoolOutcome::Got(got))) if agree(&check.want, &got) => None,
                (false, Some(PromtoolOutcome::Got(got))) => Some(format!(
                    "ours {:?}, promtool {:?}",
                    check
                        .want
                        .iter()
                        .map(|(l, v)| format!("{l} {v:?}"))
                        .collect::<Vec<_>>(),
                    got.iter()
                        .map(|(l, v)| format!("{l} {v:?}"))
                        .collect::<Vec<_>>()
                )),
                (false, Some(PromtoolOutcome::Error(err))) => {
                    Some(format!("promtool errors: {err}"))
                }
                (true, Some(PromtoolOutcome::Error(_))) => None,
                (true, _) => Some("eval_fail, but promtool evaluates it without error".to_string()),
            };
            if let Some(problem) = problem {
                problems.push(format!(
                    "{}: {} at {at}: {problem}",
                    path.display(),
                    check.expr
                ));
            }
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
        n_compared >= 540,
        "most upstream statements were compared ({n_compared})"
    );
}
