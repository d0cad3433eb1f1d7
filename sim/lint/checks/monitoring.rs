//! Monitoring checks over alert rules, Sloth SLOs, dashboards and the Prometheus scrape
//! configuration: units, inverted SLIs, series nothing scrapes, zero denominators, Sloth schema
//! spelling (spec/prometheus.md §6, §8, §10, §12; Prometheus 2.42 relabeling).

use std::collections::BTreeSet;

use promql_parser::parser::Expr;
use regex::Regex;

use crate::diag::Severity;
use crate::lint::Sink;
use crate::lint::model::{Model, RelabelConfig, ScrapeJob, SourceId, Workload};
use crate::lint::promql::{self, Selector, TimeUnit, strip};

pub(super) fn run(model: &Model, out: &mut Sink<'_>) {
    let jobs: Vec<JobView> = model
        .scrape_jobs
        .iter()
        .map(|job| JobView::new(model, job))
        .collect();
    let have_scrape_config = !jobs.is_empty();
    for alert in &model.alerts {
        let Some(expr) = parse_or_report(alert.src, &alert.expr_field, &alert.expr, out) else {
            continue;
        };
        let what = format!("alert {}", alert.name);
        units_match_annotations(alert, &expr, out);
        if have_scrape_config {
            series_are_produced(
                model,
                &jobs,
                alert.src,
                &alert.expr_field,
                &what,
                &expr,
                Severity::Error,
                out,
            );
        }
        denominators_can_be_zero(
            alert.src,
            &alert.expr_field,
            &what,
            &expr,
            Severity::Warning,
            out,
        );
    }
    for slo in &model.slos {
        sloth_field_spelling(slo, out);
        for objective in &slo.objectives {
            let what = format!("SLO {}", objective.name);
            let queries = [
                &objective.error_query,
                &objective.total_query,
                &objective.error_ratio_query,
            ];
            for (text, field) in queries.into_iter().flatten() {
                let Some(expr) = parse_or_report(slo.src, field, text, out) else {
                    continue;
                };
                if !promql::has_window_placeholder(text) {
                    out.push(
                        Severity::Error,
                        "slo-query-without-window",
                        slo.src,
                        field.clone(),
                        format!(
                            "{what}: Sloth requires `{{{{ .window }}}}` in every SLI query (it renders the query once per window: 5m, 30m, 1h, 2h, 6h, 1d, 3d) and rejects `{}`",
                            strip(text)
                        ),
                        "write the range as [{{ .window }}] in every SLI query",
                    );
                }
                if let Some(le) = promql::good_ratio_bucket(&expr) {
                    let burn = objective
                        .objective_percent
                        .filter(|o| *o < 100.0)
                        .map(|o| {
                            format!(
                                ", a burn rate of about {:.0}x while the SLO is met",
                                (o / 100.0) / ((100.0 - o) / 100.0)
                            )
                        })
                        .unwrap_or_default();
                    out.push(
                        Severity::Error,
                        "slo-inverted-ratio",
                        slo.src,
                        field.clone(),
                        format!(
                            "{what}: the error ratio divides the buckets at or under le=\"{le}\" (the requests that met the target) by the total: it computes the good ratio, so Sloth reads a met SLO as mostly errors{burn}"
                        ),
                        format!("use (total - bucket{{le=\"{le}\"}}) / total, or 1 - bucket{{le=\"{le}\"}} / total"),
                    );
                }
                if have_scrape_config {
                    series_are_produced(
                        model,
                        &jobs,
                        slo.src,
                        field,
                        &what,
                        &expr,
                        Severity::Error,
                        out,
                    );
                }
                denominators_can_be_zero(slo.src, field, &what, &expr, Severity::Warning, out);
            }
            // For an events SLI Sloth divides error_query by total_query itself.
            if let (Some(_), Some((total, field))) =
                (&objective.error_query, &objective.total_query)
                && let Ok(expr) = promql::parse(total)
                && let Some(reason) = promql::zero_denominator_reason(&expr)
            {
                out.push(
                    Severity::Warning,
                    "zero-denominator",
                    slo.src,
                    field.clone(),
                    format!("{what}: Sloth divides error_query by this total_query, and {reason}"),
                    "make the total non-zero by construction, or accept NaN windows (they count as no data)",
                );
            }
        }
    }
    for query in &model.dashboard_queries {
        let Some(expr) = parse_or_report(query.src, &query.field, &query.expr, out) else {
            continue;
        };
        let what = format!("panel \"{}\"", query.panel);
        if have_scrape_config {
            series_are_produced(
                model,
                &jobs,
                query.src,
                &query.field,
                &what,
                &expr,
                Severity::Warning,
                out,
            );
        }
        denominators_can_be_zero(query.src, &query.field, &what, &expr, Severity::Info, out);
    }
}

