//! Diagnostics for bad input, printed compiler-style so editors can jump to them:
//!
//! ```text
//! error: fixtures/bad.yaml:14:9: document 2: spec.replicas: invalid type: string "three", expected i32
//!    |
//! 14 |   replicas: "three"
//!    |             ^
//! ```
//!
//! Every input reader in `sim` (manifests, scenarios, case files, test files) reports through
//! [`Diagnostic`], so all of them look the same on a terminal and in JSON.

use std::fmt;
use std::path::{Path, PathBuf};

/// How bad a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Error,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        })
    }
}

/// A place in an input file. Lines and columns count from 1; `document` counts YAML documents
/// from 1 in multi-document files (0 when the format has no documents).
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct Location {
    pub file: PathBuf,
    pub document: usize,
    pub line: usize,
    pub column: usize,
}

/// One problem with an input, with where it is.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    pub location: Location,
    /// The field path inside the document, e.g. `spec.metrics[2].pods.target.averageValue`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub field: String,
    pub message: String,
}

impl Diagnostic {
    pub fn error(location: Location, field: impl Into<String>, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            location,
            field: field.into(),
            message: message.into(),
        }
    }

    pub fn warning(
        location: Location,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            location,
            field: field.into(),
            message: message.into(),
        }
    }

    /// The one-line form: `file:line:col: document N: field: message`.
    pub fn headline(&self) -> String {
        let loc = &self.location;
        let mut out = loc.file.display().to_string();
        if loc.line > 0 {
            out.push_str(&format!(":{}:{}", loc.line, loc.column.max(1)));
        }
        out.push_str(": ");
        if loc.document > 0 {
            out.push_str(&format!("document {}: ", loc.document));
        }
        if !self.field.is_empty() {
            out.push_str(&self.field);
            out.push_str(": ");
        }
        out.push_str(&self.message);
        out
    }

    /// The full form: severity, headline, then the offending line of `source` with a caret.
    pub fn render(&self, source: Option<&str>) -> String {
        let mut out = format!("{}: {}", self.severity, self.headline());
        let line_no = self.location.line;
        if let Some(text) = source.and_then(|src| src.lines().nth(line_no.wrapping_sub(1))) {
            let gutter = line_no.to_string().len();
            let shown: String = text.chars().take(200).collect();
            let caret_col = self.location.column.max(1).min(shown.chars().count() + 1);
            let pad: String = shown
                .chars()
                .take(caret_col - 1)
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            out.push_str(&format!(
                "\n{:gutter$} |\n{line_no} | {shown}\n{:gutter$} | {pad}^",
                "", ""
            ));
        }
        out
    }

    /// Renders reading the source from the diagnostic's own file (when it is readable text).
    pub fn render_from_disk(&self) -> String {
        let source = read_small_text(&self.location.file);
        self.render(source.as_deref())
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.headline())
    }
}

/// Reads a file for showing a snippet; gives up on large or non-text files.
fn read_small_text(path: &Path) -> Option<String> {
    let meta = std::fs::metadata(path).ok()?;
    if meta.len() > 8 * 1024 * 1024 {
        return None;
    }
    String::from_utf8(std::fs::read(path).ok()?).ok()
}

/// A batch of diagnostics from one validation, reported together.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    pub fn has_errors(&self) -> bool {
        self.0.iter().any(|d| d.severity == Severity::Error)
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (idx, diag) in self.0.iter().enumerate() {
            if idx > 0 {
                writeln!(f)?;
            }
            write!(f, "{}: {}", diag.severity, diag.headline())?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}
impl std::error::Error for Diagnostic {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_points_a_caret_at_the_column() {
        let diag = Diagnostic::error(
            Location {
                file: "f.yaml".into(),
                document: 2,
                line: 2,
                column: 13,
            },
            "spec.replicas",
            "invalid type",
        );
        let text = diag.render(Some("spec:\n  replicas: \"three\"\n"));
        assert_eq!(
            text,
            "error: f.yaml:2:13: document 2: spec.replicas: invalid type\n  |\n2 |   replicas: \"three\"\n  |             ^"
        );
    }

    #[test]
    fn headline_without_a_line_leaves_out_the_position() {
        let diag = Diagnostic::error(
            Location {
                file: "missing/".into(),
                ..Default::default()
            },
            "",
            "no such directory",
        );
        assert_eq!(diag.headline(), "missing/: no such directory");
    }
}
