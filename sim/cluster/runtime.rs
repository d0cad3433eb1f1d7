//! The cluster in motion: the Deployment and ReplicaSet controllers, quota admission on pod
//! creation, the scheduling queue, the kubelet's pod lifecycle (start, probes, crashes and
//! CrashLoopBackOff, termination) and node failure, driven by the engine.
//!
//! The runtime never touches the engine itself: every method takes `now` and returns the timers
//! it wants as `(SimTime, ClusterEvent)` pairs through `out`, which the World schedules. That
//! keeps `cluster` below `scenario` in the dependency order and every transition testable.
//!
//! Follows Kubernetes v1.35 as ../shared/spec/kubernetes.md describes it: the rolling update
//! sync of §4.3 (scale up first, else scale old down, fenceposts per §4.2), availability with
//! minReadySeconds (§4.4), the ReplicaSet's deletion order (§4.6, the parts that apply here),
//! quota refusal with FailedCreate and a retry (§3.3), probes and back-off (§5, see
//! [`super::kubelet`]), and taint-based eviction of a lost node's pods after the default 300 s
//! toleration (DefaultTolerationSeconds).
//!
//! Modelling choices, stated: the node lifecycle controller marks a lost node NotReady at once
//! (upstream waits node-monitor-grace-period, 40 s, first; scenario faults give the instant the
//! node is seen lost); the scheduler binds a pod the instant it is created or the cluster
//! changes (no queue latency); image pull plus container start is one delay from the service
//! profile; a ReplicaSet refused by quota retries every 10 s (upstream's rate limiter starts at
//! 5 ms and backs off; the pods appear at the first retry after room is made either way, within
//! that step).
//!
//! Invariants: no node is ever bound past its allocatable (the scheduler's filters); quota
//! `used` never exceeds `hard` (admission); pods are kept in a `BTreeMap` by creation order, so
//! every iteration that reaches a record is ordered.

use std::collections::{BTreeMap, BTreeSet};

use super::kubelet::{
    ContainerRun, ProbeKind, ProbeOutcome, ProbeResult, ProbeWorker, RestartBackoff,
    RestartDecision,
};
use super::lower::{DeploymentModel, IntOrPercent, Strategy};
use super::model::{Node, PodSpec, Taint, TaintEffect};
use super::quota::{QuotaObject, ResourceQuota, admit};
use super::schedule::{SchedulerConfig, schedule};
use super::state::{ClusterState, PodId};
use crate::engine::{SimDuration, SimTime};

/// How long a lost node's pods stay bound before eviction: the toleration the
/// DefaultTolerationSeconds admission plugin adds for `node.kubernetes.io/unreachable`.
pub const DEFAULT_TOLERATION: SimDuration = SimDuration::from_secs(300);
/// The retry step of a ReplicaSet whose pod creation was refused.
pub const FAILED_CREATE_RETRY: SimDuration = SimDuration::from_secs(10);

/// A pod's identity for its whole life (creation order), independent of binding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PodKey(pub u32);

/// The timers the runtime asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClusterEvent {
    /// The container of `pod` (its `generation`-th start) is running.
    ContainerStarted { pod: PodKey, generation: u32 },
    /// A probe worker of `pod` ticks.
    ProbeTick {
        pod: PodKey,
        probe: u8,
        generation: u32,
    },
    /// The application in `pod` exits on its own (a crash).
    ContainerExited { pod: PodKey, generation: u32 },
    /// The back-off of `pod` has passed: start its container again.
    RestartContainer { pod: PodKey, generation: u32 },
    /// A terminating pod is gone (grace period over).
    PodGone { pod: PodKey },
    /// The eviction of a lost node's pods is due.
    EvictNode { node: usize, epoch: u32 },
    /// A Deployment's controllers run again (quota retry, minReadySeconds, progress deadline).
    SyncDeployment { deployment: usize },
    /// `kubectl drain` tries again to evict the pods a disruption budget held back.
    DrainRetry { node: usize },
}

/// How long `kubectl drain` waits before retrying an eviction a budget refused.
pub const DRAIN_RETRY: SimDuration = SimDuration::from_secs(5);

/// A PodDisruptionBudget as the eviction API evaluates it: healthy (Ready) pods matching the
/// selector against `minAvailable` or `maxUnavailable` (absolute or percent of the expected
/// pods, rounded up as the disruption controller does).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DisruptionBudget {
    pub name: String,
    pub namespace: String,
    pub selector: super::model::LabelSelector,
    pub min_available: Option<IntOrPercent>,
    pub max_unavailable: Option<IntOrPercent>,
}

/// What the simulated application in a pod does, from the scenario's service profile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppBehaviour {
    /// Image pull plus container start.
    pub startup: SimDuration,
    /// The container exits this long after each start (a crash loop); `None`: runs on.
    pub crash_after: Option<SimDuration>,
    /// Whether its readiness and liveness endpoints answer success.
    pub healthy: bool,
}

impl Default for AppBehaviour {
    fn default() -> Self {
        AppBehaviour {
            startup: SimDuration::from_secs(5),
            crash_after: None,
            healthy: true,
        }
    }
}

/// A pod's phase as `kubectl get pods` would summarize it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PodStatus {
    /// Not bound; the scheduler's message.
    Pending {
        message: String,
    },
    /// Bound; the container is being pulled and started.
    ContainerCreating,
    Running,
    /// Waiting out CrashLoopBackOff after an exit.
    CrashLoopBackOff {
        until: SimTime,
    },
    Terminating,
}

