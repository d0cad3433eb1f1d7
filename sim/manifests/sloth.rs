//! Sloth SLO specifications (Sloth v0.11+), in both forms Sloth reads:
//!
//! - the Kubernetes CRD `sloth.slok.dev/v1` `PrometheusServiceLevel`, whose fields are camelCase
//!   (`errorQuery`, `pageAlert`);
//! - the plain spec file `version: "prometheus/v1"`, whose fields are snake_case (`error_query`,
//!   `page_alert`).
//!
//! Both spellings are accepted in either form and every multi-word field name is recorded as
//! written, so that lint can report the plan's mistake (snake_case fields under the CRD header,
//! which the API server prunes as unknown) instead of this reader refusing the file.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::ObjectMeta;
use super::yaml::{join_index, join_key};

/// Which of Sloth's two file forms a document is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum SloForm {
    /// `apiVersion: sloth.slok.dev/v1`, `kind: PrometheusServiceLevel`: camelCase fields.
    Crd,
    /// `version: "prometheus/v1"`: snake_case fields.
    Plain,
}

/// How a multi-word field name was spelled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum FieldCase {
    Camel,
    Snake,
}

/// A multi-word field name as it was written, with its path in the document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WrittenField {
    pub path: String,
    pub name: String,
    pub case: FieldCase,
}

/// One Sloth SLO file (either form), lowered to one shape.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PrometheusServiceLevel {
    pub form: SloForm,
    /// Present in the CRD form only.
    pub metadata: Option<ObjectMeta>,
    pub spec: SloSpec,
    /// Every multi-word field name of the document, as written.
    pub written_fields: Vec<WrittenField>,
}

impl PrometheusServiceLevel {
    /// The fields spelled in the case the form does not use (snake_case under the CRD header,
    /// camelCase in the plain form).
    pub fn mismatched_fields(&self) -> impl Iterator<Item = &WrittenField> {
        let expected = match self.form {
            SloForm::Crd => FieldCase::Camel,
            SloForm::Plain => FieldCase::Snake,
        };
        self.written_fields
            .iter()
            .filter(move |field| field.case != expected)
    }
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SloSpec {
    /// The plain form's `version` (`prometheus/v1`); absent in the CRD form.
    pub version: Option<String>,
    pub service: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub slos: Vec<Slo>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Slo {
    pub name: String,
    /// Target in percent, e.g. `99.9`.
    pub objective: f64,
    pub description: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    pub sli: Sli,
    #[serde(default)]
    pub alerting: Option<SloAlerting>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Sli {
    pub events: Option<SliEvents>,
    pub raw: Option<SliRaw>,
    pub plugin: Option<Value>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SliEvents {
    #[serde(rename = "errorQuery", alias = "error_query")]
    pub error_query: String,
    #[serde(rename = "totalQuery", alias = "total_query")]
    pub total_query: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SliRaw {
    #[serde(rename = "errorRatioQuery", alias = "error_ratio_query")]
    pub error_ratio_query: String,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SloAlerting {
    pub name: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    #[serde(rename = "pageAlert", alias = "page_alert")]
    pub page_alert: Option<SloAlert>,
    #[serde(rename = "ticketAlert", alias = "ticket_alert")]
    pub ticket_alert: Option<SloAlert>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SloAlert {
    pub disable: Option<bool>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

/// The multi-word field names of Sloth's schema, camelCase first.
const MULTI_WORD_FIELDS: &[(&str, &str)] = &[
    ("errorQuery", "error_query"),
    ("totalQuery", "total_query"),
    ("errorRatioQuery", "error_ratio_query"),
    ("pageAlert", "page_alert"),
    ("ticketAlert", "ticket_alert"),
];

/// Records every multi-word Sloth field name below `value` (a spec), as written. Only keys of
/// mappings are looked at, not labels' or annotations' contents, which are user data.
pub fn written_fields(value: &Value, base: &str) -> Vec<WrittenField> {
    let mut out = Vec::new();
    let mut stack = vec![(value, base.to_string())];
    while let Some((node, path)) = stack.pop() {
        match node {
            Value::Object(map) => {
                for (key, child) in map {
                    let child_path = join_key(&path, key);
                    for (camel, snake) in MULTI_WORD_FIELDS {
                        let case = if key == camel {
                            FieldCase::Camel
                        } else if key == snake {
                            FieldCase::Snake
                        } else {
                            continue;
                        };
                        out.push(WrittenField {
                            path: child_path.clone(),
                            name: key.clone(),
                            case,
                        });
                    }
                    if key != "labels" && key != "annotations" {
                        stack.push((child, child_path));
                    }
                }
            }
            Value::Array(items) => {
                for (idx, item) in items.iter().enumerate() {
                    stack.push((item, join_index(&path, idx)));
                }
            }
            _ => {}
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}
