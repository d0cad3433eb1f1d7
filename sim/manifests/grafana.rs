//! Grafana dashboard JSON: the parts the twin draws (title, uid, panels and their queries).
//!
//! Grafana's dashboard model is open (plugins add fields), so unknown fields are ignored.
//! Both the HTTP API's `{"dashboard": {...}}` wrapper and the bare model are read; row panels
//! keep their nested `panels`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
pub struct Dashboard {
    pub title: String,
    pub uid: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub panels: Vec<Panel>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
pub struct Panel {
    pub title: Option<String>,
    #[serde(rename = "type")]
    pub panel_type: Option<String>,
    pub id: Option<i64>,
    pub datasource: Option<Value>,
    #[serde(default)]
    pub targets: Vec<Target>,
    /// A row's own panels (collapsed rows keep them here).
    #[serde(default)]
    pub panels: Vec<Panel>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
pub struct Target {
    pub expr: Option<String>,
    #[serde(rename = "legendFormat")]
    pub legend_format: Option<String>,
    #[serde(rename = "refId")]
    pub ref_id: Option<String>,
}

impl Dashboard {
    /// Every panel, rows' nested panels included, in document order.
    pub fn all_panels(&self) -> Vec<&Panel> {
        let mut out = Vec::new();
        let mut stack: Vec<&Panel> = self.panels.iter().rev().collect();
        while let Some(panel) = stack.pop() {
            out.push(panel);
            stack.extend(panel.panels.iter().rev());
        }
        out
    }
}
