//! `twin explain ...`: one controller decision from a case file, explained. This front only
//! parses arguments, calls the library and prints.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Subcommand, ValueEnum};
use twin::cluster::case::{self, ScheduleCase};
use twin::cluster::quantity::format_amount;
use twin::cluster::schedule::{FilterPlugin, Placement};

#[derive(Subcommand)]
pub enum ExplainCommand {
    /// Where the default kube-scheduler would put a pod, filter by filter and score by score
    /// (case format: spec/kubernetes.md Appendix B). Exits 1 when the case's `expected`
    /// block does not match.
    Schedule(ScheduleArgs),
    /// One HorizontalPodAutoscaler reconcile: desired replicas, each metric's proposal, the rule
    /// that limited the result and the conditions (case format: spec/kubernetes.md Appendix A).
    /// Exits 1 when the case's `expected` block does not match.
    Hpa(super::explain_hpa::HpaArgs),
}

#[derive(Clone, Copy, Default, ValueEnum)]
pub enum Format {
    #[default]
    Text,
    Json,
}

#[derive(Args)]
pub struct ScheduleArgs {
    /// The case file (one JSON case object, or a one-element array).
    #[arg(long = "case", value_name = "FILE")]
    pub case: PathBuf,
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

pub fn run(command: ExplainCommand) -> anyhow::Result<ExitCode> {
    match command {
        ExplainCommand::Schedule(args) => schedule(args),
        ExplainCommand::Hpa(args) => super::explain_hpa::run(args),
    }
}

fn schedule(args: ScheduleArgs) -> anyhow::Result<ExitCode> {
    let loaded =
        case::load(&args.case).with_context(|| format!("loading {}", args.case.display()))?;
    let placement = twin::cluster::schedule(&loaded.cluster, &loaded.pod, &loaded.config);
    let outcome = case::placement_json(&loaded.cluster, &placement);
    let mismatches = loaded
        .expected
        .as_ref()
        .map(|expected| case::compare(expected, &outcome));
    match args.format {
        Format::Json => {
            outln!(
                "{}",
                serde_json::to_string_pretty(&outcome).context("rendering the outcome")?
            );
            if let Some(mismatches) = &mismatches {
                for m in mismatches {
                    eprintln!(
                        "mismatch: {}: expected {}, got {}",
                        m.field, m.expected, m.actual
                    );
                }
            }
        }
        Format::Text => out!(
            "{}",
            render_text(&loaded, &placement, mismatches.as_deref())
        ),
    }
    Ok(match mismatches {
        Some(list) if !list.is_empty() => ExitCode::from(1),
        _ => ExitCode::SUCCESS,
    })
}

fn short(plugin: FilterPlugin) -> &'static str {
    match plugin {
        FilterPlugin::NodeUnschedulable => "Unsched",
        FilterPlugin::NodeName => "NodeName",
        FilterPlugin::TaintToleration => "Taint",
        FilterPlugin::NodeAffinity => "NodeAff",
        FilterPlugin::NodeResourcesFit => "Fit",
        FilterPlugin::InterPodAffinity => "PodAff",
    }
}

