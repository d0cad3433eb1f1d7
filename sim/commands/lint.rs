//! `twin lint DIR [--topology FILE] [--format text|json]`: load the manifests, run the
//! cross-object checks, print the findings. Exit 0 without error findings, 1 with one, 2 on bad
//! input (printed as diagnostics by `main`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, ValueEnum};
use twin::diag::Severity;
use twin::lint::{self, render::InventorySummary};
use twin::manifests;

#[derive(Args)]
pub struct LintArgs {
    /// Folder of manifests to check: every .yaml, .yml and .json file below it is read
    pub dir: PathBuf,
    /// Cluster topology (twin.sophia.dev/v1 Topology) to check scheduling against; without it,
    /// node-count checks only state how many nodes are needed
    #[arg(long, value_name = "FILE")]
    pub topology: Option<PathBuf>,
    /// Output format: `text` for a terminal, `json` for one stable object
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

pub fn run(args: LintArgs) -> anyhow::Result<ExitCode> {
    let inventory = manifests::load_dir(&args.dir)
        .with_context(|| format!("loading {}", args.dir.display()))?;
    let topology = match &args.topology {
        Some(path) => Some(
            manifests::topology::load_topology(path)
                .with_context(|| format!("loading {}", path.display()))?,
        ),
        None => None,
    };
    let findings = lint::lint(&inventory, topology.as_ref());
    let summary = inventory.summary();
    // The loader counts namespace -> kind; the report lists kind -> namespace.
    let mut by_kind: InventorySummary = BTreeMap::new();
    for (namespace, kinds) in &summary.by_namespace {
        for (kind, count) in kinds {
            by_kind
                .entry(kind.clone())
                .or_default()
                .insert(namespace.clone(), *count);
        }
    }
    for warning in &inventory.warnings {
        eprintln!("{}", warning.render_from_disk());
    }
    match args.format {
        Format::Text => out!("{}", lint::render_text(&by_kind, &findings)),
        Format::Json => outln!("{}", lint::render_json(&by_kind, &findings)),
    }
    let failed = findings.iter().any(|f| f.severity == Severity::Error);
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
