//! The API server's own validation for the kinds the twin simulates, so that an object the real
//! cluster would refuse is refused here too, with the API server's wording.
//!
//! Mirrors `pkg/apis/apps/validation` (`ValidateDeploymentSpec`, `ValidateRollingUpdateDeployment`,
//! `ValidatePodTemplateSpecForReplicaSet`) and `pkg/apis/autoscaling/validation`
//! (`validateHorizontalPodAutoscalerSpec`) of Kubernetes 1.29. Messages follow `field.Invalid`:
//! `<path>: Invalid value: <value>: <detail>`, the value printed as `field.Error.ErrorBody` does:
//! numbers plainly, strings quoted, anything else with Go's `%#v` (1.29's `IntOrString` has a
//! pointer-receiver `String`, so it prints as `intstr.IntOrString{Type:0, IntVal:0, StrVal:""}`;
//! newer API servers print a bare `0`).
//!
//! Prometheus rule files and configuration are checked as Prometheus 2.42 loads them
//! (`rulefmt.RuleGroups.Validate`, `config.Load`), with its messages.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use k8s_openapi::api::core::v1::ResourceQuota;

use super::DocContext;
use super::prometheus::{PrometheusConfig, RuleFile};
use super::quantity::parse_quantity;
use super::sloth::{PrometheusServiceLevel, SloAlert};
use super::yaml::{join_index, join_key};
use crate::diag::Diagnostic;
use crate::engine::parse_duration;

/// The lower bound of `minReplicas` with the `HPAScaleToZero` feature gate off (its default).
const MIN_REPLICAS_LOWER_BOUND: i32 = 1;

/// `validation.IsValidPercent`'s message, word for word (its double space included).
const PERCENT_MESSAGE: &str = "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')";

fn invalid(ctx: &DocContext<'_>, path: &str, value: &str, detail: &str) -> Diagnostic {
    Diagnostic::error(
        ctx.location(path, false),
        path,
        format!("Invalid value: {value}: {detail}"),
    )
}

/// Go's `%#v` of an `intstr.IntOrString`.
fn go_int_or_string(value: &IntOrString) -> String {
    match value {
        IntOrString::Int(int) => format!("intstr.IntOrString{{Type:0, IntVal:{int}, StrVal:\"\"}}"),
        IntOrString::String(text) => {
            format!("intstr.IntOrString{{Type:1, IntVal:0, StrVal:{text:?}}}")
        }
    }
}

/// Go's `%#v` of a `map[string]string` (fmt prints keys sorted).
fn go_string_map(map: &BTreeMap<String, String>) -> String {
    let pairs: Vec<String> = map
        .iter()
        .map(|(key, value)| format!("{key:?}:{value:?}"))
        .collect();
    format!("map[string]string{{{}}}", pairs.join(", "))
}

/// `getIntOrPercentValue`: the number, or the percentage's number (`"0%"` → 0).
fn int_or_percent_value(value: &IntOrString) -> Option<i64> {
    match value {
        IntOrString::Int(int) => Some(i64::from(*int)),
        // `IsValidPercent`: `^[0-9]+%$`.
        IntOrString::String(text) => text
            .strip_suffix('%')
            .filter(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|digits| digits.parse().ok()),
    }
}

/// Whether a label selector matches a set of labels (`metav1.LabelSelectorAsSelector` then
/// `Matches`). `None` when the selector itself is invalid (an unknown operator).
pub fn selector_matches(
    selector: &LabelSelector,
    labels: &BTreeMap<String, String>,
) -> Option<bool> {
    for (key, value) in selector.match_labels.iter().flatten() {
        if labels.get(key) != Some(value) {
            return Some(false);
        }
    }
    for requirement in selector.match_expressions.iter().flatten() {
        let values = requirement.values.as_deref().unwrap_or_default();
        let found = labels.get(&requirement.key);
        let ok = match requirement.operator.as_str() {
            "In" => found.is_some_and(|v| values.contains(v)),
            "NotIn" => found.is_none_or(|v| !values.contains(v)),
            "Exists" => found.is_some(),
            "DoesNotExist" => found.is_none(),
            _ => return None,
        };
        if !ok {
            return Some(false);
        }
    }
    Some(true)
}