fn parse_or_report(src: SourceId, field: &str, text: &str, out: &mut Sink<'_>) -> Option<Expr> {
    match promql::parse(text) {
        Ok(expr) => Some(expr),
        Err(err) => {
            out.push(
                Severity::Error,
                "promql-parse-error",
                src,
                field,
                format!("`{}` is not valid PromQL: {}", strip(text), strip(&err)),
                "fix the expression (promtool check rules reports the same)",
            );
            None
        }
    }
}

/// A time unit stated in an annotation, in seconds (`/hour` is 3600).
fn stated_rate_unit(text: &str) -> Option<(f64, String)> {
    let per = Regex::new(
        r"(?i)(?:/\s*|\bper\s+)(seconds?|secs?|s|minutes?|mins?|m|hours?|hrs?|h|days?|d)\b",
    )
    .expect("valid pattern");
    let caps = per.captures(text)?;
    let word = caps.get(1).expect("group 1 exists").as_str().to_lowercase();
    let secs = match word.chars().next() {
        Some('s') => 1.0,
        Some('m') => 60.0,
        Some('h') => 3600.0,
        Some('d') => 86400.0,
        _ => return None,
    };
    Some((
        secs,
        caps.get(0).expect("match exists").as_str().to_string(),
    ))
}

fn per_word(secs: f64) -> &'static str {
    match secs as i64 {
        1 => "second",
        60 => "minute",
        3600 => "hour",
        86400 => "day",
        _ => "unit of time",
    }
}

/// The number an alert compares its value against (`expr > 100`), if it does.
fn threshold(expr: &Expr) -> Option<f64> {
    match expr {
        Expr::Binary(bin) if bin.op.is_comparison_operator() => match bin.rhs.as_ref() {
            Expr::NumberLiteral(n) => Some(n.val),
            _ => None,
        },
        Expr::Paren(p) => threshold(&p.expr),
        _ => None,
    }
}

fn units_match_annotations(alert: &crate::lint::model::Alert, expr: &Expr, out: &mut Sink<'_>) {
    let unit = promql::time_unit(expr);
    let window_phrase = Regex::new(
        r"(?i)\btimes\b.*\b(?:in|over|during) the (?:last|past) ([0-9]+\s*(?:minutes?|hours?|m|h))",
    )
    .expect("valid pattern");
    for (key, text) in &alert.annotations {
        if !text.contains("$value") {
            continue;
        }
        let field = format!("{}.{key}", alert.annotations_field);
        match unit {
            TimeUnit::PerSecond { factor } => {
                if let Some((stated_secs, phrase)) = stated_rate_unit(text)
                    && (factor - stated_secs).abs() > 1e-9 * stated_secs
                {
                    let computed = if (factor - 1.0).abs() < 1e-12 {
                        "second".to_string()
                    } else {
                        format!("{} seconds", factor)
                    };
                    let severity_threshold = threshold(expr).map(|t| {
                        format!(
                            "; the threshold {t} is then per {computed} too, i.e. {} per {}",
                            t * stated_secs / factor,
                            per_word(stated_secs)
                        )
                    });
                    out.push(
                        if severity_threshold.is_some() { Severity::Error } else { Severity::Warning },
                        "alert-unit-mismatch",
                        alert.src,
                        field,
                        format!(
                            "alert {}: the {key} says `{phrase}` but rate()/irate() give per-second values whatever the range, so $value is per {computed}{}",
                            alert.name,
                            severity_threshold.unwrap_or_default()
                        ),
                        format!(
                            "multiply the rate by {} (e.g. `sum(rate(x[1h])) * 3600`) and restate the threshold, or say per {computed} in the {key}",
                            stated_secs / factor
                        ),
                    );
                } else if let Some(caps) = window_phrase.captures(text) {
                    out.push(
                        Severity::Warning,
                        "alert-unit-mismatch",
                        alert.src,
                        field,
                        format!(
                            "alert {}: the {key} reads $value as a count `in the last {}`, but the expression is a rate: $value is per second",
                            alert.name,
                            &caps[1]
                        ),
                        format!("use increase(...[{}]) for a count, or describe $value as per second", caps[1].replace(' ', "").replace("minutes", "m").replace("minute", "m")),
                    );
                }
            }
            TimeUnit::PerWindow { window_secs } => {
                if let Some((stated_secs, phrase)) = stated_rate_unit(text)
                    && (window_secs - stated_secs).abs() > 1e-9
                {
                    out.push(
                        Severity::Warning,
                        "alert-unit-mismatch",
                        alert.src,
                        field,
                        format!("alert {}: the {key} says `{phrase}` but increase() gives the amount over {window_secs}s", alert.name),
                        "make the increase() range match the unit stated, or restate it",
                    );
                }
            }
            TimeUnit::NotARate | TimeUnit::Unknown => {}
        }
    }
}

