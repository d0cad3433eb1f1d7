//! Pod template checks: image tags and pull policy, GPU pods without probes, and objects a pod
//! names that the inventory does not define.

use crate::diag::Severity;
use crate::lint::Sink;
use crate::lint::model::{Model, Workload};

pub(super) fn run(model: &Model, out: &mut Sink<'_>) {
    for workload in &model.workloads {
        images_are_pinned(workload, out);
        gpu_pods_have_probes(workload, out);
        references_exist(model, workload, out);
    }
}

/// The tag of an image reference (`None` when it has none); a digest counts as pinned.
fn image_tag(image: &str) -> Option<&str> {
    if image.contains('@') {
        return Some("@digest");
    }
    // The tag follows the last ':' after the last '/' (a registry port comes before a '/').
    let last = image.rsplit('/').next().unwrap_or(image);
    last.split_once(':').map(|(_, tag)| tag)
}

fn images_are_pinned(workload: &Workload, out: &mut Sink<'_>) {
    for container in &workload.containers {
        let tag = image_tag(&container.image);
        if tag == Some("@digest") {
            continue;
        }
        let floating = matches!(tag, None | Some("latest"));
        // Kubernetes defaults the policy to Always for `latest` or no tag, else IfNotPresent.
        let policy = container.image_pull_policy.clone().unwrap_or_else(|| {
            if floating {
                "Always".into()
            } else {
                "IfNotPresent".into()
            }
        });
        if policy != "IfNotPresent" {
            continue;
        }
        let looks_floating = floating || tag.is_some_and(|t| t.contains("latest"));
        if !looks_floating {
            continue;
        }
        let how = if container.image_pull_policy.is_some() {
            "imagePullPolicy: IfNotPresent".to_string()
        } else {
            "the default imagePullPolicy IfNotPresent (the tag is not literally `latest`)"
                .to_string()
        };
        out.push(
            Severity::Warning,
            "image-latest-if-not-present",
            workload.src,
            format!("{}.image", container.field),
            format!(
                "container {} runs the moving tag `{}` with {how}: each node keeps whichever build it pulled first, so replicas run different code and a rollout may change nothing",
                container.name, container.image
            ),
            "pin an immutable tag or digest (e.g. a version or git sha), or set imagePullPolicy: Always",
        );
    }
}

fn gpu_pods_have_probes(workload: &Workload, out: &mut Sink<'_>) {
    if workload.gpu_count() == 0 {
        return;
    }
    for container in &workload.containers {
        let missing: Vec<&str> = [
            ("livenessProbe", container.has_liveness_probe),
            ("readinessProbe", container.has_readiness_probe),
        ]
        .into_iter()
        .filter(|(_, present)| !present)
        .map(|(name, _)| name)
        .collect();
        if missing.is_empty() {
            continue;
        }
        out.push(
            Severity::Warning,
            "gpu-pod-without-probes",
            workload.src,
            container.field.clone(),
            format!(
                "container {} of GPU Deployment {} has no {}: a hung model server keeps its GPU and gets traffic as soon as the process starts, before the model is loaded",
                container.name,
                workload.name,
                missing.join(" or ")
            ),
            "add a readinessProbe that checks the model is loaded and a livenessProbe (with a startupProbe for long model loads)",
        );
    }
}

fn references_exist(model: &Model, workload: &Workload, out: &mut Sink<'_>) {
    let ns = &workload.namespace;
    let key = |name: &str| (ns.clone(), name.to_string());
    if let Some(class) = &workload.priority_class
        && !model.priority_classes.contains(class)
        && class != "system-cluster-critical"
        && class != "system-node-critical"
    {
        out.push(
            Severity::Warning,
            "reference-undefined",
            workload.src,
            "spec.template.spec.priorityClassName",
            format!("PriorityClass {class} is not in the inventory (it may be created elsewhere); without it the pods are rejected at admission"),
            format!("define PriorityClass {class}"),
        );
    }
    if let Some(account) = &workload.service_account
        && account != "default"
        && !model.service_accounts.contains(&key(account))
    {
        out.push(
            Severity::Warning,
            "reference-undefined",
            workload.src,
            "spec.template.spec.serviceAccountName",
            format!("ServiceAccount {ns}/{account} is not in the inventory (it may be created elsewhere); without it the ReplicaSet cannot create pods"),
            format!("define ServiceAccount {account} in namespace {ns}"),
        );
    }
    let kinds = [
        (
            "Secret",
            &workload.secret_refs,
            &model.secrets,
            "the container cannot start (CreateContainerConfigError)",
        ),
        (
            "ConfigMap",
            &workload.config_map_refs,
            &model.config_maps,
            "the pod cannot start",
        ),
        (
            "PersistentVolumeClaim",
            &workload.pvc_refs,
            &model.persistent_volume_claims,
            "the pod stays Pending",
        ),
    ];
    for (kind, refs, defined, effect) in kinds {
        for (name, field) in refs {
            if defined.contains(&key(name)) {
                continue;
            }
            out.push(
                Severity::Warning,
                "reference-undefined",
                workload.src,
                field.clone(),
                format!("{kind} {ns}/{name} is not in the inventory (it may be created elsewhere); without it {effect}"),
                format!("define {kind} {name} in namespace {ns}, or mark the reference optional"),
            );
        }
    }
}
