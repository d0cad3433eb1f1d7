//! The cluster's shape: node pools expanded to nodes (`twin.sophia.dev/v1` `Topology`, documented
//! in `docs/topology.md`).
//!
//! The manifests say what runs; they do not say on what. A topology file states the nodes: each
//! pool is `count` identical nodes named `<pool>-<index>` (`general-0`), labelled as the kubelet
//! labels them (`kubernetes.io/hostname`, `topology.kubernetes.io/zone`) plus the pool's labels,
//! with `cpu`, `memory`, `pods` and `nvidia.com/gpu` allocatable.
//!
//! Invariants: strict reading (unknown fields, negative or fractional counts, GPUs without a
//! class, unknown taint effects and malformed quantities are errors naming file, line and field);
//! node names are unique; nodes come out in pool order, then index order. The same block can be
//! embedded in another file ([`Topology::from_value`] with a base path).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::ManifestError;
use super::load::{DocContext, check_text, decode, read_text, yaml_error_diagnostic};
use super::quantity::{Quantity, parse_quantity};
use super::yaml::{FieldPositions, join_index, join_key};
use crate::diag::{Diagnostic, Location};

pub const API_VERSION: &str = "twin.sophia.dev/v1";
pub const KIND: &str = "Topology";

/// Label the kubelet sets to the node's name.
pub const HOSTNAME_LABEL: &str = "kubernetes.io/hostname";
/// Label the cloud provider sets to the node's zone.
pub const ZONE_LABEL: &str = "topology.kubernetes.io/zone";
/// The extended resource the NVIDIA device plugin advertises.
pub const GPU_RESOURCE: &str = "nvidia.com/gpu";
/// Kubelet's default `maxPods`.
pub const DEFAULT_MAX_PODS: u32 = 110;

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct TopologyDoc {
    api_version: Option<String>,
    kind: Option<String>,
    kubernetes_version: String,
    node_pools: Vec<NodePoolDoc>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NodePoolDoc {
    name: String,
    count: u32,
    cpu: Value,
    memory: Value,
    pods: Option<u32>,
    gpus: Option<GpusDoc>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    taints: Vec<Taint>,
    zone: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GpusDoc {
    count: u32,
    class: Option<String>,
    memory: Option<Value>,
}

/// A node taint, as in the Node API.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Taint {
    pub key: String,
    pub value: Option<String>,
    pub effect: TaintEffect,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize)]
pub enum TaintEffect {
    NoSchedule,
    PreferNoSchedule,
    NoExecute,
}

/// The GPUs of every node of a pool.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Gpus {
    /// Devices per node.
    pub count: u32,
    /// Device class such as `A100`, matched by the workloads' `gpu.nvidia.com/class` selector.
    pub class: String,
    /// Memory per device [bytes, as milli-units in `Quantity`].
    pub memory: Option<Quantity>,
}

/// A pool of identical nodes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NodePool {
    pub name: String,
    pub count: u32,
    /// CPU per node [millicores in `Quantity::millis`].
    pub cpu: Quantity,
    /// Memory per node [bytes × 1000 in `Quantity::millis`].
    pub memory: Quantity,
    pub pods: u32,
    pub gpus: Option<Gpus>,
    pub labels: BTreeMap<String, String>,
    pub taints: Vec<Taint>,
    pub zone: Option<String>,
}

/// One node, expanded from its pool.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Node {
    /// `<pool>-<index>`.
    pub name: String,
    pub pool: String,
    pub labels: BTreeMap<String, String>,
    pub taints: Vec<Taint>,
    /// `cpu`, `memory`, `pods`, and `nvidia.com/gpu` when the pool has GPUs.
    pub allocatable: BTreeMap<String, Quantity>,
    pub gpus: Option<Gpus>,
}

/// A cluster: its Kubernetes version, pools and nodes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Topology {
    /// Such as `1.29`; version-dependent controller rules follow it.
    pub kubernetes_version: String,
    pub pools: Vec<NodePool>,
    pub nodes: Vec<Node>,
}