fn denominators_can_be_zero(
    src: SourceId,
    field: &str,
    what: &str,
    expr: &Expr,
    severity: Severity,
    out: &mut Sink<'_>,
) {
    let mut seen = BTreeSet::new();
    for (_, rhs) in promql::divisions(expr) {
        let Some(reason) = promql::zero_denominator_reason(&rhs) else {
            continue;
        };
        if !seen.insert(reason.clone()) {
            continue;
        }
        out.push(
            severity,
            "zero-denominator",
            src,
            field,
            format!("{what}: {reason}"),
            if reason.contains("limit") {
                "select only containers with a limit, e.g. `... / (container_spec_memory_limit_bytes > 0)`"
            } else if reason.contains("vector(0)") {
                "drop `or vector(0)` from the denominator (an empty result is better than a division by zero)"
            } else {
                "guard the denominator (e.g. `/ (x > 0)`) or accept no value at zero traffic"
            },
        );
    }
}

/// The exporter that owns a metric family, by Prometheus naming convention.
fn exporter_of(metric: &str) -> Option<&'static str> {
    const FAMILIES: [(&str, &str); 6] = [
        ("kube_", "kube-state-metrics"),
        ("container_", "cadvisor"),
        ("node_", "node-exporter"),
        ("DCGM_", "dcgm-exporter"),
        ("kubelet_", "kubelet"),
        ("apiserver_", "kube-apiserver"),
    ];
    FAMILIES
        .iter()
        .find(|(prefix, _)| metric.starts_with(prefix))
        .map(|(_, exporter)| *exporter)
}

/// The words that identify an exporter in a job name, a target or a workload name.
fn exporter_hints(exporter: &str) -> &'static [&'static str] {
    match exporter {
        "kube-state-metrics" => &["kube-state-metrics"],
        "cadvisor" => &["cadvisor"],
        "node-exporter" => &["node-exporter", "node_exporter"],
        "dcgm-exporter" => &["dcgm"],
        "kubelet" => &["kubelet"],
        "kube-apiserver" => &["apiserver"],
        _ => &[],
    }
}

/// What one scrape job can produce.
struct JobView {
    name: String,
    /// Values the `job` label can take; `None` when relabeling makes it unknowable.
    job_values: Option<BTreeSet<String>>,
    /// Whether it scrapes application metrics (annotated pods, plain static targets).
    apps: bool,
    exporters: BTreeSet<&'static str>,
    /// The `__name__` keep/drop rules of metric_relabel_configs.
    name_filters: Vec<(bool, Regex, String)>,
    /// The pod labels copied by a labelmap rule (`app`, `version`...).
    labelmapped: BTreeSet<String>,
    scraped_pods: Vec<String>,
    summary: String,
}