/// A Deployment as `ValidateDeploymentSpec` sees it.
pub fn deployment(ctx: &DocContext<'_>, deployment: &Deployment) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let Some(spec) = &deployment.spec else {
        return out;
    };
    let selector = &spec.selector;
    let selector_terms = selector.match_labels.as_ref().map_or(0, BTreeMap::len)
        + selector.match_expressions.as_ref().map_or(0, Vec::len);
    let template_labels = spec
        .template
        .metadata
        .as_ref()
        .and_then(|meta| meta.labels.clone())
        .unwrap_or_default();
    if selector_terms == 0 {
        out.push(Diagnostic::error(
            ctx.location("spec.selector", false),
            "spec.selector",
            "Invalid value: empty selector is invalid for deployment",
        ));
    } else {
        match selector_matches(selector, &template_labels) {
            None => out.push(Diagnostic::error(
                ctx.location("spec.selector", false),
                "spec.selector",
                "Invalid value: invalid label selector",
            )),
            Some(false) => out.push(invalid(
                ctx,
                "spec.template.metadata.labels",
                &go_string_map(&template_labels),
                "`selector` does not match template `labels`",
            )),
            Some(true) => {}
        }
    }
    if let Some(replicas) = spec.replicas.filter(|r| *r < 0) {
        out.push(invalid(
            ctx,
            "spec.replicas",
            &replicas.to_string(),
            "must be greater than or equal to 0",
        ));
    }
    let rolling = spec.strategy.as_ref().and_then(|strategy| {
        let is_rolling = strategy
            .type_
            .as_deref()
            .is_none_or(|t| t == "RollingUpdate");
        strategy.rolling_update.as_ref().filter(|_| is_rolling)
    });
    if let Some(rolling) = rolling {
        // Unset fields default to 25 % each, which is never 0.
        let surge = rolling
            .max_surge
            .clone()
            .unwrap_or(IntOrString::String("25%".into()));
        let unavailable = rolling
            .max_unavailable
            .clone()
            .unwrap_or(IntOrString::String("25%".into()));
        for (field, value) in [("maxUnavailable", &unavailable), ("maxSurge", &surge)] {
            let path = format!("spec.strategy.rollingUpdate.{field}");
            match value {
                // `ValidateNonnegativeField` prints the int64; `IsValidPercent` the whole struct.
                IntOrString::Int(int) if *int < 0 => {
                    out.push(invalid(
                        ctx,
                        &path,
                        &int.to_string(),
                        "must be greater than or equal to 0",
                    ));
                }
                IntOrString::String(_) if int_or_percent_value(value).is_none() => {
                    out.push(invalid(
                        ctx,
                        &path,
                        &go_int_or_string(value),
                        PERCENT_MESSAGE,
                    ));
                }
                _ => {}
            }
        }
        if int_or_percent_value(&unavailable) == Some(0) && int_or_percent_value(&surge) == Some(0)
        {
            out.push(invalid(
                ctx,
                "spec.strategy.rollingUpdate.maxUnavailable",
                &go_int_or_string(&unavailable),
                "may not be 0 when `maxSurge` is 0",
            ));
        }
        if let IntOrString::String(_) = &unavailable
            && int_or_percent_value(&unavailable).is_some_and(|p| p > 100)
        {
            out.push(invalid(
                ctx,
                "spec.strategy.rollingUpdate.maxUnavailable",
                &go_int_or_string(&unavailable),
                "must not be greater than 100%",
            ));
        }
    }
    out
}

/// An HPA as `validateHorizontalPodAutoscalerSpec` sees it.
pub fn hpa(ctx: &DocContext<'_>, hpa: &HorizontalPodAutoscaler) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let Some(spec) = &hpa.spec else {
        out.push(Diagnostic::error(
            ctx.location("spec", false),
            "spec",
            "missing field `spec`",
        ));
        return out;
    };
    if let Some(min) = spec
        .min_replicas
        .filter(|min| *min < MIN_REPLICAS_LOWER_BOUND)
    {
        out.push(invalid(
            ctx,
            "spec.minReplicas",
            &min.to_string(),
            &format!("must be greater than or equal to {MIN_REPLICAS_LOWER_BOUND}"),
        ));
    }
    if spec.max_replicas < 1 {
        out.push(invalid(
            ctx,
            "spec.maxReplicas",
            &spec.max_replicas.to_string(),
            "must be greater than 0",
        ));
    }
    if let Some(min) = spec.min_replicas
        && spec.max_replicas < min
    {
        out.push(invalid(
            ctx,
            "spec.maxReplicas",
            &spec.max_replicas.to_string(),
            "must be greater than or equal to `minReplicas`",
        ));
    }
    out
}

/// Every quantity of a Deployment's pod template (container requests and limits), a
/// ResourceQuota's `hard`, or an HPA's metric targets must parse, as the API server's decoder
/// insists. `entries` are (field path, written value).
pub fn quantities<'a>(
    ctx: &DocContext<'_>,
    entries: impl IntoIterator<Item = (String, &'a str)>,
) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for (path, text) in entries {
        if let Err(err) = parse_quantity(text) {
            out.push(Diagnostic::error(
                ctx.location(&path, false),
                path,
                err.to_string(),
            ));
        }
    }
    out
}

