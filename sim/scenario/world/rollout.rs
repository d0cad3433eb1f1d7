//! Progressive delivery inside the World: a release driven through a RollingUpdate, Istio
//! canary steps or a blue-green switch, watched by an analysis whose abort rule is a PromQL
//! expression over the run's own Prometheus, as Argo Rollouts and Flagger analyses are.
//!
//! Each rollout is a small state machine advanced by its own tick (the analysis interval, or
//! 10 s without an analysis). Traffic moves by rewriting the destination weights of the
//! VirtualService rules that send to the stable (active) subset, and recompiling them, in every
//! load stream routed through that VirtualService; rules that send only elsewhere (the plan's
//! header-matched canary rule) keep their destinations.
//!
//! Modelling choices, stated: a check fails when the expression returns any sample (a scalar
//! fails when it is not 0), so an abort rule reads like an alert's expression; no data passes,
//! as an alert with no data stays inactive; an evaluation error counts as a failed check (as
//! Flagger counts a failed query). The canary's pods are counted Ready through the cluster
//! model, so a canary whose pods never become Ready holds the rollout at its first step.
//!
//! Invariants: weights are only changed here; each rollout ends at most once, and a rollout
//! that has ended changes nothing more.

use promql_parser::parser::Expr;

use super::{Event, ServiceModel, Target, World};
use crate::cluster::runtime::AppBehaviour;
use crate::engine::{Scheduler, SimDuration, SimTime};
use crate::mesh::route::{Destination, VirtualService};
use crate::promql::{Engine as PromqlEngine, EngineOptions, Value as PromValue};
use crate::scenario::schema::RolloutResult;

/// The tick of a rollout without an analysis.
pub const TICK_WITHOUT_ANALYSIS: SimDuration = SimDuration::from_secs(10);

/// The new version as one Deployment runs it.
#[derive(Clone, Debug)]
pub struct ReleaseModel {
    pub labels: std::collections::BTreeMap<String, String>,
    pub model: ServiceModel,
    pub behaviour: AppBehaviour,
}

/// An analysis, parsed.
#[derive(Clone, Debug)]
pub struct Analysis {
    pub abort_when: String,
    pub expr: Expr,
    pub interval: SimDuration,
    pub failure_limit: u32,
}

/// The VirtualService a rollout steers: the load streams routed through it, the service, and
/// the subset traffic moves from (`from`, stable or active) and to (`to`, canary or preview).
#[derive(Clone, Debug)]
pub struct RouteControl {
    pub loads: Vec<usize>,
    pub service: String,
    pub from: String,
    pub to: String,
}

#[derive(Clone, Debug)]
pub enum Strategy {
    RollingUpdate {
        deployment: usize,
        release: ReleaseModel,
        analysis_for: SimDuration,
    },
    Canary {
        stable: usize,
        canary: usize,
        canary_replicas: Option<i32>,
        routes: RouteControl,
        steps: Vec<(u32, SimDuration)>,
        release_canary: ReleaseModel,
        release_stable: ReleaseModel,
    },
    BlueGreen {
        preview: usize,
        preview_replicas: Option<i32>,
        routes: RouteControl,
        release: ReleaseModel,
        switch_after: SimDuration,
        analysis_for: SimDuration,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Not started yet.
    Scheduled,
    /// The new pods are coming up (canary, preview, or the rolling update itself).
    Starting,
    /// Canary step `index`, held since `since`.
    Step {
        index: usize,
        since: SimTime,
    },
    /// The stable Deployment is rolling out the new version.
    Promoting,
    /// Blue-green: the preview has been Ready since `since`, waiting for the switch.
    ReadySince {
        since: SimTime,
    },
    /// Watching after the switch (blue-green) or after the rolling update completed.
    Watching {
        since: SimTime,
    },
    Ended,
}

/// One rollout in a run.
#[derive(Clone, Debug)]
pub struct RolloutRuntime {
    pub name: String,
    pub kind: &'static str,
    pub at: SimTime,
    pub strategy: Strategy,
    pub analysis: Option<Analysis>,
    phase: Phase,
    pub failed_checks: u32,
    pub checks: u32,
    /// When it ended, and how.
    pub ended: Option<(SimTime, RolloutResult)>,
    /// Requests that ended with a 5xx while it was in progress, and those Envoy answered itself.
    pub server_errors: u64,
    pub mesh_errors: u64,
    /// The canary's (preview's) weight after each change, with its time.
    pub weights: Vec<(SimTime, u32)>,
}

impl RolloutRuntime {
    pub fn new(
        name: String,
        kind: &'static str,
        at: SimTime,
        strategy: Strategy,
        analysis: Option<Analysis>,
    ) -> RolloutRuntime {
        RolloutRuntime {
            name,
            kind,
            at,
            strategy,
            analysis,
            phase: Phase::Scheduled,
            failed_checks: 0,
            checks: 0,
            ended: None,
            server_errors: 0,
            mesh_errors: 0,
            weights: Vec::new(),
        }
    }

