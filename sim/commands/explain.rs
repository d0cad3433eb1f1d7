//! `twin explain ...`: one controller decision from a case file, explained.

use std::process::ExitCode;

use clap::Subcommand;

#[derive(Subcommand)]
pub enum ExplainCommand {
    /// One HorizontalPodAutoscaler reconcile (case format: spec/kubernetes.md Appendix A).
    Hpa(super::explain_hpa::HpaArgs),
}

pub fn run(command: ExplainCommand) -> anyhow::Result<ExitCode> {
    match command {
        ExplainCommand::Hpa(args) => super::explain_hpa::run(args),
    }
}
