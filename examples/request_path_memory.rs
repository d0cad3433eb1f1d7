//! Shows that the request path's memory is flat in the number of requests (issue 5, README
//! "Performance"): the `request_path` bench's model (10 pods, VirtualService, LEAST_REQUEST,
//! FIFO pod queues, hdrhistogram; then with the full client-side mesh model) carries 1 M and
//! then 10 M requests, and the peak resident memory is printed after each, with the rate.
//!
//! `cargo run --release --example request_path_memory`

use std::time::Instant;

#[path = "../benches/support/request_path.rs"]
mod model;

fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn main() {
    let paths: [(&str, fn(u64, u64) -> (u64, u64)); 2] = [
        ("10 pods", model::run),
        ("10 pods, full mesh", model::run_full_mesh),
    ];
    for ((name, run), n) in paths
        .iter()
        .flat_map(|path| [(path, 1_000_000u64), (path, 10_000_000)])
    {
        let started = Instant::now();
        let (recorded, p99_us) = run(n, 7);
        let wall = started.elapsed().as_secs_f64();
        assert_eq!(recorded, n, "every request completes and is recorded");
        println!(
            "{name:<19} {n:>10} requests: {wall:.2} s, {:.2} M requests/s, p99 {:.1} ms, peak RSS {} KiB",
            n as f64 / wall / 1e6,
            p99_us as f64 / 1000.0,
            peak_rss_kib().map_or("?".to_string(), |k| k.to_string())
        );
    }
}