    /// Whether it has started and not ended.
    pub fn in_progress(&self) -> bool {
        !matches!(self.phase, Phase::Scheduled | Phase::Ended)
    }

    fn tick(&self) -> SimDuration {
        self.analysis
            .as_ref()
            .map_or(TICK_WITHOUT_ANALYSIS, |a| a.interval)
    }
}

/// What one tick decided, applied after the rollout's state is released.
enum Action {
    Nothing,
    Abort(String),
    Succeed(String),
}

impl World {
    /// Advances rollout `idx`: starts it, moves its traffic, runs its analysis, ends it.
    pub(super) fn rollout_tick(&mut self, sched: &mut Scheduler<Event>, idx: usize) {
        let now = sched.now();
        let phase = self.rollouts[idx].phase;
        if phase == Phase::Ended {
            return;
        }
        if phase == Phase::Scheduled {
            self.start_rollout(now, idx);
            sched.after(
                self.rollouts[idx].tick(),
                Event::RolloutTick {
                    rollout: idx as u16,
                },
            );
            return;
        }
        // The analysis runs while traffic is on the new version.
        let analysed = match (&self.rollouts[idx].strategy, phase) {
            (Strategy::RollingUpdate { .. }, _) => true,
            (Strategy::Canary { .. }, Phase::Step { .. }) => true,
            (Strategy::BlueGreen { .. }, Phase::Watching { .. }) => true,
            _ => false,
        };
        if analysed && let Some(reason) = self.analyse(now, idx) {
            self.end_rollout(now, idx, Action::Abort(reason));
            return;
        }
        let action = self.advance(now, idx, phase);
        match action {
            Action::Nothing => sched.after(
                self.rollouts[idx].tick(),
                Event::RolloutTick {
                    rollout: idx as u16,
                },
            ),
            other => self.end_rollout(now, idx, other),
        }
    }

    fn start_rollout(&mut self, now: SimTime, idx: usize) {
        let strategy = self.rollouts[idx].strategy.clone();
        let name = self.rollouts[idx].name.clone();
        let kind = self.rollouts[idx].kind;
        self.note(
            now,
            "RolloutStarted",
            format!("rollout/{name}"),
            format!("{kind} begins"),
        );
        match strategy {
            Strategy::RollingUpdate {
                deployment,
                release,
                ..
            } => self.release(now, deployment, release),
            Strategy::Canary {
                canary,
                canary_replicas,
                routes,
                release_canary,
                ..
            } => {
                self.set_weight(now, idx, &routes, 0);
                self.release(now, canary, release_canary);
                if let Some(n) = canary_replicas {
                    self.scale_for_rollout(now, canary, n);
                }
            }
            Strategy::BlueGreen {
                preview,
                preview_replicas,
                routes,
                release,
                ..
            } => {
                self.set_weight(now, idx, &routes, 0);
                self.release(now, preview, release);
                if let Some(n) = preview_replicas {
                    self.scale_for_rollout(now, preview, n);
                }
            }
        }
        self.rollouts[idx].phase = Phase::Starting;
    }

