use super::*;
use crate::cluster::model::Container;

const MIB: i64 = 1024 * 1024;

fn quota(name: &str, hard: &[(&str, i64)], used: &[(&str, i64)]) -> ResourceQuota {
    ResourceQuota {
        name: name.into(),
        namespace: "prod".into(),
        hard: Some(hard.iter().map(|(k, v)| (k.to_string(), *v)).collect()),
        used: used.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        scopes: Vec::new(),
    }
}

fn container(name: &str, requests: &[(&str, i64)], limits: &[(&str, i64)]) -> Container {
    Container {
        name: name.into(),
        requests: requests.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        limits: limits.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        restart_policy_always: false,
    }
}

fn pod(containers: Vec<Container>) -> PodSpec {
    PodSpec {
        name: "web-7d9f8b6c5-".into(),
        namespace: "prod".into(),
        containers,
        ..PodSpec::default()
    }
}

#[test]
fn a_pod_over_the_cpu_quota_is_rejected_with_upstreams_message() {
    // Goal: the exact `exceeded quota` text, listing only the offending resources, with
    // quantities in canonical form, and the ReplicaSet's FailedCreate event built on it.
    // Method: requests.cpu is full, memory is not.
    let quotas = [quota(
        "compute",
        &[("requests.cpu", 2000), ("requests.memory", 4096 * MIB)],
        &[("requests.cpu", 2000), ("requests.memory", 1024 * MIB)],
    )];
    let p = pod(vec![container(
        "app",
        &[("cpu", 500), ("memory", 512 * MIB)],
        &[],
    )]);
    let rejection = admit(&quotas, &QuotaObject::Pod(&p)).expect_err("cpu is exhausted");
    assert_eq!(
        rejection.message,
        "exceeded quota: compute, requested: requests.cpu=500m, used: requests.cpu=2, limited: requests.cpu=2"
    );
    assert_eq!(
        rejection.failed_create_event("web-7d9f8b6c5-"),
        "Error creating: pods \"web-7d9f8b6c5-\" is forbidden: exceeded quota: compute, requested: requests.cpu=500m, used: requests.cpu=2, limited: requests.cpu=2"
    );
}

#[test]
fn several_exceeded_resources_are_listed_sorted_by_name() {
    // Goal: multiple offending resources appear in name order. Method: GPUs and memory full.
    let quotas = [quota(
        "gpu",
        &[
            ("requests.nvidia.com/gpu", 2),
            ("requests.memory", 1024 * MIB),
            ("pods", 10),
        ],
        &[
            ("requests.nvidia.com/gpu", 2),
            ("requests.memory", 1024 * MIB),
            ("pods", 3),
        ],
    )];
    let p = pod(vec![container(
        "trainer",
        &[("memory", 1536 * MIB), ("nvidia.com/gpu", 1)],
        &[("nvidia.com/gpu", 1)],
    )]);
    let rejection = admit(&quotas, &QuotaObject::Pod(&p)).expect_err("over");
    assert_eq!(
        rejection.message,
        "exceeded quota: gpu, requested: requests.memory=1536Mi,requests.nvidia.com/gpu=1, used: requests.memory=1Gi,requests.nvidia.com/gpu=2, limited: requests.memory=1Gi,requests.nvidia.com/gpu=2"
    );
}

#[test]
fn admission_charges_every_matching_quota_or_none() {
    // Goal: all-or-nothing. Method: two quotas; the second one (by name) refuses, so the
    // first is not charged; with room in both, both are charged, aliases included.
    let roomy = quota(
        "a-pods",
        &[("pods", 10), ("cpu", 8000)],
        &[("pods", 1), ("cpu", 1000)],
    );
    let tight = quota("b-limits", &[("limits.cpu", 1000)], &[("limits.cpu", 1000)]);
    let p = pod(vec![container("app", &[("cpu", 500)], &[("cpu", 500)])]);
    let err = admit(&[roomy.clone(), tight], &QuotaObject::Pod(&p)).expect_err("limits full");
    assert_eq!(err.quota, "b-limits");
    let roomy_limits = quota("b-limits", &[("limits.cpu", 4000)], &[("limits.cpu", 1000)]);
    let updated = admit(&[roomy, roomy_limits], &QuotaObject::Pod(&p)).expect("fits");
    assert_eq!(updated[0].used["pods"], 2);
    assert_eq!(
        updated[0].used["cpu"], 1500,
        "the bare cpu alias is charged as requests.cpu"
    );
    assert_eq!(updated[1].used["limits.cpu"], 1500);
}

