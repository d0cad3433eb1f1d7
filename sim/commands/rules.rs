//! `twin rules test FILE...`: runs promtool's rule unit-test files the way promtool 2.42 does.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use twin::promql::promtool;

#[derive(Args)]
pub struct RulesArgs {
    #[command(subcommand)]
    command: RulesCommand,
}

#[derive(Subcommand)]
enum RulesCommand {
    /// Run promtool unit-test files (`rule_files`, `input_series`, `alert_rule_test`,
    /// `promql_expr_test`) and report per file like `promtool test rules`. Exit 1 if any test
    /// fails, 2 if a test or rule file is malformed.
    Test {
        /// promtool test files; their `rule_files` are relative to each test file.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

pub fn run(args: RulesArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        RulesCommand::Test { files } => test(&files),
    }
}

fn test(files: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let (mut passed, mut failed, mut malformed) = (0, 0, 0);
    for path in files {
        let report = promtool::test_file(path);
        outln!("{}", report.render());
        match &report.result {
            Ok(promtool::FileOutcome::Passed) => passed += 1,
            Ok(promtool::FileOutcome::Failed(_)) => failed += 1,
            Err(_) => {
                failed += 1;
                malformed += 1;
            }
        }
    }
    outln!("{passed} passed, {failed} failed");
    Ok(ExitCode::from(if malformed > 0 {
        2
    } else if failed > 0 {
        1
    } else {
        0
    }))
}
