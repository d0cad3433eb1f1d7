//! The API server's own validation for the kinds the twin simulates, so that an object the real
//! cluster would refuse is refused here too, with the API server's wording.
//!
//! Mirrors `pkg/apis/apps/validation` (`ValidateDeploymentSpec`, `ValidateRollingUpdateDeployment`,
//! `ValidatePodTemplateSpecForReplicaSet`) and `pkg/apis/autoscaling/validation`
//! (`validateHorizontalPodAutoscalerSpec`) of Kubernetes 1.29. Messages follow `field.Invalid`:
//! `<path>: Invalid value: <Go %#v of the value>: <detail>`.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::DocContext;
use crate::diag::Diagnostic;

/// The lower bound of `minReplicas` with the `HPAScaleToZero` feature gate off (its default).
const MIN_REPLICAS_LOWER_BOUND: i32 = 1;

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
        IntOrString::String(text) => text
            .strip_suffix('%')
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
                IntOrString::Int(int) if *int < 0 => {
                    out.push(invalid(
                        ctx,
                        &path,
                        &go_int_or_string(value),
                        "must be greater than or equal to 0",
                    ));
                }
                IntOrString::String(text) if int_or_percent_value(value).is_none() => {
                    out.push(invalid(ctx, &path, &format!("{text:?}"), "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')"));
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
