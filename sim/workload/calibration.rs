//! GPU calibration: how long a request's GPU work takes on one GPU class, by batch size, and how
//! much slower it runs with other pods on the same device. The format is `docs/calibration.md`;
//! the shipped files (`fixtures/calibration/*.json`) are stated estimates until the GPU
//! benchmark stage (`ci/gpu-bench`) replaces them with measurements.
//!
//! Lookup rules, stated once here and in the docs:
//!
//! - Service time at batch size `b`: a lognormal fitted to the row's `p50Ms` and `p99Ms`
//!   ([`ServiceTime::LogNormal`]); between two rows, `p50` and `p99` are each interpolated
//!   linearly in `b`; a batch size outside the table is refused (no extrapolation).
//! - Slowdown with `n` pods on the device: the table's factor at `n`; between two rows, linear in
//!   `n`; beyond the last row `(n_last, s_last)`, `s_last · n / n_last` (each tenant past the
//!   measured range costs its fair time slice, as under time-slicing). One pod alone (`n ≤ 1`) is
//!   the reference the service times were measured at: factor 1.
//!
//! Invariants: a loaded [`Calibration`] is valid (schema version known, batch sizes strictly
//! increasing with non-decreasing times, `p99 ≥ p50 > 0`, slowdown tables starting at one
//! tenant with factor 1, factors non-decreasing and never below 1), so lookups never fail
//! except for a batch size outside the table; every refusal names the file, line and JSON path.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::service::{ServiceTime, ServiceTimeSampler};
use crate::cluster::gpu::GpuSharing;
use crate::diag::{Diagnostic, Diagnostics, Location};
use crate::engine::SimDuration;
use crate::manifests::{self, Sourced};

/// The only schema version this twin reads.
pub const SCHEMA_VERSION: u32 = 1;

/// The shipped calibration files, built in so that a scenario without `calibration:` finds
/// them wherever it is run from. Named as they lie in the repository.
const BUILTIN: [(&str, &str); 2] = [
    (
        "fixtures/calibration/a100.json",
        include_str!("../../fixtures/calibration/a100.json"),
    ),
    (
        "fixtures/calibration/h100.json",
        include_str!("../../fixtures/calibration/h100.json"),
    ),
];

/// A calibration file as written.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CalibrationFile {
    pub schema_version: u32,
    pub kind: String,
    /// The class the topology's GPU pools name (`gpus.class`), e.g. `A100`.
    pub gpu_class: String,
    /// The exact product the values are for, e.g. `NVIDIA A100-SXM4-80GB`.
    pub device: String,
    /// `estimate` or `measured`.
    pub source: String,
    /// Where the file's values come from, as a whole.
    pub basis: String,
    pub service_time: Vec<BatchRow>,
    #[serde(default)]
    pub slowdown: SlowdownTables,
}

/// The GPU time of one batch [ms], alone on the device.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BatchRow {
    pub batch_size: u32,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub basis: String,
}

/// Slowdown tables by sharing mode (the NVIDIA device plugin's `sharing` strategies).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SlowdownTables {
    pub time_slicing: Option<Vec<SlowdownRow>>,
    pub mps: Option<Vec<SlowdownRow>>,
}

/// A request's GPU time with `tenants` pods serving on the device, over its time alone.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SlowdownRow {
    pub tenants: u32,
    pub factor: f64,
    pub basis: String,
}

/// A validated slowdown table: `(tenants, factor)` rows.
#[derive(Clone, Debug, PartialEq)]
pub struct Slowdown {
    rows: Vec<(u32, f64)>,
    /// Exclusive devices: factor 1 at every count, no extrapolation.
    flat: bool,
}

impl Slowdown {
    /// Builds a table from `(tenants, factor)` rows; the rules are those of the file format.
    pub fn new(rows: Vec<(u32, f64)>) -> Result<Slowdown, String> {
        let Some(&(first_tenants, first_factor)) = rows.first() else {
            return Err("a slowdown table needs at least the row for one tenant".into());
        };
        if first_tenants != 1 || first_factor != 1.0 {
            return Err(format!(
                "the first row must be {{tenants: 1, factor: 1}} (a pod alone is the reference), found tenants {first_tenants}, factor {first_factor}"
            ));
        }
        for idx in 1..rows.len() {
            let (tenants, factor) = rows[idx];
            let (before_tenants, before_factor) = rows[idx - 1];
            if tenants <= before_tenants {
                return Err(format!(
                    "[{idx}]: tenants {tenants} is not above the previous row's {before_tenants}"
                ));
            }
            if !factor.is_finite() || factor < 1.0 {
                return Err(format!(
                    "[{idx}]: factor {factor} is below 1; sharing a device never speeds a request up"
                ));
            }
            if factor < before_factor {
                return Err(format!(
                    "[{idx}]: factor {factor} is below the previous row's {before_factor}; more tenants never make a request faster"
                ));
            }
        }
        Ok(Slowdown { rows, flat: false })
    }

