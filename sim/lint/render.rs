//! The two output forms of `twin lint`: text for a terminal and one stable JSON object.

use std::collections::BTreeMap;

use crate::diag::{Location, Severity};

use super::Finding;

/// Counts of inventory objects: kind → namespace (empty for cluster-scoped) → count.
pub type InventorySummary = BTreeMap<String, BTreeMap<String, usize>>;

fn show_location(location: &Location) -> String {
    let mut out = location.file.display().to_string();
    if location.line > 0 {
        out.push_str(&format!(":{}:{}", location.line, location.column.max(1)));
    }
    out
}

/// The text report: the inventory by kind and namespace, then the findings grouped by severity,
/// each as `severity[check] file:line:col kind/ns/name: message` and `  fix: ...`.
pub fn render_text(summary: &InventorySummary, findings: &[Finding]) -> String {
    let mut out = String::from("inventory:\n");
    for (kind, namespaces) in summary {
        for (namespace, count) in namespaces {
            let ns = if namespace.is_empty() {
                "(cluster)"
            } else {
                namespace.as_str()
            };
            out.push_str(&format!("  {kind:<28} {ns:<24} {count}\n"));
        }
    }
    for severity in [Severity::Error, Severity::Warning, Severity::Info] {
        let group: Vec<&Finding> = findings.iter().filter(|f| f.severity == severity).collect();
        if group.is_empty() {
            continue;
        }
        out.push_str(&format!("\n{severity}s ({}):\n", group.len()));
        for finding in group {
            out.push_str(&format!(
                "{}[{}] {} {}: {}\n  fix: {}\n",
                finding.severity,
                finding.check,
                show_location(&finding.location),
                finding.object,
                finding.message,
                finding.fix
            ));
        }
    }
    let count = |s: Severity| findings.iter().filter(|f| f.severity == s).count();
    out.push_str(&format!(
        "\n{} errors, {} warnings, {} notes\n",
        count(Severity::Error),
        count(Severity::Warning),
        count(Severity::Info)
    ));
    out
}

/// The JSON report: `{"inventory": {kind: {namespace: count}}, "findings": [...]}`, with keys in
/// a fixed order so the same input gives the same bytes.
pub fn render_json(summary: &InventorySummary, findings: &[Finding]) -> String {
    let findings: Vec<serde_json::Value> = findings
        .iter()
        .map(|f| {
            serde_json::json!({
                "severity": f.severity,
                "check": f.check,
                "object": f.object.to_string(),
                "kind": f.object.kind,
                "namespace": f.object.namespace,
                "name": f.object.name,
                "location": show_location(&f.location),
                "file": f.location.file.display().to_string(),
                "document": f.location.document,
                "line": f.location.line,
                "column": f.location.column,
                "field": f.field,
                "message": f.message,
                "fix": f.fix,
            })
        })
        .collect();
    let report = serde_json::json!({ "inventory": summary, "findings": findings });
    serde_json::to_string_pretty(&report).expect("a JSON value always serializes")
}
