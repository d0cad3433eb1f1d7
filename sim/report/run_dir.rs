//! The run directory: everything one run leaves behind, in `DIR/<scenario>/`, self-contained
//! so that the exporters (`twin export ...`) and a reader years later need nothing else.
//!
//! ```text
//! DIR/<scenario>/
//!   report.json    the stable JSON report (docs/report.md)
//!   series.jsonl   every series of the simulated Prometheus, one JSON object a line
//!   run.json       scenario, seed, duration, scrape and evaluation intervals, rule groups
//!   rules/         copies of the rule files the run evaluated
//! ```
//!
//! `series.jsonl` lines read `{"labels":{"__name__":"up","job":"x"},"samples":[[15000,1],...]}`:
//! labels in label-set order, samples as `[t_ms, value]` in time order. Values that JSON has
//! no number for are strings: `"stale"` for Prometheus's stale marker, `"NaN"` for any other
//! NaN, `"+Inf"` and `"-Inf"`. Numbers are written with the shortest digits that read back
//! as the same float, so [`read_series`] gives back the store bit for bit (an ordinary NaN
//! comes back as the canonical NaN, whatever its payload was).
//!
//! Invariants: the files are a pure function of the run (series in label-set order, no wall
//! clock, no absolute paths except the scenario's own path as given); a malformed file read
//! back is a [`RunDirError`] naming the file and line, never a panic.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::diag::{Diagnostic, Location};
use crate::scenario::{Loaded, RunResult};
use crate::telemetry::store::{Labels, Store, is_stale_nan, stale_nan};

/// The JSON report's file name inside a run directory.
pub const REPORT_FILE: &str = "report.json";
/// The series' file name.
pub const SERIES_FILE: &str = "series.jsonl";
/// The run description's file name.
pub const RUN_FILE: &str = "run.json";
/// The folder of copied rule files.
pub const RULES_DIR: &str = "rules";

