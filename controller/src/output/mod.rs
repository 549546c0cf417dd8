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

use guestutils::redact;
use maestro_core::Diagnostic;

pub use config::{write_config_json, write_config_yaml};
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
            if let Some(text) = loc.line.checked_sub(1).and_then(|l| lines.get(l as usize)) {
                // The line may hold a credential (a password, a token, a secret variable).
                let text = redact::yaml_line(text, redact::path_is_secret(&d.path));
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

/// The first failure to write stdout, kept for the exit code: a command whose output was
/// lost must not say it succeeded. Stdout is one per process, and so is this.
static WRITE_FAILURE: std::sync::Mutex<Option<std::io::Error>> = std::sync::Mutex::new(None);

/// Writes `text` to stdout (failures as in [`guarded`]).
pub fn print(text: &str) -> std::io::Result<()> {
    print_bytes(text.as_bytes())
}

/// Writes `bytes` to stdout (failures as in [`guarded`]).
pub fn print_bytes(bytes: &[u8]) -> std::io::Result<()> {
    // One piece of output: written as it is, with no buffer to fill first.
    guarded(|out| std::io::Write::write_all(out, bytes))
}

/// Streams output to stdout through a buffer (see [`guarded`] for failures).
pub fn print_with(
    write: impl FnOnce(&mut dyn std::io::Write) -> std::io::Result<()>,
) -> std::io::Result<()> {
    guarded(|out| {
        let mut buffered = std::io::BufWriter::with_capacity(1 << 16, out);
        write(&mut buffered)?;
        std::io::Write::flush(&mut buffered)
    })
}

/// Runs `write` on stdout. The first failure is kept for [`exit_code`], and once stdout
/// has failed nothing more is written: every later call fails at once, so a follower
/// (`logs -F | head`) stops instead of running on unheard.
fn guarded(
    write: impl FnOnce(&mut std::io::StdoutLock<'static>) -> std::io::Result<()>,
) -> std::io::Result<()> {
    use std::io::Write;
    let mut failure = WRITE_FAILURE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(e) = failure.as_ref() {
        return Err(std::io::Error::new(e.kind(), e.to_string()));
    }
    let mut stdout = std::io::stdout().lock();
    let result = write(&mut stdout).and_then(|()| stdout.flush());
    if let Err(e) = &result {
        *failure = Some(std::io::Error::new(e.kind(), e.to_string()));
    }
    result
}

/// A command's exit code once its output is accounted for: `code` if stdout took
/// everything, or if it was a pipe whose reader left (`maestro config | head` is not an
/// error); otherwise the failure is said on stderr and a successful command fails.
pub fn exit_code(code: u8) -> u8 {
    let failure = WRITE_FAILURE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .take();
    match failure {
        None => code,
        Some(e) if e.kind() == std::io::ErrorKind::BrokenPipe => code,
        Some(e) => {
            eprint(&format!("error: cannot write the output: {e}\n"));
            if code == 0 {
                crate::commands::EXIT_FAILURE
            } else {
                code
            }
        }
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

#[cfg(test)]
mod diagnostics_tests {
    use maestro_core::Diagnostic;
    use maestro_core::yaml::Loc;

    use super::render_diagnostics;
    use crate::load::Source;

    /// A diagnostic's source snippet never shows a credential: the value of a secret
    /// field, of a secret-looking variable, or of the line its path says is secret.
    #[test]
    fn snippets_hide_secret_values() {
        let rendered = [
            "ships:",
            "  a: {ip: 10.0.0.1, registries: {quay: {registry: \"https://quay.io\", username: u, password: hunter2}}}",
            "      password: hunter3",
            "      DB_PASSWORD: 0755",
            "      X-Api: hunter4",
            "      image: redis",
        ]
        .join("\n");
        let source = Source {
            name: "maestro.yaml".into(),
            base_dir: ".".into(),
            rendered,
            templated: false,
            read: true,
        };
        // (path, line, shown in the snippet)
        let cases = [
            ("ships.a.registries", 2, "password: <secret>}}}"),
            ("ships.b.registries.r.password", 3, "password: <secret>"),
            ("services.s.env.DB_PASSWORD", 4, "DB_PASSWORD: <secret>"),
            (
                "services.s.lifecycle.running[0].requests_options.headers.X-Api",
                5,
                "X-Api: <secret>",
            ),
            ("services.s.image", 6, "image: redis"),
        ];
        for (path, line, shown) in cases {
            let d = Diagnostic::warning(path, Some(Loc { line, col: 7 }), "something");
            let out = render_diagnostics(&[d], &source, false);
            assert!(out.contains(shown), "{path}: {out}");
            for secret in ["hunter", "0755"] {
                assert!(!out.contains(secret), "{path}: {out}");
            }
        }
    }
}
