//! One file per subcommand front. Each exposes its clap arguments and `run(..) -> anyhow::Result<ExitCode>`.
//!
//! Fronts print with `out!` and `outln!`, never `print!`: a write error (the reader of a pipe
//! went away, as in `twin run ... | head`) comes back as an error, which `main` ends on quietly
//! with status 141, as SIGPIPE would, instead of the panic `print!` raises.

/// `print!` that returns a write error from the enclosing function instead of panicking.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        write!(std::io::stdout(), $($arg)*)?
    }};
}

/// `println!` that returns a write error from the enclosing function instead of panicking.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout(), $($arg)*)?
    }};
}

/// Whether `err` is a write to a pipe whose reader has gone.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

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
