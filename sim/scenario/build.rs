//! Reading a scenario and everything it names, building the World, running it, and checking
//! its expectations.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::schema::{
    API_VERSION, AnalysisSpec, ExpectationSpec, Fault, ProcessSpec, Profile, ProfilePatch,
    ProfilesFile, Release, RolloutResult, RolloutSpec, ScenarioFile, ServiceTimeSpec, SpacingSpec,
};
use super::world::{
    Analysis, Event, FaultAction, HpaRuntime, LoadStream, MeshCluster, ReleaseModel,
    RolloutRuntime, RouteControl, ServiceModel, Strategy, Target, World,
};
use crate::autoscale::controller::{self as hpa_controller, HpaController};
use crate::autoscale::hpa::KubernetesVersion as HpaVersion;
use crate::cluster::gpu::GpuSharing;
use crate::cluster::lower;
use crate::cluster::runtime::{AppBehaviour, ClusterRuntime};
use crate::cluster::schedule::{KubernetesVersion, SchedulerConfig};
use crate::diag::{Diagnostic, Diagnostics, Location};
use crate::engine::{Engine, RngTree, SimDuration, SimTime, parse_duration};
use crate::manifests::{self, Inventory, Sourced};
use crate::mesh::istio::{IstioVersion, cluster_policy};
use crate::mesh::route::{HttpRequest, VirtualService};
use crate::mesh::upstream::Upstream;
use crate::promql::rules::{EvalContext, Group, StoreStorage, parse_rule_file};
use crate::promql::{Engine as PromqlEngine, EngineOptions, Value as PromValue};
use crate::workload::calibration::{self, CalibrationSet, GpuWork};
use crate::workload::trace::{self, Trace, TraceRequest};
use crate::workload::{ArrivalProcess, Arrivals, HistogramBucket, ServiceTime, Spacing};