/// Errors of writing or reading a run directory.
#[derive(Debug, thiserror::Error)]
pub enum RunDirError {
    #[error("{doing} {}", path.display())]
    Io {
        doing: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file of the run directory is not what this module writes.
    #[error("malformed run directory")]
    Malformed(#[source] Diagnostic),
}

fn io<'p>(doing: &'static str, path: &'p Path) -> impl FnOnce(std::io::Error) -> RunDirError + 'p {
    move |source| RunDirError::Io {
        doing,
        path: path.to_path_buf(),
        source,
    }
}

fn malformed(file: &Path, line: usize, field: &str, message: impl Into<String>) -> RunDirError {
    RunDirError::Malformed(Diagnostic::error(
        Location {
            file: file.to_path_buf(),
            document: 0,
            line,
            column: 1,
        },
        field,
        message,
    ))
}

/// One rule group as the run evaluated it.
#[derive(Clone, Debug, PartialEq)]
pub struct GroupInfo {
    pub name: String,
    /// The group's evaluation interval [ms].
    pub interval_ms: i64,
    /// The copied rule file holding it, relative to the run directory (`rules/alerts.yaml`).
    pub file: String,
}

/// One rule file the run evaluated.
#[derive(Clone, Debug, PartialEq)]
pub struct RuleFileInfo {
    /// Where the run read it, as the scenario named it.
    pub source: String,
    /// Its copy, relative to the run directory.
    pub copy: String,
    /// The path a Prometheus server would load it from (the group slot hash uses it).
    pub served_as: String,
}

/// `run.json`: what a run was, enough to turn its series back into queries and rule tests.
#[derive(Clone, Debug, PartialEq)]
pub struct RunInfo {
    pub scenario: String,
    pub scenario_file: String,
    pub seed: u64,
    pub duration_ms: i64,
    pub scrape_interval_ms: i64,
    /// The Prometheus configuration's global `evaluation_interval` [ms].
    pub evaluation_interval_ms: i64,
    pub external_labels: BTreeMap<String, String>,
    pub rule_files: Vec<RuleFileInfo>,
    pub rule_groups: Vec<GroupInfo>,
}

/// The name a rule file's copy gets: its own file name, made unique with `-2`, `-3`, ...
fn copy_name(source: &Path, taken: &[String]) -> String {
    let base = source
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "rules.yaml".to_string());
    if !taken.contains(&base) {
        return base;
    }
    let (stem, ext) = match base.rsplit_once('.') {
        Some((stem, ext)) => (stem.to_string(), format!(".{ext}")),
        None => (base.clone(), String::new()),
    };
    (2..)
        .map(|n| format!("{stem}-{n}{ext}"))
        .find(|name| !taken.contains(name))
        .expect("an unused name exists")
}

/// Describes a run (what `run.json` holds).
pub fn run_info(result: &RunResult, loaded: &Loaded) -> RunInfo {
    let world = &result.world;
    let mut rule_files: Vec<RuleFileInfo> = Vec::new();
    let mut taken: Vec<String> = Vec::new();
    for rf in loaded.inventory.rule_files() {
        let source = &rf.origin.file;
        if rule_files.iter().any(|r| Path::new(&r.source) == source) {
            continue;
        }
        let name = copy_name(source, &taken);
        taken.push(name.clone());
        let file_name = source.file_name().unwrap_or_default();
        let served_as = world
            .groups
            .iter()
            .find(|g| Path::new(&g.file).file_name() == Some(file_name))
            .map(|g| g.file.clone())
            .unwrap_or_default();
        rule_files.push(RuleFileInfo {
            source: source.display().to_string(),
            copy: format!("{RULES_DIR}/{name}"),
            served_as,
        });
    }
    let rule_groups = world
        .groups
        .iter()
        .map(|g| GroupInfo {
            name: g.name.clone(),
            interval_ms: g.interval_ms,
            file: rule_files
                .iter()
                .find(|r| r.served_as == g.file)
                .map(|r| r.copy.clone())
                .unwrap_or_default(),
        })
        .collect();
    let evaluation_interval_ms = loaded
        .inventory
        .prometheus_configs()
        .first()
        .and_then(|p| p.global.evaluation_interval.clone())
        .and_then(|s| crate::engine::parse_duration(&s).ok())
        .map_or(60_000, |d| d.as_millis() as i64);
    RunInfo {
        scenario: result.name.clone(),
        scenario_file: loaded.path.display().to_string(),
        seed: result.seed,
        duration_ms: result.duration.as_millis() as i64,
        scrape_interval_ms: world.scrape_interval.as_millis() as i64,
        evaluation_interval_ms,
        external_labels: world.eval_ctx.external_labels.clone(),
        rule_files,
        rule_groups,
    }
}

fn secs(ms: i64) -> Value {
    json!(ms as f64 / 1000.0)
}

impl RunInfo {
    /// The stable JSON of `run.json`.
    pub fn to_json(&self) -> Value {
        json!({
            "schema": "twin.run/v1",
            "scenario": self.scenario,
            "scenarioFile": self.scenario_file,
            "seed": self.seed,
            "durationSecs": secs(self.duration_ms),
            "scrapeIntervalSecs": secs(self.scrape_interval_ms),
            "evaluationIntervalSecs": secs(self.evaluation_interval_ms),
            "externalLabels": self.external_labels,
            "ruleFiles": self.rule_files.iter().map(|r| json!({
                "source": r.source, "copy": r.copy, "servedAs": r.served_as,
            })).collect::<Vec<_>>(),
            "ruleGroups": self.rule_groups.iter().map(|g| json!({
                "name": g.name, "intervalSecs": secs(g.interval_ms), "file": g.file,
            })).collect::<Vec<_>>(),
            "files": {"report": REPORT_FILE, "series": SERIES_FILE, "rules": RULES_DIR},
        })
    }
}

/// Writes the run's directory `dir/<scenario>/` (created, or refreshed file by file) and
/// returns its path. The caller adds anything else that belongs to the run there (the HTML
/// report) after this returns.
pub fn write(result: &RunResult, loaded: &Loaded, dir: &Path) -> Result<PathBuf, RunDirError> {
    let run_dir = dir.join(&result.name);
    let rules_dir = run_dir.join(RULES_DIR);
    std::fs::create_dir_all(&rules_dir).map_err(io("creating", &rules_dir))?;
    let report = serde_json::to_string_pretty(&super::json(result)).expect("a Value renders");
    let path = run_dir.join(REPORT_FILE);
    std::fs::write(&path, format!("{report}\n")).map_err(io("writing", &path))?;
    let info = run_info(result, loaded);
    for rf in &info.rule_files {
        let source = Path::new(&rf.source);
        let copy = run_dir.join(&rf.copy);
        std::fs::copy(source, &copy).map_err(io("copying", source))?;
    }
    let text = serde_json::to_string_pretty(&info.to_json()).expect("a Value renders");
    let path = run_dir.join(RUN_FILE);
    std::fs::write(&path, format!("{text}\n")).map_err(io("writing", &path))?;
    write_series(&result.world.storage.store, &run_dir.join(SERIES_FILE))?;
    Ok(run_dir)
}

/// A sample value as `series.jsonl` writes it.
fn push_value(out: &mut String, value: f64) {
    if is_stale_nan(value) {
        out.push_str("\"stale\"");
    } else if value.is_nan() {
        out.push_str("\"NaN\"");
    } else if value.is_infinite() {
        out.push_str(if value > 0.0 { "\"+Inf\"" } else { "\"-Inf\"" });
    } else {
        let number = serde_json::Number::from_f64(value).expect("finite");
        let _ = write!(out, "{number}");
    }
}

/// One series as its `series.jsonl` line (without the newline).
pub fn series_line(labels: &Labels, samples: &[crate::telemetry::store::Sample]) -> String {
    let mut line = String::from("{\"labels\":{");
    for (idx, label) in labels.iter().enumerate() {
        if idx > 0 {
            line.push(',');
        }
        line.push_str(&Value::from(label.name.as_str()).to_string());
        line.push(':');
        line.push_str(&Value::from(label.value.as_str()).to_string());
    }
    line.push_str("},\"samples\":[");
    for (idx, s) in samples.iter().enumerate() {
        if idx > 0 {
            line.push(',');
        }
        let _ = write!(line, "[{},", s.t_ms);
        push_value(&mut line, s.value);
        line.push(']');
    }
    line.push_str("]}");
    line
}

/// Writes every series of `store`, in label-set order, to `path`.
pub fn write_series(store: &Store, path: &Path) -> Result<(), RunDirError> {
    let file = std::fs::File::create(path).map_err(io("creating", path))?;
    let mut out = std::io::BufWriter::new(file);
    for id in store.ids() {
        let series = store.series(id);
        let line = series_line(&series.labels, series.samples());
        writeln!(out, "{line}").map_err(io("writing", path))?;
    }
    out.flush().map_err(io("writing", path))
}

/// Reads `series.jsonl` of a run directory back into a store.
pub fn read_series(run_dir: &Path) -> Result<Store, RunDirError> {
    let path = run_dir.join(SERIES_FILE);
    let text = std::fs::read_to_string(&path).map_err(io("reading", &path))?;
    parse_series(&path, &text)
}

/// Parses the text of a `series.jsonl` file; `path` is for errors.
pub fn parse_series(path: &Path, text: &str) -> Result<Store, RunDirError> {
    let mut store = Store::new();
    for (idx, line) in text.lines().enumerate() {
        let line_no = idx + 1;
        if line.trim().is_empty() {
            continue;
        }
        let bad = |field: &str, message: String| malformed(path, line_no, field, message);
        let value: Value =
            serde_json::from_str(line).map_err(|e| bad("", format!("not a JSON object: {e}")))?;
        let Some(label_map) = value.get("labels").and_then(Value::as_object) else {
            return Err(bad(
                "labels",
                "expected an object of label names to values".into(),
            ));
        };
        let mut pairs = Vec::new();
        for (name, v) in label_map {
            let Some(v) = v.as_str() else {
                return Err(bad(&format!("labels.{name}"), "expected a string".into()));
            };
            pairs.push((name.clone(), v.to_string()));
        }
        let labels = Labels::from_pairs(pairs);
        let Some(samples) = value.get("samples").and_then(Value::as_array) else {
            return Err(bad("samples", "expected an array of [t_ms, value]".into()));
        };
        let id = store
            .series_id(&labels)
            .map_err(|e| bad("labels", e.to_string()))?;
        for (s_idx, sample) in samples.iter().enumerate() {
            let field = format!("samples[{s_idx}]");
            let pair = sample.as_array().filter(|p| p.len() == 2);
            let Some(pair) = pair else {
                return Err(bad(&field, "expected [t_ms, value]".into()));
            };
            let Some(t_ms) = pair[0].as_i64() else {
                return Err(bad(
                    &field,
                    "the time is not an integer of milliseconds".into(),
                ));
            };
            let v = match &pair[1] {
                Value::Number(n) => n.as_f64().expect("serde_json numbers are f64-convertible"),
                Value::String(s) => match s.as_str() {
                    "stale" => stale_nan(),
                    "NaN" => f64::NAN,
                    "+Inf" => f64::INFINITY,
                    "-Inf" => f64::NEG_INFINITY,
                    other => {
                        return Err(bad(
                            &field,
                            format!(
                                "{other:?} is not a number, \"stale\", \"NaN\", \"+Inf\" or \"-Inf\""
                            ),
                        ));
                    }
                },
                _ => return Err(bad(&field, "the value is not a number".into())),
            };
            store
                .append_to(id, t_ms, v)
                .map_err(|e| bad(&field, e.to_string()))?;
        }
    }
    Ok(store)
}

/// Reads `run.json` of a run directory.
pub fn read_run(run_dir: &Path) -> Result<RunInfo, RunDirError> {
    let path = run_dir.join(RUN_FILE);
    let text = std::fs::read_to_string(&path).map_err(io("reading", &path))?;
    let bad = |field: &str, message: &str| malformed(&path, 1, field, message);
    let v: Value = serde_json::from_str(&text)
        .map_err(|e| malformed(&path, e.line(), "", format!("not JSON: {e}")))?;
    if v["schema"] != "twin.run/v1" {
        return Err(bad("schema", "expected \"twin.run/v1\""));
    }
    let text_of = |field: &str| -> Result<String, RunDirError> {
        v[field]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| bad(field, "expected a string"))
    };
    let ms_of = |value: &Value, field: &str| -> Result<i64, RunDirError> {
        value
            .as_f64()
            .map(|s| (s * 1000.0).round() as i64)
            .ok_or_else(|| bad(field, "expected seconds"))
    };
    let mut rule_files = Vec::new();
    for (idx, r) in v["ruleFiles"].as_array().into_iter().flatten().enumerate() {
        let field = |name: &str| format!("ruleFiles[{idx}].{name}");
        let get = |name: &str| {
            r[name]
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| bad(&field(name), "expected a string"))
        };
        rule_files.push(RuleFileInfo {
            source: get("source")?,
            copy: get("copy")?,
            served_as: get("servedAs")?,
        });
    }
    let mut rule_groups = Vec::new();
    for (idx, g) in v["ruleGroups"].as_array().into_iter().flatten().enumerate() {
        let field = |name: &str| format!("ruleGroups[{idx}].{name}");
        rule_groups.push(GroupInfo {
            name: g["name"]
                .as_str()
                .ok_or_else(|| bad(&field("name"), "expected a string"))?
                .to_string(),
            interval_ms: ms_of(&g["intervalSecs"], &field("intervalSecs"))?,
            file: g["file"]
                .as_str()
                .ok_or_else(|| bad(&field("file"), "expected a string"))?
                .to_string(),
        });
    }
    let external_labels = v["externalLabels"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default();
    Ok(RunInfo {
        scenario: text_of("scenario")?,
        scenario_file: text_of("scenarioFile")?,
        seed: v["seed"]
            .as_u64()
            .ok_or_else(|| bad("seed", "expected an integer"))?,
        duration_ms: ms_of(&v["durationSecs"], "durationSecs")?,
        scrape_interval_ms: ms_of(&v["scrapeIntervalSecs"], "scrapeIntervalSecs")?,
        evaluation_interval_ms: ms_of(&v["evaluationIntervalSecs"], "evaluationIntervalSecs")?,
        external_labels,
        rule_files,
        rule_groups,
    })
}

#[cfg(test)]
mod tests;
