//! Loading: files to documents to typed objects, with every problem collected.
//!
//! This is the reading half of [`super`]: walking a folder, refusing large and non-text files,
//! choosing each document's kind, decoding it with field paths, running the upstream
//! validations of `validate.rs`, and parsing the configs held in ConfigMap data keys with
//! their positions mapped back to the outer file.
//!
//! Invariant: a file contributes to the inventory only when it has no error at all.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, ResourceQuota};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::configs::{GpuSharing, LokiConfig, PromtailConfig};
use super::grafana::Dashboard;
use super::prometheus::{PrometheusConfig, PrometheusRule, RuleFile};
use super::sloth::{self, PrometheusServiceLevel, SloForm, SloSpec};
use super::topology::{self, Topology};
use super::{
    EXTENSIONS, EmbeddedIn, FieldPositions, FieldSpan, Inventory, MAX_FILE_BYTES, ManifestError,
    ObjectMeta, Origin, Position, Sourced, UnknownObject, validate, yaml,
};
use crate::diag::{Diagnostic, Location};

/// Reads every `.yaml`, `.yml` and `.json` file below `dir`, in sorted path order. Hidden
/// entries (names starting with `.`) are skipped; symbolic links to folders are not followed.
/// Any error in any file fails the whole load, with every error found.
pub fn load_dir(dir: impl AsRef<Path>) -> Result<Inventory, ManifestError> {
    let dir = dir.as_ref();
    let here = Location {
        file: dir.to_path_buf(),
        ..Default::default()
    };
    let meta = match std::fs::metadata(dir) {
        Ok(meta) => meta,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return Err(ManifestError::from_diagnostics(vec![Diagnostic::error(
                here,
                "",
                "no such directory",
            )]));
        }
        Err(err) => {
            return Err(ManifestError::from_diagnostics(vec![Diagnostic::error(
                here,
                "",
                format!("cannot read: {err}"),
            )]));
        }
    };
    if !meta.is_dir() {
        return Err(ManifestError::from_diagnostics(vec![Diagnostic::error(
            here,
            "",
            "not a directory",
        )]));
    }
    let mut errors = Vec::new();
    let files = collect_files(dir, &mut errors);
    let mut inventory = Inventory::default();
    for file in files {
        match read_text(&file) {
            Ok(text) => load_text_into(&file, &text, &mut inventory, &mut errors),
            Err(diag) => errors.push(diag),
        }
    }
    if errors.is_empty() {
        Ok(inventory)
    } else {
        Err(ManifestError::from_diagnostics(errors))
    }
}

/// Reads one file.
pub fn load_file(path: impl AsRef<Path>) -> Result<Inventory, ManifestError> {
    let path = path.as_ref();
    let text = read_text(path).map_err(|diag| ManifestError::from_diagnostics(vec![diag]))?;
    load_str(path, &text)
}

/// Reads text as if it were the file `name` (the name's extension does not matter).
pub fn load_str(name: impl AsRef<Path>, text: &str) -> Result<Inventory, ManifestError> {
    let name = name.as_ref();
    let mut inventory = Inventory::default();
    let mut errors = Vec::new();
    if let Err(diag) = check_text(name, text.as_bytes()) {
        return Err(ManifestError::from_diagnostics(vec![diag]));
    }
    load_text_into(name, text, &mut inventory, &mut errors);
    if errors.is_empty() {
        Ok(inventory)
    } else {
        Err(ManifestError::from_diagnostics(errors))
    }
}

fn collect_files(dir: &Path, errors: &mut Vec<Diagnostic>) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(folder) = pending.pop() {
        let entries = match std::fs::read_dir(&folder) {
            Ok(entries) => entries,
            Err(err) => {
                errors.push(Diagnostic::error(
                    Location {
                        file: folder.clone(),
                        ..Default::default()
                    },
                    "",
                    format!("cannot list: {err}"),
                ));
                continue;
            }
        };
        for entry in entries {
            let entry = match entry {
                Ok(entry) => entry,
                Err(err) => {
                    errors.push(Diagnostic::error(
                        Location {
                            file: folder.clone(),
                            ..Default::default()
                        },
                        "",
                        format!("cannot list: {err}"),
                    ));
                    continue;
                }
            };
            let path = entry.path();
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                pending.push(path);
            } else if has_known_extension(&path) && (kind.is_file() || path.is_file()) {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

fn has_known_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|ext| ext.to_str())
        .map(|ext| {
            EXTENSIONS
                .iter()
                .any(|known| ext.eq_ignore_ascii_case(known))
        })
        .unwrap_or(false)
}

