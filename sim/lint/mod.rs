//! Cross-object findings over a loaded inventory: what a careful reviewer of the manifests would
//! say before anything runs.
//!
//! `lint` owns the checks and their findings, nothing else: it never reads files (the
//! `manifests` loader does), never simulates, and never changes the inventory. Each check is a
//! pure function of a flat [`model::Model`] lowered from the inventory, so it can be tested on a
//! small fixture folder or a hand-built model.
//!
//! Invariants:
//! - every finding has a stable kebab-case `check` id, one-line `message` and `fix`, and a
//!   location (the field's position when the loader knows it, else the object's origin);
//! - output order is deterministic: findings are sorted by (severity, file, line, column,
//!   check, object, message) and every map is ordered;
//! - severities: `error` for what breaks at runtime (a subset that selects no pod, a route to
//!   nothing, a quota that blocks the HPA ceiling, a series nothing produces), `warning` for what
//!   is risky, `info` for notes.
//!
//! The checks (each has a `fixtures/lint/<id>/{bad,good}` pair):
//!
//! | area | ids |
//! | --- | --- |
//! | mesh | `subset-selects-no-pod`, `service-selects-no-pod`, `route-to-nothing`, `destination-rule-host-unknown`, `istio-ignored-field`, `istio-field-meaning`, `outlier-detection-never-ejects`, `authorization-rules-split`, `authorization-principal-matches-nothing` |
//! | capacity | `anti-affinity-exceeds-nodes`, `rollout-cannot-surge`, `no-node-admits-pod`, `node-selector-excludes-gpu-class`, `quota-blocks-hpa-ceiling`, `quota-requires-requests`, `hpa-metric-without-adapter`, `hpa-target-missing`, `hpa-fights-argo-self-heal`, `argo-path-not-in-inventory` |
//! | pods | `image-latest-if-not-present`, `gpu-pod-without-probes`, `reference-undefined` (also Gateways) |
//! | monitoring | `series-never-produced`, `alert-unit-mismatch`, `zero-denominator`, `slo-inverted-ratio`, `slo-query-without-window`, `sloth-field-case`, `promql-parse-error` |
//!
//! Semantics mirrored: Kubernetes 1.29 scheduling, quota and HPA rules (spec/kubernetes.md),
//! Istio 1.7+ DestinationRule translation and Envoy 1.40 outlier detection (spec/mesh.md),
//! Prometheus 2.42 scraping and PromQL (spec/prometheus.md), Sloth v0.11 spec schemas.

pub mod model;

mod checks;
mod lower;
pub mod promql;
pub mod render;

pub use lower::lower;
pub use render::{render_json, render_text};

use crate::diag::{Location, Severity};
use crate::manifests::Inventory;
use crate::manifests::topology::Topology;
use model::{Model, ObjectRef, SourceId};

/// One finding.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    pub severity: Severity,
    /// Stable kebab-case id of the check, e.g. `subset-selects-no-pod`.
    pub check: &'static str,
    pub object: ObjectRef,
    pub location: Location,
    /// The field path inside the object the finding is about (may be empty).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub field: String,
    pub message: String,
    pub fix: String,
}

/// Runs every check over the inventory (and the topology, when given).
pub fn lint(inventory: &Inventory, topology: Option<&Topology>) -> Vec<Finding> {
    lint_model(&lower(inventory, topology))
}

/// Runs every check over an already lowered model.
pub fn lint_model(model: &Model) -> Vec<Finding> {
    let mut out = Sink {
        model,
        findings: Vec::new(),
    };
    checks::run_all(model, &mut out);
    let mut findings = out.findings;
    findings.sort_by(|a, b| {
        (
            std::cmp::Reverse(a.severity),
            &a.location,
            a.check,
            &a.object,
            &a.message,
        )
            .cmp(&(
                std::cmp::Reverse(b.severity),
                &b.location,
                b.check,
                &b.object,
                &b.message,
            ))
    });
    findings.dedup();
    findings
}

/// Collects findings, resolving each field path to a position.
pub(crate) struct Sink<'m> {
    model: &'m Model,
    findings: Vec<Finding>,
}

impl Sink<'_> {
    pub(crate) fn push(
        &mut self,
        severity: Severity,
        check: &'static str,
        src: SourceId,
        field: impl Into<String>,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) {
        let field = field.into();
        let source = &self.model.sources[src];
        let location = self.locate(src, &field);
        self.findings.push(Finding {
            severity,
            check,
            object: source.object.clone(),
            location,
            field,
            message: message.into(),
            fix: fix.into(),
        });
    }
}

impl Sink<'_> {
    /// The position of `field`, or of its nearest known parent, or the object's origin.
    fn locate(&self, src: SourceId, field: &str) -> Location {
        let mut path = field;
        while !path.is_empty() {
            if let Some(location) = lower::field_location(&self.model.sources[src], path) {
                return location;
            }
            match path.rfind(['.', '[']) {
                Some(cut) => path = &path[..cut],
                None => break,
            }
        }
        self.model.sources[src].origin.clone()
    }
}

#[cfg(test)]
mod tests;