/// Why a scenario could not be run: every problem found, with where it is.
#[derive(Debug, thiserror::Error)]
#[error("the scenario cannot be run")]
pub struct ScenarioError(#[source] pub Diagnostics);

impl From<manifests::ManifestError> for ScenarioError {
    fn from(err: manifests::ManifestError) -> Self {
        ScenarioError(Diagnostics(err.diagnostics().to_vec()))
    }
}

fn one(diag: Diagnostic) -> ScenarioError {
    ScenarioError(Diagnostics(vec![diag]))
}

/// A scenario with everything it names read and checked.
pub struct Loaded {
    pub path: PathBuf,
    pub file: Sourced<ScenarioFile>,
    pub inventory: Inventory,
    pub topology: manifests::topology::Topology,
    pub profiles: Sourced<ProfilesFile>,
}

impl Loaded {
    fn at(&self, field: &str) -> Location {
        self.file.field_location(field)
    }
    fn error(&self, field: &str, message: impl Into<String>) -> ScenarioError {
        one(Diagnostic::error(self.at(field), field, message))
    }
}

/// Reads a scenario file and every file it names; nothing is simulated yet.
pub fn load(path: impl AsRef<Path>) -> Result<Loaded, ScenarioError> {
    let path = path.as_ref().to_path_buf();
    let file: Sourced<ScenarioFile> = manifests::load_typed(&path)?;
    let here = |field: &str| file.field_location(field);
    if file.api_version != API_VERSION {
        return Err(one(Diagnostic::error(
            here("apiVersion"),
            "apiVersion",
            format!("expected {API_VERSION:?}, found {:?}", file.api_version),
        )));
    }
    if file.kind != "Scenario" {
        return Err(one(Diagnostic::error(
            here("kind"),
            "kind",
            format!("expected \"Scenario\", found {:?}", file.kind),
        )));
    }
    if file.duration.0 == SimDuration::ZERO {
        return Err(one(Diagnostic::error(
            here("duration"),
            "duration",
            "a scenario lasts longer than zero",
        )));
    }
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut inventory: Option<Inventory> = None;
    for (idx, entry) in file.manifests.iter().enumerate() {
        let target = dir.join(entry);
        let loaded = if target.is_dir() {
            manifests::load_dir(&target)
        } else if target.is_file() {
            manifests::load_file(&target)
        } else {
            return Err(one(Diagnostic::error(
                here(&format!("manifests[{idx}]")),
                format!("manifests[{idx}]"),
                format!("{} does not exist", target.display()),
            )));
        }?;
        match &mut inventory {
            Some(inv) => inv.merge(loaded),
            None => inventory = Some(loaded),
        }
    }
    let Some(mut inventory) = inventory else {
        return Err(one(Diagnostic::error(
            here("manifests"),
            "manifests",
            "name at least one folder or file of manifests",
        )));
    };
    for (idx, patch) in file.patches.iter().enumerate() {
        inventory
            .patch(
                &patch.kind,
                &patch.name,
                patch.namespace.as_deref(),
                &patch.patch,
            )
            .map_err(|why| {
                one(Diagnostic::error(
                    here(&format!("patches[{idx}]")),
                    format!("patches[{idx}]"),
                    why,
                ))
            })?;
    }
    let topology = manifests::topology::load_topology(dir.join(&file.topology))?;
    let profiles: Sourced<ProfilesFile> = manifests::load_typed(dir.join(&file.profiles))?;
    if profiles.api_version != API_VERSION || profiles.kind != "ServiceProfiles" {
        return Err(one(Diagnostic::error(
            profiles.field_location("kind"),
            "kind",
            "expected apiVersion twin.sophia.dev/v1, kind ServiceProfiles",
        )));
    }
    Ok(Loaded {
        path,
        file,
        inventory,
        topology,
        profiles,
    })
}

fn service_time(spec: &ServiceTimeSpec) -> Result<ServiceTime, String> {
    Ok(match spec {
        ServiceTimeSpec::Constant(d) => ServiceTime::Constant(d.0),
        ServiceTimeSpec::Exponential { mean } => ServiceTime::Exponential { mean: mean.0 },
        ServiceTimeSpec::Lognormal { p50, p99 } => ServiceTime::LogNormal {
            p50: p50.0,
            p99: p99.0,
        },
        ServiceTimeSpec::Empirical { buckets } => {
            let mut finite = Vec::with_capacity(buckets.len());
            for (index, bucket) in buckets.iter().enumerate() {
                match bucket.le.0 {
                    Some(le) => finite.push(HistogramBucket {
                        le,
                        count: bucket.count,
                    }),
                    // Prometheus's last bucket: it adds nothing when every observation lies
                    // below the last finite bound, and cannot be sampled when some do not.
                    None if index + 1 == buckets.len() => {
                        let below = finite.last().map_or(0, |b: &HistogramBucket| b.count);
                        if bucket.count != below {
                            return Err(format!(
                                "empirical.buckets[{index}]: {} observation(s) lie above the last finite bound, which has no upper end to sample from; add a finite bucket that holds them",
                                bucket.count.saturating_sub(below)
                            ));
                        }
                    }
                    None => {
                        return Err(format!(
                            "empirical.buckets[{index}]: only the last bucket may be +Inf"
                        ));
                    }
                }
            }
            ServiceTime::Empirical { buckets: finite }
        }
    })
}

/// What lowering a GPU profile's `work` needs: the calibration, the cluster's sharing mode and
/// the topology's GPU classes (a pod may land on any of them).
struct GpuContext {
    calibration: CalibrationSet,
    sharing: GpuSharing,
    classes: Vec<String>,
}

/// Reads the calibration when some profile, override or release asks for calibrated GPU work.
fn gpu_context(loaded: &Loaded, sharing: GpuSharing) -> Result<Option<GpuContext>, ScenarioError> {
    let file = &loaded.file;
    let wanted = loaded
        .profiles
        .profiles
        .values()
        .any(|p| p.gpu.as_ref().is_some_and(|g| g.work.is_some()))
        || file
            .profile_overrides
            .values()
            .any(|p| p.gpu_work.is_some())
        || file
            .faults
            .iter()
            .any(|f| matches!(f, Fault::BadRelease { profile, .. } if profile.gpu_work.is_some()));
    if !wanted {
        return Ok(None);
    }
    let calibration = match &file.calibration {
        None => calibration::builtin(),
        Some(entry) => {
            let dir = loaded
                .path
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_default();
            let target = dir.join(entry);
            if !target.exists() {
                return Err(loaded.error(
                    "calibration",
                    format!("{} does not exist", target.display()),
                ));
            }
            calibration::load(&target).map_err(ScenarioError)?
        }
    };
    let classes: BTreeSet<String> = loaded
        .topology
        .nodes
        .iter()
        .filter_map(|n| n.gpus.as_ref().map(|g| g.class.clone()))
        .collect();
    Ok(Some(GpuContext {
        calibration,
        sharing,
        classes: classes.into_iter().collect(),
    }))
}

/// The service model of the profile named `name`, changed by `patch`. `field` locates the patch
/// in the scenario file.
fn model(
    loaded: &Loaded,
    field: &str,
    name: &str,
    profile: &Profile,
    patch: Option<&ProfilePatch>,
    gpu_context: Option<&GpuContext>,
) -> Result<(ServiceModel, AppBehaviour), ScenarioError> {
    let at_profile = |what: &str, message: String| {
        let path = format!("profiles.{name}{what}");
        one(Diagnostic::error(
            loaded.profiles.field_location(&path),
            path,
            message,
        ))
    };
    let work = profile.gpu.as_ref().and_then(|g| g.work);
    match (&profile.service_time, work) {
        (None, None) => {
            return Err(at_profile(
                "",
                "give serviceTime, or gpu.work to take it from the GPU calibration".into(),
            ));
        }
        (Some(_), Some(_)) => {
            return Err(at_profile(
                ".gpu.work",
                "give serviceTime or gpu.work, not both: the calibrated GPU work is the whole service time".into(),
            ));
        }
        _ => {}
    }
    if let Some(p) = patch
        && p.service_time.is_some()
        && p.gpu_work.is_some()
    {
        return Err(loaded.error(
            field,
            "give serviceTime or gpuWork, not both: the calibrated GPU work is the whole service time",
        ));
    }
    if patch.is_some_and(|p| p.gpu_work.is_some()) && profile.gpu.is_none() {
        return Err(loaded.error(
            field,
            format!("gpuWork needs a GPU pod, and profile {name} has no gpu block"),
        ));
    }
    // A patch's choice of service time, calibrated or not, replaces the profile's.
    let (spec, work) = match patch {
        Some(ProfilePatch {
            service_time: Some(spec),
            ..
        }) => (Some(spec.clone()), None),
        Some(ProfilePatch {
            gpu_work: Some(work),
            ..
        }) => (None, Some(*work)),
        _ => (profile.service_time.clone(), work),
    };
    let gpu_work = match work {
        None => None,
        Some(work) => {
            let context = gpu_context.expect("the calibration is read when some profile has work");
            let resolved = GpuWork::new(
                &context.calibration,
                work.batch_size,
                context.sharing,
                &context.classes,
            )
            .map_err(|why| match patch.and_then(|p| p.gpu_work) {
                Some(_) => loaded.error(field, why),
                None => at_profile(".gpu.work", why),
            })?;
            Some(Box::new(resolved))
        }
    };
    // A calibrated model keeps its first class's time as its plain sampler: pods are seated on
    // their device before they serve, so it is never drawn from (the World asserts it).
    let sampler = match (&spec, &gpu_work) {
        (Some(spec), _) => service_time(spec)
            .and_then(|t| t.sampler().map_err(|err| err.to_string()))
            .map_err(|why| match patch.and_then(|p| p.service_time.as_ref()) {
                Some(_) => loaded.error(field, why),
                None => at_profile(".serviceTime", why),
            })?,
        (None, Some(work)) => match work.classes.first() {
            Some(class) => class.service_time.clone(),
            None => {
                return Err(at_profile(
                    ".gpu.work",
                    "the topology has no GPU pool, so there is no GPU to do the work on".into(),
                ));
            }
        },
        (None, None) => unreachable!("checked above: one of them is given"),
    };
    let error_rate = patch
        .and_then(|p| p.error_rate)
        .unwrap_or(profile.error_rate);
    if !(0.0..=1.0).contains(&error_rate) {
        return Err(loaded.error(field, format!("errorRate {error_rate} is not in [0, 1]")));
    }
    if profile.concurrency == 0 {
        return Err(loaded.error(field, "concurrency must be at least 1"));
    }
    let gpu = profile.gpu.as_ref();
    let model = ServiceModel {
        service_time: sampler,
        concurrency: profile.concurrency,
        cpu_per_request_secs: profile.cpu_per_request.0,
        cpu_baseline_cores: profile.cpu_baseline.0,
        memory_baseline_bytes: profile.memory_baseline.0,
        memory_per_in_flight_bytes: profile.memory_per_in_flight.0,
        error_rate,
        error_status: patch
            .and_then(|p| p.error_status)
            .unwrap_or(profile.error_status),
        llm_cost_per_request: patch
            .and_then(|p| p.llm_cost_per_request)
            .unwrap_or(profile.llm_cost_per_request),
        agent_tasks_per_request: profile
            .agent_tasks_per_request
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect(),
        gpu_memory_baseline_bytes: gpu.map_or(0.0, |g| g.memory_baseline.0),
        gpu_memory_per_in_flight_bytes: gpu.map_or(0.0, |g| g.memory_per_in_flight.0),
        gpu_work,
        extra_latency: SimDuration::ZERO,
        leak_bytes_per_sec: 0.0,
    };
    let behaviour = AppBehaviour {
        startup: patch
            .and_then(|p| p.startup)
            .map_or(profile.startup.0, |d| d.0),
        crash_after: None,
        healthy: !patch.and_then(|p| p.unhealthy).unwrap_or(false),
    };
    Ok((model, behaviour))
}

/// The arrival process of a load stream, and a request trace's rows when it has per-request
/// columns. A trace file is read relative to the scenario file.
fn process(
    loaded: &Loaded,
    field: &str,
    spec: &ProcessSpec,
) -> Result<(ArrivalProcess, Vec<TraceRequest>), ScenarioError> {
    let process = match spec {
        ProcessSpec::Trace { file, spacing } => {
            let dir = loaded
                .path
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_default();
            let target = dir.join(file);
            if !target.is_file() {
                return Err(loaded.error(
                    &format!("{field}.file"),
                    format!("{} does not exist", target.display()),
                ));
            }
            let parsed = trace::load(&target).map_err(one)?;
            return Ok(match parsed {
                Trace::Rates(steps) => (
                    ArrivalProcess::RateTrace {
                        steps: steps.into(),
                        spacing: match spacing {
                            None | Some(SpacingSpec::Poisson) => Spacing::Poisson,
                            Some(SpacingSpec::Even) => Spacing::Even,
                        },
                    },
                    Vec::new(),
                ),
                Trace::Requests(_) if spacing.is_some() => {
                    return Err(loaded.error(
                        &format!("{field}.spacing"),
                        format!(
                            "{} is a request trace, replayed at its own times; spacing applies to a time,rps trace",
                            target.display()
                        ),
                    ));
                }
                Trace::Requests(rows) => {
                    let offsets = rows.iter().map(|r| r.at).collect();
                    let rows = if rows.iter().any(TraceRequest::sets_fields) {
                        rows
                    } else {
                        Vec::new()
                    };
                    (ArrivalProcess::Replay { offsets }, rows)
                }
            });
        }
        ProcessSpec::Constant { rate } => ArrivalProcess::Constant {
            rate_per_sec: *rate,
        },
        ProcessSpec::Poisson { rate } => ArrivalProcess::Poisson {
            rate_per_sec: *rate,
        },
        ProcessSpec::Step { before, after, at } => ArrivalProcess::Step {
            before_per_sec: *before,
            after_per_sec: *after,
            at: at.0,
        },
        ProcessSpec::Ramp {
            from,
            to,
            start,
            over,
        } => ArrivalProcess::Ramp {
            from_per_sec: *from,
            to_per_sec: *to,
            start: start.0,
            duration: over.0,
        },
        ProcessSpec::Spike {
            base,
            peak,
            start,
            lasting,
        } => ArrivalProcess::Spike {
            base_per_sec: *base,
            peak_per_sec: *peak,
            start: start.0,
            duration: lasting.0,
        },
        ProcessSpec::Diurnal {
            peak,
            trough,
            period,
            phase,
        } => ArrivalProcess::Diurnal {
            peak_per_sec: *peak,
            trough_per_sec: *trough,
            period: period.0,
            phase: phase.0,
        },
    };
    Ok((process, Vec::new()))
}

/// Everything a run produced, ready for the report.
pub struct RunResult {
    pub name: String,
    /// The scenario file as it was named to the loader (the rerun command prints it).
    pub source: PathBuf,
    pub description: String,
    pub seed: u64,
    pub duration: SimDuration,
    pub world: World,
    pub expectations: Vec<(String, bool, String)>,
    pub slo_budget: Vec<(String, f64)>,
    /// Each SLO's error ratio each minute, from which `slo_budget` is computed.
    pub slo_ratios: Vec<SloRatios>,
    /// The plan's Grafana dashboards, for the HTML report to draw with their own queries.
    pub dashboards: Vec<crate::manifests::grafana::Dashboard>,
    pub events: u64,
}

impl RunResult {
    pub fn passed(&self) -> bool {
        self.expectations.iter().all(|(_, ok, _)| *ok)
    }
}

/// Builds the World for `loaded` and runs it with `seed` (the file's own when `None`).
pub fn run(loaded: &Loaded, seed: Option<u64>) -> Result<RunResult, ScenarioError> {
    let file = &loaded.file;
    let seed = seed.unwrap_or(file.seed);
    let rng = RngTree::new(seed);
    let inventory = &loaded.inventory;
    let lower_err = |e: lower::LowerError| one(e.diagnostic);
    // The cluster.
    let version_text = loaded.topology.kubernetes_version.clone();
    let sched_version =
        KubernetesVersion::parse(&version_text).unwrap_or(KubernetesVersion::DEFAULT);
    let sharing = lower::gpu_sharing(inventory.gpu_sharing().first().map(|s| &s.object));
    let config = SchedulerConfig {
        kubernetes_version: sched_version,
        ..SchedulerConfig::default()
    };
    let mut cluster = ClusterRuntime::new(
        lower::nodes(&loaded.topology, sharing),
        lower::quotas(inventory).map_err(lower_err)?,
        config,
    )
    .map_err(|e| loaded.error("topology", e.to_string()))?;
    cluster.budgets = lower::budgets(inventory).map_err(lower_err)?;
    let gpu_context = gpu_context(loaded, sharing)?;
    let mut models: Vec<Vec<ServiceModel>> = Vec::new();
    let mut timers = Vec::new();
    let mut scraped = BTreeSet::new();
    for d in inventory.deployments() {
        let dmodel = lower::deployment(inventory, d).map_err(lower_err)?;
        let name = dmodel.name.clone();
        // A Deployment without a profile of its own (a canary copy) takes its app's profile.
        let app = dmodel
            .template
            .labels
            .get("app")
            .cloned()
            .unwrap_or_default();
        let profile = loaded
            .profiles
            .profiles
            .get(&name)
            .or_else(|| loaded.profiles.profiles.get(&app))
            .ok_or_else(|| {
                one(Diagnostic::error(
                    loaded.profiles.field_location("profiles"),
                    "profiles",
                    format!("no profile for Deployment {name} (nor for its app label {app:?})"),
                ))
            })?;
        let profile_name = if loaded.profiles.profiles.contains_key(&name) {
            name.clone()
        } else {
            app.clone()
        };
        let (model, behaviour) = model(
            loaded,
            &format!("profileOverrides.{name}"),
            &profile_name,
            profile,
            file.profile_overrides.get(&name),
            gpu_context.as_ref(),
        )?;
        if model.gpu_work.is_some()
            && dmodel
                .template
                .requests()
                .extended
                .get(crate::cluster::model::GPU_RESOURCE)
                .is_none_or(|units| *units <= 0)
        {
            return Err(one(Diagnostic::error(
                dmodel.location.clone(),
                "spec.template.spec.containers",
                format!(
                    "profile {profile_name} takes its service time from the GPU calibration, but Deployment {name} requests no nvidia.com/gpu"
                ),
            )));
        }
        let annotations = d
            .spec
            .as_ref()
            .and_then(|s| s.template.metadata.as_ref())
            .and_then(|m| m.annotations.clone())
            .unwrap_or_default();
        let idx = cluster.add_deployment(SimTime::ZERO, dmodel, behaviour, &mut timers);
        if annotations.get("prometheus.io/scrape").map(String::as_str) == Some("true") {
            scraped.insert(idx);
        }
        models.push(vec![model]);
    }
    for name in file.profile_overrides.keys() {
        if !cluster.deployments.iter().any(|d| &d.model.name == name) {
            return Err(loaded.error(
                &format!("profileOverrides.{name}"),
                format!("no Deployment named {name}"),
            ));
        }
    }
    let deployment_index = |name: &str, field: &str| -> Result<usize, ScenarioError> {
        cluster
            .deployments
            .iter()
            .position(|d| d.model.name == name)
            .ok_or_else(|| loaded.error(field, format!("no Deployment named {name}")))
    };
    // The mesh: a cluster per Service (and per subset of its DestinationRule).
    let istio = IstioVersion::CURRENT;
    let mut clusters = Vec::new();
    let mut cluster_keys: BTreeMap<(String, Option<String>), u16> = BTreeMap::new();
    for svc in inventory.services() {
        let name = svc.metadata.name.clone().unwrap_or_default();
        let selector = svc
            .spec
            .as_ref()
            .and_then(|s| s.selector.clone())
            .unwrap_or_default();
        let dr = inventory
            .destination_rules()
            .iter()
            .find(|dr| crate::mesh::lower::short_host(&dr.spec.host) == name);
        let subsets = match dr {
            Some(dr) => crate::mesh::lower::destination_rule(dr).map_err(|e| one(e.diagnostic))?,
            None => vec![crate::mesh::lower::SubsetPolicy {
                subset: None,
                labels: BTreeMap::new(),
                policy: Default::default(),
            }],
        };
        for sp in subsets {
            let policy = cluster_policy(&sp.policy, istio).map_err(|e| match dr {
                Some(dr) => one(Diagnostic::error(
                    dr.field_location("spec.trafficPolicy"),
                    "spec.trafficPolicy",
                    e.to_string(),
                )),
                None => loaded.error("manifests", e.to_string()),
            })?;
            let label = format!("mesh/{name}/{}", sp.subset.as_deref().unwrap_or("default"));
            // A VirtualService without `retries` gets Istio's default retry policy.
            let upstream = Upstream::new(&policy, 0, &rng.child(&label))
                .map_err(|e| loaded.error("manifests", e.to_string()))?
                .with_outlier_log()
                .with_retry_policy(crate::mesh::istio::default_retry_policy(istio));
            let mut sel = selector.clone();
            sel.extend(sp.labels.clone());
            cluster_keys.insert((name.clone(), sp.subset.clone()), clusters.len() as u16);
            clusters.push(MeshCluster::new(
                name.clone(),
                sp.subset.clone(),
                sel,
                upstream,
            ));
        }
    }
    // Load.
    let mut loads = Vec::new();
    for (idx, spec) in file.load.iter().enumerate() {
        let field = format!("load[{idx}]");
        let target = if let Some(vs) = inventory
            .virtual_services()
            .iter()
            .find(|vs| vs.spec.hosts.iter().any(|h| h == &spec.target))
        {
            let routes = crate::mesh::lower::virtual_service(vs).map_err(|e| one(e.diagnostic))?;
            let compiled = VirtualService::new(&routes).map_err(|e| {
                one(Diagnostic::error(
                    vs.field_location("spec.http"),
                    "spec.http",
                    e.to_string(),
                ))
            })?;
            let clusters: Vec<(String, Option<String>, u16)> = cluster_keys
                .iter()
                .map(|((svc, subset), idx)| (svc.clone(), subset.clone(), *idx))
                .collect();
            Target::Routed {
                table: crate::scenario::world::route_table(&compiled, &clusters),
                vs: compiled,
                clusters,
                vs_name: vs.metadata.name.clone().unwrap_or_default(),
                specs: routes,
            }
        } else if let Some(&c) = cluster_keys.get(&(spec.target.clone(), None)) {
            Target::Direct { cluster: c }
        } else {
            let d = deployment_index(&spec.target, &format!("{field}.target")).map_err(|_| {
                loaded.error(
                    &format!("{field}.target"),
                    format!(
                        "{:?} is neither a VirtualService host, a Service, nor a Deployment",
                        spec.target
                    ),
                )
            })?;
            let selector = cluster.deployments[d].model.selector.match_labels.clone();
            let policy = crate::mesh::policy::ClusterPolicy::default();
            let upstream = Upstream::new(
                &policy,
                0,
                &rng.child(&format!("mesh/direct/{}", spec.target)),
            )
            .map_err(|e| loaded.error(&field, e.to_string()))?;
            clusters.push(MeshCluster::new(
                spec.target.clone(),
                None,
                selector,
                upstream,
            ));
            cluster_keys.insert((spec.target.clone(), None), (clusters.len() - 1) as u16);
            Target::Direct {
                cluster: (clusters.len() - 1) as u16,
            }
        };
        if spec.headers.len() > 8 {
            return Err(loaded.error(
                &format!("{field}.headers"),
                "at most 8 optional headers per load stream",
            ));
        }
        for (name, share) in &spec.headers {
            if !(0.0..=1.0).contains(&share.share) {
                return Err(loaded.error(
                    &format!("{field}.headers.{name}.share"),
                    format!("share {} is not in [0, 1]", share.share),
                ));
            }
        }
        let start = spec.from.map_or(SimTime::ZERO, |d| SimTime::ZERO + d.0);
        let until = spec
            .until
            .map_or(SimTime::ZERO + file.duration.0, |d| SimTime::ZERO + d.0);
        let (arrival_process, rows) = process(loaded, &format!("{field}.process"), &spec.process)?;
        let arrivals = Arrivals::new(
            arrival_process,
            rng.stream(&format!("load/{idx}/arrivals")),
            start,
        )
        .map_err(|e| loaded.error(&format!("{field}.process"), e.to_string()))?
        .ending_at(until.max(start));
        let mut request = HttpRequest::new(&spec.method, &spec.path);
        if let Some(p) = &spec.principal {
            request = request.with_principal(p);
        }
        // A request trace's rows: each distinct row is one base request, and the optional
        // header shares multiply the bases (variant = base << shares | mask).
        let mut bases: Vec<HttpRequest> = Vec::new();
        let mut trace_variants: Vec<u32> = Vec::with_capacity(rows.len());
        let mut base_index: BTreeMap<(Option<&str>, Option<&str>, &[(String, String)]), u32> =
            BTreeMap::new();
        for row in &rows {
            if let Some((name, _)) = row
                .headers
                .iter()
                .find(|(name, _)| spec.headers.keys().any(|h| h.eq_ignore_ascii_case(name)))
            {
                return Err(loaded.error(
                    &format!("{field}.headers.{name}"),
                    format!("header {name} is set by both the trace and a share; keep one"),
                ));
            }
            let key = (
                row.method.as_deref(),
                row.path.as_deref(),
                row.headers.as_slice(),
            );
            let next = bases.len() as u32;
            let base = *base_index.entry(key).or_insert_with(|| {
                let mut r = request.clone();
                if let Some(method) = &row.method {
                    r.method = method.clone();
                }
                if let Some(path) = &row.path {
                    r.path = path.clone();
                }
                for (name, value) in &row.headers {
                    r = r.with_header(name, value);
                }
                bases.push(r);
                next
            });
            trace_variants.push(base);
        }
        if bases.is_empty() {
            bases.push(request);
        }
        let n_variants = bases.len() << spec.headers.len();
        if n_variants > 1 << 16 {
            return Err(loaded.error(
                &format!("{field}.process.file"),
                format!(
                    "{} distinct requests in the trace times {} header combinations is above 65536; drop some header shares",
                    bases.len(),
                    1usize << spec.headers.len()
                ),
            ));
        }
        let variants = bases
            .iter()
            .flat_map(|base| {
                (0..1usize << spec.headers.len()).map(move |mask| {
                    let mut r = base.clone();
                    for (bit, (name, h)) in spec.headers.iter().enumerate() {
                        if mask & (1 << bit) != 0 {
                            r = r.with_header(name, &h.value);
                        }
                    }
                    r
                })
            })
            .collect();
        loads.push(LoadStream {
            name: spec.target.clone(),
            arrivals,
            until,
            target,
            variants,
            header_shares: spec.headers.values().map(|h| h.share).collect(),
            trace_variants,
            trace_next: 0,
            rng: rng.stream(&format!("load/{idx}/requests")),
        });
    }
    // HPAs.
    let hpa_version = {
        let mut parts = version_text
            .split('.')
            .filter_map(|p| p.parse::<u32>().ok());
        match (parts.next(), parts.next()) {
            (Some(major), Some(minor)) => HpaVersion::new(major, minor),
            _ => HpaVersion::CURRENT,
        }
    };
    let mut hpas = Vec::new();
    for h in inventory.hpas() {
        let (target, mut spec) = hpa_controller::lower(h).map_err(|e| one(e.diagnostic))?;
        let d = cluster
            .deployments
            .iter()
            .position(|d| d.model.name == target)
            .ok_or_else(|| {
                one(Diagnostic::error(
                    h.field_location("spec.scaleTargetRef.name"),
                    "spec.scaleTargetRef.name",
                    format!("no Deployment named {target}"),
                ))
            })?;
        if !file.assumptions.metrics_adapter {
            // Without an adapter the custom metrics API does not serve Pods metrics: upstream
            // reports the metric as failed every sync (FailedGetPodsMetric).
            for m in &mut spec.metrics {
                if let crate::autoscale::hpa::MetricSpec::Pods { name, .. } = m {
                    *name = format!("{name} (no custom-metrics adapter)");
                }
            }
        }
        let name = h.metadata.name.clone().unwrap_or_default();
        hpas.push(HpaRuntime {
            controller: HpaController::new(name, target, spec, hpa_version),
            deployment: d,
            sync_period: SimDuration::from_secs(15),
        });
    }
    // Prometheus: scrape interval, rule groups.
    let prom = inventory.prometheus_configs().first();
    let scrape_interval = prom
        .and_then(|p| p.global.scrape_interval.clone())
        .and_then(|s| parse_duration(&s).ok())
        .unwrap_or(SimDuration::from_secs(60));
    let eval_interval = prom
        .and_then(|p| p.global.evaluation_interval.clone())
        .and_then(|s| parse_duration(&s).ok())
        .unwrap_or(SimDuration::from_secs(60));
    let external_labels = prom
        .map(|p| p.global.external_labels.clone())
        .unwrap_or_default();
    let mut groups: Vec<Group> = Vec::new();
    for rf in inventory.rule_files() {
        let path = &rf.origin.file;
        let text = std::fs::read_to_string(path)
            .map_err(|e| loaded.error("manifests", format!("reading {}: {e}", path.display())))?;
        let mut parsed = parse_rule_file(path, &text, eval_interval.as_millis() as i64)
            .map_err(ScenarioError)?;
        // A group's evaluation slot hashes its file path as the server names it, so the run
        // must not depend on where the checkout is: the file is named as it would be mounted,
        // in the folder of the config's first rule_files pattern.
        let mount_dir = prom
            .and_then(|p| p.rule_files.first())
            .and_then(|pattern| Path::new(pattern).parent().map(Path::to_path_buf))
            .unwrap_or_else(|| PathBuf::from("/etc/prometheus/rules"));
        let server_path = mount_dir.join(path.file_name().unwrap_or_default());
        for group in &mut parsed {
            group.file = server_path.display().to_string();
        }
        groups.extend(parsed);
    }
    let alert_names: BTreeSet<String> = groups
        .iter()
        .flat_map(|g| {
            g.alerting_rules()
                .map(|r| r.name.clone())
                .collect::<Vec<_>>()
        })
        .collect();
    // A new version of a Deployment (a bad release, a rollout): its profile, its own or its
    // app's, patched.
    let release =
        |d: usize, field: &str, release: &Release| -> Result<ReleaseModel, ScenarioError> {
            let name = &cluster.deployments[d].model.name;
            let app = cluster.deployments[d]
                .model
                .template
                .labels
                .get("app")
                .cloned()
                .unwrap_or_default();
            let base_name = if loaded.profiles.profiles.contains_key(name) {
                name.clone()
            } else {
                app
            };
            let base = loaded
                .profiles
                .profiles
                .get(&base_name)
                .ok_or_else(|| loaded.error(field, format!("no profile for {name}")))?;
            let (model, behaviour) = model(
                loaded,
                &format!("{field}.profile"),
                &base_name,
                base,
                Some(&release.profile),
                gpu_context.as_ref(),
            )?;
            Ok(ReleaseModel {
                labels: release.labels.clone(),
                model,
                behaviour,
            })
        };
    // Faults.
    let mut faults = Vec::new();
    for (idx, f) in file.faults.iter().enumerate() {
        let field = format!("faults[{idx}]");
        let at = SimTime::ZERO + f.at().0;
        let node_index = |name: &str| {
            cluster.state.node_by_name(name).ok_or_else(|| {
                loaded.error(
                    &format!("{field}.node"),
                    format!("no node named {name} in the topology"),
                )
            })
        };
        let action = match f {
            Fault::PodKill {
                deployment, index, ..
            } => FaultAction::PodKill {
                deployment: deployment_index(deployment, &format!("{field}.deployment"))?,
                index: *index,
            },
            Fault::NodeLoss { node, .. } => FaultAction::NodeLoss {
                node: node_index(node)?,
            },
            Fault::NodeDrain { node, .. } => FaultAction::NodeDrain {
                node: node_index(node)?,
            },
            Fault::GpuFault { node, device, .. } => FaultAction::GpuFault {
                node: node_index(node)?,
                device: *device,
            },
            Fault::BadRelease {
                deployment,
                labels,
                profile,
                ..
            } => {
                let d = deployment_index(deployment, &format!("{field}.deployment"))?;
                let r = release(
                    d,
                    &field,
                    &Release {
                        labels: labels.clone(),
                        profile: profile.clone(),
                    },
                )?;
                FaultAction::NewRevision {
                    deployment: d,
                    labels: r.labels,
                    model: Box::new(r.model),
                    behaviour: r.behaviour,
                }
            }
            Fault::Latency {
                deployment, extra, ..
            } => FaultAction::Latency {
                deployment: deployment_index(deployment, &format!("{field}.deployment"))?,
                extra: extra.0,
            },
            Fault::MemoryLeak {
                deployment,
                per_second,
                ..
            } => {
                if per_second.0 <= 0.0 {
                    return Err(loaded.error(
                        &format!("{field}.perSecond"),
                        "a leak grows memory: give a positive rate",
                    ));
                }
                FaultAction::MemoryLeak {
                    deployment: deployment_index(deployment, &format!("{field}.deployment"))?,
                    bytes_per_sec: per_second.0,
                }
            }
            Fault::CostSurge {
                deployment, factor, ..
            } => FaultAction::CostSurge {
                deployment: deployment_index(deployment, &format!("{field}.deployment"))?,
                factor: *factor,
            },
            Fault::MetricsOutage { lasting, .. } => FaultAction::MetricsOutage {
                until: at + lasting.0,
            },
            Fault::ScrapeGap { lasting, .. } => FaultAction::ScrapeGap {
                until: at + lasting.0,
            },
            Fault::CrashLoop {
                deployment, after, ..
            } => FaultAction::CrashLoop {
                deployment: deployment_index(deployment, &format!("{field}.deployment"))?,
                after: after.0,
            },
            Fault::RolloutUndo { deployment, .. } => FaultAction::RolloutUndo {
                deployment: deployment_index(deployment, &format!("{field}.deployment"))?,
            },
        };
        faults.push((at, action));
    }
    // Rollouts.
    let route_control = |field: &str,
                         vs_name: &str,
                         service: &str,
                         from: &str,
                         to: &str|
     -> Result<RouteControl, ScenarioError> {
        let Some(vs) = inventory
            .virtual_services()
            .iter()
            .find(|vs| vs.metadata.name.as_deref() == Some(vs_name))
        else {
            return Err(loaded.error(
                &format!("{field}.virtualService"),
                format!("no VirtualService named {vs_name}"),
            ));
        };
        for subset in [from, to] {
            if !cluster_keys.contains_key(&(service.to_string(), Some(subset.to_string()))) {
                return Err(loaded.error(
                    field,
                    format!("the DestinationRule of {service} has no subset named {subset}"),
                ));
            }
        }
        let _ = vs;
        Ok(RouteControl {
            loads: loads
                .iter()
                .enumerate()
                .filter(
                    |(_, l)| matches!(&l.target, Target::Routed { vs_name: n, .. } if n == vs_name),
                )
                .map(|(i, _)| i)
                .collect(),
            service: service.to_string(),
            from: from.to_string(),
            to: to.to_string(),
        })
    };
    let service_of = |d: usize, field: &str| -> Result<String, ScenarioError> {
        // The Service whose selector the Deployment's pods match.
        let labels = &cluster.deployments[d].model.template.labels;
        inventory
            .services()
            .iter()
            .find(|svc| {
                svc.spec
                    .as_ref()
                    .and_then(|s| s.selector.as_ref())
                    .is_some_and(|sel| {
                        !sel.is_empty() && sel.iter().all(|(k, v)| labels.get(k) == Some(v))
                    })
            })
            .and_then(|svc| svc.metadata.name.clone())
            .ok_or_else(|| {
                loaded.error(
                    field,
                    format!(
                        "no Service selects the pods of {}",
                        cluster.deployments[d].model.name
                    ),
                )
            })
    };
    let mut rollouts: Vec<RolloutRuntime> = Vec::new();
    for (idx, spec) in file.rollouts.iter().enumerate() {
        let field = format!("rollouts[{idx}]");
        let analysis_of = |a: &Option<AnalysisSpec>| -> Result<Option<Analysis>, ScenarioError> {
            let Some(a) = a else { return Ok(None) };
            let expr = crate::promql::parse(&a.abort_when)
                .map_err(|e| loaded.error(&format!("{field}.analysis.abortWhen"), e.to_string()))?;
            if a.interval.0 == SimDuration::ZERO {
                return Err(loaded.error(
                    &format!("{field}.analysis.interval"),
                    "the analysis interval must be above 0",
                ));
            }
            if a.failure_limit == 0 {
                return Err(loaded.error(
                    &format!("{field}.analysis.failureLimit"),
                    "failureLimit must be at least 1",
                ));
            }
            Ok(Some(Analysis {
                abort_when: a.abort_when.clone(),
                expr,
                interval: a.interval.0,
                failure_limit: a.failure_limit,
            }))
        };
        let (name, at, kind, strategy, analysis) = match spec {
            RolloutSpec::RollingUpdate {
                name,
                at,
                deployment,
                release: r,
                analysis,
                analysis_for,
            } => {
                let d = deployment_index(deployment, &format!("{field}.deployment"))?;
                (
                    name,
                    at,
                    "rollingUpdate",
                    Strategy::RollingUpdate {
                        deployment: d,
                        release: release(d, &format!("{field}.release"), r)?,
                        analysis_for: analysis_for.map_or(SimDuration::ZERO, |d| d.0),
                    },
                    analysis_of(analysis)?,
                )
            }
            RolloutSpec::Canary {
                name,
                at,
                deployment,
                canary_deployment,
                virtual_service,
                stable_subset,
                canary_subset,
                canary_replicas,
                release: r,
                steps,
                analysis,
            } => {
                let stable = deployment_index(deployment, &format!("{field}.deployment"))?;
                let canary =
                    deployment_index(canary_deployment, &format!("{field}.canaryDeployment"))?;
                if stable == canary {
                    return Err(loaded.error(
                        &format!("{field}.canaryDeployment"),
                        "the canary must be a Deployment of its own",
                    ));
                }
                if steps.is_empty() {
                    return Err(loaded.error(
                        &format!("{field}.steps"),
                        "a canary needs at least one step",
                    ));
                }
                for (s, step) in steps.iter().enumerate() {
                    if step.weight > 100 {
                        return Err(loaded.error(
                            &format!("{field}.steps[{s}].weight"),
                            format!("weight {} is above 100", step.weight),
                        ));
                    }
                }
                if canary_replicas.is_some_and(|n| n < 1) {
                    return Err(loaded.error(
                        &format!("{field}.canaryReplicas"),
                        "a canary needs at least 1 replica",
                    ));
                }
                let service = service_of(stable, &format!("{field}.deployment"))?;
                (
                    name,
                    at,
                    "canary",
                    Strategy::Canary {
                        stable,
                        canary,
                        canary_replicas: *canary_replicas,
                        routes: route_control(
                            &field,
                            virtual_service,
                            &service,
                            stable_subset,
                            canary_subset,
                        )?,
                        steps: steps.iter().map(|s| (s.weight, s.pause.0)).collect(),
                        release_canary: release(canary, &format!("{field}.release"), r)?,
                        release_stable: release(stable, &format!("{field}.release"), r)?,
                    },
                    analysis_of(analysis)?,
                )
            }
            RolloutSpec::BlueGreen {
                name,
                at,
                deployment,
                preview_deployment,
                virtual_service,
                active_subset,
                preview_subset,
                preview_replicas,
                release: r,
                switch_after,
                analysis,
                analysis_for,
            } => {
                let active = deployment_index(deployment, &format!("{field}.deployment"))?;
                let preview =
                    deployment_index(preview_deployment, &format!("{field}.previewDeployment"))?;
                if active == preview {
                    return Err(loaded.error(
                        &format!("{field}.previewDeployment"),
                        "the preview must be a Deployment of its own",
                    ));
                }
                if preview_replicas.is_some_and(|n| n < 1) {
                    return Err(loaded.error(
                        &format!("{field}.previewReplicas"),
                        "a preview needs at least 1 replica",
                    ));
                }
                let service = service_of(active, &format!("{field}.deployment"))?;
                (
                    name,
                    at,
                    "blueGreen",
                    Strategy::BlueGreen {
                        preview,
                        preview_replicas: *preview_replicas,
                        routes: route_control(
                            &field,
                            virtual_service,
                            &service,
                            active_subset,
                            preview_subset,
                        )?,
                        release: release(preview, &format!("{field}.release"), r)?,
                        switch_after: switch_after.0,
                        analysis_for: analysis_for.map_or(SimDuration::ZERO, |d| d.0),
                    },
                    analysis_of(analysis)?,
                )
            }
        };
        if rollouts.iter().any(|r| &r.name == name) {
            return Err(loaded.error(
                &format!("{field}.name"),
                format!("two rollouts are named {name}"),
            ));
        }
        rollouts.push(RolloutRuntime::new(
            name.clone(),
            kind,
            SimTime::ZERO + at.0,
            strategy,
            analysis,
        ));
    }
    // Expectations refer to real things.
    for (idx, e) in file.expectations.iter().enumerate() {
        let field = format!("expectations[{idx}]");
        match e {
            ExpectationSpec::AlertFires { alert, .. }
            | ExpectationSpec::AlertNeverFires { alert }
                if !alert_names.contains(alert) =>
            {
                return Err(loaded.error(
                    &format!("{field}.alert"),
                    format!("no alerting rule named {alert} in the manifests' rule files"),
                ));
            }
            ExpectationSpec::ReplicasReach { deployment, .. }
            | ExpectationSpec::ReplicasNeverExceed { deployment, .. }
            | ExpectationSpec::P99Below { deployment, .. }
            | ExpectationSpec::HostsEjected { deployment, .. } => {
                deployment_index(deployment, &format!("{field}.deployment"))?;
            }
            ExpectationSpec::RolloutEnds { rollout, .. }
            | ExpectationSpec::No5xxDuringRollout { rollout, .. }
                if !rollouts.iter().any(|r| &r.name == rollout) =>
            {
                return Err(loaded.error(
                    &format!("{field}.rollout"),
                    format!("no rollout named {rollout}"),
                ));
            }
            ExpectationSpec::SloBudgetBelow { slo, .. }
                if !inventory
                    .slos()
                    .iter()
                    .any(|s| s.spec.slos.iter().any(|o| &o.name == slo)) =>
            {
                return Err(loaded.error(&format!("{field}.slo"), format!("no SLO named {slo}")));
            }
            _ => {}
        }
    }
    let authz_policies = inventory
        .authorization_policies()
        .iter()
        .map(crate::mesh::lower::authorization_policy)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| one(e.diagnostic))?;
    let mut world = World::new(
        cluster,
        models,
        clusters,
        loads,
        hpas,
        groups,
        StoreStorage::new(EngineOptions::default()),
        EvalContext {
            external_labels,
            ..EvalContext::default()
        },
        faults,
        scrape_interval,
        scraped,
        &rng,
    );
    world.rollouts = rollouts;
    world.authz_policies = authz_policies;
    world.job_from_app = file.assumptions.job_from_app_label;
    world.cluster_exporters = file.assumptions.cluster_exporters;
    world.metrics_adapter = file.assumptions.metrics_adapter;
    for (field, given, slot) in [
        (
            "assumptions.metricsServerResolution",
            file.assumptions.metrics_server_resolution,
            &mut world.metrics_resolution,
        ),
        (
            "assumptions.metricsAdapterRateWindow",
            file.assumptions.metrics_adapter_rate_window,
            &mut world.adapter_rate_window,
        ),
    ] {
        if let Some(super::schema::Dur(d)) = given {
            if d == SimDuration::ZERO {
                return Err(loaded.error(field, "must be longer than zero"));
            }
            *slot = d;
        }
    }
    world.take_cluster_timers(timers);
    let mut engine: Engine<Event> = Engine::new();
    world.start(&mut engine);
    let end = SimTime::ZERO + file.duration.0;
    engine.run_until(end, |sched, ev| world.handle(sched, ev));
    let slo_ratios = slo_ratios(inventory, &world, end);
    let slo_budget = slo_budgets(&slo_ratios, end);
    let expectations = check(file, &world, &slo_budget, end);
    let dashboards = inventory
        .dashboards()
        .iter()
        .map(|d| d.object.clone())
        .collect();
    Ok(RunResult {
        name: file.name.clone(),
        source: loaded.path.clone(),
        description: file.description.clone(),
        seed,
        duration: file.duration.0,
        events: engine.events_total(),
        world,
        expectations,
        slo_budget,
        slo_ratios,
        dashboards,
    })
}