/// Reads a file as text, refusing large and non-text files. The size is checked before reading
/// and the read itself is capped, so a file growing meanwhile cannot be read whole either.
pub(super) fn read_text(path: &Path) -> Result<String, Diagnostic> {
    let here = || Location {
        file: path.to_path_buf(),
        ..Default::default()
    };
    let file = std::fs::File::open(path)
        .map_err(|err| Diagnostic::error(here(), "", format!("cannot read: {err}")))?;
    let size = file.metadata().map(|meta| meta.len()).unwrap_or(0);
    if size > MAX_FILE_BYTES {
        return Err(Diagnostic::error(
            here(),
            "",
            format!(
                "file is {size} bytes, above the limit of {MAX_FILE_BYTES} bytes (8 MiB); not read"
            ),
        ));
    }
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|err| Diagnostic::error(here(), "", format!("cannot read: {err}")))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(Diagnostic::error(
            here(),
            "",
            format!("file is above the limit of {MAX_FILE_BYTES} bytes (8 MiB); not read"),
        ));
    }
    check_text(path, &bytes)?;
    String::from_utf8(bytes)
        .map_err(|err| Diagnostic::error(here(), "", format!("not UTF-8 text: {err}")))
}

/// Refuses empty and non-text input, naming the first bad byte.
pub(super) fn check_text(path: &Path, bytes: &[u8]) -> Result<(), Diagnostic> {
    let here = |line: usize, column: usize| Location {
        file: path.to_path_buf(),
        document: 0,
        line,
        column,
    };
    if bytes.is_empty() {
        return Err(Diagnostic::error(here(0, 0), "", "file is empty"));
    }
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(Diagnostic::error(
            here(0, 0),
            "",
            format!("input is above the limit of {MAX_FILE_BYTES} bytes (8 MiB)"),
        ));
    }
    let line_col = |offset: usize| {
        let before = &bytes[..offset];
        let line = before.iter().filter(|b| **b == b'\n').count() + 1;
        let column = offset
            - before
                .iter()
                .rposition(|b| *b == b'\n')
                .map(|at| at + 1)
                .unwrap_or(0)
            + 1;
        (line, column)
    };
    if let Some(offset) = bytes.iter().position(|b| *b == 0) {
        let (line, column) = line_col(offset);
        return Err(Diagnostic::error(
            here(line, column),
            "",
            format!("not a text file: NUL byte at offset {offset}"),
        ));
    }
    if let Err(err) = std::str::from_utf8(bytes) {
        let offset = err.valid_up_to();
        let (line, column) = line_col(offset);
        return Err(Diagnostic::error(
            here(line, column),
            "",
            format!("not UTF-8 text: invalid byte at offset {offset}"),
        ));
    }
    Ok(())
}

/// What one document is being read as: its file, index and positions.
pub(super) struct DocContext<'a> {
    pub(super) file: &'a Path,
    pub(super) document: usize,
    pub(super) positions: Arc<FieldPositions>,
    pub(super) start: Position,
}

impl DocContext<'_> {
    fn origin(&self) -> Origin {
        Origin {
            file: self.file.to_path_buf(),
            document: self.document,
            line: self.start.line,
            column: self.start.column,
        }
    }

    /// The location of `path`: its value, or its key when `at_key`, or the nearest ancestor.
    pub(super) fn location(&self, path: &str, at_key: bool) -> Location {
        let position = match self.positions.nearest(path) {
            Some((found, span)) if found == path && at_key => span.key.unwrap_or(span.value),
            Some((_, span)) => span.key.filter(|_| at_key).unwrap_or(span.value),
            None => self.start,
        };
        Location {
            file: self.file.to_path_buf(),
            document: self.document,
            line: position.line,
            column: position.column,
        }
    }

    pub(super) fn error(&self, path: &str, message: impl Into<String>) -> Diagnostic {
        Diagnostic::error(self.location(path, false), path, message)
    }

    fn sourced<T>(&self, object: T) -> Sourced<T> {
        Sourced {
            origin: self.origin(),
            embedded_in: None,
            positions: self.positions.clone(),
            object,
        }
    }

    fn embedded<T>(&self, embedded_in: &EmbeddedIn, object: T) -> Sourced<T> {
        Sourced {
            origin: self.origin(),
            embedded_in: Some(embedded_in.clone()),
            positions: self.positions.clone(),
            object,
        }
    }
}

