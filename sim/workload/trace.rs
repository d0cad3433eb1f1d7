//! Trace files: recorded load, replayed as an open-loop arrival process.
//!
//! A trace is CSV, one record a line, fields separated by commas (RFC 4180 quoting: a field in
//! double quotes may hold commas, and `""` inside it is one quote). Empty lines and lines
//! starting with `#` are skipped. Two shapes:
//!
//! - **Rates**, columns `time,rps`: a piecewise-constant rate. Row `i`'s rate holds from its
//!   time until the next row's; the last row's holds for ever (end a trace with a `T,0` row).
//!   Before the first row the rate is zero. Replayed as [`ArrivalProcess::RateTrace`].
//! - **Requests**, a `time` column and optionally `method`, `path` and `header:NAME` columns:
//!   one row per request, replayed at exactly those times ([`ArrivalProcess::Replay`]); an
//!   empty cell leaves the load stream's default (method, path) or omits the header.
//!
//! The header row is optional: a first row whose first field is not a time is read as column
//! names. Without one, a trace of one column is request times and a trace of two is
//! `time,rps`. Times are seconds from the load stream's start (`12.5`) or durations (`1m30s`).
//!
//! Invariants: a parsed trace is valid (rate rows strictly increasing in time with finite,
//! non-negative rates; request rows non-decreasing in time), so replaying it never fails; every
//! refusal names the 1-based line, and [`load`] adds the file.
//!
//! [`ArrivalProcess::RateTrace`]: super::ArrivalProcess::RateTrace
//! [`ArrivalProcess::Replay`]: super::ArrivalProcess::Replay

use std::path::Path;

use crate::diag::{Diagnostic, Location};
use crate::engine::{SimDuration, parse_duration};

/// The largest trace file read [bytes]: a day of per-request rows at a few requests a second.
pub const MAX_TRACE_BYTES: u64 = 64 * 1024 * 1024;

/// One column of a request trace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Column {
    Time,
    Rps,
    Method,
    Path,
    /// `header:NAME`, the name in lower case as HTTP/2 carries it.
    Header(String),
}

/// One replayed request: its offset and what its row sets.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TraceRequest {
    pub at: SimDuration,
    pub method: Option<String>,
    pub path: Option<String>,
    /// `(name, value)` in column order; empty cells are left out.
    pub headers: Vec<(String, String)>,
}

impl TraceRequest {
    /// Whether the row sets anything beyond its time.
    pub fn sets_fields(&self) -> bool {
        self.method.is_some() || self.path.is_some() || !self.headers.is_empty()
    }
}

/// A parsed, valid trace.
#[derive(Clone, Debug, PartialEq)]
pub enum Trace {
    /// `(from, rate [req/s])` steps, strictly increasing in `from`.
    Rates(Vec<(SimDuration, f64)>),
    /// Requests in non-decreasing time order.
    Requests(Vec<TraceRequest>),
}

/// Why a trace was refused: the 1-based line (0 for the file as a whole) and the reason.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {why}")]
pub struct TraceError {
    pub line: usize,
    pub why: String,
}

fn refuse(line: usize, why: impl Into<String>) -> TraceError {
    TraceError {
        line,
        why: why.into(),
    }
}

/// Splits one CSV record. Quoted fields may hold commas; `""` inside quotes is one quote.
fn split_record(text: &str, line: usize) -> Result<Vec<String>, TraceError> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    let mut was_quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') if field.trim().is_empty() && !was_quoted => {
                field.clear();
                quoted = true;
                was_quoted = true;
            }
            (false, '"') => {
                return Err(refuse(
                    line,
                    "a quote inside an unquoted field; quote the whole field",
                ));
            }
            (false, ',') => {
                fields.push(finish(&field, was_quoted));
                field.clear();
                was_quoted = false;
            }
            (false, c) if was_quoted && !c.is_whitespace() => {
                return Err(refuse(line, "text after a closing quote"));
            }
            (false, c) => field.push(c),
        }
    }
    if quoted {
        return Err(refuse(line, "a quoted field is not closed on its line"));
    }
    fields.push(finish(&field, was_quoted));
    Ok(fields)
}

fn finish(field: &str, was_quoted: bool) -> String {
    if was_quoted {
        field.to_string()
    } else {
        field.trim().to_string()
    }
}

/// A time cell: seconds (`12.5`) or a duration (`1m30s`).
fn parse_time(text: &str) -> Option<SimDuration> {
    if let Ok(secs) = text.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| SimDuration::from_secs_f64(secs));
    }
    parse_duration(text).ok()
}

fn parse_columns(fields: &[String], line: usize) -> Result<Vec<Column>, TraceError> {
    let mut columns = Vec::with_capacity(fields.len());
    for name in fields {
        let column = match name.as_str() {
            "time" => Column::Time,
            "rps" => Column::Rps,
            "method" => Column::Method,
            "path" => Column::Path,
            other => match other.strip_prefix("header:") {
                Some(header) if !header.trim().is_empty() => {
                    Column::Header(header.trim().to_ascii_lowercase())
                }
                _ => {
                    return Err(refuse(
                        line,
                        format!(
                            "unknown column {other:?}; expected time, rps, method, path or header:NAME"
                        ),
                    ));
                }
            },
        };
        if columns.contains(&column) {
            return Err(refuse(line, format!("column {name:?} is named twice")));
        }
        columns.push(column);
    }
    if !columns.contains(&Column::Time) {
        return Err(refuse(line, "the header names no time column"));
    }
    if columns.contains(&Column::Rps) && columns.len() != 2 {
        return Err(refuse(
            line,
            "a rate trace has exactly the columns time and rps; per-request columns need one row per request",
        ));
    }
    Ok(columns)
}