    /// No sharing: every count is factor 1.
    pub fn none() -> Slowdown {
        Slowdown {
            rows: vec![(1, 1.0)],
            flat: true,
        }
    }

    /// The factor with `tenants` pods serving on the device (module doc: interpolation rule).
    pub fn factor(&self, tenants: u32) -> f64 {
        if tenants <= 1 || self.flat {
            return 1.0;
        }
        let idx = self.rows.partition_point(|(n, _)| *n <= tenants);
        let (below_n, below_factor) = self.rows[idx - 1];
        if below_n == tenants {
            return below_factor;
        }
        match self.rows.get(idx) {
            Some(&(above_n, above_factor)) => {
                let progress = f64::from(tenants - below_n) / f64::from(above_n - below_n);
                below_factor + (above_factor - below_factor) * progress
            }
            None => below_factor * f64::from(tenants) / f64::from(below_n),
        }
    }
}

/// One GPU class's validated calibration.
#[derive(Clone, Debug)]
pub struct Calibration {
    pub gpu_class: String,
    /// The file it was read from (as named; the built-in copies by their repository path).
    pub file: PathBuf,
    /// `(batch size, p50, p99)`.
    batches: Vec<(u32, SimDuration, SimDuration)>,
    time_slicing: Option<Slowdown>,
    mps: Option<Slowdown>,
}

impl Calibration {
    /// The GPU time of one request at `batch_size`, alone on the device.
    pub fn service_time(&self, batch_size: u32) -> Result<ServiceTime, String> {
        let (first, last) = (self.batches[0].0, self.batches[self.batches.len() - 1].0);
        let idx = self.batches.partition_point(|(b, _, _)| *b < batch_size);
        let out_of_table = || {
            format!(
                "batch size {batch_size} is outside {}'s table ({first} to {last}); add a row for it",
                self.file.display()
            )
        };
        let &(above_b, above_p50, above_p99) = self.batches.get(idx).ok_or_else(out_of_table)?;
        if above_b == batch_size {
            return Ok(ServiceTime::LogNormal {
                p50: above_p50,
                p99: above_p99,
            });
        }
        if idx == 0 {
            return Err(out_of_table());
        }
        let (below_b, below_p50, below_p99) = self.batches[idx - 1];
        let progress = f64::from(batch_size - below_b) / f64::from(above_b - below_b);
        let lerp = |a: SimDuration, b: SimDuration| {
            SimDuration::from_secs_f64(
                a.as_secs_f64() + (b.as_secs_f64() - a.as_secs_f64()) * progress,
            )
        };
        Ok(ServiceTime::LogNormal {
            p50: lerp(below_p50, above_p50),
            p99: lerp(below_p99, above_p99),
        })
    }

    /// The slowdown table for a sharing mode; `None` when the file has none for it.
    pub fn slowdown(&self, sharing: GpuSharing) -> Option<Slowdown> {
        match sharing {
            GpuSharing::Exclusive => Some(Slowdown::none()),
            GpuSharing::TimeSlicing { .. } => self.time_slicing.clone(),
            GpuSharing::Mps { .. } => self.mps.clone(),
        }
    }
}

/// Calibrations by GPU class.
#[derive(Clone, Debug, Default)]
pub struct CalibrationSet {
    pub classes: BTreeMap<String, Calibration>,
}

fn error(file: &Sourced<CalibrationFile>, field: &str, message: impl Into<String>) -> Diagnostic {
    Diagnostic::error(file.field_location(field), field, message)
}

