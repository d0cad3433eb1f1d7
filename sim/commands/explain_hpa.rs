//! `twin explain hpa --case FILE [--format text|json]`: one HPA reconcile from a case file
//! (spec/kubernetes.md Appendix A), explained. Exit 0 when the case has no `expected` block or
//! matches it, 1 when it does not match, 2 when the case is not usable input.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use twin::autoscale::case_file::{self, LoadedCase};
use twin::autoscale::hpa::{self, Decision};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

#[derive(clap::Args)]
pub struct HpaArgs {
    /// The case file: one case object (or a one-element array).
    #[arg(long = "case", value_name = "FILE")]
    pub case: PathBuf,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

pub fn run(args: HpaArgs) -> anyhow::Result<ExitCode> {
    let loaded =
        case_file::load(&args.case).with_context(|| format!("loading {}", args.case.display()))?;
    let decision = hpa::recommend(&loaded.case);
    let mismatches = loaded
        .expected
        .as_ref()
        .map(|expected| case_file::mismatches(&decision, expected));
    match args.format {
        Format::Json => {
            let json = serde_json::to_string_pretty(&case_file::decision_json(&decision))?;
            outln!("{json}");
            // stdout stays one JSON object; the verdict goes to stderr.
            if let Some(found) = &mismatches {
                eprint!("{}", verdict(found));
            }
        }
        Format::Text => {
            out!("{}", render_text(&loaded, &decision));
            if let Some(found) = &mismatches {
                out!("{}", verdict(found));
            }
        }
    }
    Ok(match mismatches {
        Some(found) if !found.is_empty() => ExitCode::from(1),
        _ => ExitCode::SUCCESS,
    })
}

fn verdict(mismatches: &[String]) -> String {
    if mismatches.is_empty() {
        return "expected: matches\n".to_string();
    }
    let mut out = String::from("expected: DOES NOT MATCH\n");
    for line in mismatches {
        let _ = writeln!(out, "  {line}");
    }
    out
}

fn render_text(loaded: &LoadedCase, decision: &Decision) -> String {
    let case = &loaded.case;
    let mut out = String::new();
    let _ = writeln!(out, "case: {} (Kubernetes {})", case.name, case.version);
    if let Some(source) = &loaded.source {
        let _ = writeln!(out, "source: {source}");
    }
    for note in &loaded.notes {
        let _ = writeln!(out, "{note}");
    }
    let _ = writeln!(
        out,
        "replicas: {} -> {}  (min {}, max {})",
        decision.current_replicas,
        decision.desired_replicas,
        case.spec.min_replicas,
        case.spec.max_replicas
    );
    match decision.current_utilization {
        Some(u) => {
            let _ = writeln!(out, "current utilization: {u}%");
        }
        None => {
            let _ = writeln!(out, "current utilization: none");
        }
    }
    if decision.per_metric.is_empty() {
        let _ = writeln!(out, "metrics: not evaluated");
    } else {
        let _ = writeln!(out, "metrics:");
        for (idx, outcome) in decision.per_metric.iter().enumerate() {
            match outcome {
                Ok(p) => {
                    let utilization = p
                        .utilization
                        .map(|u| format!(", utilization {u}%"))
                        .unwrap_or_default();
                    let _ = writeln!(
                        out,
                        "  [{idx}] {}: {} replicas (value {}m{utilization})",
                        p.description, p.replicas, p.value_milli
                    );
                }
                Err(f) => {
                    let _ = writeln!(out, "  [{idx}] failed: {}: {}", f.reason, f.message);
                }
            }
        }
    }
    if let Some(combined) = decision.metric_desired_replicas {
        let _ = writeln!(out, "combined proposal: {combined}");
    }
    if let Some(stabilized) = decision.stabilized_replicas {
        let _ = writeln!(out, "after stabilization: {stabilized}");
    }
    let _ = writeln!(
        out,
        "limited by: {}",
        decision.limited_by.map_or("nothing", |l| l.as_str())
    );
    let _ = writeln!(out, "conditions:");
    for (kind, c) in &decision.conditions {
        let status = if c.status { "True" } else { "False" };
        let _ = writeln!(
            out,
            "  {} {status} {}: {}",
            kind.as_str(),
            c.reason,
            c.message
        );
    }
    let memory = &decision.memory;
    let recommendations = memory.recommendations.as_deref().unwrap_or_default();
    let history: Vec<String> = recommendations
        .iter()
        .map(|r| format!("{}@{}s", r.replicas, r.age.as_secs_f64()))
        .collect();
    let _ = writeln!(
        out,
        "recommendation history after: [{}]",
        history.join(", ")
    );
    for (label, events) in [
        ("scale-up", &memory.scale_up_events),
        ("scale-down", &memory.scale_down_events),
    ] {
        if !events.is_empty() {
            let shown: Vec<String> = events
                .iter()
                .map(|e| format!("{}@{}s", e.delta, e.age.as_secs_f64()))
                .collect();
            let _ = writeln!(out, "{label} events after: [{}]", shown.join(", "));
        }
    }
    match &decision.rescale {
        Some(r) => {
            let _ = writeln!(
                out,
                "event: SuccessfulRescale New size: {}; reason: {}",
                r.to, r.reason
            );
        }
        None => {
            let _ = writeln!(out, "event: none (scale not written)");
        }
    }
    out
}