/// Parses a trace's text.
pub fn parse(text: &str) -> Result<Trace, TraceError> {
    let mut columns: Option<Vec<Column>> = None;
    let mut rates: Vec<(SimDuration, f64)> = Vec::new();
    let mut requests: Vec<TraceRequest> = Vec::new();
    for (idx, raw) in text.lines().enumerate() {
        let line = idx + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let fields = split_record(trimmed, line)?;
        let columns = match &columns {
            Some(columns) => columns,
            None => {
                let first_is_time = parse_time(&fields[0]).is_some();
                let named = if first_is_time {
                    match fields.len() {
                        1 => vec![Column::Time],
                        2 => vec![Column::Time, Column::Rps],
                        n => {
                            return Err(refuse(
                                line,
                                format!(
                                    "{n} fields and no header row; without one a trace has one column (request times) or two (time,rps): name the columns in a header row"
                                ),
                            ));
                        }
                    }
                } else {
                    parse_columns(&fields, line)?
                };
                columns = Some(named);
                if !first_is_time {
                    continue;
                }
                columns.as_ref().expect("just set")
            }
        };
        if fields.len() != columns.len() {
            return Err(refuse(
                line,
                format!(
                    "{} field(s), but the trace has {} column(s)",
                    fields.len(),
                    columns.len()
                ),
            ));
        }
        let mut request = TraceRequest::default();
        let mut rate = None;
        let mut at = None;
        for (column, cell) in columns.iter().zip(&fields) {
            match column {
                Column::Time => {
                    at = Some(parse_time(cell).ok_or_else(|| {
                        refuse(
                            line,
                            format!(
                                "time {cell:?} is not a time: give seconds from the stream's start (12.5) or a duration (1m30s)"
                            ),
                        )
                    })?);
                }
                Column::Rps => {
                    let value = cell
                        .parse::<f64>()
                        .ok()
                        .filter(|v| v.is_finite() && *v >= 0.0);
                    rate = Some(value.ok_or_else(|| {
                        refuse(
                            line,
                            format!("rps {cell:?} is not a rate; it must be a finite number, zero or more [req/s]"),
                        )
                    })?);
                }
                Column::Method if !cell.is_empty() => request.method = Some(cell.clone()),
                Column::Path if !cell.is_empty() => {
                    if !cell.starts_with('/') {
                        return Err(refuse(line, format!("path {cell:?} does not start with /")));
                    }
                    request.path = Some(cell.clone());
                }
                Column::Header(name) if !cell.is_empty() => {
                    request.headers.push((name.clone(), cell.clone()))
                }
                Column::Method | Column::Path | Column::Header(_) => {}
            }
        }
        let at = at.expect("every trace has a time column");
        match rate {
            Some(rate) => {
                if let Some((before, _)) = rates.last()
                    && at <= *before
                {
                    return Err(refuse(
                        line,
                        format!(
                            "time {at} is not after the previous row's {before}; rate rows must be in increasing time order"
                        ),
                    ));
                }
                rates.push((at, rate));
            }
            None => {
                if let Some(before) = requests.last()
                    && at < before.at
                {
                    return Err(refuse(
                        line,
                        format!(
                            "time {at} is before the previous row's {}; request rows must be in time order",
                            before.at
                        ),
                    ));
                }
                request.at = at;
                requests.push(request);
            }
        }
    }
    match columns {
        None => Err(refuse(0, "the trace has no rows")),
        Some(columns) if columns.contains(&Column::Rps) => {
            if rates.is_empty() {
                Err(refuse(0, "the trace has a header row but no rates"))
            } else {
                Ok(Trace::Rates(rates))
            }
        }
        Some(_) => {
            if requests.is_empty() {
                Err(refuse(0, "the trace has a header row but no requests"))
            } else {
                Ok(Trace::Requests(requests))
            }
        }
    }
}

/// Reads and parses a trace file; a refusal names the file and line.
pub fn load(path: &Path) -> Result<Trace, Diagnostic> {
    let here = |line: usize| Location {
        file: path.to_path_buf(),
        document: 0,
        line,
        column: usize::from(line > 0),
    };
    let size = std::fs::metadata(path)
        .map_err(|err| Diagnostic::error(here(0), "", format!("cannot read the trace: {err}")))?
        .len();
    if size > MAX_TRACE_BYTES {
        return Err(Diagnostic::error(
            here(0),
            "",
            format!("the trace is {size} bytes, above the limit of {MAX_TRACE_BYTES} (64 MiB)"),
        ));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|err| Diagnostic::error(here(0), "", format!("cannot read the trace: {err}")))?;
    parse(&text).map_err(|err| Diagnostic::error(here(err.line), "", err.why))
}
