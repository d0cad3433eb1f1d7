//! `twin rehearse [DIR]`: every scenario of a folder, in parallel where cores allow, with a
//! summary table; reports under `--out`.

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Mutex;

use anyhow::Context as _;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use twin::report::{SummaryRow, summary_row};
use twin::scenario::RunResult;

#[derive(Args)]
pub struct RehearseArgs {
    /// The folder of scenario files (`*.yaml`).
    #[arg(default_value = "scenarios")]
    pub dir: PathBuf,
    /// Where the run directories go, DIR/<scenario>/ for each scenario (docs/report.md).
    #[arg(long, value_name = "DIR", default_value = "target/twin")]
    pub out: PathBuf,
    /// Scenarios run at once (default: the machine's cores).
    #[arg(long)]
    pub jobs: Option<usize>,
}

fn scenario_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    Ok(files)
}

/// Writes `out/<scenario>/report.html`.
pub fn write_html(out: &Path, result: &RunResult) -> anyhow::Result<()> {
    let dir = out.join(&result.name);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join("report.html");
    std::fs::write(&path, twin::report::html::page(result))
        .with_context(|| format!("writing {}", path.display()))
}

pub fn run(args: RehearseArgs) -> anyhow::Result<ExitCode> {
    let files = scenario_files(&args.dir)?;
    anyhow::ensure!(
        !files.is_empty(),
        "no scenario files (*.yaml) in {}",
        args.dir.display()
    );
    // Read and check every scenario before running any: nothing runs on half-read input.
    let mut loaded = Vec::new();
    for path in &files {
        loaded.push(
            twin::scenario::load(path).with_context(|| format!("loading {}", path.display()))?,
        );
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let terminal = std::io::stderr().is_terminal();
    let bar = if terminal {
        let bar = ProgressBar::new(loaded.len() as u64);
        bar.set_style(
            ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}")
                .expect("the template is valid"),
        );
        Some(bar)
    } else {
        None
    };
    let next = Mutex::new(0usize);
    let results: Mutex<Vec<Option<anyhow::Result<RunResult>>>> =
        Mutex::new((0..loaded.len()).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..jobs.min(loaded.len()) {
            scope.spawn(|| {
                loop {
                    let idx = {
                        let mut n = next.lock().expect("the counter lock is never poisoned");
                        let idx = *n;
                        *n += 1;
                        idx
                    };
                    let Some(l) = loaded.get(idx) else { break };
                    let outcome = twin::scenario::run(l, None)
                        .with_context(|| format!("building {}", files[idx].display()));
                    match (&bar, &outcome) {
                        (Some(bar), Ok(r)) => {
                            bar.inc(1);
                            bar.set_message(r.name.clone());
                        }
                        (None, Ok(r)) => {
                            eprintln!("{}: {}", r.name, if r.passed() { "pass" } else { "FAIL" })
                        }
                        _ => {}
                    }
                    results.lock().expect("the results lock is never poisoned")[idx] =
                        Some(outcome);
                }
            });
        }
    });
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let mut rows: Vec<SummaryRow> = Vec::new();
    let mut failed = false;
    let mut done = Vec::new();
    for (idx, outcome) in results
        .into_inner()
        .expect("the results lock is never poisoned")
        .into_iter()
        .enumerate()
    {
        let Some(outcome) = outcome else { continue };
        let result = outcome?;
        // The run's HTML report (report.html) joins the directory this returns.
        twin::report::run_dir::write(&result, &loaded[idx], &args.out)
            .with_context(|| format!("writing the run directory of {}", result.name))?;
        write_html(&args.out, &result)?;
        failed |= !result.passed();
        for (what, ok, detail) in &result.expectations {
            if !ok {
                outln!("{}: expectation failed: {what}: {detail}", result.name);
            }
        }
        rows.push(summary_row(&result));
        done.push(result);
    }
    let index = args.out.join("index.html");
    std::fs::write(
        &index,
        twin::report::html::index(&done.iter().collect::<Vec<_>>()),
    )
    .with_context(|| format!("writing {}", index.display()))?;
    let width = rows.iter().map(|r| r.name.len()).max().unwrap_or(8).max(8);
    outln!(
        "{:width$}  {:7}  {:10}  {:28}  {:8}  {}",
        "SCENARIO",
        "VERDICT",
        "PENDING",
        "ALERTS FIRED",
        "BUDGET",
        "P99 / MOST REPLICAS"
    );
    for r in &rows {
        outln!(
            "{:width$}  {:7}  {:10}  {:28}  {:8}  {} / {}",
            r.name,
            if r.passed { "pass" } else { "FAIL" },
            r.pending,
            r.alerts,
            r.budget,
            r.p99,
            r.replicas
        );
    }
    // The index of the runs (index.html in `args.out`) is written here, after every run.
    outln!(
        "{} scenarios, {} failed; run directories in {}",
        rows.len(),
        rows.iter().filter(|r| !r.passed).count(),
        args.out.display()
    );
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