/// Checks a parsed file, collecting every problem.
pub fn validate(file: &Sourced<CalibrationFile>) -> Result<Calibration, Vec<Diagnostic>> {
    let mut problems = Vec::new();
    if file.schema_version != SCHEMA_VERSION {
        // Nothing else can be trusted to mean what this reader thinks.
        return Err(vec![error(
            file,
            "schemaVersion",
            format!(
                "schema version {} is not one this twin reads (it reads {SCHEMA_VERSION}); convert the file or use a twin that reads it",
                file.schema_version
            ),
        )]);
    }
    if file.kind != "GpuCalibration" {
        problems.push(error(
            file,
            "kind",
            format!("expected \"GpuCalibration\", found {:?}", file.kind),
        ));
    }
    if file.gpu_class.trim().is_empty() {
        problems.push(error(
            file,
            "gpuClass",
            "name the GPU class the topology's pools use (such as A100)",
        ));
    }
    if file.source != "estimate" && file.source != "measured" {
        problems.push(error(
            file,
            "source",
            format!(
                "expected \"estimate\" or \"measured\", found {:?}",
                file.source
            ),
        ));
    }
    if file.basis.trim().is_empty() {
        problems.push(error(file, "basis", "state where the values come from"));
    }
    if file.service_time.is_empty() {
        problems.push(error(
            file,
            "serviceTime",
            "give at least the row for batch size 1",
        ));
    }
    let mut batches = Vec::new();
    for (idx, row) in file.service_time.iter().enumerate() {
        let at = |field: &str| format!("serviceTime[{idx}].{field}");
        let before = idx.checked_sub(1).map(|b| &file.service_time[b]);
        if row.batch_size == 0 {
            problems.push(error(
                file,
                &at("batchSize"),
                "a batch holds at least one request",
            ));
        } else if let Some(before) = before
            && row.batch_size <= before.batch_size
        {
            problems.push(error(
                file,
                &at("batchSize"),
                format!(
                    "batch size {} is not above the previous row's {}; rows go in increasing batch size",
                    row.batch_size, before.batch_size
                ),
            ));
        }
        if !row.p50_ms.is_finite() || row.p50_ms <= 0.0 {
            problems.push(error(
                file,
                &at("p50Ms"),
                format!("{} is not a time above zero [ms]", row.p50_ms),
            ));
        } else if !row.p99_ms.is_finite() || row.p99_ms < row.p50_ms {
            problems.push(error(
                file,
                &at("p99Ms"),
                format!(
                    "p99 {} ms is below p50 {} ms; the 99th percentile cannot be the smaller",
                    row.p99_ms, row.p50_ms
                ),
            ));
        } else if let Some(before) = before {
            for (name, now, then) in [
                ("p50Ms", row.p50_ms, before.p50_ms),
                ("p99Ms", row.p99_ms, before.p99_ms),
            ] {
                if now < then {
                    problems.push(error(
                        file,
                        &at(name),
                        format!(
                            "{now} ms is below the previous row's {then} ms; a larger batch never takes less time"
                        ),
                    ));
                }
            }
        }
        if row.basis.trim().is_empty() {
            problems.push(error(file, &at("basis"), "state where this row comes from"));
        }
        batches.push((
            row.batch_size,
            SimDuration::from_secs_f64(row.p50_ms.max(0.0) / 1000.0),
            SimDuration::from_secs_f64(row.p99_ms.max(0.0) / 1000.0),
        ));
    }
    let mut table = |name: &str, rows: &Option<Vec<SlowdownRow>>| -> Option<Slowdown> {
        let rows = rows.as_ref()?;
        let field = format!("slowdown.{name}");
        for (idx, row) in rows.iter().enumerate() {
            if row.basis.trim().is_empty() {
                problems.push(error(
                    file,
                    &format!("{field}[{idx}].basis"),
                    "state where this row comes from",
                ));
            }
        }
        match Slowdown::new(rows.iter().map(|r| (r.tenants, r.factor)).collect()) {
            Ok(table) => Some(table),
            Err(why) => {
                // The message starts with the row (`[2]: ...`) when it is about one row.
                let (path, message) = match why.strip_prefix('[').and_then(|r| r.split_once("]: "))
                {
                    Some((idx, rest)) => (format!("{field}[{idx}]"), rest.to_string()),
                    None => (field.clone(), why),
                };
                problems.push(error(file, &path, message));
                None
            }
        }
    };
    let time_slicing = table("timeSlicing", &file.slowdown.time_slicing);
    let mps = table("mps", &file.slowdown.mps);
    if problems.is_empty() {
        Ok(Calibration {
            gpu_class: file.gpu_class.clone(),
            file: file.origin.file.clone(),
            batches,
            time_slicing,
            mps,
        })
    } else {
        Err(problems)
    }
}