/// The (path, quantity) pairs of a Deployment's containers.
pub fn deployment_quantities(deployment: &Deployment) -> Vec<(String, &str)> {
    let mut out = Vec::new();
    let Some(pod) = deployment
        .spec
        .as_ref()
        .and_then(|spec| spec.template.spec.as_ref())
    else {
        return out;
    };
    let lists = [
        ("containers", Some(&pod.containers)),
        ("initContainers", pod.init_containers.as_ref()),
    ];
    for (list_name, containers) in lists {
        for (idx, container) in containers.into_iter().flatten().enumerate() {
            let Some(resources) = &container.resources else {
                continue;
            };
            for (kind, map) in [
                ("requests", &resources.requests),
                ("limits", &resources.limits),
            ] {
                for (name, quantity) in map.iter().flatten() {
                    let path =
                        format!("spec.template.spec.{list_name}[{idx}].resources.{kind}.{name}");
                    out.push((path, quantity.0.as_str()));
                }
            }
        }
    }
    out
}

/// The (path, quantity) pairs of a ResourceQuota's `spec.hard`.
pub fn resource_quota_quantities(quota: &ResourceQuota) -> Vec<(String, &str)> {
    let hard = quota.spec.as_ref().and_then(|spec| spec.hard.as_ref());
    hard.into_iter()
        .flatten()
        .map(|(name, q)| (format!("spec.hard.{name}"), q.0.as_str()))
        .collect()
}

/// The (path, quantity) pairs of an HPA's metric targets.
pub fn hpa_quantities(hpa: &HorizontalPodAutoscaler) -> Vec<(String, &str)> {
    let mut out = Vec::new();
    let metrics = hpa.spec.as_ref().and_then(|spec| spec.metrics.as_ref());
    for (idx, metric) in metrics.into_iter().flatten().enumerate() {
        let targets = [
            ("resource", metric.resource.as_ref().map(|m| &m.target)),
            (
                "containerResource",
                metric.container_resource.as_ref().map(|m| &m.target),
            ),
            ("pods", metric.pods.as_ref().map(|m| &m.target)),
            ("object", metric.object.as_ref().map(|m| &m.target)),
            ("external", metric.external.as_ref().map(|m| &m.target)),
        ];
        for (source, target) in targets {
            let Some(target) = target else { continue };
            for (field, value) in [
                ("averageValue", &target.average_value),
                ("value", &target.value),
            ] {
                if let Some(quantity) = value {
                    out.push((
                        format!("spec.metrics[{idx}].{source}.target.{field}"),
                        quantity.0.as_str(),
                    ));
                }
            }
        }
    }
    out
}

/// A duration as Prometheus' `model.ParseDuration` reads it: number-unit pairs of `ms s m h d w y`,
/// whole numbers only (`1.5m` is refused, unlike Go's `time.ParseDuration`).
fn prometheus_duration(text: &str) -> Result<(), String> {
    let refuse = || format!("not a valid duration string: {text:?}");
    if text.contains('.') || text.starts_with(['-', '+']) {
        return Err(refuse());
    }
    let letters: String = text.chars().filter(|c| c.is_ascii_alphabetic()).collect();
    if letters.contains("ns") || letters.contains("us") || letters.contains('µ') {
        return Err(refuse());
    }
    parse_duration(text).map(|_| ()).map_err(|_| refuse())
}

fn check_duration(
    ctx: &DocContext<'_>,
    path: &str,
    value: Option<&str>,
    out: &mut Vec<Diagnostic>,
) {
    if let Some(text) = value
        && let Err(message) = prometheus_duration(text)
    {
        out.push(Diagnostic::error(ctx.location(path, false), path, message));
    }
}

fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A rule file as Prometheus 2.42's `rulefmt.RuleGroups.Validate` sees it (messages as upstream),
/// plus each expression parsed by promql-parser. `base` is where the file's `groups` sit
/// (`` for a rule file, `spec` for a PrometheusRule).
pub fn rule_file(ctx: &DocContext<'_>, rules: &RuleFile, base: &str) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let mut names = BTreeMap::new();
    let groups_path = join_key(base, "groups");
    for (group_idx, group) in rules.groups.iter().enumerate() {
        let group_path = join_index(&groups_path, group_idx);
        let name_path = join_key(&group_path, "name");
        if group.name.is_empty() {
            out.push(Diagnostic::error(
                ctx.location(&name_path, false),
                &name_path,
                "Groupname must not be empty",
            ));
        } else if names.insert(group.name.clone(), group_idx).is_some() {
            let message = format!("groupname: {:?} is repeated in the same file", group.name);
            out.push(Diagnostic::error(
                ctx.location(&name_path, false),
                &name_path,
                message,
            ));
        }
        check_duration(
            ctx,
            &join_key(&group_path, "interval"),
            group.interval.as_deref(),
            &mut out,
        );
        check_duration(
            ctx,
            &join_key(&group_path, "query_offset"),
            group.query_offset.as_deref(),
            &mut out,
        );
        for (rule_idx, rule) in group.rules.iter().enumerate() {
            let rule_path = join_index(&join_key(&group_path, "rules"), rule_idx);
            let mut fail = |field: &str, message: String| {
                let path = if field.is_empty() {
                    rule_path.clone()
                } else {
                    join_key(&rule_path, field)
                };
                out.push(Diagnostic::error(ctx.location(&path, false), path, message));
            };
            match (&rule.record, &rule.alert) {
                (Some(_), Some(_)) => {
                    fail("", "only one of 'record' and 'alert' must be set".into())
                }
                (None, None) => fail("", "one of 'record' or 'alert' must be set".into()),
                _ => {}
            }
            if rule.expr.trim().is_empty() {
                fail("expr", "field 'expr' must be set in rule".into());
            } else if let Err(err) = promql_parser::parser::parse(&rule.expr) {
                fail(
                    "expr",
                    format!("could not parse expression: {}", err.trim()),
                );
            }
            if let Some(record) = &rule.record {
                if !rule.annotations.is_empty() {
                    fail(
                        "annotations",
                        "invalid field 'annotations' in recording rule".into(),
                    );
                }
                if rule.for_duration.is_some() {
                    fail("for", "invalid field 'for' in recording rule".into());
                }
                if rule.keep_firing_for.is_some() {
                    fail(
                        "keep_firing_for",
                        "invalid field 'keep_firing_for' in recording rule".into(),
                    );
                }
                if !is_metric_name(record) {
                    fail("record", format!("invalid recording rule name: {record}"));
                }
            }
            for name in rule.labels.keys() {
                if !is_label_name(name) {
                    fail(
                        &format!("labels.{name}"),
                        format!("invalid label name: {name}"),
                    );
                }
            }
            for name in rule.annotations.keys() {
                if !is_label_name(name) {
                    fail(
                        &format!("annotations.{name}"),
                        format!("invalid annotation name: {name}"),
                    );
                }
            }
            check_duration(
                ctx,
                &join_key(&rule_path, "for"),
                rule.for_duration.as_deref(),
                &mut out,
            );
            check_duration(
                ctx,
                &join_key(&rule_path, "keep_firing_for"),
                rule.keep_firing_for.as_deref(),
                &mut out,
            );
        }
    }
    out
}

/// The top-level sections Prometheus 2.42's configuration accepts; it decodes strictly, so any
/// other key is an error there.
const PROMETHEUS_SECTIONS: &[&str] = &[
    "global",
    "rule_files",
    "scrape_config_files",
    "scrape_configs",
    "alerting",
    "remote_write",
    "remote_read",
    "storage",
    "tracing",
];

/// Relabel actions of Prometheus 2.42 (`relabel.Action`).
const RELABEL_ACTIONS: &[&str] = &[
    "replace",
    "keep",
    "drop",
    "keepequal",
    "dropequal",
    "hashmod",
    "labelmap",
    "labeldrop",
    "labelkeep",
    "lowercase",
    "uppercase",
];

/// A Prometheus configuration as `config.Load` checks it: known sections, durations, the
/// scrape timeout within the interval, unique job names and known relabel actions.
pub fn prometheus_config(ctx: &DocContext<'_>, config: &PrometheusConfig) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for key in config.other.keys() {
        if !PROMETHEUS_SECTIONS.contains(&key.as_str()) {
            out.push(Diagnostic::error(
                ctx.location(key, true),
                key,
                format!("field {key} not found in type config.plain"),
            ));
        }
    }
    let global = &config.global;
    check_duration(
        ctx,
        "global.scrape_interval",
        global.scrape_interval.as_deref(),
        &mut out,
    );
    check_duration(
        ctx,
        "global.scrape_timeout",
        global.scrape_timeout.as_deref(),
        &mut out,
    );
    check_duration(
        ctx,
        "global.evaluation_interval",
        global.evaluation_interval.as_deref(),
        &mut out,
    );
    // Prometheus' defaults: scrape every 1m with a 10s timeout.
    let seconds = |text: Option<&str>, default_s: f64| {
        text.and_then(|t| parse_duration(t).ok())
            .map(|d| d.as_secs_f64())
            .unwrap_or(default_s)
    };
    let global_interval = seconds(global.scrape_interval.as_deref(), 60.0);
    let global_timeout = seconds(
        global.scrape_timeout.as_deref(),
        10.0_f64.min(global_interval),
    );
    if global_timeout > global_interval {
        out.push(Diagnostic::error(
            ctx.location("global.scrape_timeout", false),
            "global.scrape_timeout",
            "global scrape timeout greater than scrape interval",
        ));
    }
    let mut jobs = BTreeMap::new();
    for (idx, job) in config.scrape_configs.iter().enumerate() {
        let path = format!("scrape_configs[{idx}]");
        if jobs.insert(job.job_name.clone(), idx).is_some() {
            let field = join_key(&path, "job_name");
            let message = format!(
                "found multiple scrape configs with job name {:?}",
                job.job_name
            );
            out.push(Diagnostic::error(
                ctx.location(&field, false),
                field,
                message,
            ));
        }
        check_duration(
            ctx,
            &join_key(&path, "scrape_interval"),
            job.scrape_interval.as_deref(),
            &mut out,
        );
        check_duration(
            ctx,
            &join_key(&path, "scrape_timeout"),
            job.scrape_timeout.as_deref(),
            &mut out,
        );
        let interval = seconds(job.scrape_interval.as_deref(), global_interval);
        // A job without its own timeout takes the global one, cut to its interval.
        let timeout = seconds(job.scrape_timeout.as_deref(), global_timeout.min(interval));
        if timeout > interval {
            let field = join_key(&path, "scrape_timeout");
            let message = format!(
                "scrape timeout greater than scrape interval for scrape config with job name {:?}",
                job.job_name
            );
            out.push(Diagnostic::error(
                ctx.location(&field, false),
                field,
                message,
            ));
        }
        for (list, steps) in [
            ("relabel_configs", &job.relabel_configs),
            ("metric_relabel_configs", &job.metric_relabel_configs),
        ] {
            for (step_idx, step) in steps.iter().enumerate() {
                let Some(action) = &step.action else { continue };
                if !RELABEL_ACTIONS.contains(&action.to_ascii_lowercase().as_str()) {
                    let field = format!("{path}.{list}[{step_idx}].action");
                    out.push(Diagnostic::error(
                        ctx.location(&field, false),
                        field,
                        format!("unknown relabel action {action:?}"),
                    ));
                }
            }
        }
    }
    out
}