/// Deserializes `value` (found at `base` in the document) as `T`, turning a failure into a
/// diagnostic at the failing field.
pub(super) fn decode<T: DeserializeOwned>(
    ctx: &DocContext<'_>,
    value: &Value,
    base: &str,
) -> Result<T, Diagnostic> {
    serde_path_to_error::deserialize::<_, T>(value).map_err(|err| {
        let mut path = base.to_string();
        for segment in err.path().iter() {
            match segment {
                serde_path_to_error::Segment::Seq { index } => {
                    path = yaml::join_index(&path, *index)
                }
                serde_path_to_error::Segment::Map { key }
                | serde_path_to_error::Segment::Enum { variant: key } => {
                    path = yaml::join_key(&path, key)
                }
                serde_path_to_error::Segment::Unknown => {}
            }
        }
        let message = err.inner().to_string();
        // serde names the offending field in backticks. serde_path_to_error already ends the
        // path with an unknown key (point at the key, not its value); a missing field is reported
        // at its parent, so extend the path to name the field itself.
        let named = message.split('`').nth(1).map(str::to_string);
        if let Some(field) = named.as_deref() {
            if message.starts_with("unknown field") {
                return Diagnostic::error(ctx.location(&path, true), path, message);
            }
            if message.starts_with("missing field") {
                let field_path = yaml::join_key(&path, field);
                return Diagnostic::error(ctx.location(&path, true), field_path, message);
            }
        }
        Diagnostic::error(ctx.location(&path, false), path, message)
    })
}

/// Decodes a core kind through k8s-openapi, then refuses the fields k8s-openapi silently
/// dropped, as `kubectl apply` does with its default strict field validation (Kubernetes 1.27
/// and later): a field of the input that does not come back when the typed object is written
/// out again is not in the schema. Unknown fields go to `errors`.
fn decode_core<T: DeserializeOwned + Serialize>(
    ctx: &DocContext<'_>,
    value: &Value,
    errors: &mut Vec<Diagnostic>,
) -> Result<T, Diagnostic> {
    let typed: T = decode(ctx, value, "")?;
    let written = serde_json::to_value(&typed)
        .map_err(|err| ctx.error("", format!("cannot re-encode: {err}")))?;
    let mut unknown = Vec::new();
    unknown_fields(value, &written, String::new(), &mut unknown);
    for path in unknown {
        let message = format!("strict decoding error: unknown field {path:?}");
        errors.push(Diagnostic::error(ctx.location(&path, true), path, message));
    }
    Ok(typed)
}

/// The paths of `input`'s mapping keys that `written` lacks. A `null` input value counts as
/// absent (the API drops it too); where `written` is not a mapping (a quantity, an
/// `IntOrString`, a free-form value) there is nothing to compare.
fn unknown_fields(input: &Value, written: &Value, path: String, out: &mut Vec<String>) {
    match (input, written) {
        (Value::Object(input), Value::Object(written)) => {
            for (key, child) in input {
                if child.is_null() {
                    continue;
                }
                let child_path = yaml::join_key(&path, key);
                match written.get(key) {
                    Some(written_child) => unknown_fields(child, written_child, child_path, out),
                    None => out.push(child_path),
                }
            }
        }
        (Value::Array(input), Value::Array(written)) if input.len() == written.len() => {
            for (idx, (child, written_child)) in input.iter().zip(written).enumerate() {
                unknown_fields(child, written_child, yaml::join_index(&path, idx), out);
            }
        }
        _ => {}
    }
}

fn string_at<'a>(value: &'a Value, key: &str) -> Option<&'a str> {
    value.get(key).and_then(Value::as_str)
}

/// Reads every document of one file's text into `inventory`, or pushes its errors.
fn load_text_into(
    file: &Path,
    text: &str,
    inventory: &mut Inventory,
    errors: &mut Vec<Diagnostic>,
) {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let documents = match yaml::parse_documents(text) {
        Ok(documents) => documents,
        Err(err) => {
            errors.push(yaml_error_diagnostic(file, &err, |p| p));
            return;
        }
    };
    if documents.is_empty() {
        errors.push(Diagnostic::error(
            Location {
                file: file.to_path_buf(),
                ..Default::default()
            },
            "",
            "file holds no document (only blank lines or comments)",
        ));
        return;
    }
    let mut local = Inventory {
        files: vec![file.to_path_buf()],
        ..Default::default()
    };
    let mut local_errors = Vec::new();
    for document in documents {
        let ctx = DocContext {
            file,
            document: document.index,
            positions: Arc::new(document.positions),
            start: document.start,
        };
        if let Err(diag) = load_document(&ctx, text, &document.value, &mut local, &mut local_errors)
        {
            local_errors.push(diag);
        }
    }
    if local_errors.is_empty() {
        inventory.merge(local);
    } else {
        errors.extend(local_errors);
    }
}

