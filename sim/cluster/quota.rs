//! ResourceQuota admission (spec/kubernetes.md §3), as the API server's admission plugin
//! does it for one create: which quotas care about the object, the container constraints,
//! the usage it would add, and upstream's exact rejection text.
//!
//! Follows the quota admission plugin and evaluators of Kubernetes v1.35 (plugin/pkg/
//! admission/resourcequota, pkg/quota/v1/evaluator/core). Not modelled: quota scopes other
//! than BestEffort/NotBestEffort, in-place resize (update deltas), hugepages.
//!
//! Invariants: admission is all-or-nothing (either every matching quota is charged or none
//! is); an admitted object never takes any quota's `used` above its `hard`.

use std::collections::{BTreeMap, BTreeSet};

use crate::cluster::model::{PodSpec, ResourceList};
use crate::cluster::quantity::format_amount;

/// Which pods a quota applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuotaScope {
    /// Pods with no requests or limits at all.
    BestEffort,
    NotBestEffort,
}

/// A ResourceQuota as admission reads it (its status, not its spec: a brand-new quota whose
/// `status.hard` the controller has not filled is not enforced yet).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResourceQuota {
    pub name: String,
    pub namespace: String,
    /// `status.hard`; `None` until the quota controller has synced the quota.
    pub hard: Option<ResourceList>,
    /// `status.used`; a tracked resource missing here makes admission refuse.
    pub used: ResourceList,
    pub scopes: Vec<QuotaScope>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServiceType {
    ClusterIp,
    NodePort,
    LoadBalancer,
}

/// An object being created.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QuotaObject<'a> {
    Pod(&'a PodSpec),
    Service {
        namespace: String,
        service_type: ServiceType,
        ports: i64,
    },
    PersistentVolumeClaim {
        namespace: String,
        storage_bytes: i64,
        storage_class: Option<String>,
    },
}

/// Why admission refused, in upstream's words.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct QuotaRejection {
    pub quota: String,
    /// e.g. `exceeded quota: compute, requested: requests.cpu=500m, used: requests.cpu=2, limited: requests.cpu=2`.
    pub message: String,
}

impl QuotaRejection {
    /// The 403 text: `pods "web-7d9f-" is forbidden: exceeded quota: ...`. For objects made
    /// from `generateName` (ReplicaSet pods) upstream prints the generate-name prefix, since
    /// the name is not generated yet when admission runs.
    pub fn forbidden(&self, resource_plural: &str, name: &str) -> String {
        format!(
            "{resource_plural} \"{name}\" is forbidden: {}",
            self.message
        )
    }

    /// The ReplicaSet's `FailedCreate` event message.
    pub fn failed_create_event(&self, pod_name: &str) -> String {
        format!("Error creating: {}", self.forbidden("pods", pod_name))
    }
}

impl QuotaObject<'_> {
    fn namespace(&self) -> &str {
        match self {
            QuotaObject::Pod(pod) => &pod.namespace,
            QuotaObject::Service { namespace, .. }
            | QuotaObject::PersistentVolumeClaim { namespace, .. } => namespace,
        }
    }

    /// Whether the object's evaluator counts resource `name` at all.
    fn evaluator_tracks(&self, name: &str) -> bool {
        match self {
            QuotaObject::Pod(_) => {
                matches!(
                    name,
                    "pods"
                        | "count/pods"
                        | "cpu"
                        | "memory"
                        | "ephemeral-storage"
                        | "limits.cpu"
                        | "limits.memory"
                        | "limits.ephemeral-storage"
                ) || name.starts_with("requests.")
            }
            QuotaObject::Service { .. } => {
                matches!(
                    name,
                    "services" | "count/services" | "services.loadbalancers" | "services.nodeports"
                )
            }
            QuotaObject::PersistentVolumeClaim { .. } => {
                matches!(
                    name,
                    "persistentvolumeclaims" | "count/persistentvolumeclaims" | "requests.storage"
                ) || name.contains(".storageclass.storage.k8s.io/")
            }
        }
    }

    /// The usage the object adds, keyed by quota resource name.
    pub fn usage(&self) -> ResourceList {
        let mut usage = ResourceList::new();
        match self {
            QuotaObject::Pod(pod) => {
                usage.insert("pods".into(), 1);
                usage.insert("count/pods".into(), 1);
                let all = || pod.containers.iter().chain(&pod.init_containers);
                let requests = pod.requests();
                let limits = pod.limits();
                // A key is charged only when some container sets it, as upstream's helper does.
                let requested = |name: &str| all().any(|c| c.requests.contains_key(name));
                let limited = |name: &str| all().any(|c| c.limits.contains_key(name));
                for (base, amount) in [
                    ("cpu", requests.cpu_millis),
                    ("memory", requests.memory_bytes),
                    ("ephemeral-storage", requests.ephemeral_storage_bytes),
                ] {
                    if requested(base) {
                        usage.insert(format!("requests.{base}"), amount);
                        if base != "ephemeral-storage" {
                            usage.insert(base.to_string(), amount);
                        }
                    }
                }
                for (base, amount) in [("cpu", limits.cpu_millis), ("memory", limits.memory_bytes)]
                {
                    if limited(base) {
                        usage.insert(format!("limits.{base}"), amount);
                    }
                }
                if limited("ephemeral-storage") {
                    usage.insert(
                        "limits.ephemeral-storage".into(),
                        limits.ephemeral_storage_bytes,
                    );
                }
                // Extended resources are charged as requests only; there is no limits form.
                for (name, amount) in &requests.extended {
                    usage.insert(format!("requests.{name}"), *amount);
                }
            }
            QuotaObject::Service {
                service_type,
                ports,
                ..
            } => {
                usage.insert("services".into(), 1);
                usage.insert("count/services".into(), 1);
                usage.insert(
                    "services.loadbalancers".into(),
                    i64::from(*service_type == ServiceType::LoadBalancer),
                );
                let node_ports = if *service_type == ServiceType::ClusterIp {
                    0
                } else {
                    *ports
                };
                usage.insert("services.nodeports".into(), node_ports);
            }
            QuotaObject::PersistentVolumeClaim {
                storage_bytes,
                storage_class,
                ..
            } => {
                usage.insert("persistentvolumeclaims".into(), 1);
                usage.insert("count/persistentvolumeclaims".into(), 1);
                usage.insert("requests.storage".into(), *storage_bytes);
                if let Some(class) = storage_class {
                    usage.insert(
                        format!("{class}.storageclass.storage.k8s.io/requests.storage"),
                        *storage_bytes,
                    );
                    usage.insert(
                        format!("{class}.storageclass.storage.k8s.io/persistentvolumeclaims"),
                        1,
                    );
                }
            }
        }
        usage
    }

    fn in_scopes(&self, scopes: &[QuotaScope]) -> bool {
        let QuotaObject::Pod(pod) = self else {
            return scopes.is_empty();
        };
        let best_effort = pod
            .containers
            .iter()
            .chain(&pod.init_containers)
            .all(|c| c.requests.is_empty() && c.limits.is_empty());
        scopes.iter().all(|scope| match scope {
            QuotaScope::BestEffort => best_effort,
            QuotaScope::NotBestEffort => !best_effort,
        })
    }
}