fn add(
    set: &mut CalibrationSet,
    loaded: Result<Sourced<CalibrationFile>, manifests::ManifestError>,
    problems: &mut Vec<Diagnostic>,
) {
    let file = match loaded {
        Ok(file) => file,
        Err(err) => {
            problems.extend(err.diagnostics().iter().cloned());
            return;
        }
    };
    match validate(&file) {
        Ok(calibration) => {
            if let Some(earlier) = set.classes.get(&calibration.gpu_class) {
                problems.push(error(
                    &file,
                    "gpuClass",
                    format!(
                        "GPU class {} is already calibrated by {}",
                        calibration.gpu_class,
                        earlier.file.display()
                    ),
                ));
            } else {
                set.classes
                    .insert(calibration.gpu_class.clone(), calibration);
            }
        }
        Err(diags) => problems.extend(diags),
    }
}

/// Reads a calibration file, or every `*.json` file of a folder (in name order).
pub fn load(path: &Path) -> Result<CalibrationSet, Diagnostics> {
    let here = Location {
        file: path.to_path_buf(),
        ..Location::default()
    };
    let files: Vec<PathBuf> = if path.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|err| {
                Diagnostics(vec![Diagnostic::error(
                    here.clone(),
                    "",
                    format!("cannot read the folder: {err}"),
                )])
            })?
            .flatten()
            .map(|entry| entry.path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(Diagnostics(vec![Diagnostic::error(
                here,
                "",
                "the folder holds no *.json calibration file",
            )]));
        }
        files
    } else {
        vec![path.to_path_buf()]
    };
    let mut set = CalibrationSet::default();
    let mut problems = Vec::new();
    for file in files {
        add(&mut set, manifests::load_typed(&file), &mut problems);
    }
    if problems.is_empty() {
        Ok(set)
    } else {
        Err(Diagnostics(problems))
    }
}

/// The shipped calibration (`fixtures/calibration/`), as built into the binary.
pub fn builtin() -> CalibrationSet {
    let mut set = CalibrationSet::default();
    let mut problems = Vec::new();
    for (name, text) in BUILTIN {
        add(
            &mut set,
            manifests::typed_from_str(Path::new(name), text),
            &mut problems,
        );
    }
    assert!(
        problems.is_empty(),
        "the shipped calibration is valid (a test checks it): {}",
        Diagnostics(problems)
    );
    set
}

/// A GPU pod's work per request, resolved for one scenario: per GPU class, the service time at
/// the profile's batch size and the slowdown table of the cluster's sharing mode.
#[derive(Clone, Debug)]
pub struct GpuWork {
    pub batch_size: u32,
    pub classes: Vec<GpuClassWork>,
}

#[derive(Clone, Debug)]
pub struct GpuClassWork {
    pub class: String,
    pub service_time: ServiceTimeSampler,
    pub slowdown: Slowdown,
}

impl GpuWork {
    /// Resolves the work for every class in `classes` (the topology's), refusing a class the set
    /// does not calibrate, a batch size outside a table, or a sharing mode without a table.
    pub fn new(
        set: &CalibrationSet,
        batch_size: u32,
        sharing: GpuSharing,
        classes: &[String],
    ) -> Result<GpuWork, String> {
        let mut out = Vec::new();
        for class in classes {
            let calibration = set.classes.get(class).ok_or_else(|| {
                format!(
                    "the topology has GPU class {class}, which the calibration does not cover (it covers {})",
                    set.classes.keys().cloned().collect::<Vec<_>>().join(", ")
                )
            })?;
            let sampler = calibration
                .service_time(batch_size)?
                .sampler()
                .map_err(|err| format!("{}: {err}", calibration.file.display()))?;
            let slowdown = calibration.slowdown(sharing).ok_or_else(|| {
                let mode = match sharing {
                    GpuSharing::Mps { .. } => "mps",
                    _ => "timeSlicing",
                };
                format!(
                    "the cluster shares GPUs by {mode}, and {} has no slowdown.{mode} table",
                    calibration.file.display()
                )
            })?;
            out.push(GpuClassWork {
                class: class.clone(),
                service_time: sampler,
                slowdown,
            });
        }
        Ok(GpuWork {
            batch_size,
            classes: out,
        })
    }

    /// The index of a class in [`GpuWork::classes`].
    pub fn class_index(&self, class: &str) -> Option<usize> {
        self.classes.iter().position(|c| c.class == class)
    }
}
