//! VirtualService HTTP routing as the client sidecar applies it (`spec/mesh.md` §6; istiod
//! `route.go`: `TranslateRoute`, `TranslateRouteMatch`, `translateHeaderMatch`; Envoy
//! `pickWeightedCluster`).
//!
//! - Rules are tried in order and the first match wins; a rule's match blocks are OR'd, the
//!   conditions inside one block AND'd; a rule with no block matches everything. Nothing
//!   matching is 404 `NR` (istiod adds no fallback route).
//! - Header values compare case-sensitively; a regex is RE2 and must match the whole value; an
//!   empty matcher or `regex: "*"` only asks for the header to be present. `withoutHeaders`
//!   inverts a condition and reads a missing header as the empty string.
//! - URI `exact` and `regex` look at the path without its query; `prefix` is a plain string
//!   prefix of the whole `:path`. `ignoreUriCase` makes the three case-insensitive.
//! - One destination gets all traffic whatever its weight. Several become weighted clusters in
//!   listed order, weight-0 entries dropped; each request draws `v = random % total` and goes
//!   to the first destination whose cumulative range holds `v`.
//!
//! Invariants: routing is a pure function of the request and one random draw; a compiled
//! [`VirtualService`] has only valid regexes and a positive total weight on every rule.

use std::collections::BTreeMap;

use regex::Regex;

use super::{MeshError, ResponseFlag};

/// The parts of an HTTP request that routing and authorization read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HttpRequest {
    pub method: String,
    /// `:path`, query included.
    pub path: String,
    /// Header names in lower case, as HTTP/2 and Envoy carry them.
    pub headers: BTreeMap<String, String>,
    /// The peer's mTLS identity without `spiffe://` (`cluster.local/ns/app/sa/web`), if any.
    pub principal: Option<String>,
}

impl HttpRequest {
    pub fn new(method: &str, path: &str) -> Self {
        HttpRequest {
            method: method.to_string(),
            path: path.to_string(),
            ..HttpRequest::default()
        }
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers
            .insert(name.to_ascii_lowercase(), value.to_string());
        self
    }

    pub fn with_principal(mut self, principal: &str) -> Self {
        self.principal = Some(principal.to_string());
        self
    }

    /// The path without its query string.
    pub fn path_without_query(&self) -> &str {
        self.path
            .split_once('?')
            .map_or(&self.path, |(path, _)| path)
    }
}

/// A `StringMatch` as written in the VirtualService.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StringMatchSpec {
    Exact(String),
    Prefix(String),
    Regex(String),
    /// An empty matcher object (`{}`): the header must be present.
    Present,
}

/// One `match` block as written.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RouteMatchSpec {
    pub uri: Option<StringMatchSpec>,
    pub method: Option<StringMatchSpec>,
    /// Header name (any case) to condition, in the order written.
    pub headers: Vec<(String, StringMatchSpec)>,
    pub without_headers: Vec<(String, StringMatchSpec)>,
    pub ignore_uri_case: bool,
}

/// One `route` destination.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Destination {
    pub host: String,
    pub subset: Option<String>,
    pub port: Option<u16>,
    pub weight: u32,
}

/// One `http` rule as written.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HttpRouteSpec {
    pub name: Option<String>,
    pub matches: Vec<RouteMatchSpec>,
    pub route: Vec<Destination>,
}

#[derive(Clone, Debug)]
enum Matcher {
    Exact(String),
    Prefix(String),
    Regex(Regex),
    Present,
}

impl Matcher {
    fn compile(
        spec: &StringMatchSpec,
        field: &str,
        ignore_case: bool,
    ) -> Result<Matcher, MeshError> {
        let fold = |s: &str| {
            if ignore_case {
                s.to_lowercase()
            } else {
                s.to_string()
            }
        };
        Ok(match spec {
            StringMatchSpec::Exact(value) => Matcher::Exact(fold(value)),
            StringMatchSpec::Prefix(value) => Matcher::Prefix(fold(value)),
            StringMatchSpec::Regex(pattern) if pattern == "*" => Matcher::Present,
            StringMatchSpec::Regex(pattern) => {
                let flags = if ignore_case { "(?i)" } else { "" };
                let anchored = format!("{flags}^(?:{pattern})$");
                Matcher::Regex(Regex::new(&anchored).map_err(|error| {
                    MeshError::invalid(format!("{field}.regex"), error.to_string())
                })?)
            }
            StringMatchSpec::Present => Matcher::Present,
        })
    }

    #[inline]
    fn matches(&self, value: &str, ignore_case: bool) -> bool {
        match self {
            Matcher::Exact(expected) if ignore_case => value.to_lowercase() == *expected,
            Matcher::Exact(expected) => value == expected,
            Matcher::Prefix(prefix) if ignore_case => {
                value.to_lowercase().starts_with(prefix.as_str())
            }
            Matcher::Prefix(prefix) => value.starts_with(prefix.as_str()),
            Matcher::Regex(regex) => regex.is_match(value),
            Matcher::Present => true,
        }
    }
}

#[derive(Clone, Debug)]
struct CompiledMatch {
    uri: Option<Matcher>,
    method: Option<Matcher>,
    headers: Vec<(String, Matcher)>,
    without_headers: Vec<(String, Matcher)>,
    ignore_uri_case: bool,
}