/// One SLO's error ratio over the run, as its SLI's own queries give it each minute.
#[derive(Clone, Debug, PartialEq)]
pub struct SloRatios {
    pub name: String,
    /// Target in percent, e.g. `99.9`.
    pub objective: f64,
    /// `(t_ms, error ratio)` each minute, in time order; `None` where the SLI had no data
    /// (no traffic, or a query that returned nothing).
    pub points: Vec<(i64, Option<f64>)>,
}

impl SloRatios {
    /// The error budget's share of events: `1 - objective/100`.
    pub fn budget_ratio(&self) -> f64 {
        1.0 - self.objective / 100.0
    }
}

/// Each SLO's error ratio each minute of the run: the SLI's error and total queries (or its raw
/// error-ratio query) evaluated over the synthesized series.
fn slo_ratios(inventory: &Inventory, world: &World, end: SimTime) -> Vec<SloRatios> {
    let engine = PromqlEngine::with_options(&world.storage.store, EngineOptions::default());
    // Each query is parsed once and evaluated at every minute of the run.
    let parse = |expr: &str| crate::promql::parse(expr).ok();
    let scalar = |expr: &Option<promql_parser::parser::Expr>, t_ms: i64| -> Option<f64> {
        match engine.eval_instant_expr(expr.as_ref()?, t_ms).ok()? {
            PromValue::Scalar(v) => Some(v),
            PromValue::Vector(v) => v.first().map(|s| s.value),
            _ => None,
        }
    };
    let mut out = Vec::new();
    for slo_file in inventory.slos() {
        for slo in &slo_file.spec.slos {
            let mut points = Vec::new();
            let mut t = 60_000i64;
            let events = slo
                .sli
                .events
                .as_ref()
                .map(|ev| (parse(&ev.error_query), parse(&ev.total_query)));
            let raw = slo
                .sli
                .raw
                .as_ref()
                .map(|raw| parse(&raw.error_ratio_query));
            while t <= end.as_millis() {
                let ratio = if let Some((error_query, total_query)) = &events {
                    match (scalar(error_query, t), scalar(total_query, t)) {
                        (Some(e), Some(total)) if total > 0.0 => Some(e / total),
                        (None, Some(total)) if total > 0.0 => Some(0.0),
                        _ => None,
                    }
                } else if let Some(raw) = &raw {
                    scalar(raw, t).filter(|v| v.is_finite())
                } else {
                    None
                };
                points.push((t, ratio));
                t += 60_000;
            }
            out.push(SloRatios {
                name: slo.name.clone(),
                objective: slo.objective,
                points,
            });
        }
    }
    out
}

