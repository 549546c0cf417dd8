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
pub use deptree::write_deptree;
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

/// `text` from outside maestro (a container's output, an engine's or a guest's message)
/// made safe for a terminal: control characters other than newline and tab, and the
/// Unicode controls that reorder text, are shown as escapes (`\x1b`, `\u{202e}`), so
/// that no container can retitle, clear or rewrite the operator's screen.
pub fn visible(text: &str) -> std::borrow::Cow<'_, str> {
    let hidden = |c: char| {
        (c.is_control() && c != '\n' && c != '\t')
            || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    if !text.chars().any(hidden) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if !hidden(c) {
            out.push(c);
        } else if (c as u32) < 0x100 {
            out.push_str(&format!("\\x{:02x}", c as u32));
        } else {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        }
    }
    std::borrow::Cow::Owned(out)
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

#[cfg(test)]
mod visible_tests {
    use super::visible;

    #[test]
    fn control_characters_from_outside_are_shown_not_obeyed() {
        let cases = [
            (
                "plain text\twith tab\nand newline",
                "plain text\twith tab\nand newline",
            ),
            ("\x1b]0;owned\x07title", "\\x1b]0;owned\\x07title"),
            ("\x1b[2Jclear", "\\x1b[2Jclear"),
            ("cr\roverwrite", "cr\\x0doverwrite"),
            ("c1 \u{9b}31m", "c1 \\x9b31m"),
            ("bidi \u{202e}txt.exe", "bidi \\u{202e}txt.exe"),
            ("naïve ünïcödé", "naïve ünïcödé"),
        ];
        for (given, shown) in cases {
            assert_eq!(visible(given), shown, "{given:?}");
        }
    }
}