/// A Sloth SLO document as Sloth (v0.11) validates it before generating rules: a service, SLO
/// names unique, objectives within (0, 100], exactly one SLI source, non-empty queries that parse
/// as PromQL once Sloth's `{{.window}}` template is filled in, and an alert name when alerts are
/// on. `base` is where the spec sits (`spec` for the CRD form, `` for the plain form). Field
/// paths use the names as written, whichever spelling that was.
pub fn slo(ctx: &DocContext<'_>, slo: &PrometheusServiceLevel, base: &str) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let mut fail = |path: String, message: String| {
        out.push(Diagnostic::error(ctx.location(&path, false), path, message));
    };
    let spec = &slo.spec;
    if spec.service.trim().is_empty() {
        fail(
            join_key(base, "service"),
            "service must not be empty".into(),
        );
    }
    if spec.slos.is_empty() {
        fail(
            join_key(base, "slos"),
            "at least one SLO is required".into(),
        );
    }
    let written = |path: &str, camel: &str, snake: &str| {
        let camel_path = join_key(path, camel);
        if slo
            .written_fields
            .iter()
            .any(|field| field.path == camel_path)
        {
            camel_path
        } else {
            join_key(path, snake)
        }
    };
    let mut names = BTreeMap::new();
    for (idx, item) in spec.slos.iter().enumerate() {
        let path = join_index(&join_key(base, "slos"), idx);
        if item.name.trim().is_empty() {
            fail(join_key(&path, "name"), "SLO name must not be empty".into());
        } else if let Some(first) = names.insert(item.name.clone(), idx) {
            fail(
                join_key(&path, "name"),
                format!("SLO name {:?} is also used by slos[{first}]", item.name),
            );
        }
        if !(item.objective > 0.0 && item.objective <= 100.0) {
            fail(
                join_key(&path, "objective"),
                format!(
                    "objective {} must be above 0 and at most 100 (a percentage)",
                    item.objective
                ),
            );
        }
        let sli_path = join_key(&path, "sli");
        let sources = usize::from(item.sli.events.is_some())
            + usize::from(item.sli.raw.is_some())
            + usize::from(item.sli.plugin.is_some());
        if sources != 1 {
            fail(
                sli_path.clone(),
                format!("an SLI needs exactly one of events, raw or plugin; found {sources}"),
            );
        }
        let mut queries = Vec::new();
        if let Some(events) = &item.sli.events {
            let events_path = join_key(&sli_path, "events");
            queries.push((
                written(&events_path, "errorQuery", "error_query"),
                &events.error_query,
            ));
            queries.push((
                written(&events_path, "totalQuery", "total_query"),
                &events.total_query,
            ));
        }
        if let Some(raw) = &item.sli.raw {
            let raw_path = join_key(&sli_path, "raw");
            queries.push((
                written(&raw_path, "errorRatioQuery", "error_ratio_query"),
                &raw.error_ratio_query,
            ));
        }
        for (query_path, query) in queries {
            if query.trim().is_empty() {
                fail(query_path, "query must not be empty".into());
                continue;
            }
            // Sloth fills `{{.window}}` with each alert window before use; any window parses.
            let filled = query
                .replace("{{.window}}", "5m")
                .replace("{{ .window }}", "5m");
            if let Err(err) = promql_parser::parser::parse(&filled) {
                fail(query_path, format!("invalid PromQL query: {}", err.trim()));
            }
        }
        if let Some(alerting) = &item.alerting {
            let enabled =
                |alert: &Option<SloAlert>| alert.as_ref().is_none_or(|a| a.disable != Some(true));
            let any_enabled = enabled(&alerting.page_alert) || enabled(&alerting.ticket_alert);
            if any_enabled
                && alerting
                    .name
                    .as_deref()
                    .is_none_or(|name| name.trim().is_empty())
            {
                fail(
                    join_key(&join_key(&path, "alerting"), "name"),
                    "an alert name is required while page or ticket alerts are enabled".into(),
                );
            }
        }
    }
    out
}

