//! The `twin` command line: a thin clap front. Each subcommand parses its arguments, calls the
//! library and prints; no model logic lives here (DESIGN.md). Each subcommand's front is a file
//! of `sim/commands/`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod commands;

/// twin: a discrete-event digital twin of the Sophia GPU Kubernetes platform.
///
/// It reads the platform's real manifests, mesh policies, Prometheus rules and SLOs, and tells
/// you what they would do. Exit codes: 0 success, 1 a finding or an expectation failed, 2 bad
/// input (printed as file:line:col diagnostics), 141 when the reader of the output went away.
#[derive(Parser)]
#[command(name = "twin", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Review a folder of manifests across objects: the inventory and the findings
    Lint(commands::lint::LintArgs),
    /// Explain one controller decision from a case file (scheduler, HPA)
    #[command(subcommand)]
    Explain(commands::explain::ExplainCommand),
    /// PromQL tools: run Prometheus promqltest files over twin's evaluator
    Promql(commands::promql::PromqlArgs),
    /// Prometheus rule tools: run promtool unit-test files
    Rules(commands::rules::RulesArgs),
    /// Run one scenario and check its expectations
    Run(commands::run::RunArgs),
    /// Run every scenario of a folder (default scenarios/) and print the summary
    Rehearse(commands::rehearse::RehearseArgs),
    /// Export a run directory: OpenMetrics for promtool's block import, a promtool unit test
    #[command(subcommand)]
    Export(commands::export::ExportCommand),
    /// One DestinationRule's cluster: its Envoy config, the model on a request script, and the
    /// model beside a real Envoy
    #[command(subcommand)]
    Mesh(commands::mesh::MeshCommand),
    /// Serve as one pod of a service profile on loopback (the upstream behind real Envoy)
    StandIn(commands::stand_in::StandInArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome: anyhow::Result<ExitCode> = match cli.command {
        Command::Lint(args) => commands::lint::run(args),
        Command::Explain(args) => commands::explain::run(args),
        Command::Promql(args) => commands::promql::run(args),
        Command::Rules(args) => commands::rules::run(args),
        Command::Run(args) => commands::run::run(args),
        Command::Rehearse(args) => commands::rehearse::run(args),
        Command::Export(args) => commands::export::run(args),
        Command::Mesh(command) => commands::mesh::run(command),
        Command::StandIn(args) => commands::stand_in::run(args),
    };
    match outcome {
        Ok(code) => code,
        // The reader of our output went away (`twin run ... | head`): stop quietly, with the
        // status of a process that SIGPIPE ended (128 + 13), so a `pipefail` script still sees
        // that the command did not finish.
        Err(err) if commands::is_broken_pipe(&err) => ExitCode::from(141),
        Err(err) => {
            // Bad input: the error already carries its diagnostics; print them, never Debug.
            eprintln!("{}", commands::render_error(&err));
            ExitCode::from(2)
        }
    }
}