fn render_text(
    case: &ScheduleCase,
    placement: &Placement,
    mismatches: Option<&[case::Mismatch]>,
) -> String {
    let nodes = case.cluster.nodes();
    let pod = &case.pod;
    let mut out = String::new();
    let title = case.name.as_deref().unwrap_or("(unnamed case)");
    let _ = writeln!(
        out,
        "case {title} (scheduler {})",
        case.config.kubernetes_version
    );
    let request = pod.requests();
    let _ = writeln!(
        out,
        "pod {}/{} priority {}: requests cpu {}, memory {}{}",
        pod.namespace,
        pod.name,
        pod.priority,
        format_amount("cpu", request.cpu_millis),
        format_amount("memory", request.memory_bytes),
        request
            .extended
            .iter()
            .map(|(n, v)| format!(", {n} {v}"))
            .collect::<String>()
    );
    let width = nodes.iter().map(|n| n.name.len()).max().unwrap_or(4).max(4);
    let _ = write!(out, "\n{:width$} ", "NODE");
    for plugin in FilterPlugin::ALL {
        let _ = write!(out, " {:>8}", short(plugin));
    }
    let _ = writeln!(
        out,
        " |  {:>4} {:>8} {:>5} {:>7} {:>6} {:>5}",
        "Fit", "Balanced", "Taint", "NodeAff", "PodAff", "total"
    );
    for (idx, node) in nodes.iter().enumerate() {
        let _ = write!(out, "{:width$} ", node.name);
        let failed_at = placement.verdicts[idx].as_ref().map(|f| f.plugin);
        for plugin in FilterPlugin::ALL {
            let cell = match failed_at {
                Some(at) if at == plugin => "FAIL",
                Some(at) if at < plugin => "-",
                _ => "ok",
            };
            let _ = write!(out, " {cell:>8}");
        }
        match placement.scores.iter().find(|s| s.node == idx) {
            Some(s) => {
                let opt = |v: Option<i64>| v.map_or("skip".to_string(), |v| v.to_string());
                let _ = writeln!(
                    out,
                    " |  {:>4} {:>8} {:>5} {:>7} {:>6} {:>5}",
                    s.resources_fit,
                    opt(s.balanced_allocation),
                    s.taint_toleration,
                    opt(s.node_affinity),
                    opt(s.inter_pod_affinity),
                    s.total
                );
            }
            None => out.push_str(" |\n"),
        }
    }
    out.push('\n');
    for (idx, verdict) in placement.verdicts.iter().enumerate() {
        if let Some(failure) = verdict {
            let _ = writeln!(
                out,
                "{}: {}: {}{}",
                nodes[idx].name,
                failure.plugin.name(),
                failure.reasons.join(", "),
                if failure.unresolvable {
                    " (unresolvable: preemption cannot help)"
                } else {
                    ""
                }
            );
        }
    }
    if !placement.scores.is_empty() {
        out.push_str("total = NodeResourcesFit + BalancedAllocation + 3 x TaintToleration + 2 x NodeAffinity + 2 x InterPodAffinity\n");
    }
    if placement.feasible.len() == 1 {
        out.push_str("one feasible node: upstream binds it without scoring; the scores are shown for reference\n");
    }
    match placement.selected {
        Some(selected) if placement.is_tie() => {
            let names: Vec<&str> = placement
                .top_nodes
                .iter()
                .map(|&i| nodes[i].name.as_str())
                .collect();
            let _ = writeln!(
                out,
                "tie between {}: upstream picks one of them at random; twin binds to {} (smallest name)",
                names.join(", "),
                nodes[selected].name
            );
        }
        Some(selected) => {
            let _ = writeln!(out, "selected node: {}", nodes[selected].name);
        }
        None => {}
    }
    let gpu_units = request
        .extended
        .get(twin::cluster::model::GPU_RESOURCE)
        .copied()
        .unwrap_or(0);
    if let (Some(selected), Ok(units @ 1..)) = (placement.selected, u32::try_from(gpu_units))
        && let Some(Ok(devices)) = case.cluster.preview_gpu_devices(selected, units)
        && let Some(gpus) = &nodes[selected].gpus
    {
        let devices: Vec<String> = devices
            .iter()
            .map(|d| format!("{d} ({})", gpus.devices[*d].class))
            .collect();
        let _ = writeln!(
            out,
            "gpu: {units} unit(s) on device(s) {} of {} ({:?})",
            devices.join(", "),
            nodes[selected].name,
            gpus.sharing
        );
    }
    if let Some(unschedulable) = &placement.unschedulable {
        let _ = writeln!(out, "unschedulable: {}", unschedulable.message);
    }
    if let Some(preemption) = &placement.preemption {
        let victims: Vec<String> = preemption
            .victims
            .iter()
            .filter_map(|id| {
                case.cluster
                    .pod(*id)
                    .map(|p| format!("{}/{}", p.spec.namespace, p.spec.name))
            })
            .collect();
        let _ = writeln!(
            out,
            "preemption: nominated to {}, evicting {} ({} PDB violation(s)); the pod binds in a later cycle",
            nodes[preemption.nominated_node].name,
            victims.join(", "),
            preemption.pdb_violations
        );
    }
    match mismatches {
        None => {}
        Some([]) => out.push_str("expected: matches\n"),
        Some(list) => {
            let _ = writeln!(out, "expected: {} mismatch(es)", list.len());
            for m in list {
                let _ = writeln!(
                    out,
                    "  {}: expected {}, got {}",
                    m.field, m.expected, m.actual
                );
            }
        }
    }
    out
}
