//! `twin mesh ...`: one DestinationRule's cluster, as Envoy config, on the model alone, and on the
//! model beside a real Envoy. This front parses arguments, calls the library and prints.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand, ValueEnum};
use twin::live::conformance::Report;
use twin::live::envoy;
use twin::mesh::istio::IstioVersion;
use twin::mesh::lower::{DestinationRuleCluster, load_destination_rule_file};
use twin::mesh::policy::LbPolicy;
use twin::mesh::script::{self, MeshScript, ScriptRun};

#[derive(Subcommand)]
pub enum MeshCommand {
    /// Print the Envoy clusters twin models as equivalent to a DestinationRule (JSON): the
    /// service's default cluster and one per subset, as istiod builds them
    EnvoyConfig(EnvoyConfigArgs),
    /// Run the mesh model alone (balancer, pools, outlier detection, merge window) on a request
    /// script (docs/mesh-script.md): per request the host, status and flags, then every
    /// ejection and unejection with its time
    Simulate(SimulateArgs),
    /// Run a request script through stand-ins behind a real Envoy on loopback and through the
    /// model, and print them side by side; exit 1 on a disagreement
    Conformance(ConformanceArgs),
}

#[derive(Clone, Copy, Default, ValueEnum)]
pub enum Format {
    #[default]
    Text,
    Json,
}

/// Which cluster of the DestinationRule, and as which istiod.
#[derive(Args)]
pub struct ClusterArgs {
    /// A subset's cluster instead of the service's default one.
    #[arg(long, value_name = "NAME")]
    pub subset: Option<String>,
    /// The istiod release whose translation applies (`1.6`, `1.23`; default: current).
    #[arg(long, value_name = "MAJOR.MINOR")]
    pub istio_version: Option<String>,
    /// Divide the outlier interval, baseEjectionTime and maxEjectionTime by X (not the 1 s
    /// merge window, which is Envoy's), so that ejection cycles take seconds.
    #[arg(long, value_name = "X", default_value_t = 1.0)]
    pub time_scale: f64,
}