/// Prometheus's label-name sanitization of annotation and label keys.
fn sanitize(key: &str) -> String {
    key.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

fn anchored(regex: &str) -> Option<Regex> {
    Regex::new(&format!("^(?:{regex})$")).ok()
}

/// The value of a discovery meta label for a pod of the workload, if the lint can know it.
fn pod_meta(workload: &Workload, label: &str) -> Option<String> {
    if let Some(key) = label.strip_prefix("__meta_kubernetes_pod_annotation_") {
        return Some(
            workload
                .pod_annotations
                .iter()
                .find(|(k, _)| sanitize(k) == key)
                .map(|(_, v)| v.clone())
                .unwrap_or_default(),
        );
    }
    if let Some(key) = label.strip_prefix("__meta_kubernetes_pod_label_") {
        return Some(
            workload
                .pod_labels
                .iter()
                .find(|(k, _)| sanitize(k) == key)
                .map(|(_, v)| v.clone())
                .unwrap_or_default(),
        );
    }
    if label == "__meta_kubernetes_namespace" {
        return Some(workload.namespace.clone());
    }
    None
}

/// Whether the target relabeling keeps a pod (keep/drop rules over labels the lint knows).
fn keeps_pod(relabels: &[RelabelConfig], workload: &Workload) -> bool {
    for rule in relabels {
        let action = rule.action.as_deref().unwrap_or("replace").to_lowercase();
        if action != "keep" && action != "drop" {
            continue;
        }
        let values: Option<Vec<String>> = rule
            .source_labels
            .iter()
            .map(|l| pod_meta(workload, l))
            .collect();
        let Some(values) = values else { continue };
        let Some(regex) = anchored(rule.regex.as_deref().unwrap_or("(.*)")) else {
            continue;
        };
        let matched = regex.is_match(&values.join(";"));
        if (action == "keep") != matched {
            return false;
        }
    }
    true
}

impl JobView {
    fn new(model: &Model, job: &ScrapeJob) -> JobView {
        let mut exporters = BTreeSet::new();
        let mut apps = false;
        let mut text = job.job_name.to_lowercase();
        for target in &job.static_targets {
            text.push(' ');
            text.push_str(&target.to_lowercase());
        }
        for exporter in [
            "kube-state-metrics",
            "cadvisor",
            "node-exporter",
            "dcgm-exporter",
            "kubelet",
            "kube-apiserver",
        ] {
            if exporter_hints(exporter)
                .iter()
                .any(|hint| text.contains(hint))
            {
                exporters.insert(exporter);
            }
        }
        if !job.static_targets.is_empty() && exporters.is_empty() {
            apps = true;
        }
        let mut scraped_pods = Vec::new();
        let mut labelmapped = BTreeSet::new();
        for role in &job.kubernetes_sd_roles {
            match role.as_str() {
                "node" => {
                    exporters.insert("kubelet");
                    if job
                        .metrics_path
                        .as_deref()
                        .is_some_and(|p| p.contains("cadvisor"))
                    {
                        exporters.insert("cadvisor");
                    }
                }
                "pod" | "endpoints" | "endpointslice" | "service" => {
                    for workload in &model.workloads {
                        let in_scope = job.kubernetes_sd_namespaces.is_empty()
                            || job.kubernetes_sd_namespaces.contains(&workload.namespace);
                        if !in_scope || !keeps_pod(&job.relabel_configs, workload) {
                            continue;
                        }
                        scraped_pods.push(workload.name.clone());
                        let name = workload.name.to_lowercase();
                        let mut is_exporter = false;
                        for exporter in ["kube-state-metrics", "node-exporter", "dcgm-exporter"] {
                            if exporter_hints(exporter)
                                .iter()
                                .any(|hint| name.contains(hint))
                            {
                                exporters.insert(exporter);
                                is_exporter = true;
                            }
                        }
                        if !is_exporter {
                            apps = true;
                        }
                        for rule in &job.relabel_configs {
                            if rule.action.as_deref().map(str::to_lowercase).as_deref()
                                != Some("labelmap")
                            {
                                continue;
                            }
                            let Some(regex) = anchored(rule.regex.as_deref().unwrap_or("(.*)"))
                            else {
                                continue;
                            };
                            let replacement =
                                rule.replacement.clone().unwrap_or_else(|| "$1".to_string());
                            for key in workload.pod_labels.keys() {
                                let meta = format!("__meta_kubernetes_pod_label_{}", sanitize(key));
                                if let Some(caps) = regex.captures(&meta) {
                                    let mut target = String::new();
                                    caps.expand(&replacement, &mut target);
                                    labelmapped.insert(target);
                                }
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        let mut job_values = Some(BTreeSet::from([job.job_name.clone()]));
        if job
            .relabel_configs
            .iter()
            .any(|r| r.target_label.as_deref() == Some("job"))
            || labelmapped.contains("job")
        {
            job_values = None;
        }
        let name_filters = job
            .metric_relabel_configs
            .iter()
            .filter(|r| r.source_labels == ["__name__"])
            .filter_map(|r| {
                let action = r.action.as_deref().unwrap_or("replace").to_lowercase();
                let keep = match action.as_str() {
                    "keep" => true,
                    "drop" => false,
                    _ => return None,
                };
                let raw = r.regex.clone().unwrap_or_else(|| "(.*)".to_string());
                anchored(&raw).map(|re| (keep, re, raw))
            })
            .collect::<Vec<_>>();
        let mut summary = format!("`{}`", job.job_name);
        if !scraped_pods.is_empty() {
            summary.push_str(&format!(" scrapes pods {}", scraped_pods.join(", ")));
        } else if !job.static_targets.is_empty() {
            summary.push_str(&format!(" scrapes {}", job.static_targets.join(", ")));
        } else {
            summary.push_str(" scrapes nothing in the inventory");
        }
        for (keep, _, raw) in &name_filters {
            summary.push_str(&format!(
                " and {} only `{raw}`",
                if *keep { "keeps" } else { "drops" }
            ));
        }
        JobView {
            name: job.job_name.clone(),
            job_values,
            apps,
            exporters,
            name_filters,
            labelmapped,
            scraped_pods,
            summary,
        }
    }

    fn produces(&self, metric: &str) -> bool {
        let source_ok = match exporter_of(metric) {
            Some(exporter) => self.exporters.contains(exporter),
            None => self.apps,
        };
        source_ok
            && self
                .name_filters
                .iter()
                .all(|(keep, re, _)| re.is_match(metric) == *keep)
    }

    fn job_label_matches(&self, selector: &Selector) -> bool {
        let Some(values) = &self.job_values else {
            return true;
        };
        selector
            .matchers
            .iter()
            .filter(|m| m.label == "job")
            .all(|m| {
                let regex = anchored(&m.value);
                values.iter().any(|v| match m.op {
                    "=" => v == &m.value,
                    "!=" => v != &m.value,
                    "=~" => regex.as_ref().is_some_and(|r| r.is_match(v)),
                    _ => regex.as_ref().is_some_and(|r| !r.is_match(v)),
                })
            })
    }
}

#[allow(clippy::too_many_arguments)]
fn series_are_produced(
    model: &Model,
    jobs: &[JobView],
    src: SourceId,
    field: &str,
    what: &str,
    expr: &Expr,
    severity: Severity,
    out: &mut Sink<'_>,
) {
    let scraped = jobs
        .iter()
        .map(|j| j.summary.clone())
        .collect::<Vec<_>>()
        .join("; ");
    let mut reported = BTreeSet::new();
    // `absent(x)` is meant to hold when x is missing, so its argument is not required.
    let mut absent_args = BTreeSet::new();
    promql::walk(expr, &mut |node| {
        if let Expr::Call(call) = node
            && call.func.name == "absent"
        {
            for arg in &call.args.args {
                for s in promql::selectors(arg) {
                    absent_args.insert(format!("{s:?}"));
                }
            }
        }
    });
    for selector in promql::selectors(expr) {
        let Some(metric) = selector.metric.clone() else {
            continue;
        };
        if absent_args.contains(&format!("{selector:?}"))
            && promql::selectors(expr)
                .iter()
                .filter(|s| **s == selector)
                .count()
                == 1
        {
            continue;
        }
        let producers: Vec<&JobView> = jobs.iter().filter(|j| j.produces(&metric)).collect();
        if producers.is_empty() {
            if !reported.insert(format!("name {metric}")) {
                continue;
            }
            let owner = exporter_of(&metric).map_or_else(
                || "an application".to_string(),
                |exporter| match exporter {
                    "cadvisor" => "cAdvisor (the kubelet's /metrics/cadvisor)".to_string(),
                    other => other.to_string(),
                },
            );
            out.push(
                severity,
                "series-never-produced",
                src,
                field,
                format!("{what} reads `{metric}`, which comes from {owner}, and no scrape job produces it ({scraped}): the query is always empty"),
                match exporter_of(&metric) {
                    Some("kube-state-metrics") => "deploy kube-state-metrics and add a scrape job for it".to_string(),
                    Some("cadvisor") => "add a kubelet cAdvisor scrape job (role: node, metrics_path /metrics/cadvisor)".to_string(),
                    Some(exporter) => format!("add a scrape job for {exporter}"),
                    None => "scrape the application that exports it".to_string(),
                },
            );
            continue;
        }
        if producers.iter().any(|j| j.job_label_matches(&selector)) {
            continue;
        }
        let job_matchers: Vec<String> = selector
            .matchers
            .iter()
            .filter(|m| m.label == "job")
            .map(|m| format!("job{}\"{}\"", m.op, m.value))
            .collect();
        if !reported.insert(format!("job {metric} {job_matchers:?}")) {
            continue;
        }
        let values: Vec<String> = producers
            .iter()
            .filter_map(|j| j.job_values.as_ref())
            .flatten()
            .map(|v| format!("`{v}`"))
            .collect();
        // Suggest the pod label that carries the name the matcher wanted, if labelmap copies one.
        let wanted = selector
            .matchers
            .iter()
            .find(|m| m.label == "job" && m.op == "=")
            .map(|m| m.value.clone());
        let suggestion = wanted.as_ref().and_then(|value| {
            producers.iter().find_map(|j| {
                model
                    .workloads
                    .iter()
                    .filter(|w| j.scraped_pods.contains(&w.name))
                    .find_map(|w| {
                        w.pod_labels
                            .iter()
                            .find(|(k, v)| *v == value && j.labelmapped.contains(*k))
                            .map(|(k, v)| format!("{k}=\"{v}\""))
                    })
            })
        });
        let producer_names: Vec<&str> = producers.iter().map(|j| j.name.as_str()).collect();
        out.push(
            severity,
            "series-never-produced",
            src,
            field,
            format!(
                "{what}: `{}` selects nothing: `{metric}` is scraped by {} and Prometheus sets the job label to the job name ({}){}",
                job_matchers.join(", "),
                producer_names.join(", "),
                values.join(", "),
                match &suggestion {
                    Some(s) => format!("; the pod labels are copied by labelmap, so the pods carry {s}, not a job label"),
                    None => String::new(),
                }
            ),
            match suggestion {
                Some(s) => format!("match {s} instead (or relabel job from the app label in the scrape config)"),
                None => format!("match job {}", values.join(" or ")),
            },
        );
    }
}

fn sloth_field_spelling(slo: &crate::lint::model::SloObject, out: &mut Sink<'_>) {
    const PAIRS: [(&str, &str); 5] = [
        ("error_query", "errorQuery"),
        ("total_query", "totalQuery"),
        ("error_ratio_query", "errorRatioQuery"),
        ("page_alert", "pageAlert"),
        ("ticket_alert", "ticketAlert"),
    ];
    let crd = slo.schema.starts_with("sloth.slok.dev/");
    for path in &slo.raw_field_paths {
        let key = path.rsplit('.').next().unwrap_or(path);
        let key = key.split('[').next().unwrap_or(key);
        for (snake, camel) in PAIRS {
            let (wrong, right, schema, effect) = if crd {
                (
                    snake,
                    camel,
                    "the sloth.slok.dev/v1 CRD (camelCase)",
                    "the API server prunes unknown fields, so Sloth receives the SLO without it and rejects or mis-generates it",
                )
            } else {
                (
                    camel,
                    snake,
                    "the prometheus/v1 spec (snake_case)",
                    "Sloth ignores the key, so the SLO is rejected or mis-generated",
                )
            };
            if key != wrong {
                continue;
            }
            out.push(
                Severity::Error,
                "sloth-field-case",
                slo.src,
                path.clone(),
                format!("`{wrong}` is not a field of {schema}, whose spelling is `{right}`: {effect}"),
                format!("rename `{wrong}` to `{right}` (or switch the header to the schema the file is written in)"),
            );
        }
    }
}
