//! `twin export openmetrics|promtool-test RUN_DIR`: a run directory (`twin run --out`,
//! `twin rehearse --out`) in formats other tools read.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Subcommand;

#[derive(Subcommand)]
pub enum ExportCommand {
    /// The run's series as OpenMetrics text for `promtool tsdb create-blocks-from openmetrics`
    /// (stale markers cannot be written in OpenMetrics and are left out; docs/report.md)
    Openmetrics {
        /// A run directory: DIR/<scenario>/ as `twin run --out DIR` writes it.
        run_dir: PathBuf,
        /// Where to write (default: standard output).
        #[arg(short = 'o', long = "output", value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// A promtool unit-test file for the alerts the run fired (`twin rules test` and
    /// `promtool test rules` both run it)
    PromtoolTest {
        /// A run directory: DIR/<scenario>/ as `twin run --out DIR` writes it.
        run_dir: PathBuf,
        /// Where to write (default: RUN_DIR/promtool-test.yaml); its rule_files point at
        /// RUN_DIR/rules/ relative to this file.
        #[arg(short = 'o', long = "output", value_name = "FILE")]
        output: Option<PathBuf>,
    },
}

pub fn run(command: ExportCommand) -> anyhow::Result<ExitCode> {
    match command {
        ExportCommand::Openmetrics { run_dir, output } => {
            let text = twin::report::export::openmetrics(&run_dir)
                .with_context(|| format!("exporting {}", run_dir.display()))?;
            match output {
                Some(path) => std::fs::write(&path, text)
                    .with_context(|| format!("writing {}", path.display()))?,
                None => out!("{text}"),
            }
        }
        ExportCommand::PromtoolTest { run_dir, output } => {
            let path = output.unwrap_or_else(|| run_dir.join("promtool-test.yaml"));
            if let Some(folder) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(folder)
                    .with_context(|| format!("creating {}", folder.display()))?;
            }
            let test = twin::report::export::promtool_test(&run_dir, &path)
                .with_context(|| format!("exporting {}", run_dir.display()))?;
            std::fs::write(&path, &test.text)
                .with_context(|| format!("writing {}", path.display()))?;
            eprintln!(
                "wrote {}: {} input series, {} alert tests, {} fired alerts skipped",
                path.display(),
                test.n_series,
                test.n_alert_tests,
                test.skipped.len()
            );
            for why in &test.skipped {
                eprintln!("  skipped: {why}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