/// The share of each SLO's 30-day error budget the run used: the SLI's error ratio each
/// minute, averaged over the minutes with data and scaled by the run's share of 30 days.
fn slo_budgets(ratios: &[SloRatios], end: SimTime) -> Vec<(String, f64)> {
    ratios
        .iter()
        .map(|slo| {
            let budget = slo.budget_ratio();
            let mut sum = 0.0;
            let mut n = 0u64;
            for r in slo.points.iter().filter_map(|(_, r)| *r) {
                sum += r;
                n += 1;
            }
            let mean = if n == 0 { 0.0 } else { sum / n as f64 };
            let share_of_period = end.as_secs_f64() / (30.0 * 86_400.0);
            let used = if budget > 0.0 {
                mean * share_of_period / budget
            } else {
                0.0
            };
            (slo.name.clone(), used)
        })
        .collect()
}

/// Pods of a Deployment that outlier detection ejected at least once, and the most hosts a
/// detector of a cluster serving them held ejected at once (each client-side cluster has its
/// own detector; the count is the detector's own, so removed hosts leave it).
fn ejected_pods(world: &World, deployment: &str) -> (usize, usize) {
    use crate::mesh::outlier::OutlierAction;
    let mut pods = BTreeSet::new();
    let mut most = 0;
    let belongs = |key| {
        world.cluster.pods.get(&key).is_none_or(|p| {
            world.deployment_names.get(p.deployment).map(String::as_str) == Some(deployment)
        })
    };
    for c in &world.clusters {
        let mut serves = false;
        for e in c.outlier_log() {
            let Some(key) = c.pod_of(e.host) else {
                continue;
            };
            if belongs(key) {
                serves = true;
                if e.action == OutlierAction::Ejected {
                    pods.insert(key);
                }
            }
        }
        if serves {
            most = most.max(c.most_ejected);
        }
    }
    (pods.len(), most)
}