/// Reads a topology file: one document of kind `Topology`.
pub fn load_topology(path: impl AsRef<Path>) -> Result<Topology, ManifestError> {
    let path = path.as_ref();
    let text = read_text(path).map_err(|diag| ManifestError::from_diagnostics(vec![diag]))?;
    topology_from_str(path, &text)
}

/// Reads topology text as if it were the file `name`.
pub fn topology_from_str(name: &Path, text: &str) -> Result<Topology, ManifestError> {
    let fail = |diags: Vec<Diagnostic>| ManifestError::from_diagnostics(diags);
    check_text(name, text.as_bytes()).map_err(|diag| fail(vec![diag]))?;
    let documents = super::yaml::parse_documents(text)
        .map_err(|err| fail(vec![yaml_error_diagnostic(name, &err, |p| p)]))?;
    let here = Location {
        file: name.to_path_buf(),
        ..Default::default()
    };
    let [document] = documents.as_slice() else {
        let message = format!(
            "a topology file holds exactly one document, found {}",
            documents.len()
        );
        return Err(fail(vec![Diagnostic::error(here, "", message)]));
    };
    let ctx = DocContext {
        file: name,
        document: document.index,
        positions: Arc::new(document.positions.clone()),
        start: document.start,
    };
    for (field, expected) in [("apiVersion", API_VERSION), ("kind", KIND)] {
        match document.value.get(field).and_then(Value::as_str) {
            Some(found) if found == expected => {}
            Some(found) => {
                return Err(fail(vec![
                    ctx.error(field, format!("expected {expected:?}, found {found:?}")),
                ]));
            }
            None => {
                return Err(fail(vec![ctx.error(
                    field,
                    format!("missing field `{field}` (expected {expected:?})"),
                )]));
            }
        }
    }
    Topology::from_value(
        &document.value,
        &document.positions,
        name,
        document.index,
        "",
    )
    .map_err(fail)
}