/// `progressDeadlineSeconds` must exceed `minReadySeconds` (`ValidateDeploymentSpec`).
pub fn deployment_deadlines(ctx: &DocContext<'_>, deployment: &Deployment) -> Vec<Diagnostic> {
    let Some(spec) = &deployment.spec else {
        return Vec::new();
    };
    match spec.progress_deadline_seconds {
        Some(deadline) if deadline <= spec.min_ready_seconds.unwrap_or(0) => vec![invalid(
            ctx,
            "spec.progressDeadlineSeconds",
            &deadline.to_string(),
            "must be greater than minReadySeconds",
        )],
        _ => Vec::new(),
    }
}

fn required(ctx: &DocContext<'_>, path: &str, detail: &str) -> Diagnostic {
    Diagnostic::error(
        ctx.location(path, false),
        path,
        format!("Required value: {detail}"),
    )
}

fn forbidden(ctx: &DocContext<'_>, path: &str, detail: &str) -> Diagnostic {
    Diagnostic::error(
        ctx.location(path, false),
        path,
        format!("Forbidden: {detail}"),
    )
}

fn not_supported(ctx: &DocContext<'_>, path: &str, value: &str, supported: &[&str]) -> Diagnostic {
    let quoted: Vec<String> = supported.iter().map(|s| format!("{s:?}")).collect();
    let message = format!(
        "Unsupported value: {value:?}: supported values: {}",
        quoted.join(", ")
    );
    Diagnostic::error(ctx.location(path, false), path, message)
}

/// `validMetricSourceTypes.List()`, sorted as upstream's set lists it.
const METRIC_SOURCE_TYPES: &[&str] = &[
    "ContainerResource",
    "External",
    "Object",
    "Pods",
    "Resource",
];
const SCALING_POLICY_TYPES: &[&str] = &["Percent", "Pods"];
const SELECT_POLICY_TYPES: &[&str] = &["Disabled", "Max", "Min"];
/// `MaxPeriodSeconds` and `MaxStabilizationWindowSeconds` of the autoscaling validation.
const MAX_PERIOD_SECONDS: i32 = 1800;
const MAX_STABILIZATION_WINDOW_SECONDS: i32 = 3600;

fn quantity_sign(
    quantity: &k8s_openapi::apimachinery::pkg::api::resource::Quantity,
) -> Option<i128> {
    parse_quantity(&quantity.0).ok().map(|q| q.millis.signum())
}