    /// One step of the state machine once started, after the analysis passed.
    fn advance(&mut self, now: SimTime, idx: usize, phase: Phase) -> Action {
        let strategy = self.rollouts[idx].strategy.clone();
        match strategy {
            Strategy::RollingUpdate {
                deployment,
                analysis_for,
                ..
            } => match phase {
                Phase::Starting if self.cluster.rollout_complete(now, deployment) => {
                    self.rollouts[idx].phase = Phase::Watching { since: now };
                    self.advance(now, idx, Phase::Watching { since: now })
                }
                Phase::Watching { since } if now.since(since) >= analysis_for => {
                    Action::Succeed("every pod runs the new version".into())
                }
                _ => Action::Nothing,
            },
            Strategy::Canary {
                stable,
                canary,
                routes,
                steps,
                release_stable,
                ..
            } => match phase {
                Phase::Starting => {
                    if self
                        .cluster
                        .ready_pods(canary)
                        .any(|p| p.replica_set == self.cluster.deployments[canary].current)
                    {
                        match steps.first() {
                            Some((weight, _)) => {
                                self.set_weight(now, idx, &routes, *weight);
                                self.rollouts[idx].phase = Phase::Step {
                                    index: 0,
                                    since: now,
                                };
                            }
                            None => self.promote(now, idx, stable, release_stable),
                        }
                    }
                    Action::Nothing
                }
                Phase::Step { index, since } => {
                    if now.since(since) >= steps[index].1 {
                        match steps.get(index + 1) {
                            Some((weight, _)) => {
                                self.set_weight(now, idx, &routes, *weight);
                                self.rollouts[idx].phase = Phase::Step {
                                    index: index + 1,
                                    since: now,
                                };
                            }
                            None => self.promote(now, idx, stable, release_stable),
                        }
                    }
                    Action::Nothing
                }
                Phase::Promoting if self.cluster.rollout_complete(now, stable) => {
                    self.set_weight(now, idx, &routes, 0);
                    Action::Succeed("the stable Deployment runs the new version".into())
                }
                _ => Action::Nothing,
            },
            Strategy::BlueGreen {
                preview,
                routes,
                switch_after,
                analysis_for,
                ..
            } => match phase {
                Phase::Starting if self.cluster.rollout_complete(now, preview) => {
                    self.rollouts[idx].phase = Phase::ReadySince { since: now };
                    self.advance(now, idx, Phase::ReadySince { since: now })
                }
                Phase::ReadySince { since } if now.since(since) >= switch_after => {
                    self.set_weight(now, idx, &routes, 100);
                    self.rollouts[idx].phase = Phase::Watching { since: now };
                    Action::Nothing
                }
                Phase::Watching { since } if now.since(since) >= analysis_for => {
                    Action::Succeed("the preview serves every request".into())
                }
                _ => Action::Nothing,
            },
        }
    }

    fn promote(&mut self, now: SimTime, idx: usize, stable: usize, release: ReleaseModel) {
        let name = self.rollouts[idx].name.clone();
        self.note(
            now,
            "RolloutPromoted",
            format!("rollout/{name}"),
            "the canary passed every step; the stable Deployment gets the new version",
        );
        self.release(now, stable, release);
        self.rollouts[idx].phase = Phase::Promoting;
    }

    /// Runs the abort rule once; the reason to abort when the failure limit is reached.
    fn analyse(&mut self, now: SimTime, idx: usize) -> Option<String> {
        let analysis = self.rollouts[idx].analysis.as_ref()?;
        let engine = PromqlEngine::with_options(&self.storage.store, EngineOptions::default());
        let verdict = match engine.eval_instant_expr(&analysis.expr, now.as_millis()) {
            Ok(PromValue::Vector(samples)) if !samples.is_empty() => Some(format!(
                "abortWhen returned {} (first value {})",
                samples.len(),
                crate::promql::format_float(samples[0].value)
            )),
            Ok(PromValue::Scalar(v)) if v != 0.0 => Some(format!(
                "abortWhen returned {}",
                crate::promql::format_float(v)
            )),
            Ok(_) => None,
            Err(err) => Some(format!("abortWhen failed to evaluate: {err}")),
        };
        let limit = analysis.failure_limit;
        let r = &mut self.rollouts[idx];
        r.checks += 1;
        let failed = verdict?;
        r.failed_checks += 1;
        let (name, count) = (r.name.clone(), r.failed_checks);
        self.note(
            now,
            "AnalysisFailed",
            format!("rollout/{name}"),
            format!("check {count} of {limit} failed: {failed}"),
        );
        (count >= limit).then_some(failed)
    }

