//! The classic hold model (pop the earliest event, push one at now + Exp(1) s) at 1,000, 10,000
//! and 1,000,000 pending events, for twin's `EventQueue` and, as the floor, a bare
//! `std::collections::BinaryHeap<(u64, u64)>` keyed by (time, sequence) doing the same holds.
//! Both draw their increments from the same ChaCha8 stream, so the difference is the queue.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rand::RngExt;
use rand_distr::Exp1;
use twin::engine::{EventQueue, RngTree, SimRng, SimTime};

/// One Exp(1) increment in nanoseconds (mean one second).
#[inline]
fn exp_ns(rng: &mut SimRng) -> u64 {
    let draw: f64 = rng.sample(Exp1);
    (draw * 1e9) as u64
}

fn bench_hold(c: &mut Criterion) {
    let mut group = c.benchmark_group("hold");
    group.throughput(Throughput::Elements(1));
    for &n_pending in &[1_000usize, 10_000, 1_000_000] {
        let (warm, measure) = if n_pending >= 1_000_000 {
            (2, 6)
        } else {
            (1, 3)
        };
        group
            .warm_up_time(Duration::from_secs(warm))
            .measurement_time(Duration::from_secs(measure));

        group.bench_with_input(
            BenchmarkId::new("twin_event_queue", n_pending),
            &n_pending,
            |b, &n| {
                let mut rng = RngTree::new(7).stream("bench/hold");
                let mut queue: EventQueue<u32> = EventQueue::new();
                for idx in 0..n {
                    queue.push(SimTime::from_nanos(exp_ns(&mut rng)), idx as u32);
                }
                b.iter(|| {
                    let (now, payload) = queue.pop().expect("the hold keeps the queue full");
                    queue.push(
                        SimTime::from_nanos(now.as_nanos() + exp_ns(&mut rng)),
                        black_box(payload),
                    );
                });
            },
        );

        group.bench_with_input(
            BenchmarkId::new("bare_binary_heap", n_pending),
            &n_pending,
            |b, &n| {
                let mut rng = RngTree::new(7).stream("bench/hold");
                let mut heap: BinaryHeap<Reverse<(u64, u64)>> = BinaryHeap::with_capacity(n + 1);
                let mut seq = 0u64;
                for _ in 0..n {
                    heap.push(Reverse((exp_ns(&mut rng), seq)));
                    seq += 1;
                }
                b.iter(|| {
                    let Reverse((now, _)) = heap.pop().expect("the hold keeps the heap full");
                    heap.push(Reverse((now + exp_ns(&mut rng), black_box(seq))));
                    seq += 1;
                });
            },
        );
    }
    group.finish();
}

criterion_group!(benches, bench_hold);
criterion_main!(benches);