/// One pod.
#[derive(Clone, Debug)]
pub struct Pod {
    pub key: PodKey,
    pub name: String,
    pub deployment: usize,
    pub replica_set: usize,
    pub spec: PodSpec,
    pub created_at: SimTime,
    pub node: Option<usize>,
    pub bound: Option<PodId>,
    pub status: PodStatus,
    pub ready: bool,
    /// When the Ready condition last turned true.
    pub ready_since: Option<SimTime>,
    pub started_at: Option<SimTime>,
    pub restarts: u32,
    /// Bumped at every container start, so stale timers of an older container are ignored.
    pub generation: u32,
    pub behaviour: AppBehaviour,
    probes: Vec<ProbeWorker>,
    backoff: RestartBackoff,
    last_exit: Option<SimTime>,
    pub deleting_since: Option<SimTime>,
}

impl Pod {
    pub fn is_terminating(&self) -> bool {
        self.deleting_since.is_some()
    }

    /// Ready and (with minReadySeconds) ready for long enough (§4.4).
    pub fn is_available(&self, now: SimTime, min_ready: SimDuration) -> bool {
        self.ready
            && !self.is_terminating()
            && self
                .ready_since
                .is_some_and(|since| min_ready == SimDuration::ZERO || now.since(since) > min_ready)
    }
}

/// A ReplicaSet: one revision of a Deployment's pod template.
#[derive(Clone, Debug)]
pub struct ReplicaSet {
    pub revision: u32,
    pub name: String,
    pub template: PodSpec,
    pub behaviour: AppBehaviour,
    pub replicas: i32,
    pub pods: BTreeSet<PodKey>,
    /// The last FailedCreate message while quota refuses its pods.
    pub failed_create: Option<String>,
}

/// A Deployment and its ReplicaSets (oldest first; the last one is the newest).
#[derive(Clone, Debug)]
pub struct DeploymentState {
    pub model: DeploymentModel,
    /// `spec.replicas` (the autoscaler writes it).
    pub replicas: i32,
    pub replica_sets: Vec<ReplicaSet>,
    /// The ReplicaSet matching the current template.
    pub current: usize,
}

/// Something that happened, for the run's timeline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterRecord {
    pub at: SimTime,
    /// `Scheduled`, `FailedScheduling`, `FailedCreate`, `Started`, `Ready`, `NotReady`, `BackOff`,
    /// `Killing`, `Evicted`, `ScalingReplicaSet`, `NodeNotReady`, ...
    pub reason: &'static str,
    pub object: String,
    pub message: String,
}

/// The whole cluster in motion.
pub struct ClusterRuntime {
    pub state: ClusterState,
    pub quotas: Vec<ResourceQuota>,
    pub deployments: Vec<DeploymentState>,
    pub pods: BTreeMap<PodKey, Pod>,
    pub records: Vec<ClusterRecord>,
    pub config: SchedulerConfig,
    pub budgets: Vec<DisruptionBudget>,
    /// Per Deployment: when it last made progress, and whether the deadline was reported.
    progress: Vec<(SimTime, bool, (i32, i32, i32))>,
    node_ready: Vec<bool>,
    node_epoch: Vec<u32>,
    next_key: u32,
    /// Records of FailedScheduling are kept only when the message changes.
    last_pending_message: BTreeMap<PodKey, String>,
}

fn taint_unreachable() -> [Taint; 2] {
    [
        Taint {
            key: "node.kubernetes.io/unreachable".into(),
            value: String::new(),
            effect: TaintEffect::NoSchedule,
        },
        Taint {
            key: "node.kubernetes.io/unreachable".into(),
            value: String::new(),
            effect: TaintEffect::NoExecute,
        },
    ]
}

impl ClusterRuntime {
    /// A cluster with `nodes` and the inventory's quotas; Deployments are added with
    /// [`ClusterRuntime::add_deployment`].
    pub fn new(
        nodes: Vec<Node>,
        quotas: Vec<ResourceQuota>,
        config: SchedulerConfig,
    ) -> Result<Self, super::ClusterError> {
        let n_nodes = nodes.len();
        Ok(ClusterRuntime {
            state: ClusterState::new(nodes)?,
            quotas,
            deployments: Vec::new(),
            pods: BTreeMap::new(),
            records: Vec::new(),
            config,
            budgets: Vec::new(),
            progress: Vec::new(),
            node_ready: vec![true; n_nodes],
            node_epoch: vec![0; n_nodes],
            next_key: 0,
            last_pending_message: BTreeMap::new(),
        })
    }

    fn record(
        &mut self,
        at: SimTime,
        reason: &'static str,
        object: impl Into<String>,
        message: impl Into<String>,
    ) {
        self.records.push(ClusterRecord {
            at,
            reason,
            object: object.into(),
            message: message.into(),
        });
    }

    /// Adds a Deployment with its first ReplicaSet and syncs it.
    pub fn add_deployment(
        &mut self,
        now: SimTime,
        model: DeploymentModel,
        behaviour: AppBehaviour,
        out: &mut Vec<(SimTime, ClusterEvent)>,
    ) -> usize {
        let idx = self.deployments.len();
        let replicas = model.replicas;
        let rs = ReplicaSet {
            revision: 1,
            name: format!("{}-r1", model.name),
            template: model.template.clone(),
            behaviour,
            replicas: 0,
            pods: BTreeSet::new(),
            failed_create: None,
        };
        self.deployments.push(DeploymentState {
            model,
            replicas,
            replica_sets: vec![rs],
            current: 0,
        });
        self.progress.push((now, false, (-1, -1, -1)));
        self.sync_deployment(now, idx, out);
        idx
    }

