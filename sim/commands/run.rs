//! `twin run SCENARIO`: one rehearsal, its verdict and its report.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, ValueEnum};

#[derive(Clone, Copy, Default, ValueEnum)]
pub enum Format {
    #[default]
    Text,
    Json,
}

#[derive(Args)]
pub struct RunArgs {
    /// The scenario file (docs/scenarios.md).
    pub scenario: PathBuf,
    /// Overrides the scenario's seed; the same seed gives the same report, byte for byte.
    #[arg(long)]
    pub seed: Option<u64>,
    /// `text` for people, `json` for the stable report (docs/report.md).
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
    /// Also write the run directory DIR/<scenario>/: report.json, series.jsonl, run.json, the
    /// rule files and report.html, and DIR/index.html (docs/report.md).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let loaded = twin::scenario::build::load(&args.scenario)
        .with_context(|| format!("loading {}", args.scenario.display()))?;
    let result = twin::scenario::run(&loaded, args.seed)
        .with_context(|| format!("building {}", args.scenario.display()))?;
    let report = twin::report::json(&result);
    let text = serde_json::to_string_pretty(&report).context("rendering the report")?;
    let run_dir = match &args.out {
        // The run's HTML report (report.html) joins the directory this returns.
        Some(dir) => Some(
            twin::report::run_dir::write(&result, &loaded, dir)
                .with_context(|| format!("writing the run directory under {}", dir.display()))?,
        ),
        None => None,
    };
    if let (Some(dir), Some(_)) = (&args.out, &run_dir) {
        super::rehearse::write_html(dir, &result)?;
        let index = dir.join("index.html");
        std::fs::write(&index, twin::report::html::index(&[&result]))
            .with_context(|| format!("writing {}", index.display()))?;
    }
    match args.format {
        Format::Json => outln!("{text}"),
        Format::Text => {
            out!("{}", twin::report::text(&result));
            outln!(
                "  rerun: twin run {} --seed {}",
                args.scenario.display(),
                result.seed
            );
            if let Some(run_dir) = &run_dir {
                outln!("  run directory: {}", run_dir.display());
            }
        }
    }
    Ok(if result.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