#[derive(Args)]
pub struct EnvoyConfigArgs {
    /// The file holding the DestinationRule.
    #[arg(value_name = "DR.yaml")]
    pub destination_rule: PathBuf,
    /// Endpoints listed in each cluster's load assignment (127.0.0.1:8001 on).
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub hosts: u16,
    /// The service port the cluster names carry.
    #[arg(long, default_value_t = 80)]
    pub port: u16,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

#[derive(Args)]
pub struct SimulateArgs {
    #[arg(long = "destination-rule", value_name = "FILE")]
    pub destination_rule: PathBuf,
    #[arg(long, value_name = "FILE")]
    pub script: PathBuf,
    /// Seed of the model's draws (default: the script's).
    #[arg(long)]
    pub seed: Option<u64>,
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

#[derive(Args)]
pub struct ConformanceArgs {
    /// The Envoy binary (default: $TWIN_ENVOY, else `envoy` on PATH).
    #[arg(long, value_name = "PATH")]
    pub envoy: Option<PathBuf>,
    #[arg(long = "destination-rule", value_name = "FILE")]
    pub destination_rule: PathBuf,
    /// The request script (default: a built-in one, see docs/mesh-script.md).
    #[arg(long, value_name = "FILE")]
    pub script: Option<PathBuf>,
    /// Hosts of the built-in script.
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub hosts: u32,
    /// Seeds the model runs under; its envelope over them is what Envoy is compared with.
    #[arg(long, value_name = "N", default_value_t = 30)]
    pub seeds: u64,
    /// Folder for Envoy's bootstrap and logs (default: a fresh one under the temp dir).
    #[arg(long, value_name = "DIR")]
    pub workdir: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

pub fn run(command: MeshCommand) -> anyhow::Result<ExitCode> {
    match command {
        MeshCommand::EnvoyConfig(args) => envoy_config(args),
        MeshCommand::Simulate(args) => simulate(args),
        MeshCommand::Conformance(args) => conformance(args),
    }
}

fn istio_version(text: Option<&str>) -> anyhow::Result<IstioVersion> {
    let Some(text) = text else {
        return Ok(IstioVersion::CURRENT);
    };
    let parsed = text
        .split_once('.')
        .and_then(|(major, minor)| Some((major.parse().ok()?, minor.parse().ok()?)));
    match parsed {
        Some((major, minor)) => Ok(IstioVersion::new(major, minor)),
        None => bail!("--istio-version {text:?} is not MAJOR.MINOR (for example 1.23)"),
    }
}

fn clusters(path: &Path, args: &ClusterArgs) -> anyhow::Result<Vec<DestinationRuleCluster>> {
    if !(args.time_scale.is_finite() && args.time_scale >= 1.0 && args.time_scale <= 10_000.0) {
        bail!(
            "--time-scale {} must be between 1 and 10000",
            args.time_scale
        );
    }
    let version = istio_version(args.istio_version.as_deref())?;
    let clusters = load_destination_rule_file(path, version)
        .with_context(|| format!("loading {}", path.display()))?;
    let clusters: Vec<DestinationRuleCluster> = clusters
        .into_iter()
        .map(|mut c| {
            c.policy = c.policy.with_outlier_times_divided(args.time_scale);
            c
        })
        .collect();
    match &args.subset {
        None => Ok(clusters),
        Some(name) => {
            let known: Vec<String> = clusters.iter().filter_map(|c| c.subset.clone()).collect();
            let chosen: Vec<DestinationRuleCluster> = clusters
                .into_iter()
                .filter(|c| c.subset.as_ref() == Some(name))
                .collect();
            if chosen.is_empty() {
                bail!(
                    "{}: no subset {name:?} (subsets: {})",
                    path.display(),
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                );
            }
            Ok(chosen)
        }
    }
}

/// The one cluster a run uses: the subset asked for, else the default cluster.
fn one_cluster(path: &Path, args: &ClusterArgs) -> anyhow::Result<DestinationRuleCluster> {
    Ok(clusters(path, args)?
        .into_iter()
        .next()
        .expect("a DestinationRule has its default cluster"))
}

fn envoy_config(args: EnvoyConfigArgs) -> anyhow::Result<ExitCode> {
    if args.hosts == 0 || args.hosts > 1000 {
        bail!("--hosts {} must be 1 to 1000", args.hosts);
    }
    let hosts: Vec<std::net::SocketAddr> = (0..args.hosts)
        .map(|i| std::net::SocketAddr::from(([127, 0, 0, 1], 8001 + i)))
        .collect();
    let clusters: Vec<serde_json::Value> = clusters(&args.destination_rule, &args.cluster)?
        .iter()
        .map(|c| {
            let name = format!(
                "outbound|{}|{}|{}",
                args.port,
                c.subset.as_deref().unwrap_or(""),
                c.host
            );
            envoy::cluster(&name, &envoy::cluster_config(&c.policy), &hosts)
        })
        .collect();
    let json = serde_json::json!({"clusters": clusters});
    outln!("{}", serde_json::to_string_pretty(&json)?);
    Ok(ExitCode::SUCCESS)
}

fn load_script(path: &Path) -> anyhow::Result<MeshScript> {
    script::load(path).with_context(|| format!("loading {}", path.display()))
}

fn policy_line(cluster: &DestinationRuleCluster) -> String {
    let policy = &cluster.policy;
    let lb = match policy.lb {
        LbPolicy::RoundRobin => "ROUND_ROBIN".to_string(),
        LbPolicy::Random => "RANDOM".to_string(),
        LbPolicy::LeastRequest { choice_count, .. } => {
            format!("LEAST_REQUEST (choice_count {choice_count})")
        }
    };
    let mut out = format!(
        "cluster {}{}: {lb}",
        cluster.host,
        cluster
            .subset
            .as_ref()
            .map(|s| format!(" subset {s}"))
            .unwrap_or_default()
    );
    let b = policy.circuit_breakers;
    let limit = |v: u64| {
        if v >= u64::from(u32::MAX) {
            "unlimited".to_string()
        } else {
            v.to_string()
        }
    };
    let _ = write!(
        out,
        "; max_connections {}, max_pending_requests {}, max_requests {}",
        limit(b.max_connections),
        limit(b.max_pending_requests),
        limit(b.max_requests)
    );
    match &policy.outlier {
        Some(o) => {
            let _ = write!(
                out,
                "; outlier: consecutive_5xx {} ({} % enforced), interval {}, base {}, max ejection {} %, panic below {} %",
                o.consecutive_5xx,
                o.enforcing_consecutive_5xx,
                o.interval,
                o.base_ejection_time,
                o.max_ejection_percent,
                policy.healthy_panic_threshold_percent
            );
        }
        None => out.push_str("; no outlier detection"),
    }
    out
}

fn render_run(run: &ScriptRun, names: &[String]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:>7}  {:>9}  {:<12} {:>6}  flags",
        "request", "sent [s]", "host", "status"
    );
    for r in &run.requests {
        let host = r
            .host
            .and_then(|h| names.get(h as usize).cloned())
            .unwrap_or_else(|| "-".into());
        let _ = writeln!(
            out,
            "{:>7}  {:>9.3}  {:<12} {:>6}  {}",
            r.index,
            r.sent_at.as_secs_f64(),
            host,
            r.status,
            r.flags
        );
    }
    if run.events.is_empty() {
        out.push_str("no ejections\n");
    } else {
        out.push_str("ejections:\n");
        for e in &run.events {
            let host = names
                .get(e.host as usize)
                .cloned()
                .unwrap_or_else(|| format!("host-{}", e.host));
            let what = if e.ejected {
                format!("ejected ({})", e.detection)
            } else {
                "unejected".to_string()
            };
            let _ = writeln!(
                out,
                "  {:>8.3}s  {host} {what}, after request {}",
                e.time.as_secs_f64(),
                run.request_index_at(e.time)
            );
        }
    }
    out
}

fn simulate(args: SimulateArgs) -> anyhow::Result<ExitCode> {
    let cluster = one_cluster(&args.destination_rule, &args.cluster)?;
    let script = load_script(&args.script)?;
    let seed = args.seed.unwrap_or(script.seed);
    let run = script::simulate(&cluster.policy, &script, seed)
        .with_context(|| format!("simulating {}", args.script.display()))?;
    let names: Vec<String> = script.hosts.iter().map(|h| h.name.clone()).collect();
    match args.format {
        Format::Json => {
            let mut json = run.to_json();
            json["seed"] = seed.into();
            json["hosts"] = names.into();
            outln!("{}", serde_json::to_string_pretty(&json)?);
        }
        Format::Text => {
            outln!("{}", policy_line(&cluster));
            outln!("seed {seed}");
            out!("{}", render_run(&run, &names));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn render_report(report: &Report) -> String {
    let width = report
        .checks
        .iter()
        .map(|c| c.what.len())
        .max()
        .unwrap_or(10)
        .max(10);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<width$}  {:<24}  {:<24}  {:<10}  verdict",
        "check", "model (all seeds)", "envoy", "tolerance"
    );
    for check in &report.checks {
        let _ = writeln!(
            out,
            "{:<width$}  {:<24}  {:<24}  {:<10}  {}",
            check.what,
            check.model,
            check.envoy,
            check.tolerance,
            if check.agrees { "agrees" } else { "DISAGREES" }
        );
    }
    out
}

fn conformance(args: ConformanceArgs) -> anyhow::Result<ExitCode> {
    let cluster = one_cluster(&args.destination_rule, &args.cluster)?;
    let script = match &args.script {
        Some(path) => load_script(path)?,
        None => {
            if args.hosts == 0 || args.hosts > script::MAX_HOSTS as u32 {
                bail!("--hosts {} must be 1 to {}", args.hosts, script::MAX_HOSTS);
            }
            script::built_in(&cluster.policy, args.hosts)
        }
    };
    if args.seeds == 0 || args.seeds > 1000 {
        bail!("--seeds {} must be 1 to 1000", args.seeds);
    }
    let binary = match &args.envoy {
        Some(path) if path.is_file() => path.clone(),
        Some(path) => bail!("--envoy {}: no such file", path.display()),
        None => twin::live::find_peer("TWIN_ENVOY", "envoy")
            .map_err(|why| anyhow::anyhow!("no Envoy to compare with: {why}"))?,
    };
    let workdir = args.workdir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("twin-conformance-{}", std::process::id()))
    });
    let report = twin::live::conformance::conformance(
        binary,
        &cluster.policy,
        &script,
        args.seeds,
        workdir.clone(),
    )
    .context("running the conformance check")?;
    if args.workdir.is_none() {
        let _ = std::fs::remove_dir_all(&workdir);
    }
    match args.format {
        Format::Json => {
            let json = serde_json::json!({
                "seeds": report.seeds,
                "agrees": report.agrees(),
                "checks": report.checks,
                "model": report.model_run.to_json(),
                "envoy": report.envoy_run.to_json(),
            });
            outln!("{}", serde_json::to_string_pretty(&json)?);
        }
        Format::Text => {
            outln!("{}", policy_line(&cluster));
            outln!(
                "{} requests over {} hosts; the model under seeds {}..{}",
                script.count,
                script.hosts.len(),
                report.seeds[0],
                report.seeds[report.seeds.len() - 1]
            );
            out!("{}", render_report(&report));
            outln!(
                "{}",
                if report.agrees() {
                    "envoy and the model agree"
                } else {
                    "envoy and the model DISAGREE"
                }
            );
        }
    }
    Ok(if report.agrees() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