pub(super) fn yaml_error_diagnostic(
    file: &Path,
    err: &yaml::YamlError,
    map: impl Fn(Position) -> Position,
) -> Diagnostic {
    let position = map(err.position);
    Diagnostic::error(
        Location {
            file: file.to_path_buf(),
            document: err.document,
            line: position.line,
            column: position.column,
        },
        err.path.clone(),
        err.message.clone(),
    )
}

/// Reads one document by its apiVersion and kind, or by its shape when it has neither.
fn load_document(
    ctx: &DocContext<'_>,
    text: &str,
    value: &Value,
    inv: &mut Inventory,
    errors: &mut Vec<Diagnostic>,
) -> Result<(), Diagnostic> {
    if !value.is_object() {
        return Err(ctx.error(
            "",
            "a document must be a mapping (an object), not a sequence or a scalar",
        ));
    }
    let api_version = value.get("apiVersion");
    let kind = value.get("kind");
    if kind.is_some() || api_version.is_some() {
        let Some(api_version) = api_version.and_then(Value::as_str) else {
            return Err(ctx.error(
                "apiVersion",
                "apiVersion must be set to a string when kind is set",
            ));
        };
        let Some(kind) = kind.and_then(Value::as_str) else {
            return Err(ctx.error(
                "kind",
                "kind must be set to a string when apiVersion is set",
            ));
        };
        return load_kind(ctx, text, value, api_version, kind, inv, errors);
    }
    load_shape(ctx, value, inv, errors)
}

