//! `twin rehearse [DIR]`: every scenario of a folder, in parallel where cores allow, with a
//! summary table; reports under `--out`.

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Mutex;

use anyhow::Context as _;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
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

struct Row {
    name: String,
    verdict: bool,
    alerts: String,
    budget: String,
    p99: String,
    replicas: String,
    pending: String,
}

fn row(result: &RunResult) -> Row {
    let lives = twin::report::alert_lives(result);
    let mut alerts: Vec<String> = lives
        .iter()
        .filter_map(|l| {
            l.firing_at_secs.map(|t| {
                format!(
                    "{}@{}",
                    l.alert,
                    twin::engine::SimDuration::from_secs_f64(t)
                )
            })
        })
        .collect();
    alerts.dedup();
    let budget = result
        .slo_budget
        .iter()
        .find(|(n, _)| n == "availability")
        .map_or("-".into(), |(_, u)| format!("{:.2}%", u * 100.0));
    let w = &result.world;
    let p99 = w
        .stats
        .iter()
        .zip(&w.deployment_names)
        .filter(|(s, _)| !s.latency_us.is_empty())
        .map(|(s, n)| {
            format!(
                "{n} {:.0}ms",
                s.latency_us.value_at_quantile(0.99) as f64 / 1000.0
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    let replicas = w
        .deployment_names
        .iter()
        .zip(&w.most_replicas)
        .map(|(n, r)| format!("{n} {r}"))
        .collect::<Vec<_>>()
        .join(", ");
    Row {
        name: result.name.clone(),
        verdict: result.passed(),
        alerts: if alerts.is_empty() {
            "-".into()
        } else {
            alerts.join(" ")
        },
        budget,
        p99: if p99.is_empty() { "-".into() } else { p99 },
        replicas,
        pending: format!("{}", w.longest_pending),
    }
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
    let mut rows = Vec::new();
    let mut failed = false;
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
        failed |= !result.passed();
        for (what, ok, detail) in &result.expectations {
            if !ok {
                println!("{}: expectation failed: {what}: {detail}", result.name);
            }
        }
        rows.push(row(&result));
    }
    let width = rows.iter().map(|r| r.name.len()).max().unwrap_or(8).max(8);
    println!(
        "{:width$}  {:7}  {:10}  {:28}  {:8}  {}",
        "SCENARIO", "VERDICT", "PENDING", "ALERTS FIRED", "BUDGET", "P99 / MOST REPLICAS"
    );
    for r in &rows {
        println!(
            "{:width$}  {:7}  {:10}  {:28}  {:8}  {} / {}",
            r.name,
            if r.verdict { "pass" } else { "FAIL" },
            r.pending,
            r.alerts,
            r.budget,
            r.p99,
            r.replicas
        );
    }
    // The index of the runs (index.html in `args.out`) is written here, after every run.
    println!(
        "{} scenarios, {} failed; run directories in {}",
        rows.len(),
        rows.iter().filter(|r| !r.verdict).count(),
        args.out.display()
    );
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
