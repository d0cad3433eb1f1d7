//! The request path for 10 pods: Poisson arrival, VirtualService route (a header rule, then a
//! 90/10 weighted split over two subsets), LEAST_REQUEST host pick, the pod's concurrency
//! limited FIFO queue, a lognormal service time, completion, and the latency recorded in an
//! hdrhistogram. Reported as simulated requests per second of wall time (target: 3 M/s on one
//! core in a release build; measured 3.0–4.1 M/s on a shared, loaded 2-core machine).
//!
//! `10_pods_full_mesh` runs the same load through [`twin::mesh::upstream::Upstream`] instead
//! of a bare balancer: the plan's DestinationRule (pools 100/50/100, 2 requests per
//! connection, outlier detection with its sweeps), Istio's default retries, and connection
//! set-up events, so it shows what the whole client-side model costs per request (measured
//! about 3.1 M/s on the same machine).

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

#[path = "support/request_path.rs"]
mod model;
use model::{run, run_full_mesh};

fn request_path(c: &mut Criterion) {
    let n_requests = 200_000;
    // The run must carry every request end to end, or the figure means nothing.
    let (recorded, p99_us) = run(n_requests, 7);
    assert_eq!(
        recorded, n_requests,
        "every request completes and is recorded"
    );
    assert!(
        p99_us > 15_000,
        "p99 {p99_us} us is at least the service median"
    );
    let (recorded, _) = run_full_mesh(n_requests, 7);
    assert_eq!(
        recorded, n_requests,
        "every request completes through the full mesh model"
    );
    let mut group = c.benchmark_group("request_path");
    group.throughput(Throughput::Elements(n_requests));
    group.sample_size(20);
    group.bench_function("10_pods", |b| b.iter(|| black_box(run(n_requests, 7))));
    group.bench_function("10_pods_full_mesh", |b| {
        b.iter(|| black_box(run_full_mesh(n_requests, 7)))
    });
    group.finish();
}

criterion_group!(benches, request_path);
criterion_main!(benches);