fn load_kind(
    ctx: &DocContext<'_>,
    text: &str,
    value: &Value,
    api_version: &str,
    kind: &str,
    inv: &mut Inventory,
    errors: &mut Vec<Diagnostic>,
) -> Result<(), Diagnostic> {
    let (group, _version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    // k8s-openapi fills a missing required field with its default; the API server refuses it.
    require(ctx, value, required_fields(api_version, kind))?;
    if let Some(rule) = name_rule(api_version, kind)
        && let Some(meta) = value.get("metadata")
    {
        let meta: ObjectMeta = decode(ctx, meta, "metadata")?;
        errors.extend(validate::object_meta(ctx, &meta, rule));
    }
    match (api_version, kind) {
        ("v1", "Namespace") => inv
            .namespaces
            .push(ctx.sourced(decode_core(ctx, value, errors)?)),
        ("v1", "ResourceQuota") => {
            let quota: ResourceQuota = decode_core(ctx, value, errors)?;
            errors.extend(validate::quantities(
                ctx,
                validate::resource_quota_quantities(&quota),
            ));
            inv.resource_quotas.push(ctx.sourced(quota));
        }
        ("v1", "Secret") => inv
            .secrets
            .push(ctx.sourced(decode_core(ctx, value, errors)?)),
        ("v1", "ServiceAccount") => inv
            .service_accounts
            .push(ctx.sourced(decode_core(ctx, value, errors)?)),
        ("v1", "Service") => inv
            .services
            .push(ctx.sourced(decode_core(ctx, value, errors)?)),
        ("v1", "ConfigMap") => {
            let config_map: ConfigMap = decode_core(ctx, value, errors)?;
            load_embedded(ctx, text, &config_map, inv, errors);
            inv.config_maps.push(ctx.sourced(config_map));
        }
        ("scheduling.k8s.io/v1", "PriorityClass") => inv
            .priority_classes
            .push(ctx.sourced(decode_core(ctx, value, errors)?)),
        ("apps/v1", "Deployment") => {
            let deployment: Deployment = decode_core(ctx, value, errors)?;
            errors.extend(validate::deployment(ctx, &deployment));
            errors.extend(validate::deployment_deadlines(ctx, &deployment));
            errors.extend(validate::quantities(
                ctx,
                validate::deployment_quantities(&deployment),
            ));
            inv.deployments.push(ctx.sourced(deployment));
        }
        ("autoscaling/v2", "HorizontalPodAutoscaler") => {
            let hpa: HorizontalPodAutoscaler = decode_core(ctx, value, errors)?;
            errors.extend(validate::hpa(ctx, &hpa));
            errors.extend(validate::hpa_details(ctx, &hpa));
            errors.extend(validate::quantities(ctx, validate::hpa_quantities(&hpa)));
            inv.hpas.push(ctx.sourced(hpa));
        }
        ("policy/v1", "PodDisruptionBudget") => inv
            .pod_disruption_budgets
            .push(ctx.sourced(decode_core(ctx, value, errors)?)),
        (_, "VirtualService") if is_istio_networking(api_version) => inv
            .virtual_services
            .push(ctx.sourced(decode(ctx, value, "")?)),
        (_, "DestinationRule") if is_istio_networking(api_version) => inv
            .destination_rules
            .push(ctx.sourced(decode(ctx, value, "")?)),
        ("security.istio.io/v1beta1" | "security.istio.io/v1", "AuthorizationPolicy") => inv
            .authorization_policies
            .push(ctx.sourced(decode(ctx, value, "")?)),
        ("sloth.slok.dev/v1", "PrometheusServiceLevel") => {
            let metadata: ObjectMeta = match value.get("metadata") {
                Some(meta) => decode(ctx, meta, "metadata")?,
                None => return Err(ctx.error("metadata", "missing field `metadata`")),
            };
            let Some(spec_value) = value.get("spec") else {
                return Err(ctx.error("spec", "missing field `spec`"));
            };
            for key in value
                .as_object()
                .map(|map| map.keys())
                .into_iter()
                .flatten()
            {
                if !matches!(
                    key.as_str(),
                    "apiVersion" | "kind" | "metadata" | "spec" | "status"
                ) {
                    return Err(Diagnostic::error(
                        ctx.location(key, true),
                        key.clone(),
                        format!(
                            "unknown field `{key}`, expected one of `apiVersion`, `kind`, `metadata`, `spec`"
                        ),
                    ));
                }
            }
            let spec: SloSpec = decode(ctx, spec_value, "spec")?;
            let written_fields = sloth::written_fields(spec_value, "spec");
            let slo = PrometheusServiceLevel {
                form: SloForm::Crd,
                metadata: Some(metadata),
                spec,
                written_fields,
            };
            errors.extend(validate::slo(ctx, &slo, "spec"));
            inv.slos.push(ctx.sourced(slo));
        }
        ("monitoring.coreos.com/v1", "PrometheusRule") => {
            let rule: PrometheusRule = decode(ctx, value, "")?;
            errors.extend(validate::rule_file(ctx, &rule.spec, "spec"));
            inv.prometheus_rules.push(ctx.sourced(rule));
        }
        ("argoproj.io/v1alpha1", "Application") => inv
            .argo_applications
            .push(ctx.sourced(decode(ctx, value, "")?)),
        (topology::API_VERSION, topology::KIND) => {
            let topology = Topology::from_value(value, &ctx.positions, ctx.file, ctx.document, "")
                .map_err(|mut diags| {
                    let first = diags.remove(0);
                    errors.extend(diags);
                    first
                })?;
            inv.topologies.push(ctx.sourced(topology));
        }
        // twin's own inputs that live beside the manifests (service profiles, scenarios) are
        // read by the scenario loader, which checks them; a manifest folder only skips them.
        (topology::API_VERSION, "ServiceProfiles" | "Scenario") => {}
        _ => {
            let reason = if group.is_empty() || group.ends_with("k8s.io") || !group.contains('.') {
                format!("{api_version} {kind} is not a kind twin reads; kept as is")
            } else {
                format!("{kind} of {api_version} is not a kind twin reads; kept as is")
            };
            inv.warnings.push(Diagnostic::warning(
                ctx.location("kind", false),
                "kind",
                reason,
            ));
            inv.unknown.push(ctx.sourced(unknown_object(value)));
        }
    }
    Ok(())
}

/// The fields the API server (or the CRD's schema) requires, as dotted paths, parents first.
fn required_fields(api_version: &str, kind: &str) -> &'static [&'static str] {
    const NAMED: &[&str] = &["metadata", "metadata.name"];
    match (api_version, kind) {
        ("apps/v1", "Deployment") => &[
            "metadata",
            "metadata.name",
            "spec",
            "spec.selector",
            "spec.template",
        ],
        ("autoscaling/v2", "HorizontalPodAutoscaler") => &[
            "metadata",
            "metadata.name",
            "spec",
            "spec.scaleTargetRef",
            "spec.scaleTargetRef.kind",
            "spec.scaleTargetRef.name",
            "spec.maxReplicas",
        ],
        ("scheduling.k8s.io/v1", "PriorityClass") => &["metadata", "metadata.name", "value"],
        ("v1", _)
        | ("policy/v1", _)
        | ("monitoring.coreos.com/v1", _)
        | ("argoproj.io/v1alpha1", _) => NAMED,
        (_, "VirtualService" | "DestinationRule") if is_istio_networking(api_version) => {
            &["metadata", "metadata.name", "spec"]
        }
        (_, "AuthorizationPolicy") => NAMED,
        _ => &[],
    }
}