fn fires(world: &World, alert: &str) -> Option<f64> {
    world
        .alert_transitions
        .iter()
        .filter(|t| {
            t.to == crate::promql::rules::AlertState::Firing
                && t.labels.get("alertname").map(String::as_str) == Some(alert)
        })
        .map(|t| t.at_ms as f64 / 1000.0)
        .reduce(f64::min)
}

fn check(
    file: &ScenarioFile,
    world: &World,
    slo_budget: &[(String, f64)],
    end: SimTime,
) -> Vec<(String, bool, String)> {
    let mut out = Vec::new();
    let deployment = |name: &str| world.deployment_names.iter().position(|n| n == name);
    for e in &file.expectations {
        let (what, ok, detail) = match e {
            ExpectationSpec::AlertFires {
                alert,
                within,
                after,
            } => {
                let from = after.map_or(0.0, |a| a.0.as_secs_f64());
                let at = world
                    .alert_transitions
                    .iter()
                    .filter(|t| {
                        t.to == crate::promql::rules::AlertState::Firing
                            && t.labels.get("alertname").map(String::as_str) == Some(alert.as_str())
                            && t.at_ms as f64 / 1000.0 >= from
                    })
                    .map(|t| t.at_ms as f64 / 1000.0)
                    .reduce(f64::min);
                let ok = at.is_some_and(|t| t - from <= within.0.as_secs_f64());
                (
                    format!("alert {alert} fires within {}", within.0),
                    ok,
                    at.map_or("never fired".to_string(), |t| {
                        format!("fired at {}", SimDuration::from_secs_f64(t))
                    }),
                )
            }
            ExpectationSpec::AlertNeverFires { alert } => {
                let at = fires(world, alert);
                (
                    format!("alert {alert} never fires"),
                    at.is_none(),
                    at.map_or("never fired".into(), |t| {
                        format!("fired at {}", SimDuration::from_secs_f64(t))
                    }),
                )
            }
            ExpectationSpec::ReplicasReach {
                deployment: d,
                count,
            } => {
                let most = deployment(d).map_or(0, |i| world.most_replicas[i]);
                (
                    format!("{d} replicas reach {count}"),
                    most >= *count,
                    format!("most replicas {most}"),
                )
            }
            ExpectationSpec::ReplicasNeverExceed {
                deployment: d,
                count,
            } => {
                let most = deployment(d).map_or(0, |i| world.most_replicas[i]);
                (
                    format!("{d} replicas never exceed {count}"),
                    most <= *count,
                    format!("most replicas {most}"),
                )
            }
            ExpectationSpec::PendingAtMost { longest } => (
                format!("no pod Pending longer than {}", longest.0),
                world.longest_pending <= longest.0,
                format!("longest Pending {}", world.longest_pending),
            ),
            ExpectationSpec::PendingAtLeast { longest } => (
                format!("a pod stays Pending at least {}", longest.0),
                world.longest_pending >= longest.0,
                format!("longest Pending {}", world.longest_pending),
            ),
            ExpectationSpec::P99Below {
                deployment: d,
                below,
            } => {
                let p99 =
                    deployment(d).map_or(0, |i| world.stats[i].latency_us.value_at_quantile(0.99));
                let p99 = SimDuration::from_nanos(p99 * 1000);
                (
                    format!("{d} p99 below {}", below.0),
                    p99 < below.0,
                    format!("p99 {p99}"),
                )
            }
            ExpectationSpec::ErrorShare {
                target,
                status,
                min,
                max,
            } => {
                let counts = |code: u16| match status {
                    Some(wanted) => code == *wanted,
                    None => (500..600).contains(&code),
                };
                let what = match status {
                    Some(code) => format!("{code} share"),
                    None => "5xx share".to_string(),
                };
                let mut total = 0u64;
                let mut errors = 0u64;
                for (idx, load) in world.loads.iter().enumerate() {
                    if &load.name != target {
                        continue;
                    }
                    for (key, n) in &world.outcomes[idx] {
                        total += n;
                        if counts(key.status) {
                            errors += n;
                        }
                    }
                }
                let share = if total == 0 {
                    0.0
                } else {
                    errors as f64 / total as f64
                };
                let ok = min.is_none_or(|m| share >= m) && max.is_none_or(|m| share <= m);
                (
                    format!(
                        "{what} of {target} in [{}, {}]",
                        min.unwrap_or(0.0),
                        max.unwrap_or(1.0)
                    ),
                    ok,
                    format!("{share:.4} of {total}"),
                )
            }
            ExpectationSpec::SloBudgetBelow { slo, fraction } => {
                let used = slo_budget
                    .iter()
                    .find(|(n, _)| n == slo)
                    .map_or(0.0, |(_, u)| *u);
                (
                    format!("SLO {slo} uses less than {fraction} of its 30-day budget"),
                    used < *fraction,
                    format!("used {used:.4}"),
                )
            }
            ExpectationSpec::HostsEjected {
                deployment: d,
                min,
                max_at_once,
            } => {
                let (n, at_once) = ejected_pods(world, d);
                let ok = min.is_none_or(|m| n >= m) && max_at_once.is_none_or(|m| at_once <= m);
                (
                    format!(
                        "outlier detection ejects at least {} pod(s) of {d}, at most {} at once",
                        min.unwrap_or(0),
                        max_at_once.map_or("any".to_string(), |m| m.to_string())
                    ),
                    ok,
                    format!("{n} distinct pod(s) ejected, {at_once} at most at once"),
                )
            }
            ExpectationSpec::RolloutEnds {
                rollout,
                result,
                within,
            } => {
                let r = world.rollouts.iter().find(|r| &r.name == rollout);
                let ended = r.and_then(|r| r.ended.map(|(at, how)| (at.since(r.at), how)));
                let ok = ended.is_some_and(|(after, how)| {
                    how == *result && within.is_none_or(|w| after <= w.0)
                });
                (
                    format!(
                        "rollout {rollout} ends {}{}",
                        match result {
                            RolloutResult::Succeeded => "succeeded",
                            RolloutResult::Aborted => "aborted",
                        },
                        within.map_or(String::new(), |w| format!(" within {}", w.0))
                    ),
                    ok,
                    match ended {
                        Some((after, how)) => {
                            format!("{how:?} {after} after it started").to_lowercase()
                        }
                        None => "still in progress at the end".into(),
                    },
                )
            }
            ExpectationSpec::No5xxDuringRollout { rollout, mesh_only } => {
                let r = world.rollouts.iter().find(|r| &r.name == rollout);
                let n = r.map_or(0, |r| {
                    if *mesh_only {
                        r.mesh_errors
                    } else {
                        r.server_errors
                    }
                });
                (
                    format!(
                        "no {}5xx while rollout {rollout} is in progress",
                        if *mesh_only { "mesh " } else { "" }
                    ),
                    n == 0,
                    format!("{n} request(s) ended with a 5xx"),
                )
            }
            ExpectationSpec::NoRequestsLost {} => {
                let in_flight = world.arrivals - world.ended;
                (
                    "every request ends in exactly one outcome".to_string(),
                    // Requests still in flight at the end are not lost; they are counted apart.
                    world.ended <= world.arrivals,
                    format!(
                        "{} arrived, {} ended, {in_flight} in flight at {end}",
                        world.arrivals, world.ended
                    ),
                )
            }
        };
        out.push((what, ok, detail));
    }
    out
}

