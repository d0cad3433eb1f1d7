//! Times the World on the performance target: a simulated 24-hour diurnal day at a
//! 1,200 requests-per-second peak (about 60 million requests, every one simulated through the
//! mesh, the pods, the HPA and the rule groups), `fixtures/scenarios/diurnal-day-1200.yaml`.
//!
//! `cargo run --release --example day_at_1200 [SCENARIO]` prints the wall time, the requests and
//! engine events, the rate, and the peak resident memory; the README quotes its figure. The
//! scenario's own expectations are checked too, so a faster World that changed the outcome
//! would show here.

use std::time::Instant;

fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn main() -> anyhow::Result<()> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "fixtures/scenarios/diurnal-day-1200.yaml".into());
    let loaded = twin::scenario::build::load(&path)?;
    let started = Instant::now();
    let result = twin::scenario::run(&loaded, None)?;
    let wall = started.elapsed().as_secs_f64();
    let requests = result.world.arrivals;
    println!("scenario    {}", result.name);
    println!("simulated   {}", result.duration);
    println!("requests    {requests}");
    println!("events      {}", result.events);
    println!("wall        {wall:.2} s");
    println!(
        "rate        {:.2} M requests/s",
        requests as f64 / wall / 1e6
    );
    if let Some(mib) = peak_rss_mib() {
        println!("peak RSS    {mib:.0} MiB");
    }
    for (what, ok, detail) in &result.expectations {
        println!("[{}] {what}: {detail}", if *ok { "ok" } else { "FAILED" });
    }
    if !result.passed() {
        anyhow::bail!("the scenario's expectations failed");
    }
    Ok(())
}