    fn end_rollout(&mut self, now: SimTime, idx: usize, action: Action) {
        let name = self.rollouts[idx].name.clone();
        let (result, reason) = match action {
            Action::Nothing => return,
            Action::Abort(reason) => (RolloutResult::Aborted, reason),
            Action::Succeed(reason) => (RolloutResult::Succeeded, reason),
        };
        if result == RolloutResult::Aborted {
            // Roll back: traffic first, then the pods.
            let strategy = self.rollouts[idx].strategy.clone();
            let mut out = std::mem::take(&mut self.cluster_out);
            match strategy {
                Strategy::RollingUpdate { deployment, .. } => {
                    self.cluster.undo(now, deployment, &mut out);
                }
                Strategy::Canary {
                    canary,
                    routes,
                    stable,
                    ..
                } => {
                    self.set_weight(now, idx, &routes, 0);
                    // A promotion already under way is undone too.
                    if self.rollouts[idx].phase == Phase::Promoting {
                        self.cluster.undo(now, stable, &mut out);
                    }
                    self.cluster.undo(now, canary, &mut out);
                }
                Strategy::BlueGreen {
                    preview, routes, ..
                } => {
                    self.set_weight(now, idx, &routes, 0);
                    self.cluster.undo(now, preview, &mut out);
                }
            }
            self.cluster_out = out;
        }
        let kind = match result {
            RolloutResult::Aborted => "RolloutAborted",
            RolloutResult::Succeeded => "RolloutSucceeded",
        };
        self.note(now, kind, format!("rollout/{name}"), reason);
        let r = &mut self.rollouts[idx];
        r.phase = Phase::Ended;
        r.ended = Some((now, result));
    }

    /// A new revision of `deployment` with the release's labels and behaviour.
    fn release(&mut self, now: SimTime, deployment: usize, release: ReleaseModel) {
        let mut template = self.cluster.deployments[deployment].model.template.clone();
        template.labels.extend(release.labels);
        self.models[deployment].push(release.model);
        let mut out = std::mem::take(&mut self.cluster_out);
        self.cluster
            .roll_out(now, deployment, template, release.behaviour, &mut out);
        self.cluster_out = out;
    }

    fn scale_for_rollout(&mut self, now: SimTime, deployment: usize, replicas: i32) {
        let mut out = std::mem::take(&mut self.cluster_out);
        self.cluster.scale(now, deployment, replicas, &mut out);
        self.cluster_out = out;
    }

    /// Sends `weight` percent of what goes to `routes.from` to `routes.to` instead, in every
    /// rule of the VirtualService that sends to `routes.from`.
    fn set_weight(&mut self, now: SimTime, idx: usize, routes: &RouteControl, weight: u32) {
        for &load in &routes.loads {
            let Target::Routed {
                vs,
                specs,
                clusters,
                table,
                ..
            } = &mut self.loads[load].target
            else {
                continue;
            };
            for rule in specs.iter_mut() {
                let Some(from) = rule.route.iter().find(|d| {
                    crate::mesh::lower::short_host(&d.host) == routes.service
                        && d.subset.as_deref() == Some(routes.from.as_str())
                }) else {
                    continue;
                };
                let to = Destination {
                    subset: Some(routes.to.clone()),
                    weight,
                    ..from.clone()
                };
                let from = Destination {
                    weight: 100 - weight.min(100),
                    ..from.clone()
                };
                rule.route = vec![from, to];
            }
            *vs = VirtualService::new(specs).expect("weights of 0 and 100 always compile");
            *table = super::route_table(vs, clusters);
        }
        let name = self.rollouts[idx].name.clone();
        self.rollouts[idx].weights.push((now, weight));
        self.note(
            now,
            "TrafficShifted",
            format!("rollout/{name}"),
            format!(
                "{}: {} {}%, {} {}%",
                routes.service,
                routes.from,
                100 - weight.min(100),
                routes.to,
                weight
            ),
        );
    }
}