/// An HPA's metrics and behavior as `validateMetrics`, `validateMetricSpec` and
/// `validateBehavior` see them after defaulting (so empty policy lists, which defaulting fills,
/// are not checked). A quantity's bad value prints as its text: 1.29 would print Go's `%#v` of
/// `resource.Quantity`'s internals there, which helps nobody.
pub fn hpa_details(ctx: &DocContext<'_>, hpa: &HorizontalPodAutoscaler) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let Some(spec) = &hpa.spec else { return out };
    let mut has_object_or_external = false;
    for (idx, metric) in spec.metrics.iter().flatten().enumerate() {
        let path = format!("spec.metrics[{idx}]");
        let source_type = metric.type_.as_str();
        has_object_or_external |= matches!(source_type, "Object" | "External");
        if source_type.is_empty() {
            out.push(required(
                ctx,
                &format!("{path}.type"),
                "must specify a metric source type",
            ));
        }
        let present: Vec<&str> = [
            ("object", metric.object.is_some()),
            ("external", metric.external.is_some()),
            ("pods", metric.pods.is_some()),
            ("resource", metric.resource.is_some()),
            ("containerResource", metric.container_resource.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, set)| set.then_some(name))
        .collect();
        // Upstream validates only the first populated source, in this order.
        let mut targets = Vec::new();
        match present.first().copied() {
            Some("object") => {
                if let Some(source) = &metric.object {
                    if source.metric.name.is_empty() {
                        out.push(required(
                            ctx,
                            &format!("{path}.object.metric.name"),
                            "must specify a metric name",
                        ));
                    }
                    if source.target.value.is_none() && source.target.average_value.is_none() {
                        out.push(required(
                            ctx,
                            &format!("{path}.object.target.averageValue"),
                            "must set either a target value or averageValue",
                        ));
                    }
                    targets.push((format!("{path}.object.target"), &source.target));
                }
            }
            Some("external") => {
                if let Some(source) = &metric.external {
                    if source.metric.name.is_empty() {
                        out.push(required(
                            ctx,
                            &format!("{path}.external.metric.name"),
                            "must specify a metric name",
                        ));
                    }
                    match (&source.target.value, &source.target.average_value) {
                        (None, None) => out.push(required(
                            ctx,
                            &format!("{path}.external.target.averageValue"),
                            "must set either a target value for metric or a per-pod target",
                        )),
                        (Some(_), Some(_)) => out.push(forbidden(
                            ctx,
                            &format!("{path}.external.target.value"),
                            "may not set both a target value for metric and a per-pod target",
                        )),
                        _ => {}
                    }
                    targets.push((format!("{path}.external.target"), &source.target));
                }
            }
            Some("pods") => {
                if let Some(source) = &metric.pods {
                    if source.metric.name.is_empty() {
                        out.push(required(
                            ctx,
                            &format!("{path}.pods.metric.name"),
                            "must specify a metric name",
                        ));
                    }
                    if source.target.average_value.is_none() {
                        out.push(required(
                            ctx,
                            &format!("{path}.pods.target.averageValue"),
                            "must specify a positive target averageValue",
                        ));
                    }
                    targets.push((format!("{path}.pods.target"), &source.target));
                }
            }
            Some(kind @ ("resource" | "containerResource")) => {
                let source = if kind == "resource" {
                    metric.resource.as_ref().map(|s| (&s.name, &s.target, None))
                } else {
                    metric
                        .container_resource
                        .as_ref()
                        .map(|s| (&s.name, &s.target, Some(&s.container)))
                };
                if let Some((name, target, container)) = source {
                    if name.is_empty() {
                        out.push(required(
                            ctx,
                            &format!("{path}.{kind}.name"),
                            "must specify a resource name",
                        ));
                    }
                    if container.is_some_and(String::is_empty) {
                        out.push(required(
                            ctx,
                            &format!("{path}.{kind}.container"),
                            "must specify a container",
                        ));
                    }
                    match (target.average_utilization, &target.average_value) {
                        (None, None) => out.push(required(
                            ctx,
                            &format!("{path}.{kind}.target.averageUtilization"),
                            "must set either a target raw value or a target utilization",
                        )),
                        (Some(_), Some(_)) => out.push(forbidden(
                            ctx,
                            &format!("{path}.{kind}.target.averageValue"),
                            "may not set both a target raw value and a target utilization",
                        )),
                        _ => {}
                    }
                    targets.push((format!("{path}.{kind}.target"), target));
                }
            }
            _ => {}
        }
        for (target_path, target) in targets {
            if target.type_.is_empty() {
                out.push(required(
                    ctx,
                    &format!("{target_path}.type"),
                    "must specify a metric target type",
                ));
            }
            if !matches!(
                target.type_.as_str(),
                "Utilization" | "Value" | "AverageValue"
            ) {
                let field = format!("{target_path}.type");
                out.push(invalid(
                    ctx,
                    &field,
                    &format!("{:?}", target.type_),
                    "must be either Utilization, Value, or AverageValue",
                ));
            }
            for (field, value) in [
                ("value", &target.value),
                ("averageValue", &target.average_value),
            ] {
                if let Some(quantity) = value
                    && quantity_sign(quantity).is_some_and(|sign| sign != 1)
                {
                    out.push(invalid(
                        ctx,
                        &format!("{target_path}.{field}"),
                        &format!("{:?}", quantity.0),
                        "must be positive",
                    ));
                }
            }
            if let Some(utilization) = target.average_utilization.filter(|u| *u < 1) {
                out.push(invalid(
                    ctx,
                    &format!("{target_path}.averageUtilization"),
                    &utilization.to_string(),
                    "must be greater than 0",
                ));
            }
        }
        let expected = match source_type {
            "Object" => Some("object"),
            "Pods" => Some("pods"),
            "Resource" => Some("resource"),
            "External" => Some("external"),
            "ContainerResource" => Some("containerResource"),
            _ => None,
        };
        match expected {
            Some(field) if !present.contains(&field) => {
                out.push(required(
                    ctx,
                    &format!("{path}.{field}"),
                    "must populate information for the given metric source",
                ));
            }
            Some(_) => {}
            None => out.push(not_supported(
                ctx,
                &format!("{path}.type"),
                source_type,
                METRIC_SOURCE_TYPES,
            )),
        }
        if present.len() != 1 {
            for field in present.iter().filter(|field| Some(**field) != expected) {
                out.push(forbidden(
                    ctx,
                    &format!("{path}.{field}"),
                    "must populate the given metric source only",
                ));
            }
        }
    }
    if spec.min_replicas == Some(0) && !has_object_or_external {
        out.push(forbidden(ctx, "spec.metrics", "must specify at least one Object or External metric to support scaling to zero replicas"));
    }
    let behavior = spec.behavior.as_ref();
    for (direction, rules) in [
        ("scaleUp", behavior.and_then(|b| b.scale_up.as_ref())),
        ("scaleDown", behavior.and_then(|b| b.scale_down.as_ref())),
    ] {
        let Some(rules) = rules else { continue };
        let path = format!("spec.behavior.{direction}");
        if let Some(window) = rules.stabilization_window_seconds {
            let field = format!("{path}.stabilizationWindowSeconds");
            if window < 0 {
                out.push(invalid(
                    ctx,
                    &field,
                    &window.to_string(),
                    "must be greater than or equal to zero",
                ));
            } else if window > MAX_STABILIZATION_WINDOW_SECONDS {
                out.push(invalid(
                    ctx,
                    &field,
                    &window.to_string(),
                    &format!("must be less than or equal to {MAX_STABILIZATION_WINDOW_SECONDS}"),
                ));
            }
        }
        if let Some(select) = rules
            .select_policy
            .as_deref()
            .filter(|s| !SELECT_POLICY_TYPES.contains(s))
        {
            out.push(not_supported(
                ctx,
                &format!("{path}.selectPolicy"),
                select,
                SELECT_POLICY_TYPES,
            ));
        }
        for (idx, policy) in rules.policies.iter().flatten().enumerate() {
            let policy_path = format!("{path}.policies[{idx}]");
            if !SCALING_POLICY_TYPES.contains(&policy.type_.as_str()) {
                out.push(not_supported(
                    ctx,
                    &format!("{policy_path}.type"),
                    &policy.type_,
                    SCALING_POLICY_TYPES,
                ));
            }
            if policy.value <= 0 {
                out.push(invalid(
                    ctx,
                    &format!("{policy_path}.value"),
                    &policy.value.to_string(),
                    "must be greater than zero",
                ));
            }
            let period_path = format!("{policy_path}.periodSeconds");
            if policy.period_seconds <= 0 {
                out.push(invalid(
                    ctx,
                    &period_path,
                    &policy.period_seconds.to_string(),
                    "must be greater than zero",
                ));
            }
            if policy.period_seconds > MAX_PERIOD_SECONDS {
                out.push(invalid(
                    ctx,
                    &period_path,
                    &policy.period_seconds.to_string(),
                    &format!("must be less than or equal to {MAX_PERIOD_SECONDS}"),
                ));
            }
        }
    }
    out
}

