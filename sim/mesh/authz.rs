//! Istio AuthorizationPolicy on the server sidecar, for the ALLOW and DENY actions (Istio docs
//! "Authorization Policy"; istiod `pilot/pkg/security/authz/builder`).
//!
//! Evaluation: any matching DENY policy denies; otherwise, if the workload has no ALLOW
//! policy the request is allowed; otherwise it is allowed only if some ALLOW policy matches.
//! A policy matches when any of its rules does; a policy with no rules matches nothing (so an
//! ALLOW policy with no rules allows nothing). A rule matches when one of its `from` sources
//! and one of its `to` operations match (an empty list matches anything). Inside a source or an
//! operation every field that is set must hold; a list field holds when any value matches.
//! Values match exactly, or as `prefix*`, `*suffix`, or `*` (any non-empty value). Paths are
//! compared without the query string. A denied request gets 403, body `RBAC: access denied`.
//!
//! Invariant: `check` is a pure function of the policies and the request.

use super::route::HttpRequest;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthzAction {
    Allow,
    Deny,
}

/// `rules[].from[].source`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuthzSource {
    pub principals: Vec<String>,
    pub not_principals: Vec<String>,
}

/// `rules[].to[].operation`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuthzOperation {
    pub methods: Vec<String>,
    pub not_methods: Vec<String>,
    pub paths: Vec<String>,
    pub not_paths: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuthzRule {
    pub from: Vec<AuthzSource>,
    pub to: Vec<AuthzOperation>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthorizationPolicy {
    pub name: String,
    pub action: AuthzAction,
    pub rules: Vec<AuthzRule>,
}

/// The verdict on one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthzDecision<'a> {
    Allow,
    /// 403; `policy` names the DENY policy that matched, or is `None` when no ALLOW policy did.
    Deny {
        policy: Option<&'a str>,
    },
}

impl AuthzDecision<'_> {
    pub fn status(&self) -> u16 {
        match self {
            AuthzDecision::Allow => 200,
            AuthzDecision::Deny { .. } => 403,
        }
    }
}

/// Istio's value match with its one wildcard at either end.
fn value_matches(pattern: &str, value: &str) -> bool {
    if pattern == "*" {
        !value.is_empty()
    } else if let Some(prefix) = pattern.strip_suffix('*') {
        value.starts_with(prefix)
    } else if let Some(suffix) = pattern.strip_prefix('*') {
        value.ends_with(suffix)
    } else {
        pattern == value
    }
}

/// A set list field holds when any value matches; an empty list does not constrain.
fn any_matches(patterns: &[String], value: Option<&str>) -> bool {
    patterns.is_empty() || value.is_some_and(|v| patterns.iter().any(|p| value_matches(p, v)))
}

/// A `not*` list holds when no value matches (an absent value matches nothing).
fn none_matches(patterns: &[String], value: Option<&str>) -> bool {
    value.is_none_or(|v| !patterns.iter().any(|p| value_matches(p, v)))
}

impl AuthzSource {
    fn matches(&self, request: &HttpRequest) -> bool {
        let principal = request.principal.as_deref();
        any_matches(&self.principals, principal) && none_matches(&self.not_principals, principal)
    }
}

impl AuthzOperation {
    fn matches(&self, request: &HttpRequest) -> bool {
        let method = Some(request.method.as_str());
        let path = Some(request.path_without_query());
        any_matches(&self.methods, method)
            && none_matches(&self.not_methods, method)
            && any_matches(&self.paths, path)
            && none_matches(&self.not_paths, path)
    }
}

impl AuthzRule {
    fn matches(&self, request: &HttpRequest) -> bool {
        (self.from.is_empty() || self.from.iter().any(|source| source.matches(request)))
            && (self.to.is_empty() || self.to.iter().any(|operation| operation.matches(request)))
    }
}

impl AuthorizationPolicy {
    pub fn matches(&self, request: &HttpRequest) -> bool {
        self.rules.iter().any(|rule| rule.matches(request))
    }
}

/// The verdict of every policy that selects the workload.
pub fn check<'a>(policies: &'a [AuthorizationPolicy], request: &HttpRequest) -> AuthzDecision<'a> {
    if let Some(deny) = policies
        .iter()
        .find(|p| p.action == AuthzAction::Deny && p.matches(request))
    {
        return AuthzDecision::Deny {
            policy: Some(deny.name.as_str()),
        };
    }
    let mut allow_policies = policies
        .iter()
        .filter(|p| p.action == AuthzAction::Allow)
        .peekable();
    if allow_policies.peek().is_none() {
        return AuthzDecision::Allow;
    }
    if allow_policies.any(|p| p.matches(request)) {
        AuthzDecision::Allow
    } else {
        AuthzDecision::Deny { policy: None }
    }
}