/// The name rule of the core kinds (apimachinery's `ValidateObjectMeta` with each kind's
/// `ValidateNameFunc`); other kinds' names are their CRD's business.
fn name_rule(api_version: &str, kind: &str) -> Option<validate::NameRule> {
    use validate::NameRule::{Dns1035Label, Dns1123Label, Dns1123Subdomain};
    match (api_version, kind) {
        ("v1", "Namespace") => Some(Dns1123Label),
        ("v1", "Service") => Some(Dns1035Label),
        ("v1", "ResourceQuota" | "Secret" | "ServiceAccount" | "ConfigMap")
        | ("apps/v1", "Deployment")
        | ("autoscaling/v2", "HorizontalPodAutoscaler")
        | ("policy/v1", "PodDisruptionBudget")
        | ("scheduling.k8s.io/v1", "PriorityClass") => Some(Dns1123Subdomain),
        _ => None,
    }
}

/// Refuses the first absent path of `required` (a `null` counts as absent, as in the API).
fn require(ctx: &DocContext<'_>, value: &Value, required: &[&str]) -> Result<(), Diagnostic> {
    for path in required {
        let mut node = Some(value);
        for key in path.split('.') {
            node = node.and_then(|n| n.get(key)).filter(|n| !n.is_null());
        }
        if node.is_none() {
            let (parent, field) = path.rsplit_once('.').unwrap_or(("", path));
            let location = if parent.is_empty() {
                ctx.location("", false)
            } else {
                ctx.location(parent, true)
            };
            return Err(Diagnostic::error(
                location,
                *path,
                format!("missing field `{field}`"),
            ));
        }
    }
    Ok(())
}

fn is_istio_networking(api_version: &str) -> bool {
    matches!(
        api_version,
        "networking.istio.io/v1alpha3" | "networking.istio.io/v1beta1" | "networking.istio.io/v1"
    )
}

fn unknown_object(value: &Value) -> UnknownObject {
    let metadata = value.get("metadata");
    UnknownObject {
        api_version: string_at(value, "apiVersion").map(str::to_string),
        kind: string_at(value, "kind").map(str::to_string),
        name: metadata
            .and_then(|m| string_at(m, "name"))
            .map(str::to_string),
        namespace: metadata
            .and_then(|m| string_at(m, "namespace"))
            .map(str::to_string),
        value: value.clone(),
    }
}

/// Files without apiVersion and kind: recognised by their top-level keys.
fn load_shape(
    ctx: &DocContext<'_>,
    value: &Value,
    inv: &mut Inventory,
    errors: &mut Vec<Diagnostic>,
) -> Result<(), Diagnostic> {
    let has = |key: &str| value.get(key).is_some();
    if has("groups") {
        let rules: RuleFile = decode(ctx, value, "")?;
        errors.extend(validate::rule_file(ctx, &rules, ""));
        inv.rule_files.push(ctx.sourced(rules));
    } else if has("scrape_configs") || (has("global") && (has("rule_files") || has("alerting"))) {
        let config: PrometheusConfig = decode(ctx, value, "")?;
        errors.extend(validate::prometheus_config(ctx, &config));
        inv.prometheus_configs.push(ctx.sourced(config));
    } else if string_at(value, "version") == Some("prometheus/v1") && has("slos") {
        let spec: SloSpec = decode(ctx, value, "")?;
        let written_fields = sloth::written_fields(value, "");
        let slo = PrometheusServiceLevel {
            form: SloForm::Plain,
            metadata: None,
            spec,
            written_fields,
        };
        errors.extend(validate::slo(ctx, &slo, ""));
        inv.slos.push(ctx.sourced(slo));
    } else if let Some(inner) = value.get("dashboard").filter(|inner| inner.is_object()) {
        let dashboard: Dashboard = decode(ctx, inner, "dashboard")?;
        let mut sourced = ctx.sourced(dashboard);
        sourced.positions = Arc::new(ctx.positions.subtree("dashboard"));
        inv.dashboards.push(sourced);
    } else if has("panels") && has("title") {
        inv.dashboards.push(ctx.sourced(decode(ctx, value, "")?));
    } else {
        inv.warnings.push(Diagnostic::warning(
            ctx.location("", false),
            "",
            "document has no apiVersion and kind and is not a config file twin recognises; kept as is",
        ));
        inv.unknown.push(ctx.sourced(unknown_object(value)));
    }
    Ok(())
}

/// What a ConfigMap data key holds, judged by its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum EmbeddedKind {
    Prometheus,
    Loki,
    Promtail,
    Rules,
    GpuSharing,
}

