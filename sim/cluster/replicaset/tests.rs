use super::*;
use crate::cluster::model::Container;

fn web_pod() -> PodSpec {
    PodSpec {
        name: String::new(),
        namespace: "prod".into(),
        containers: vec![Container {
            name: "web".into(),
            requests: [("cpu".to_string(), 500)].into(),
            ..Container::default()
        }],
        ..PodSpec::default()
    }
}

fn cpu_quota(hard_millis: i64) -> ResourceQuota {
    ResourceQuota {
        name: "compute".into(),
        namespace: "prod".into(),
        hard: Some([("requests.cpu".to_string(), hard_millis)].into()),
        used: [("requests.cpu".to_string(), 0)].into(),
        scopes: Vec::new(),
    }
}

#[test]
fn slow_start_stops_after_the_first_batch_with_a_rejection() {
    // Goal: batches 1, 2, 4, ...; the batch that hits the quota finishes, later ones are not
    // attempted. Method: room for 5 pods of 500m, 10 wanted: batches 1 + 2 + 4 (the 4th
    // batch's last two are rejected), 3 never attempted.
    let outcome = create_pods(&[cpu_quota(2500)], &web_pod(), "web-7d9f8b6c5-", 10);
    assert_eq!(
        (outcome.created, outcome.rejected, outcome.not_attempted),
        (5, 2, 3)
    );
    assert_eq!(outcome.quotas[0].used["requests.cpu"], 2500);
    assert_eq!(outcome.failed_create_events.len(), 2);
    assert_eq!(
        outcome.failed_create_events[0],
        "Error creating: pods \"web-7d9f8b6c5-\" is forbidden: exceeded quota: compute, requested: requests.cpu=500m, used: requests.cpu=2500m, limited: requests.cpu=2500m"
    );
    assert_eq!(
        outcome.replica_failure.as_deref(),
        Some(
            "pods \"web-7d9f8b6c5-\" is forbidden: exceeded quota: compute, requested: requests.cpu=500m, used: requests.cpu=2500m, limited: requests.cpu=2500m"
        )
    );
}

#[test]
fn a_sync_without_rejections_creates_everything_up_to_the_burst_limit() {
    // Goal: no failure, no condition; at most 500 per sync. Method: no quota, 600 wanted.
    let outcome = create_pods(&[], &web_pod(), "web-", 600);
    assert_eq!(
        (outcome.created, outcome.rejected, outcome.not_attempted),
        (500, 0, 100)
    );
    assert_eq!(outcome.replica_failure, None);
}