/// The cpu/memory rule: when a quota tracks cpu or memory, every container must set it.
fn constraints(pod: &PodSpec, tracked: &BTreeSet<&str>) -> Result<(), String> {
    let mut missing: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for container in pod.containers.iter().chain(&pod.init_containers) {
        for &name in tracked {
            let has = match name {
                "cpu" | "requests.cpu" => container.requests.contains_key("cpu"),
                "memory" | "requests.memory" => container.requests.contains_key("memory"),
                "limits.cpu" => container.limits.contains_key("cpu"),
                "limits.memory" => container.limits.contains_key("memory"),
                _ => true,
            };
            if !has {
                missing
                    .entry(name)
                    .or_default()
                    .insert(container.name.as_str());
            }
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    let parts: Vec<String> = missing
        .iter()
        .map(|(name, containers)| {
            format!(
                "must specify {name} for: {}",
                containers.iter().copied().collect::<Vec<_>>().join(",")
            )
        })
        .collect();
    Err(parts.join("; "))
}

fn pretty(list: &ResourceList) -> String {
    list.iter()
        .map(|(name, amount)| format!("{name}={}", format_amount(name, *amount)))
        .collect::<Vec<_>>()
        .join(",")
}

/// Admits `object` against `quotas` (any namespace; only the object's own count). On
/// success returns the quotas with `used` charged; on refusal, upstream's message.
pub fn admit(
    quotas: &[ResourceQuota],
    object: &QuotaObject<'_>,
) -> Result<Vec<ResourceQuota>, QuotaRejection> {
    let mut updated: Vec<ResourceQuota> = quotas.to_vec();
    let mut interesting = Vec::new();
    let mut order: Vec<usize> = (0..quotas.len()).collect();
    order.sort_by(|a, b| quotas[*a].name.cmp(&quotas[*b].name));
    for idx in order {
        let quota = &quotas[idx];
        let Some(hard) = &quota.hard else { continue };
        if quota.namespace != object.namespace() || !object.in_scopes(&quota.scopes) {
            continue;
        }
        let tracked: BTreeSet<&str> = hard
            .keys()
            .map(String::as_str)
            .filter(|n| object.evaluator_tracks(n))
            .collect();
        if let QuotaObject::Pod(pod) = object
            && let Err(detail) = constraints(pod, &tracked)
        {
            return Err(QuotaRejection {
                quota: quota.name.clone(),
                message: format!("failed quota: {}: {detail}", quota.name),
            });
        }
        if tracked.is_empty() {
            continue;
        }
        if tracked.iter().any(|name| !quota.used.contains_key(*name)) {
            let names: Vec<&str> = tracked.iter().copied().collect();
            return Err(QuotaRejection {
                quota: quota.name.clone(),
                message: format!(
                    "status unknown for quota: {}, resources: {}",
                    quota.name,
                    names.join(",")
                ),
            });
        }
        interesting.push(idx);
    }
    let delta = object.usage();
    for idx in interesting {
        let quota = &quotas[idx];
        let hard = quota
            .hard
            .as_ref()
            .expect("only synced quotas are interesting");
        let requested: ResourceList = delta
            .iter()
            .filter(|(n, _)| hard.contains_key(*n))
            .map(|(n, v)| (n.clone(), *v))
            .collect();
        let exceeded: Vec<&String> = requested
            .iter()
            .filter(|(name, amount)| {
                quota.used.get(*name).copied().unwrap_or(0) + **amount > hard[*name]
            })
            .map(|(name, _)| name)
            .collect();
        if !exceeded.is_empty() {
            let pick = |list: &ResourceList| -> ResourceList {
                exceeded
                    .iter()
                    .map(|n| ((*n).clone(), list.get(*n).copied().unwrap_or(0)))
                    .collect()
            };
            return Err(QuotaRejection {
                quota: quota.name.clone(),
                message: format!(
                    "exceeded quota: {}, requested: {}, used: {}, limited: {}",
                    quota.name,
                    pretty(&pick(&requested)),
                    pretty(&pick(&quota.used)),
                    pretty(&pick(hard))
                ),
            });
        }
        for (name, amount) in requested {
            *updated[idx].used.entry(name).or_insert(0) += amount;
        }
    }
    Ok(updated)
}

#[cfg(test)]
mod tests;