fn embedded_kind(key: &str) -> Option<EmbeddedKind> {
    let lower = key.to_ascii_lowercase();
    match lower.as_str() {
        "prometheus.yml" | "prometheus.yaml" => Some(EmbeddedKind::Prometheus),
        "loki.yaml" | "loki.yml" | "loki-config.yaml" | "loki-config.yml" => {
            Some(EmbeddedKind::Loki)
        }
        "promtail.yaml" | "promtail.yml" | "promtail-config.yaml" | "promtail-config.yml" => {
            Some(EmbeddedKind::Promtail)
        }
        "gpu-sharing" | "gpu-sharing.yaml" | "gpu-sharing.yml" => Some(EmbeddedKind::GpuSharing),
        "alerts.yml"
        | "alerts.yaml"
        | "rules.yml"
        | "rules.yaml"
        | "alerting_rules.yml"
        | "recording_rules.yml" => Some(EmbeddedKind::Rules),
        _ if lower.ends_with(".rules")
            || lower.ends_with(".rules.yml")
            || lower.ends_with(".rules.yaml") =>
        {
            Some(EmbeddedKind::Rules)
        }
        _ => None,
    }
}

/// Parses the ConfigMap data keys that hold a known config, mapping positions back to the outer
/// file. Errors go to `errors`; the ConfigMap itself is kept either way (the caller fails the file).
fn load_embedded(
    ctx: &DocContext<'_>,
    text: &str,
    config_map: &ConfigMap,
    inv: &mut Inventory,
    errors: &mut Vec<Diagnostic>,
) {
    let Some(data) = &config_map.data else { return };
    for (key, body) in data {
        let Some(kind) = embedded_kind(key) else {
            continue;
        };
        let outer_path = yaml::join_key("data", key);
        let shown_path = format!("data[{key:?}]");
        let mapper = LineMapper::new(ctx, text, &outer_path);
        let documents = match yaml::parse_documents(body) {
            Ok(documents) => documents,
            Err(err) => {
                let mut diag = yaml_error_diagnostic(ctx.file, &err, |p| mapper.map(p));
                diag.location.document = ctx.document;
                diag.field = join_shown(&shown_path, &err.path);
                errors.push(diag);
                continue;
            }
        };
        let embedded_in = EmbeddedIn {
            namespace: config_map.metadata.namespace.clone(),
            config_map: config_map.metadata.name.clone().unwrap_or_default(),
            key: key.clone(),
        };
        for document in documents {
            let mut positions = document.positions;
            positions.remap(|p| mapper.map(p));
            let start = mapper.map(document.start);
            let inner = DocContext {
                file: ctx.file,
                document: ctx.document,
                positions: Arc::new(positions),
                start,
            };
            let mut found = Vec::new();
            let result = load_embedded_document(
                &inner,
                kind,
                &document.value,
                &embedded_in,
                inv,
                &mut found,
            );
            found.extend(result.err());
            for mut diag in found {
                diag.field = join_shown(&shown_path, &diag.field);
                errors.push(diag);
            }
        }
    }
}

fn join_shown(outer: &str, inner: &str) -> String {
    if inner.is_empty() {
        outer.to_string()
    } else if inner.starts_with('[') {
        format!("{outer}{inner}")
    } else {
        format!("{outer}.{inner}")
    }
}

fn load_embedded_document(
    ctx: &DocContext<'_>,
    kind: EmbeddedKind,
    value: &Value,
    embedded_in: &EmbeddedIn,
    inv: &mut Inventory,
    errors: &mut Vec<Diagnostic>,
) -> Result<(), Diagnostic> {
    match kind {
        EmbeddedKind::Prometheus => {
            let config: PrometheusConfig = decode(ctx, value, "")?;
            errors.extend(validate::prometheus_config(ctx, &config));
            inv.prometheus_configs
                .push(ctx.embedded(embedded_in, config));
        }
        EmbeddedKind::Loki => {
            let config: LokiConfig = decode(ctx, value, "")?;
            inv.loki_configs.push(ctx.embedded(embedded_in, config));
        }
        EmbeddedKind::Promtail => {
            let config: PromtailConfig = decode(ctx, value, "")?;
            inv.promtail_configs.push(ctx.embedded(embedded_in, config));
        }
        EmbeddedKind::Rules => {
            let rules: RuleFile = decode(ctx, value, "")?;
            errors.extend(validate::rule_file(ctx, &rules, ""));
            inv.rule_files.push(ctx.embedded(embedded_in, rules));
        }
        EmbeddedKind::GpuSharing => {
            let sharing = GpuSharing::from_value(value).map_err(|problem| {
                Diagnostic::error(
                    ctx.location(&problem.field, problem.at_key),
                    problem.field.clone(),
                    problem.message,
                )
            })?;
            inv.gpu_sharing.push(ctx.embedded(embedded_in, sharing));
        }
    }
    Ok(())
}

