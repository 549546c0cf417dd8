//! Everything maestro shows the user: diagnostics, the resolved environment, dependency
//! trees. The only module that writes to stdout or stderr.

#![expect(
    clippy::print_stderr,
    reason = "this module is where output goes to the terminal"
)]

mod config;
mod deptree;
pub mod events;
mod lock;

use std::fmt::Write as _;
use std::io::IsTerminal;

use maestro_core::Diagnostic;

pub use config::{config_yaml, write_config_json};
pub use deptree::deptree;
pub use lock::{lock_notice, lock_released, lock_status};

use crate::load::Source;

/// Whether to colour stderr.
pub fn stderr_colors() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

/// Renders diagnostics with the source line they point at, rustc style.
pub fn render_diagnostics(diagnostics: &[Diagnostic], source: &Source, color: bool) -> String {
    let paint = |code: &str, text: &str| {
        if color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    };
    let lines: Vec<&str> = source.rendered.lines().collect();
    let mut out = String::new();
    for d in diagnostics {
        let label = if d.is_error() {
            paint("1;31", "error")
        } else {
            paint("1;33", "warning")
        };
        let _ = writeln!(out, "{label}: {d}");
        if let Some(loc) = d.loc {
            let templated = if source.templated {
                " (after Jinja2 rendering)"
            } else {
                ""
            };
            let _ = writeln!(
                out,
                "  --> {}:{}:{}{templated}",
                source.name, loc.line, loc.col
            );
            if let Some(text) = lines.get(loc.line as usize - 1).filter(|_| loc.line > 0) {
                let number = loc.line.to_string();
                let pad = " ".repeat(number.len());
                let caret_pad: String = text
                    .chars()
                    .take(loc.col.saturating_sub(1) as usize)
                    .map(|c| if c == '\t' { '\t' } else { ' ' })
                    .collect();
                let _ = writeln!(out, "{pad} |");
                let _ = writeln!(out, "{number} | {text}");
                let _ = writeln!(out, "{pad} | {caret_pad}{}", paint("1;34", "^"));
            }
        }
        if let Some(help) = &d.help {
            let mut first = true;
            for line in help.lines() {
                let prefix = if first { "  = help: " } else { "          " };
                first = false;
                let _ = writeln!(out, "{prefix}{line}");
            }
        }
    }
    let errors = diagnostics.iter().filter(|d| d.is_error()).count();
    if errors > 0 && source.read {
        let s = if errors == 1 { "" } else { "s" };
        let _ = writeln!(
            out,
            "{}: {} has {errors} error{s}",
            paint("1;31", "error"),
            source.name
        );
    }
    out
}

pub fn eprint(text: &str) {
    eprint!("{text}");
}

/// Writes `text` to stdout; a closed pipe (`maestro config | head`) is not an error.
pub fn print(text: &str) -> std::io::Result<()> {
    print_with(|out| out.write_all(text.as_bytes()))
}

/// Streams output to stdout through a buffer; a closed pipe is not an error.
pub fn print_with(
    write: impl FnOnce(&mut dyn std::io::Write) -> std::io::Result<()>,
) -> std::io::Result<()> {
    use std::io::Write;
    let mut stdout = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    match write(&mut stdout).and_then(|()| stdout.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

/// Whether stdout is a terminal (pretty JSON for people, compact for programs).
pub fn stdout_is_terminal() -> bool {
    std::io::stdout().is_terminal()
}