/// One profile of a service profiles file (`kind: ServiceProfiles`), checked as a scenario
/// checks it: what a stand-in needs to serve as one pod of it.
#[derive(Clone, Debug)]
pub struct CheckedProfile {
    pub name: String,
    pub service_time: crate::workload::ServiceTimeSampler,
    pub error_rate: f64,
    pub error_status: u16,
    pub concurrency: u32,
}

/// Reads a profiles file and checks the profile of `service` (which may be left out when the
/// file has one profile). Every problem names the file, line and field.
pub fn load_profile(path: &Path, service: Option<&str>) -> Result<CheckedProfile, ScenarioError> {
    let profiles: Sourced<ProfilesFile> = manifests::load_typed(path)?;
    if profiles.api_version != API_VERSION || profiles.kind != "ServiceProfiles" {
        return Err(one(Diagnostic::error(
            profiles.field_location("kind"),
            "kind",
            "expected apiVersion twin.sophia.dev/v1, kind ServiceProfiles",
        )));
    }
    let names: Vec<&str> = profiles.profiles.keys().map(String::as_str).collect();
    let name = match service {
        Some(name) if profiles.profiles.contains_key(name) => name.to_string(),
        Some(name) => {
            return Err(one(Diagnostic::error(
                profiles.field_location("profiles"),
                "profiles",
                format!("no profile {name:?} (profiles: {})", names.join(", ")),
            )));
        }
        None if names.len() == 1 => names[0].to_string(),
        None => {
            return Err(one(Diagnostic::error(
                profiles.field_location("profiles"),
                "profiles",
                format!(
                    "{} profiles; say which with --service ({})",
                    names.len(),
                    names.join(", ")
                ),
            )));
        }
    };
    let profile = &profiles.profiles[&name];
    let base = format!("profiles.{name}");
    let at = |field: &str| {
        let path = format!("{base}.{field}");
        Diagnostic::error(profiles.field_location(&path), path, "")
    };
    let fail = |field: &str, message: String| {
        let mut diag = at(field);
        diag.message = message;
        one(diag)
    };
    let Some(spec) = &profile.service_time else {
        return Err(fail(
            "gpu.work",
            "this profile takes its service time from the GPU calibration; a stand-in needs an explicit serviceTime".into(),
        ));
    };
    let quantile_field = match spec {
        ServiceTimeSpec::Lognormal { .. } => "serviceTime.lognormal.p99",
        ServiceTimeSpec::Exponential { .. } => "serviceTime.exponential.mean",
        ServiceTimeSpec::Constant(_) => "serviceTime",
        ServiceTimeSpec::Empirical { .. } => "serviceTime.empirical",
    };
    let service_time = service_time(spec)
        .map_err(|err| fail(quantile_field, err))?
        .sampler()
        .map_err(|err| fail(quantile_field, err.to_string()))?;
    if !(0.0..=1.0).contains(&profile.error_rate) {
        return Err(fail(
            "errorRate",
            format!("errorRate {} is not in [0, 1]", profile.error_rate),
        ));
    }
    if !(100..=599).contains(&profile.error_status) {
        return Err(fail(
            "errorStatus",
            format!("{} is not an HTTP status", profile.error_status),
        ));
    }
    if profile.concurrency == 0 {
        return Err(fail("concurrency", "concurrency must be at least 1".into()));
    }
    Ok(CheckedProfile {
        name,
        service_time,
        error_rate: profile.error_rate,
        error_status: profile.error_status,
        concurrency: profile.concurrency,
    })
}
