//! One pod behind an open-loop arrival stream, run on the engine: the event path the mesh
//! later feeds, reduced to arrivals and completions. It exists so the queue, the arrival
//! streams and the service distributions can be checked together against queueing theory.
//!
//! Invariants: requests are numbered in arrival order; every arrival is either started,
//! queued or rejected exactly once; every started request completes once.

use super::theory::BatchMeans;
use super::{Admission, ArrivalProcess, Arrivals, PodQueue, ServiceTime, WorkloadError};
use crate::engine::{Engine, RngTree, Scheduler, SimTime};

/// What to run.
#[derive(Clone, Debug)]
pub struct SinglePodCase {
    pub arrivals: ArrivalProcess,
    pub service: ServiceTime,
    pub concurrency: u32,
    /// Requests to generate in all.
    pub requests: u64,
    /// The first requests, left out of the statistics because they find the queue empty.
    pub warmup_requests: u64,
    /// Batches for the confidence interval of the mean wait (at least 10).
    pub batches: u32,
    pub seed: u64,
}

/// What came out.
#[derive(Clone, Debug)]
pub struct SinglePodRun {
    /// Queue waits of the measured requests [s], in the order they started (arrival order,
    /// since the backlog is FIFO).
    pub wait_secs: BatchMeans,
    pub started: u64,
    pub completed: u64,
    /// Requests that had to wait at all.
    pub waited: u64,
    pub end: SimTime,
    pub events: u64,
}

#[derive(Clone, Copy, Debug)]
enum PodEvent {
    Arrival,
    Completion,
}

/// Runs the case to completion: all requests arrive, and the pod drains.
pub fn simulate(case: &SinglePodCase) -> Result<SinglePodRun, WorkloadError> {
    if case.concurrency == 0 {
        return Err(WorkloadError::InvalidShape {
            field: "concurrency",
            why: "a pod serves at least one request".to_string(),
        });
    }
    let rng = RngTree::new(case.seed);
    let mut arrivals = Arrivals::new(
        case.arrivals.clone(),
        rng.stream("workload/pod/arrivals"),
        SimTime::ZERO,
    )?;
    let sampler = case.service.sampler()?;
    let mut service_rng = rng.stream("workload/pod/service");
    let mut queue: PodQueue<u64> = PodQueue::new(case.concurrency);
    let measured = case.requests.saturating_sub(case.warmup_requests);
    let mut run = SinglePodRun {
        wait_secs: BatchMeans::new(measured, case.batches.max(10)),
        started: 0,
        completed: 0,
        waited: 0,
        end: SimTime::ZERO,
        events: 0,
    };
    let mut engine: Engine<PodEvent> = Engine::new();
    let mut generated = 0u64;
    if case.requests > 0
        && let Some(first) = arrivals.next_arrival()
    {
        engine.scheduler().at(first, PodEvent::Arrival);
    }
    let warmup = case.warmup_requests;
    let mut start = |scheduler: &mut Scheduler<PodEvent>,
                     run: &mut SinglePodRun,
                     request: u64,
                     waited_secs: f64| {
        run.started += 1;
        if waited_secs > 0.0 {
            run.waited += 1;
        }
        if request >= warmup {
            run.wait_secs.record(waited_secs);
        }
        scheduler.after(sampler.sample(&mut service_rng), PodEvent::Completion);
    };
    let stats = engine.run_until(SimTime::MAX, |scheduler, event| match event {
        PodEvent::Arrival => {
            let request = generated;
            generated += 1;
            if generated < case.requests
                && let Some(next) = arrivals.next_arrival()
            {
                scheduler.at(next, PodEvent::Arrival);
            }
            match queue.arrive(scheduler.now(), request) {
                Admission::Started(started) => start(scheduler, &mut run, started.item, 0.0),
                Admission::Queued | Admission::Rejected(_) => {}
            }
        }
        PodEvent::Completion => {
            run.completed += 1;
            run.end = scheduler.now();
            if let Some(started) = queue.complete(scheduler.now()) {
                start(
                    scheduler,
                    &mut run,
                    started.item,
                    started.waited.as_secs_f64(),
                );
            }
        }
    });
    run.events = stats.events;
    Ok(run)
}
