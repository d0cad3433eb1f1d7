//! `twin promql test FILE.test...`: runs Prometheus promqltest files over the PromQL engine.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use twin::diag::Diagnostics;
use twin::promql::promqltest::{self, Outcome, Tally};

#[derive(Args)]
pub struct PromqlArgs {
    #[command(subcommand)]
    command: PromqlCommand,
}

#[derive(Subcommand)]
enum PromqlCommand {
    /// Run promqltest files (`load`, `clear`, `eval instant at ...`) and count the eval
    /// statements that pass. Exit 1 if any fails, 2 if a file is malformed.
    Test {
        /// Test files in Prometheus's PromQL test language.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Print each failing or unsupported statement with its line number.
        #[arg(long)]
        verbose: bool,
    },
}

pub fn run(args: PromqlArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        PromqlCommand::Test { files, verbose } => test(&files, verbose),
    }
}

fn test(files: &[PathBuf], verbose: bool) -> anyhow::Result<ExitCode> {
    let mut total = Tally::default();
    let mut malformed = Vec::new();
    for path in files {
        let results = match promqltest::run_file(path) {
            Ok(results) => results,
            Err(diag) => {
                malformed.push(diag);
                continue;
            }
        };
        let tally = Tally::of(&results);
        outln!(
            "{}: {} passed, {} failed, {} unsupported",
            path.display(),
            tally.passed,
            tally.failed,
            tally.unsupported
        );
        if verbose {
            for r in &results {
                match &r.outcome {
                    Outcome::Pass => {}
                    Outcome::Fail(why) => {
                        outln!("  {}:{}: FAIL {}: {}", path.display(), r.line, r.expr, why)
                    }
                    Outcome::Unsupported(why) => {
                        outln!(
                            "  {}:{}: UNSUPPORTED {}: {}",
                            path.display(),
                            r.line,
                            r.expr,
                            why
                        )
                    }
                }
            }
        }
        total.passed += tally.passed;
        total.failed += tally.failed;
        total.unsupported += tally.unsupported;
    }
    // Prometheus 2.42's test language has no way to skip a statement, so nothing is skipped.
    let skipped = 0;
    outln!(
        "{} passed, {} failed, {} skipped",
        total.passed,
        total.failed + total.unsupported,
        skipped
    );
    if !malformed.is_empty() {
        return Err(Diagnostics(malformed).into());
    }
    Ok(if total.failed + total.unsupported > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
