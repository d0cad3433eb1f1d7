//! `twin stand-in --listen 127.0.0.1:PORT --profile FILE [--service NAME]`: one pod of a service
//! profile as a real HTTP server on loopback (`live::stand_in`), until `--max-requests`,
//! `--for` or Ctrl-C, whichever comes first. This front parses arguments, checks the profile
//! through the library and serves.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail};
use twin::engine::{SimDuration, parse_duration};
use twin::live::stand_in::{self, PodProfile};

#[derive(clap::Args)]
pub struct StandInArgs {
    /// Where to listen; loopback only (127.0.0.0/8 or [::1]); port 0 picks a free one.
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: SocketAddr,
    /// A service profiles file (kind ServiceProfiles, docs/scenarios.md).
    #[arg(long, value_name = "FILE")]
    pub profile: PathBuf,
    /// Which profile of the file (needed when it has more than one).
    #[arg(long, value_name = "NAME")]
    pub service: Option<String>,
    /// Stop after answering this many requests (the control endpoints do not count).
    #[arg(long, value_name = "N")]
    pub max_requests: Option<u64>,
    /// Stop after this long (`30s`, `5m`).
    #[arg(long = "for", value_name = "DURATION", value_parser = duration_arg)]
    pub for_duration: Option<SimDuration>,
    /// Seed of the service-time and failure draws.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

fn duration_arg(text: &str) -> Result<SimDuration, String> {
    parse_duration(text).map_err(|err| err.to_string())
}

pub fn run(args: StandInArgs) -> anyhow::Result<ExitCode> {
    twin::live::require_loopback(args.listen)?;
    if args.max_requests == Some(0) {
        bail!("--max-requests 0 would stop before serving anything");
    }
    let profile = twin::scenario::build::load_profile(&args.profile, args.service.as_deref())
        .with_context(|| format!("loading {}", args.profile.display()))?;
    let pod = PodProfile {
        service_time: profile.service_time.clone(),
        error_rate: profile.error_rate,
        error_status: profile.error_status,
        concurrency: Some(profile.concurrency as usize),
        seed: args.seed,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let served = runtime.block_on(async {
        let handle = stand_in::spawn_profile(args.listen, pod).await?;
        outln!(
            "stand-in for {} listening on http://{} (health: /__twin/health)",
            profile.name,
            handle.addr()
        );
        let until = async {
            match args.for_duration {
                Some(d) => tokio::time::sleep(Duration::from_nanos(d.as_nanos())).await,
                None => std::future::pending().await,
            }
        };
        let enough = async {
            match args.max_requests {
                Some(n) => {
                    while handle.served() < n {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = until => {}
            _ = enough => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        Ok::<u64, anyhow::Error>(handle.served())
    })?;
    outln!("stand-in stopped after serving {served} requests");
    Ok(ExitCode::SUCCESS)
}