#[test]
fn a_quota_on_cpu_requires_every_container_to_set_it() {
    // Goal: the backward-compatibility constraint and its message. Method: the sidecar lacks
    // a cpu request and both lack memory limits.
    let quotas = [quota(
        "compute",
        &[("requests.cpu", 4000), ("limits.memory", 4096 * MIB)],
        &[("requests.cpu", 0), ("limits.memory", 0)],
    )];
    let p = pod(vec![
        container("app", &[("cpu", 100)], &[]),
        container("sidecar", &[], &[]),
    ]);
    let err = admit(&quotas, &QuotaObject::Pod(&p)).expect_err("constraint");
    assert_eq!(
        err.message,
        "failed quota: compute: must specify limits.memory for: app,sidecar; must specify requests.cpu for: sidecar"
    );
}

#[test]
fn a_quota_without_usage_status_refuses_and_an_unsynced_quota_is_ignored() {
    // Goal: `status unknown` when used lacks a tracked resource; a quota whose status.hard is
    // not filled yet is not enforced. Method: the same pod against both quotas.
    let p = pod(vec![container(
        "app",
        &[("cpu", 100), ("memory", MIB)],
        &[],
    )]);
    let unknown = quota(
        "fresh",
        &[("pods", 5), ("requests.cpu", 1000)],
        &[("pods", 0)],
    );
    let err = admit(&[unknown], &QuotaObject::Pod(&p)).expect_err("unknown");
    assert_eq!(
        err.message,
        "status unknown for quota: fresh, resources: pods,requests.cpu"
    );
    let mut unsynced = quota("new", &[("pods", 0)], &[("pods", 0)]);
    unsynced.hard = None;
    assert!(admit(&[unsynced], &QuotaObject::Pod(&p)).is_ok());
}

#[test]
fn services_and_claims_are_charged_by_their_own_evaluators() {
    // Goal: services.loadbalancers, services.nodeports, persistentvolumeclaims and per-class
    // storage. Method: a LoadBalancer over its quota, a claim charged to its class.
    let svc_quota = quota(
        "net",
        &[("services.loadbalancers", 1), ("services", 10)],
        &[("services.loadbalancers", 1), ("services", 2)],
    );
    let lb = QuotaObject::Service {
        namespace: "prod".into(),
        service_type: ServiceType::LoadBalancer,
        ports: 2,
    };
    let err = admit(std::slice::from_ref(&svc_quota), &lb).expect_err("one LB only");
    assert_eq!(
        err.message,
        "exceeded quota: net, requested: services.loadbalancers=1, used: services.loadbalancers=1, limited: services.loadbalancers=1"
    );
    let cluster_ip = QuotaObject::Service {
        namespace: "prod".into(),
        service_type: ServiceType::ClusterIp,
        ports: 2,
    };
    assert_eq!(
        admit(&[svc_quota], &cluster_ip).expect("fits")[0].used["services"],
        3
    );

    let pvc_quota = quota(
        "storage",
        &[
            ("persistentvolumeclaims", 5),
            (
                "fast.storageclass.storage.k8s.io/requests.storage",
                10 << 30,
            ),
        ],
        &[
            ("persistentvolumeclaims", 0),
            ("fast.storageclass.storage.k8s.io/requests.storage", 8 << 30),
        ],
    );
    let claim = QuotaObject::PersistentVolumeClaim {
        namespace: "prod".into(),
        storage_bytes: 4 << 30,
        storage_class: Some("fast".into()),
    };
    let err = admit(&[pvc_quota], &claim).expect_err("class storage full");
    assert_eq!(
        err.message,
        "exceeded quota: storage, requested: fast.storageclass.storage.k8s.io/requests.storage=4Gi, used: fast.storageclass.storage.k8s.io/requests.storage=8Gi, limited: fast.storageclass.storage.k8s.io/requests.storage=10Gi"
    );
}

#[test]
fn quotas_of_other_namespaces_and_scopes_do_not_apply() {
    // Goal: namespace and BestEffort/NotBestEffort scoping. Method: a full quota elsewhere, and a
    // BestEffort-scoped quota against a pod with requests.
    let mut elsewhere = quota("full", &[("pods", 0)], &[("pods", 0)]);
    elsewhere.namespace = "dev".into();
    let p = pod(vec![container("app", &[("cpu", 100)], &[])]);
    assert!(admit(&[elsewhere], &QuotaObject::Pod(&p)).is_ok());
    let mut best_effort_only = quota("be", &[("pods", 0)], &[("pods", 0)]);
    best_effort_only.scopes = vec![QuotaScope::BestEffort];
    assert!(
        admit(
            std::slice::from_ref(&best_effort_only),
            &QuotaObject::Pod(&p)
        )
        .is_ok()
    );
    let empty = pod(vec![container("app", &[], &[])]);
    assert!(admit(&[best_effort_only], &QuotaObject::Pod(&empty)).is_err());
}
