//! The checks, grouped by the part of the platform they read. Each `run` pushes its findings
//! into the sink; none of them reads another's findings, so their order does not matter (the
//! findings are sorted afterwards).

mod capacity;
mod mesh;
mod monitoring;
mod workload;

use super::Sink;
use super::model::{Model, Service};

pub(super) fn run_all(model: &Model, out: &mut Sink<'_>) {
    mesh::run(model, out);
    capacity::run(model, out);
    workload::run(model, out);
    monitoring::run(model, out);
}

/// Resolves an Istio or DNS host written in `from_namespace` to a Service of the inventory:
/// `name`, `name.ns`, `name.ns.svc` and `name.ns.svc.cluster.local`. Returns `Err(())` for a host
/// that is not in the cluster's Service form (an external name, a wildcard).
pub(super) fn resolve_service<'m>(
    model: &'m Model,
    host: &str,
    from_namespace: &str,
) -> Result<Option<&'m Service>, ()> {
    let host = host.strip_suffix(".cluster.local").unwrap_or(host);
    let host = host.strip_suffix(".svc").unwrap_or(host);
    let parts: Vec<&str> = host.split('.').collect();
    let (name, namespace) = match parts.as_slice() {
        [name] if !name.contains('*') => (*name, from_namespace),
        [name, namespace] if !name.contains('*') => (*name, *namespace),
        _ => return Err(()),
    };
    Ok(model
        .services
        .iter()
        .find(|s| s.name == name && s.namespace == namespace))
}

/// Shows a quantity in milli-units in the unit a reader expects for the resource.
pub(super) fn show_quantity(resource: &str, milli: i128) -> String {
    let base = resource.rsplit('.').next().unwrap_or(resource);
    let is_memory = base.ends_with("memory") || base.ends_with("storage");
    if is_memory {
        let bytes = milli / 1000;
        const GI: i128 = 1 << 30;
        const MI: i128 = 1 << 20;
        if bytes % GI == 0 {
            format!("{}Gi", bytes / GI)
        } else if bytes % MI == 0 {
            format!("{}Mi", bytes / MI)
        } else {
            format!("{bytes}")
        }
    } else if milli % 1000 == 0 {
        format!("{}", milli / 1000)
    } else {
        format!("{milli}m")
    }
}