impl Topology {
    /// Reads a topology block found at `base` (the empty path for a whole document) of a parsed
    /// document; `positions` are the document's. `apiVersion` and `kind` may be left out when the
    /// block is embedded, but must be right when present. Every problem found is returned.
    pub fn from_value(
        value: &Value,
        positions: &FieldPositions,
        file: &Path,
        document: usize,
        base: &str,
    ) -> Result<Topology, Vec<Diagnostic>> {
        let start = positions
            .nearest(base)
            .map(|(_, span)| span.value)
            .unwrap_or_default();
        let ctx = DocContext {
            file,
            document,
            positions: Arc::new(positions.clone()),
            start,
        };
        let doc: TopologyDoc = decode(&ctx, value, base).map_err(|diag| vec![diag])?;
        let mut errors = Vec::new();
        if let Some(api_version) = doc
            .api_version
            .as_deref()
            .filter(|found| *found != API_VERSION)
        {
            errors.push(ctx.error(
                &join_key(base, "apiVersion"),
                format!("expected {API_VERSION:?}, found {api_version:?}"),
            ));
        }
        if let Some(kind) = doc.kind.as_deref().filter(|found| *found != KIND) {
            errors.push(ctx.error(
                &join_key(base, "kind"),
                format!("expected {KIND:?}, found {kind:?}"),
            ));
        }
        let pools_path = join_key(base, "nodePools");
        let mut pools = Vec::new();
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        for (idx, pool) in doc.node_pools.into_iter().enumerate() {
            let path = join_index(&pools_path, idx);
            if let Some(first) = seen.insert(pool.name.clone(), idx) {
                errors.push(ctx.error(
                    &join_key(&path, "name"),
                    format!(
                        "pool name {:?} is also used by nodePools[{first}]",
                        pool.name
                    ),
                ));
            }
            if pool.name.is_empty() || !is_dns_label(&pool.name) {
                errors.push(ctx.error(
                    &join_key(&path, "name"),
                    format!("{:?} must be a DNS label (lowercase letters, digits and '-'), as node names are built from it", pool.name),
                ));
            }
            let mut quantity = |field: &str, raw: &Value| -> Option<Quantity> {
                let field_path = join_key(&path, field);
                let text = match raw {
                    Value::String(text) => text.clone(),
                    Value::Number(number) => number.to_string(),
                    _ => {
                        errors.push(ctx.error(
                            &field_path,
                            "expected a quantity such as \"32\" or \"128Gi\"",
                        ));
                        return None;
                    }
                };
                match parse_quantity(&text) {
                    Ok(q) if q.millis > 0 => Some(q),
                    Ok(_) => {
                        errors.push(
                            ctx.error(&field_path, format!("{text:?} must be more than zero")),
                        );
                        None
                    }
                    Err(err) => {
                        errors.push(ctx.error(&field_path, err.to_string()));
                        None
                    }
                }
            };
            let cpu = quantity("cpu", &pool.cpu);
            let memory = quantity("memory", &pool.memory);
            let gpus = match pool.gpus {
                None => None,
                Some(gpus) => {
                    let gpu_memory = gpus.memory.as_ref().map(|raw| quantity("gpus.memory", raw));
                    match gpus.class {
                        Some(class) if !class.is_empty() => Some(Gpus {
                            count: gpus.count,
                            class,
                            memory: gpu_memory.flatten(),
                        }),
                        _ => {
                            let message = "a GPU pool must name its GPU class (such as A100), which workloads select on";
                            errors.push(
                                ctx.error(&join_key(&join_key(&path, "gpus"), "class"), message),
                            );
                            None
                        }
                    }
                }
            };
            for reserved in [HOSTNAME_LABEL, ZONE_LABEL] {
                if pool.labels.contains_key(reserved) {
                    errors.push(ctx.error(
                        &join_key(&join_key(&path, "labels"), reserved),
                        format!("{reserved} is set by twin for each node (from its name or the pool's zone); remove it"),
                    ));
                }
            }
            if let (Some(cpu), Some(memory)) = (cpu, memory) {
                pools.push(NodePool {
                    name: pool.name,
                    count: pool.count,
                    cpu,
                    memory,
                    pods: pool.pods.unwrap_or(DEFAULT_MAX_PODS),
                    gpus,
                    labels: pool.labels,
                    taints: pool.taints,
                    zone: pool.zone,
                });
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let nodes = expand(&pools);
        let mut names = BTreeMap::new();
        for node in &nodes {
            if names.insert(node.name.clone(), node.pool.clone()).is_some() {
                errors.push(ctx.error(
                    &pools_path,
                    format!(
                        "node name {:?} comes out of two pools; rename one",
                        node.name
                    ),
                ));
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Topology {
            kubernetes_version: doc.kubernetes_version,
            pools,
            nodes,
        })
    }

    /// Total GPUs over all nodes.
    pub fn gpu_count(&self) -> u64 {
        self.nodes
            .iter()
            .filter_map(|node| node.gpus.as_ref())
            .map(|gpus| u64::from(gpus.count))
            .sum()
    }
}

fn is_dns_label(name: &str) -> bool {
    name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

fn expand(pools: &[NodePool]) -> Vec<Node> {
    let mut nodes = Vec::new();
    for pool in pools {
        for index in 0..pool.count {
            let name = format!("{}-{index}", pool.name);
            let mut labels = pool.labels.clone();
            labels.insert(HOSTNAME_LABEL.to_string(), name.clone());
            if let Some(zone) = &pool.zone {
                labels.insert(ZONE_LABEL.to_string(), zone.clone());
            }
            let mut allocatable = BTreeMap::new();
            allocatable.insert("cpu".to_string(), pool.cpu);
            allocatable.insert("memory".to_string(), pool.memory);
            allocatable.insert(
                "pods".to_string(),
                Quantity::from_millis(i128::from(pool.pods) * 1000),
            );
            if let Some(gpus) = &pool.gpus {
                allocatable.insert(
                    GPU_RESOURCE.to_string(),
                    Quantity::from_millis(i128::from(gpus.count) * 1000),
                );
            }
            nodes.push(Node {
                name,
                pool: pool.name.clone(),
                labels,
                taints: pool.taints.clone(),
                allocatable,
                gpus: pool.gpus.clone(),
            });
        }
    }
    nodes
}
