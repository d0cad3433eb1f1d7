//! Configurations that live inside ConfigMaps: Loki, Promtail, and the plan's GPU sharing block.
//!
//! Loki 2.x and Promtail 2.x configurations are large and version-dependent; a small typed subset
//! is read and every other field is kept as written (`other`). The GPU sharing block is the
//! plan's own format: `nvidia.com/gpu.sharing.strategy` and `nvidia.com/gpu.sharing.max-clients`
//! lines, read as the NVIDIA device plugin's sharing settings (strategy `mps` or
//! `time-slicing`, and how many pods share one device).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::prometheus::{KubernetesSdConfig, RelabelConfig, StaticConfig};

/// Loki's configuration file (`loki.yaml`).
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
pub struct LokiConfig {
    pub auth_enabled: Option<bool>,
    pub server: Option<ServerConfig>,
    pub limits_config: Option<BTreeMap<String, Value>>,
    pub schema_config: Option<Value>,
    pub storage_config: Option<Value>,
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

/// The `server:` block shared by Loki and Promtail.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
pub struct ServerConfig {
    pub http_listen_port: Option<u16>,
    pub grpc_listen_port: Option<u16>,
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

/// Promtail's configuration file (`promtail.yaml`).
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
pub struct PromtailConfig {
    pub server: Option<ServerConfig>,
    pub positions: Option<Value>,
    #[serde(default)]
    pub clients: Vec<PromtailClient>,
    #[serde(default)]
    pub scrape_configs: Vec<PromtailScrapeConfig>,
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
pub struct PromtailClient {
    pub url: String,
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
pub struct PromtailScrapeConfig {
    pub job_name: String,
    #[serde(default)]
    pub kubernetes_sd_configs: Vec<KubernetesSdConfig>,
    #[serde(default)]
    pub static_configs: Vec<StaticConfig>,
    /// Each stage as written (`docker: {}`, `regex: {expression: ...}`); their meaning is
    /// Promtail's and the twin does not run them.
    #[serde(default)]
    pub pipeline_stages: Vec<Value>,
    #[serde(default)]
    pub relabel_configs: Vec<RelabelConfig>,
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

/// How pods share one GPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum GpuSharingStrategy {
    /// CUDA Multi-Process Service: concurrent kernels, memory split between clients.
    Mps,
    /// Time slicing: clients take turns on the whole device.
    TimeSlicing,
}

/// The plan's GPU sharing block: each physical GPU is offered as `replicas` schedulable units.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct GpuSharing {
    pub strategy: GpuSharingStrategy,
    pub replicas: u32,
}

pub const GPU_SHARING_STRATEGY_KEY: &str = "nvidia.com/gpu.sharing.strategy";
pub const GPU_SHARING_MAX_CLIENTS_KEY: &str = "nvidia.com/gpu.sharing.max-clients";

/// Why a GPU sharing block was refused: the field (relative to the block) and the message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GpuSharingProblem {
    pub field: String,
    pub message: String,
    /// The problem is the key itself (an unknown key), not its value.
    pub at_key: bool,
}

impl GpuSharing {
    /// Reads the block from its parsed mapping.
    pub fn from_value(value: &Value) -> Result<GpuSharing, GpuSharingProblem> {
        let problem = |field: &str, message: String| GpuSharingProblem {
            field: field.to_string(),
            message,
            at_key: false,
        };
        let Value::Object(map) = value else {
            return Err(problem(
                "",
                "the GPU sharing block must be lines of `key: value`".into(),
            ));
        };
        for key in map.keys() {
            if key != GPU_SHARING_STRATEGY_KEY && key != GPU_SHARING_MAX_CLIENTS_KEY {
                let message = format!(
                    "unknown key; expected {GPU_SHARING_STRATEGY_KEY} or {GPU_SHARING_MAX_CLIENTS_KEY}"
                );
                return Err(GpuSharingProblem {
                    at_key: true,
                    ..problem(key, message)
                });
            }
        }
        let strategy = match map.get(GPU_SHARING_STRATEGY_KEY) {
            None => return Err(problem("", format!("missing {GPU_SHARING_STRATEGY_KEY}"))),
            Some(Value::String(text)) => match text.as_str() {
                "mps" => GpuSharingStrategy::Mps,
                "time-slicing" | "timeSlicing" | "time_slicing" => GpuSharingStrategy::TimeSlicing,
                other => {
                    return Err(problem(
                        GPU_SHARING_STRATEGY_KEY,
                        format!("{other:?} is not a sharing strategy (mps or time-slicing)"),
                    ));
                }
            },
            Some(_) => {
                return Err(problem(
                    GPU_SHARING_STRATEGY_KEY,
                    "expected a string (mps or time-slicing)".into(),
                ));
            }
        };
        let replicas = match map.get(GPU_SHARING_MAX_CLIENTS_KEY) {
            None => {
                return Err(problem(
                    "",
                    format!("missing {GPU_SHARING_MAX_CLIENTS_KEY}"),
                ));
            }
            Some(Value::String(text)) => text.trim().parse::<u32>().ok(),
            Some(Value::Number(number)) => number.as_u64().and_then(|n| u32::try_from(n).ok()),
            Some(_) => None,
        };
        match replicas {
            Some(count) if count >= 1 => Ok(GpuSharing {
                strategy,
                replicas: count,
            }),
            _ => Err(problem(
                GPU_SHARING_MAX_CLIENTS_KEY,
                "expected a whole number of clients, 1 or more".into(),
            )),
        }
    }
}
