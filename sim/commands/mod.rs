//! One file per subcommand front. Each exposes its clap arguments and `run(..) -> anyhow::Result<ExitCode>`.

pub mod explain;
pub mod explain_hpa;
pub mod export;
pub mod lint;
pub mod mesh;
pub mod promql;
pub mod rehearse;
pub mod rules;
pub mod run;
pub mod stand_in;

use twin::diag::Diagnostics;

/// Renders an error for the terminal: diagnostics with their source snippets, anything else as
/// its chain of causes.
pub fn render_error(err: &anyhow::Error) -> String {
    for cause in err.chain() {
        if let Some(diags) = cause.downcast_ref::<Diagnostics>() {
            return diags
                .0
                .iter()
                .map(|d| d.render_from_disk())
                .collect::<Vec<_>>()
                .join("\n");
        }
        if let Some(diag) = cause.downcast_ref::<twin::diag::Diagnostic>() {
            return diag.render_from_disk();
        }
    }
    let mut out = format!("error: {err}");
    for cause in err.chain().skip(1) {
        out.push_str(&format!("\n  caused by: {cause}"));
    }
    out
}