    /// Rolls out a new revision of a Deployment's template (labels, behaviour).
    pub fn roll_out(
        &mut self,
        now: SimTime,
        deployment: usize,
        template: PodSpec,
        behaviour: AppBehaviour,
        out: &mut Vec<(SimTime, ClusterEvent)>,
    ) {
        let d = &mut self.deployments[deployment];
        let revision = d
            .replica_sets
            .iter()
            .map(|rs| rs.revision)
            .max()
            .unwrap_or(0)
            + 1;
        let name = format!("{}-r{revision}", d.model.name);
        d.replica_sets.push(ReplicaSet {
            revision,
            name: name.clone(),
            template,
            behaviour,
            replicas: 0,
            pods: BTreeSet::new(),
            failed_create: None,
        });
        d.current = d.replica_sets.len() - 1;
        // A new ReplicaSet is progress (NewReplicaSetCreated): the deadline counts from now.
        self.progress[deployment] = (now, false, (-1, -1, -1));
        self.record(
            now,
            "NewReplicaSet",
            format!("deployment/{}", self.deployments[deployment].model.name),
            format!("created ReplicaSet {name}"),
        );
        self.sync_deployment(now, deployment, out);
    }

    /// `kubectl rollout undo`: the previous revision's template becomes current again, under a
    /// new revision number, as upstream does.
    pub fn undo(
        &mut self,
        now: SimTime,
        deployment: usize,
        out: &mut Vec<(SimTime, ClusterEvent)>,
    ) -> bool {
        let d = &self.deployments[deployment];
        let Some(previous) = d
            .replica_sets
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != d.current)
            .max_by_key(|(_, rs)| rs.revision)
            .map(|(i, _)| i)
        else {
            return false;
        };
        let d = &mut self.deployments[deployment];
        let revision = d
            .replica_sets
            .iter()
            .map(|rs| rs.revision)
            .max()
            .unwrap_or(0)
            + 1;
        d.replica_sets[previous].revision = revision;
        d.current = previous;
        self.progress[deployment] = (now, false, (-1, -1, -1));
        let name = d.replica_sets[previous].name.clone();
        self.record(
            now,
            "DeploymentRollback",
            format!("deployment/{}", self.deployments[deployment].model.name),
            format!("rolled back to {name}"),
        );
        self.sync_deployment(now, deployment, out);
        true
    }

    /// Changes `spec.replicas` (an autoscaler or a user).
    pub fn scale(
        &mut self,
        now: SimTime,
        deployment: usize,
        replicas: i32,
        out: &mut Vec<(SimTime, ClusterEvent)>,
    ) {
        let d = &mut self.deployments[deployment];
        if d.replicas == replicas {
            return;
        }
        let from = d.replicas;
        d.replicas = replicas;
        let name = d.model.name.clone();
        self.record(
            now,
            "ScalingReplicaSet",
            format!("deployment/{name}"),
            format!("scaled from {from} to {replicas}"),
        );
        self.sync_deployment(now, deployment, out);
    }

    fn available(&self, now: SimTime, deployment: usize, rs: usize) -> i32 {
        let d = &self.deployments[deployment];
        let min_ready = SimDuration::from_secs(d.model.min_ready_seconds.max(0) as u64);
        d.replica_sets[rs]
            .pods
            .iter()
            .filter(|k| self.pods[*k].is_available(now, min_ready))
            .count() as i32
    }

    /// One Deployment sync (§4.3), then each ReplicaSet reconciles its pods.
    pub fn sync_deployment(
        &mut self,
        now: SimTime,
        deployment: usize,
        out: &mut Vec<(SimTime, ClusterEvent)>,
    ) {
        let target = self.deployments[deployment].replicas.max(0);
        let current = self.deployments[deployment].current;
        let n_rs = self.deployments[deployment].replica_sets.len();
        // One Deployment sync is the pure `rollout::rollout_step` (§4.3); the runtime supplies
        // each ReplicaSet's counts and applies the new sizes.
        use super::rollout::{self, DeploymentStrategy, ReplicaSetView, RolloutState};
        let strategy = match self.deployments[deployment].model.strategy {
            Strategy::Recreate => DeploymentStrategy::Recreate,
            Strategy::RollingUpdate {
                max_surge,
                max_unavailable,
            } => DeploymentStrategy::RollingUpdate {
                max_surge,
                max_unavailable,
            },
        };
        let view = |rs: usize| {
            let set = &self.deployments[deployment].replica_sets[rs];
            ReplicaSetView {
                name: set.name.clone(),
                replicas: i64::from(set.replicas),
                available: i64::from(self.available(now, deployment, rs)),
                running: set.pods.len() as i64,
            }
        };
        let old_indices: Vec<usize> = (0..n_rs).filter(|i| *i != current).collect();
        let state = RolloutState {
            replicas: i64::from(target),
            strategy,
            new: Some(view(current)),
            old: old_indices.iter().map(|&i| view(i)).collect(),
        };
        // The API server refuses the manifests that would make this fail (both fenceposts 0,
        // negative replicas); should one slip through, the ReplicaSets keep their sizes.
        if let Ok(step) = rollout::rollout_step(&state) {
            self.deployments[deployment].replica_sets[current].replicas = step.new_replicas as i32;
            for (slot, &rs) in old_indices.iter().enumerate() {
                if let Some(&size) = step.old_replicas.get(slot) {
                    self.deployments[deployment].replica_sets[rs].replicas = size as i32;
                }
            }
        }
        for rs in 0..n_rs {
            self.reconcile_replica_set(now, deployment, rs, out);
        }
        self.check_progress(now, deployment, out);
    }

    /// The Progressing condition (§4.5): progress is more updated replicas, fewer old ones or
    /// more available ones; a rollout with none for `progressDeadlineSeconds` is reported once
    /// as ProgressDeadlineExceeded, as the controller sets it, until progress resumes.
    fn check_progress(
        &mut self,
        now: SimTime,
        deployment: usize,
        out: &mut Vec<(SimTime, ClusterEvent)>,
    ) {
        let d = &self.deployments[deployment];
        let current = d.current;
        let updated = d.replica_sets[current]
            .pods
            .iter()
            .filter(|k| !self.pods[*k].is_terminating())
            .count() as i32;
        let old: i32 = d
            .replica_sets
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != current)
            .map(|(_, rs)| rs.pods.len() as i32)
            .sum();
        let available: i32 = (0..d.replica_sets.len())
            .map(|rs| self.available(now, deployment, rs))
            .sum();
        let target = d.replicas.max(0);
        let complete = old == 0 && updated == target && available >= target;
        let deadline = SimDuration::from_secs(d.model.progress_deadline_seconds.max(0) as u64);
        let name = d.model.name.clone();
        let rs_name = d.replica_sets[current].name.clone();
        let (last, reported, seen) = self.progress[deployment];
        let now_seen = (updated, -old, available);
        let progressed =
            seen.0 < 0 || now_seen.0 > seen.0 || now_seen.1 > seen.1 || now_seen.2 > seen.2;
        if complete || progressed {
            self.progress[deployment] = (now, false, now_seen);
            if !complete {
                out.push((
                    now + deadline + SimDuration::from_secs(1),
                    ClusterEvent::SyncDeployment { deployment },
                ));
            }
            return;
        }
        self.progress[deployment].2 = now_seen;
        if !reported && now.since(last) > deadline {
            self.progress[deployment].1 = true;
            self.record(
                now,
                "ProgressDeadlineExceeded",
                format!("deployment/{name}"),
                format!("ReplicaSet \"{rs_name}\" has timed out progressing."),
            );
        }
    }

    /// `kubectl drain`: cordon the node, then evict its pods through the eviction API, which
    /// refuses an eviction that would take a matching PodDisruptionBudget below its minimum
    /// (429 "Cannot evict pod as it would violate the pod's disruption budget."); refused
    /// pods are retried every 5 s, as kubectl does.
    pub fn drain_node(
        &mut self,
        now: SimTime,
        node: usize,
        out: &mut Vec<(SimTime, ClusterEvent)>,
    ) {
        let Some(name) = self.state.nodes().get(node).map(|n| n.name.clone()) else {
            return;
        };
        if !self.state.nodes()[node].unschedulable {
            self.state.set_unschedulable(node, true);
            self.record(
                now,
                "NodeNotSchedulable",
                format!("node/{name}"),
                "Node cordoned (kubectl drain)",
            );
        }
        let keys: Vec<PodKey> = self
            .pods
            .values()
            .filter(|p| p.node == Some(node) && !p.is_terminating())
            .map(|p| p.key)
            .collect();
        let mut blocked = false;
        let mut touched = BTreeSet::new();
        for key in keys {
            if let Some(budget) = self.budget_blocking(key) {
                blocked = true;
                let pod_name = self.pods[&key].name.clone();
                self.record(
                    now,
                    "EvictionBlocked",
                    format!("pod/{pod_name}"),
                    format!(
                        "Cannot evict pod as it would violate the pod's disruption budget {budget}."
                    ),
                );
                continue;
            }
            touched.insert(self.pods[&key].deployment);
            self.delete_pod(now, key, "evicted by drain", out);
        }
        for d in touched {
            self.sync_deployment(now, d, out);
        }
        if blocked {
            out.push((now + DRAIN_RETRY, ClusterEvent::DrainRetry { node }));
        }
    }

    /// The first budget that evicting `key` now would violate.
    fn budget_blocking(&self, key: PodKey) -> Option<String> {
        let pod = &self.pods[&key];
        for b in &self.budgets {
            if b.namespace != pod.spec.namespace || !b.selector.matches(&pod.spec.labels) {
                continue;
            }
            let matching: Vec<&Pod> = self
                .pods
                .values()
                .filter(|p| {
                    p.spec.namespace == b.namespace
                        && b.selector.matches(&p.spec.labels)
                        && !p.is_terminating()
                })
                .collect();
            let expected = matching.len() as i64;
            let healthy = matching.iter().filter(|p| p.ready).count() as i64;
            let desired_healthy = match (b.min_available, b.max_unavailable) {
                (Some(min), _) => min.scaled(expected, true),
                (None, Some(max)) => expected - max.scaled(expected, true),
                (None, None) => 0,
            };
            // Evicting an unready pod never lowers the healthy count.
            if pod.ready && healthy - 1 < desired_healthy {
                return Some(b.name.clone());
            }
        }
        None
    }

    fn reconcile_replica_set(
        &mut self,
        now: SimTime,
        deployment: usize,
        rs: usize,
        out: &mut Vec<(SimTime, ClusterEvent)>,
    ) {
        let live: Vec<PodKey> = self.deployments[deployment].replica_sets[rs]
            .pods
            .iter()
            .copied()
            .filter(|k| !self.pods[k].is_terminating())
            .collect();
        let want = self.deployments[deployment].replica_sets[rs]
            .replicas
            .max(0) as usize;
        if live.len() >= want {
            self.deployments[deployment].replica_sets[rs].failed_create = None;
        }
        if live.len() < want {
            for _ in live.len()..want {
                if !self.create_pod(now, deployment, rs, out) {
                    out.push((
                        now + FAILED_CREATE_RETRY,
                        ClusterEvent::SyncDeployment { deployment },
                    ));
                    break;
                }
            }
        } else if live.len() > want {
            let mut victims = live;
            // §4.6, the parts that apply: unscheduled first, then not Ready, then Ready for the
            // shortest time, then more restarts, then newest.
            victims.sort_by_key(|k| {
                let p = &self.pods[k];
                (
                    p.node.is_some(),
                    p.ready,
                    std::cmp::Reverse(p.ready_since),
                    std::cmp::Reverse(p.restarts),
                    std::cmp::Reverse(p.created_at),
                    std::cmp::Reverse(*k),
                )
            });
            let n_delete = victims.len() - want;
            for key in victims.into_iter().take(n_delete) {
                self.delete_pod(now, key, "scaled down", out);
            }
        }
    }

    fn create_pod(
        &mut self,
        now: SimTime,
        deployment: usize,
        rs: usize,
        out: &mut Vec<(SimTime, ClusterEvent)>,
    ) -> bool {
        let key = PodKey(self.next_key);
        let set = &self.deployments[deployment].replica_sets[rs];
        let mut spec = set.template.clone();
        spec.name = format!("{}-{:04}", set.name, key.0);
        match admit(&self.quotas, &QuotaObject::Pod(&spec)) {
            Ok(updated) => self.quotas = updated,
            Err(rejection) => {
                let message = rejection.failed_create_event(&format!("{}-", set.name));
                let object = format!("replicaset/{}", set.name);
                if self.deployments[deployment].replica_sets[rs]
                    .failed_create
                    .as_deref()
                    != Some(message.as_str())
                {
                    self.record(now, "FailedCreate", object, message.clone());
                }
                self.deployments[deployment].replica_sets[rs].failed_create = Some(message);
                return false;
            }
        }
        let behaviour = set.behaviour;
        self.deployments[deployment].replica_sets[rs].failed_create = None;
        self.next_key += 1;
        let pod = Pod {
            key,
            name: spec.name.clone(),
            deployment,
            replica_set: rs,
            spec,
            created_at: now,
            node: None,
            bound: None,
            status: PodStatus::Pending {
                message: String::new(),
            },
            ready: false,
            ready_since: None,
            started_at: None,
            restarts: 0,
            generation: 0,
            behaviour,
            probes: Vec::new(),
            backoff: RestartBackoff::default(),
            last_exit: None,
            deleting_since: None,
        };
        self.deployments[deployment].replica_sets[rs]
            .pods
            .insert(key);
        self.pods.insert(key, pod);
        self.try_schedule(now, key, out);
        true
    }

    /// Runs the scheduler for one Pending pod; binds it when a node is feasible.
    fn try_schedule(&mut self, now: SimTime, key: PodKey, out: &mut Vec<(SimTime, ClusterEvent)>) {
        let spec = self.pods[&key].spec.clone();
        let (spec_namespace, spec_name) = (spec.namespace.clone(), spec.name.clone());
        let placement = schedule(&self.state, &spec, &self.config);
        match placement.selected {
            Some(node) => {
                let node_name = self.state.nodes()[node].name.clone();
                let Ok(bound) = self
                    .state
                    .bind(spec, &node_name, Some(now.as_millis() / 1000))
                else {
                    // The filters passed, so binding cannot fail; if it ever does, the pod
                    // stays Pending and says why rather than panicking mid-run.
                    let pod = self.pods.get_mut(&key).expect("pod exists");
                    pod.status = PodStatus::Pending {
                        message: "binding failed".into(),
                    };
                    return;
                };
                self.last_pending_message.remove(&key);
                self.state.clear_nomination(&spec_namespace, &spec_name);
                let pod = self.pods.get_mut(&key).expect("pod exists");
                pod.node = Some(node);
                pod.bound = Some(bound);
                pod.status = PodStatus::ContainerCreating;
                let (name, startup) = (pod.name.clone(), pod.behaviour.startup);
                // The kubelet creates the probe workers when it admits the pod.
                let containers = &self.deployments[pod.deployment].model.containers;
                let mut probes = Vec::new();
                if let Some(c) = containers.first() {
                    for (kind, probe) in [
                        (ProbeKind::Startup, c.startup),
                        (ProbeKind::Readiness, c.readiness),
                        (ProbeKind::Liveness, c.liveness),
                    ] {
                        if let Some(probe) = probe {
                            probes.push(ProbeWorker::new(kind, probe, now));
                        }
                    }
                }
                pod.probes = probes;
                pod.generation += 1;
                let generation = pod.generation;
                self.record(
                    now,
                    "Scheduled",
                    format!("pod/{name}"),
                    format!("Successfully assigned {name} to {node_name}"),
                );
                out.push((
                    now + startup,
                    ClusterEvent::ContainerStarted {
                        pod: key,
                        generation,
                    },
                ));
            }
            None => {
                let message = placement
                    .unschedulable
                    .map(|u| u.message)
                    .unwrap_or_else(|| "no node is feasible".to_string());
                let name = self.pods[&key].name.clone();
                if self.last_pending_message.get(&key) != Some(&message) {
                    self.record(
                        now,
                        "FailedScheduling",
                        format!("pod/{name}"),
                        message.clone(),
                    );
                    self.last_pending_message.insert(key, message.clone());
                }
                self.pods.get_mut(&key).expect("pod exists").status =
                    PodStatus::Pending { message };
                // DefaultPreemption: the pod is nominated to the node and its victims are
                // deleted gracefully; it binds when they are gone (PodGone retries Pending pods).
                if let Some(preemption) = placement.preemption {
                    let node_name = self.state.nodes()[preemption.nominated_node].name.clone();
                    let _ = self.state.nominate(spec.clone(), &node_name);
                    let victims: Vec<PodKey> = preemption
                        .victims
                        .iter()
                        .filter_map(|id| {
                            self.pods
                                .values()
                                .find(|p| p.bound == Some(*id))
                                .map(|p| p.key)
                        })
                        .collect();
                    for victim in victims {
                        if self.pods.get(&victim).is_some_and(|p| !p.is_terminating()) {
                            let victim_name = self.pods[&victim].name.clone();
                            self.record(
                                now,
                                "Preempted",
                                format!("pod/{victim_name}"),
                                format!("Preempted by pod {} on node {node_name}", spec.name),
                            );
                            if let Some(bound) = self.pods[&victim].bound {
                                self.state.mark_preempted(bound);
                            }
                            let deployment = self.pods[&victim].deployment;
                            self.delete_pod(now, victim, "preempted", out);
                            self.sync_deployment(now, deployment, out);
                        }
                    }
                }
            }
        }
    }

    /// Retries every Pending pod, highest priority first, then oldest.
    pub fn retry_pending(&mut self, now: SimTime, out: &mut Vec<(SimTime, ClusterEvent)>) {
        let mut pending: Vec<(i32, PodKey)> = self
            .pods
            .values()
            .filter(|p| p.node.is_none() && !p.is_terminating())
            .map(|p| (-p.spec.priority, p.key))
            .collect();
        pending.sort();
        for (_, key) in pending {
            self.try_schedule(now, key, out);
        }
    }

    fn release(&mut self, key: PodKey) {
        let pod = &self.pods[&key];
        if let Some(bound) = pod.bound {
            self.state.remove(bound);
        }
        let usage = QuotaObject::Pod(&pod.spec).usage();
        for quota in &mut self.quotas {
            if quota.namespace != pod.spec.namespace {
                continue;
            }
            for (resource, amount) in &usage {
                if let Some(used) = quota.used.get_mut(resource) {
                    *used = (*used - amount).max(0);
                }
            }
        }
    }

    /// Deletes a pod: it leaves the endpoints and the ReplicaSet's count at once, and is gone
    /// after its grace period (at once when it never ran).
    pub fn delete_pod(
        &mut self,
        now: SimTime,
        key: PodKey,
        why: &str,
        out: &mut Vec<(SimTime, ClusterEvent)>,
    ) {
        let Some(pod) = self.pods.get_mut(&key) else {
            return;
        };
        if pod.is_terminating() {
            return;
        }
        pod.deleting_since = Some(now);
        pod.ready = false;
        pod.status = PodStatus::Terminating;
        let grace = if pod.started_at.is_some() {
            SimDuration::from_secs(
                self.deployments[pod.deployment]
                    .model
                    .termination_grace_seconds
                    .max(0) as u64,
            )
        } else {
            SimDuration::ZERO
        };
        let name = pod.name.clone();
        self.record(
            now,
            "Killing",
            format!("pod/{name}"),
            format!("Stopping container ({why})"),
        );
        out.push((now + grace, ClusterEvent::PodGone { pod: key }));
    }

    /// Kills a pod the way `kubectl delete pod` does; its ReplicaSet replaces it.
    pub fn kill_pod(&mut self, now: SimTime, key: PodKey, out: &mut Vec<(SimTime, ClusterEvent)>) {
        let deployment = self.pods.get(&key).map(|p| p.deployment);
        self.delete_pod(now, key, "deleted", out);
        if let Some(d) = deployment {
            self.sync_deployment(now, d, out);
        }
    }

    /// A node stops answering: NotReady, its pods lose Ready at once, the unreachable taints
    /// go on, and its pods are evicted after the default toleration.
    pub fn lose_node(&mut self, now: SimTime, node: usize, out: &mut Vec<(SimTime, ClusterEvent)>) {
        if !self.node_ready.get(node).copied().unwrap_or(false) {
            return;
        }
        self.node_ready[node] = false;
        self.node_epoch[node] += 1;
        let name = self.state.nodes()[node].name.clone();
        self.state.set_taints(node, taint_unreachable().to_vec());
        self.record(
            now,
            "NodeNotReady",
            format!("node/{name}"),
            "Node is not ready: kubelet stopped posting node status",
        );
        let keys: Vec<PodKey> = self
            .pods
            .values()
            .filter(|p| p.node == Some(node))
            .map(|p| p.key)
            .collect();
        for key in keys {
            let pod = self.pods.get_mut(&key).expect("pod exists");
            if pod.ready {
                pod.ready = false;
                let pod_name = pod.name.clone();
                self.record(
                    now,
                    "NotReady",
                    format!("pod/{pod_name}"),
                    format!("node {name} is not ready"),
                );
            }
            // Its timers die with the kubelet.
            self.pods.get_mut(&key).expect("pod exists").generation += 1;
        }
        out.push((
            now + DEFAULT_TOLERATION,
            ClusterEvent::EvictNode {
                node,
                epoch: self.node_epoch[node],
            },
        ));
    }

    /// Applies one timer.
    pub fn handle(
        &mut self,
        now: SimTime,
        event: ClusterEvent,
        out: &mut Vec<(SimTime, ClusterEvent)>,
    ) {
        match event {
            ClusterEvent::ContainerStarted { pod, generation } => {
                self.container_started(now, pod, generation, out)
            }
            ClusterEvent::ProbeTick {
                pod,
                probe,
                generation,
            } => self.probe_tick(now, pod, probe as usize, generation, out),
            ClusterEvent::ContainerExited { pod, generation } => {
                self.container_exited(now, pod, generation, "Error", out)
            }
            ClusterEvent::RestartContainer { pod, generation } => {
                let Some(p) = self.pods.get_mut(&pod) else {
                    return;
                };
                if p.generation != generation || p.is_terminating() {
                    return;
                }
                p.generation += 1;
                let generation = p.generation;
                p.restarts += 1;
                for worker in &mut p.probes {
                    worker.new_container();
                }
                // The image is present: the restart is only the container start.
                out.push((now, ClusterEvent::ContainerStarted { pod, generation }));
            }
            ClusterEvent::PodGone { pod } => {
                if !self.pods.get(&pod).is_some_and(Pod::is_terminating) {
                    return;
                }
                self.release(pod);
                let removed = self.pods.remove(&pod).expect("pod exists");
                self.deployments[removed.deployment].replica_sets[removed.replica_set]
                    .pods
                    .remove(&pod);
                self.last_pending_message.remove(&pod);
                self.record(
                    now,
                    "Deleted",
                    format!("pod/{}", removed.name),
                    "pod is gone",
                );
                self.retry_pending(now, out);
                for d in 0..self.deployments.len() {
                    self.sync_deployment(now, d, out);
                }
            }
            ClusterEvent::EvictNode { node, epoch } => {
                if self.node_epoch[node] != epoch || self.node_ready[node] {
                    return;
                }
                let keys: Vec<PodKey> = self
                    .pods
                    .values()
                    .filter(|p| p.node == Some(node) && !p.is_terminating())
                    .map(|p| p.key)
                    .collect();
                let mut touched = BTreeSet::new();
                for key in keys {
                    let name = self.pods[&key].name.clone();
                    touched.insert(self.pods[&key].deployment);
                    self.record(
                        now,
                        "TaintManagerEviction",
                        format!("pod/{name}"),
                        "Marking for deletion Pod",
                    );
                    // The kubelet is gone, so nothing waits for a grace period that no one
                    // would honour; the pod object goes once the eviction is recorded.
                    let pod = self.pods.get_mut(&key).expect("pod exists");
                    pod.deleting_since = Some(now);
                    pod.ready = false;
                    pod.status = PodStatus::Terminating;
                    out.push((now, ClusterEvent::PodGone { pod: key }));
                }
                for d in touched {
                    self.sync_deployment(now, d, out);
                }
            }
            ClusterEvent::SyncDeployment { deployment } => {
                self.sync_deployment(now, deployment, out)
            }
            ClusterEvent::DrainRetry { node } => self.drain_node(now, node, out),
        }
    }

    fn container_started(
        &mut self,
        now: SimTime,
        key: PodKey,
        generation: u32,
        out: &mut Vec<(SimTime, ClusterEvent)>,
    ) {
        let Some(pod) = self.pods.get_mut(&key) else {
            return;
        };
        if pod.generation != generation || pod.is_terminating() {
            return;
        }
        pod.started_at = Some(now);
        pod.status = PodStatus::Running;
        let name = pod.name.clone();
        let has_startup = pod.probes.iter().any(|w| w.kind == ProbeKind::Startup);
        let has_readiness = pod.probes.iter().any(|w| w.kind == ProbeKind::Readiness);
        for (idx, worker) in pod.probes.iter().enumerate() {
            out.push((
                worker.next_tick_at_or_after(now),
                ClusterEvent::ProbeTick {
                    pod: key,
                    probe: idx as u8,
                    generation,
                },
            ));
        }
        if let Some(crash) = pod.behaviour.crash_after {
            out.push((
                now + crash,
                ClusterEvent::ContainerExited {
                    pod: key,
                    generation,
                },
            ));
        }
        let becomes_ready = !has_startup && !has_readiness && pod.behaviour.healthy;
        self.record(now, "Started", format!("pod/{name}"), "Started container");
        if becomes_ready {
            self.set_ready(now, key, true, out);
        }
    }

    fn probe_tick(
        &mut self,
        now: SimTime,
        key: PodKey,
        probe: usize,
        generation: u32,
        out: &mut Vec<(SimTime, ClusterEvent)>,
    ) {
        let Some(pod) = self.pods.get_mut(&key) else {
            return;
        };
        if pod.generation != generation || pod.is_terminating() || probe >= pod.probes.len() {
            return;
        }
        let started = !pod
            .probes
            .iter()
            .any(|w| w.kind == ProbeKind::Startup && w.result() != ProbeResult::Success);
        let run = match (pod.status.clone(), pod.started_at) {
            (PodStatus::Running, Some(started_at)) => ContainerRun::Running {
                started_at,
                started,
            },
            _ => ContainerRun::NotRunning,
        };
        let healthy = pod.behaviour.healthy;
        let kind = pod.probes[probe].kind;
        let outcome = pod.probes[probe].tick(now, run, || healthy);
        let period = pod.probes[probe].probe.period;
        out.push((
            now + period,
            ClusterEvent::ProbeTick {
                pod: key,
                probe: probe as u8,
                generation,
            },
        ));
        match (kind, outcome) {
            (ProbeKind::Readiness, ProbeOutcome::Published(result)) => {
                self.set_ready(now, key, result == ProbeResult::Success, out)
            }
            (ProbeKind::Startup, ProbeOutcome::Published(ProbeResult::Success)) => {
                let no_readiness = !self.pods[&key]
                    .probes
                    .iter()
                    .any(|w| w.kind == ProbeKind::Readiness);
                if no_readiness {
                    self.set_ready(now, key, true, out);
                }
            }
            (_, ProbeOutcome::Kill) => {
                let name = self.pods[&key].name.clone();
                let what = if kind == ProbeKind::Liveness {
                    "liveness"
                } else {
                    "startup"
                };
                self.record(
                    now,
                    "Unhealthy",
                    format!("pod/{name}"),
                    format!("Container failed {what} probe, will be restarted"),
                );
                self.container_exited(now, key, generation, "Killed", out);
            }
            _ => {}
        }
    }

    fn set_ready(
        &mut self,
        now: SimTime,
        key: PodKey,
        ready: bool,
        out: &mut Vec<(SimTime, ClusterEvent)>,
    ) {
        let pod = self.pods.get_mut(&key).expect("pod exists");
        if pod.ready == ready {
            return;
        }
        pod.ready = ready;
        pod.ready_since = if ready { Some(now) } else { None };
        let (name, deployment) = (pod.name.clone(), pod.deployment);
        self.record(
            now,
            if ready { "Ready" } else { "NotReady" },
            format!("pod/{name}"),
            if ready {
                "pod is Ready"
            } else {
                "readiness probe failed"
            },
        );
        let min_ready = self.deployments[deployment].model.min_ready_seconds;
        if ready && min_ready > 0 {
            out.push((
                now + SimDuration::from_secs(min_ready as u64 + 1),
                ClusterEvent::SyncDeployment { deployment },
            ));
        }
        self.sync_deployment(now, deployment, out);
    }

    fn container_exited(
        &mut self,
        now: SimTime,
        key: PodKey,
        generation: u32,
        reason: &str,
        out: &mut Vec<(SimTime, ClusterEvent)>,
    ) {
        let Some(pod) = self.pods.get_mut(&key) else {
            return;
        };
        if pod.generation != generation || pod.is_terminating() {
            return;
        }
        pod.generation += 1;
        pod.last_exit = Some(now);
        let was_ready = pod.ready;
        pod.ready = false;
        pod.ready_since = None;
        // The kubelet's next start is at the back-off's end; deciding at that instant updates
        // its entry exactly as the real start will (§5.3).
        let start_at = pod.backoff.next_start(now);
        let decision = pod.backoff.decide(now, start_at);
        debug_assert_eq!(decision, RestartDecision::StartNow);
        let name = pod.name.clone();
        let generation = pod.generation;
        if start_at == now {
            pod.status = PodStatus::ContainerCreating;
        } else {
            pod.status = PodStatus::CrashLoopBackOff { until: start_at };
            let container = self.deployments[pod.deployment]
                .model
                .containers
                .first()
                .map(|c| c.name.clone())
                .unwrap_or_default();
            self.record(
                now,
                "BackOff",
                format!("pod/{name}"),
                RestartBackoff::message(start_at.since(now), &container, &name),
            );
        }
        out.push((
            start_at,
            ClusterEvent::RestartContainer {
                pod: key,
                generation,
            },
        ));
        self.record(
            now,
            "Exited",
            format!("pod/{name}"),
            format!("container terminated: {reason}"),
        );
        if was_ready {
            let deployment = self.pods[&key].deployment;
            self.sync_deployment(now, deployment, out);
        }
    }

    /// Whether a Deployment's rollout is complete: its current ReplicaSet has every replica
    /// the spec asks for, all of them available, and no older ReplicaSet keeps a pod.
    pub fn rollout_complete(&self, now: SimTime, deployment: usize) -> bool {
        let d = &self.deployments[deployment];
        let current = &d.replica_sets[d.current];
        current.replicas == d.replicas
            && self.available(now, deployment, d.current) >= d.replicas
            && d.replica_sets
                .iter()
                .enumerate()
                .all(|(idx, rs)| idx == d.current || rs.pods.is_empty())
    }

    /// Whether node `idx` is Ready.
    pub fn node_ready(&self, idx: usize) -> bool {
        self.node_ready.get(idx).copied().unwrap_or(false)
    }

    /// Ready pods of a Deployment that serve traffic (endpoints).
    pub fn ready_pods(&self, deployment: usize) -> impl Iterator<Item = &Pod> {
        self.pods
            .values()
            .filter(move |p| p.deployment == deployment && p.ready && !p.is_terminating())
    }

    /// Pods that are not bound and not being deleted, with the scheduler's message.
    pub fn pending(&self) -> impl Iterator<Item = &Pod> {
        self.pods
            .values()
            .filter(|p| p.node.is_none() && !p.is_terminating())
    }
}

#[cfg(test)]
mod tests;