impl CompiledMatch {
    fn matches(&self, request: &HttpRequest) -> bool {
        if let Some(uri) = &self.uri {
            let subject = match uri {
                Matcher::Prefix(_) => request.path.as_str(),
                _ => request.path_without_query(),
            };
            if !uri.matches(subject, self.ignore_uri_case) {
                return false;
            }
        }
        if let Some(method) = &self.method
            && !method.matches(&request.method, false)
        {
            return false;
        }
        let header_holds = |(name, matcher): &(String, Matcher)| match request.headers.get(name) {
            Some(value) => matcher.matches(value, false),
            None => false,
        };
        if !self.headers.iter().all(header_holds) {
            return false;
        }
        self.without_headers.iter().all(|(name, matcher)| {
            match (request.headers.get(name), matcher) {
                (None, Matcher::Present) => true,
                (None, matcher) => !matcher.matches("", false),
                (Some(value), matcher) => !matcher.matches(value, false),
            }
        })
    }
}

#[derive(Clone, Debug)]
struct CompiledRoute {
    matches: Vec<CompiledMatch>,
    /// Destinations that can receive traffic, with their cumulative weight ends.
    destinations: Vec<Destination>,
    cumulative: Vec<u64>,
}

/// The HTTP routes of one VirtualService, compiled.
#[derive(Clone, Debug)]
pub struct VirtualService {
    routes: Vec<CompiledRoute>,
}

/// Where a request goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteDecision<'a> {
    Forward {
        rule: usize,
        /// The destination's index in its rule's (weighted) destinations.
        index: usize,
        destination: &'a Destination,
    },
    /// 404 `NR`.
    NoRoute,
}

impl VirtualService {
    /// Compiles the rules, refusing bad regexes and weightless destination lists.
    pub fn new(http: &[HttpRouteSpec]) -> Result<VirtualService, MeshError> {
        let mut routes = Vec::with_capacity(http.len());
        for (rule_idx, rule) in http.iter().enumerate() {
            let mut matches = Vec::with_capacity(rule.matches.len());
            for (match_idx, block) in rule.matches.iter().enumerate() {
                let field = format!("http[{rule_idx}].match[{match_idx}]");
                let headers = |list: &[(String, StringMatchSpec)],
                               key: &str|
                 -> Result<Vec<(String, Matcher)>, MeshError> {
                    let mut compiled: Vec<(String, Matcher)> = list
                        .iter()
                        .map(|(name, spec)| {
                            Ok((
                                name.to_ascii_lowercase(),
                                Matcher::compile(spec, &format!("{field}.{key}.{name}"), false)?,
                            ))
                        })
                        .collect::<Result<_, MeshError>>()?;
                    // istiod sorts header conditions by name; all must hold, so only the
                    // output order changes.
                    compiled.sort_by(|a, b| a.0.cmp(&b.0));
                    Ok(compiled)
                };
                matches.push(CompiledMatch {
                    uri: block
                        .uri
                        .as_ref()
                        .map(|spec| {
                            Matcher::compile(spec, &format!("{field}.uri"), block.ignore_uri_case)
                        })
                        .transpose()?,
                    method: block
                        .method
                        .as_ref()
                        .map(|spec| Matcher::compile(spec, &format!("{field}.method"), false))
                        .transpose()?,
                    headers: headers(&block.headers, "headers")?,
                    without_headers: headers(&block.without_headers, "withoutHeaders")?,
                    ignore_uri_case: block.ignore_uri_case,
                });
            }
            let destinations: Vec<Destination> = match rule.route.as_slice() {
                [] => {
                    return Err(MeshError::invalid(
                        format!("http[{rule_idx}].route"),
                        "a rule needs at least one destination",
                    ));
                }
                [only] => vec![Destination {
                    weight: 1,
                    ..only.clone()
                }],
                many => many.iter().filter(|d| d.weight > 0).cloned().collect(),
            };
            if destinations.is_empty() {
                return Err(MeshError::invalid(
                    format!("http[{rule_idx}].route"),
                    "the destination weights add up to 0; at least one must be above 0",
                ));
            }
            let mut cumulative = Vec::with_capacity(destinations.len());
            let mut total = 0u64;
            for destination in &destinations {
                total += u64::from(destination.weight);
                cumulative.push(total);
            }
            routes.push(CompiledRoute {
                matches,
                destinations,
                cumulative,
            });
        }
        Ok(VirtualService { routes })
    }

    /// Routes `request`; `random` is the request's random draw (Envoy uses the stream id).
    #[inline]
    /// Every rule's destinations that can receive traffic, in the indices
    /// [`RouteDecision::Forward`] reports.
    pub fn destinations(&self) -> impl Iterator<Item = &[Destination]> {
        self.routes
            .iter()
            .map(|route| route.destinations.as_slice())
    }

    pub fn route(&self, request: &HttpRequest, random: u64) -> RouteDecision<'_> {
        for (rule, route) in self.routes.iter().enumerate() {
            if route.matches.is_empty() || route.matches.iter().any(|block| block.matches(request))
            {
                let total = *route
                    .cumulative
                    .last()
                    .expect("a compiled rule has a positive total weight");
                let draw = random % total;
                let index = route.cumulative.partition_point(|&end| end <= draw);
                return RouteDecision::Forward {
                    rule,
                    index,
                    destination: &route.destinations[index],
                };
            }
        }
        RouteDecision::NoRoute
    }

    /// Routes `request` and checks the chosen cluster has a Ready endpoint (`ready_endpoints`
    /// counts them per destination): 404 `NR` or 503 `UH` otherwise.
    pub fn resolve(
        &self,
        request: &HttpRequest,
        random: u64,
        ready_endpoints: impl Fn(&Destination) -> usize,
    ) -> Result<&Destination, ResponseFlag> {
        match self.route(request, random) {
            RouteDecision::NoRoute => Err(ResponseFlag::NoRouteFound),
            RouteDecision::Forward { destination, .. } if ready_endpoints(destination) == 0 => {
                Err(ResponseFlag::NoHealthyUpstream)
            }
            RouteDecision::Forward { destination, .. } => Ok(destination),
        }
    }
}