/// Where a `|` block's content sits: (the indicator's line, the content's indentation).
///
/// saphyr-parser starts the block's span at its first non-blank content line, so the indicator
/// is found from the key's line instead: the first line from there holding a `|`. The content
/// is indented as its first non-blank line, unless an indentation indicator (`|2`) says how far
/// beyond the key's own indentation it starts.
fn literal_block_layout(text: &str, span: FieldSpan) -> (usize, usize) {
    let lines: Vec<&str> = text.lines().collect();
    let line_text = |line: usize| lines.get(line.wrapping_sub(1)).copied().unwrap_or("");
    let content_line = span.value.line;
    let key_line = span
        .key
        .map(|key| key.line)
        .unwrap_or(content_line.saturating_sub(1));
    let indicator_line = (key_line..content_line)
        .find(|line| line_text(*line).contains('|'))
        .unwrap_or(content_line.saturating_sub(1));
    let leading_spaces = |line: &str| line.len() - line.trim_start_matches(' ').len();
    let header = line_text(indicator_line);
    let explicit = header
        .rsplit_once('|')
        .and_then(|(_, after)| after.trim_start_matches(['-', '+']).chars().next())
        .and_then(|c| c.to_digit(10))
        .filter(|digit| *digit > 0);
    let indent = match explicit {
        Some(digit) => leading_spaces(line_text(key_line)) + digit as usize,
        None => lines
            .iter()
            .skip(indicator_line)
            .find(|line| !line.trim().is_empty())
            .map(|line| leading_spaces(line))
            .unwrap_or(0),
    };
    (indicator_line, indent)
}

/// Maps a position inside a string scalar back to the outer file. Exact for `|` blocks (each
/// content line is one source line); for other styles every position maps to the scalar's start,
/// which is the best an editor can be told.
struct LineMapper {
    start: Position,
    literal: Option<(usize, usize)>,
}

impl LineMapper {
    fn new(ctx: &DocContext<'_>, text: &str, path: &str) -> LineMapper {
        let span = ctx.positions.get(path).unwrap_or_default();
        let start = span.value;
        let literal = match ctx.positions.form(path) {
            Some(yaml::ScalarForm::Literal) => Some(literal_block_layout(text, span)),
            _ => None,
        };
        LineMapper { start, literal }
    }

    fn map(&self, inner: Position) -> Position {
        match self.literal {
            Some((indicator_line, indent)) => Position {
                line: indicator_line + inner.line,
                column: inner.column + indent,
            },
            None => self.start,
        }
    }
}

/// Reads a file of exactly one YAML or JSON document as `T` (a twin input format: a scenario,
/// service profiles), with the same limits, text checks and `file:line:col` diagnostics as
/// the manifests. `T` should deny unknown fields where its schema is closed.
pub fn load_typed<T: DeserializeOwned>(
    path: impl AsRef<Path>,
) -> Result<Sourced<T>, ManifestError> {
    let path = path.as_ref();
    let text = read_text(path).map_err(|diag| ManifestError::from_diagnostics(vec![diag]))?;
    typed_from_str(path, &text)
}

/// [`load_typed`] on text, as if read from the file `name`.
pub fn typed_from_str<T: DeserializeOwned>(
    name: &Path,
    text: &str,
) -> Result<Sourced<T>, ManifestError> {
    let fail = |diags: Vec<Diagnostic>| ManifestError::from_diagnostics(diags);
    check_text(name, text.as_bytes()).map_err(|diag| fail(vec![diag]))?;
    let documents = yaml::parse_documents(text)
        .map_err(|err| fail(vec![yaml_error_diagnostic(name, &err, |p| p)]))?;
    let [document] = documents.as_slice() else {
        let here = Location {
            file: name.to_path_buf(),
            ..Default::default()
        };
        return Err(fail(vec![Diagnostic::error(
            here,
            "",
            format!("expected exactly one document, found {}", documents.len()),
        )]));
    };
    let ctx = DocContext {
        file: name,
        document: document.index,
        positions: Arc::new(document.positions.clone()),
        start: document.start,
    };
    let object = decode::<T>(&ctx, &document.value, "").map_err(|diag| fail(vec![diag]))?;
    Ok(ctx.sourced(object))
}

/// Deserializes a block of a parsed document (`value`, found at `base`) as `T`, with its
/// diagnostics placed by `positions`; for formats that embed another (a scenario's topology).
pub fn decode_block<T: DeserializeOwned>(
    file: &Path,
    document: usize,
    positions: Arc<FieldPositions>,
    value: &Value,
    base: &str,
) -> Result<T, Diagnostic> {
    let ctx = DocContext {
        file,
        document,
        positions,
        start: Position::default(),
    };
    decode::<T>(&ctx, value, base)
}