/// Which of apimachinery's name rules an object's name follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameRule {
    /// `IsDNS1123Label`: Namespaces, and every `metadata.namespace`.
    Dns1123Label,
    /// `IsDNS1035Label`: Services.
    Dns1035Label,
    /// `IsDNS1123Subdomain`: most other kinds.
    Dns1123Subdomain,
}

const DNS1123_LABEL_MESSAGE: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const DNS1035_LABEL_MESSAGE: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";
const DNS1123_SUBDOMAIN_MESSAGE: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";

fn is_dns1123_label(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes.first().is_some_and(|b| *b != b'-')
        && bytes.last().is_some_and(|b| *b != b'-')
}

/// The messages `IsDNS1123Label`, `IsDNS1035Label` or `IsDNS1123Subdomain` return for `name`.
pub fn name_problems(rule: NameRule, name: &str) -> Vec<String> {
    let mut out = Vec::new();
    let max_len = if rule == NameRule::Dns1123Subdomain {
        253
    } else {
        63
    };
    if name.len() > max_len {
        out.push(format!("must be no more than {max_len} characters"));
    }
    let ok = match rule {
        NameRule::Dns1123Label => is_dns1123_label(name),
        NameRule::Dns1035Label => is_dns1123_label(name) && name.as_bytes()[0].is_ascii_lowercase(),
        NameRule::Dns1123Subdomain => !name.is_empty() && name.split('.').all(is_dns1123_label),
    };
    if !ok {
        out.push(
            match rule {
                NameRule::Dns1123Label => DNS1123_LABEL_MESSAGE,
                NameRule::Dns1035Label => DNS1035_LABEL_MESSAGE,
                NameRule::Dns1123Subdomain => DNS1123_SUBDOMAIN_MESSAGE,
            }
            .to_string(),
        );
    }
    out
}

/// `metadata.name` and `metadata.namespace` as `ValidateObjectMeta` checks them.
pub fn object_meta(ctx: &DocContext<'_>, meta: &ObjectMeta, rule: NameRule) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let fields = [
        ("metadata.name", meta.name.as_deref(), rule),
        (
            "metadata.namespace",
            meta.namespace.as_deref(),
            NameRule::Dns1123Label,
        ),
    ];
    for (path, value, rule) in fields {
        let Some(value) = value else { continue };
        for message in name_problems(rule, value) {
            out.push(invalid(ctx, path, &format!("{value:?}"), &message));
        }
    }
    out
}
