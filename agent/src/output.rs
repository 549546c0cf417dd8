//! Everything the guest writes: answers and help on stdout, errors on stderr.
//!
//! Writes go through `io::Write` rather than `print!`/`eprint!`, which panic when the
//! stream is gone (`maestro-guest nodes zk | head -0`); with the guest profile's
//! `panic = "abort"` that would be a SIGABRT instead of an exit status. So the workspace's
//! `print_stdout`/`print_stderr` lints have nothing to flag here and need no `#[expect]`.

use std::io::{self, Write};

use crate::args::PROGRAM;

/// Writes `lines` to stdout, each followed by a newline.
pub fn answer(lines: &[String]) -> io::Result<()> {
    let mut text = String::new();
    for line in lines {
        text.push_str(line);
        text.push('\n');
    }
    stdout(&text)
}

/// Writes `text` (help, the version) to stdout as it is.
pub fn stdout(text: &str) -> io::Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()
}

/// `maestro-guest: MESSAGE` on stderr.
pub fn error(message: &str) {
    stderr(&format!("{PROGRAM}: {message}\n"));
}

/// A usage error: the problem, then the usage line that would have been right.
pub fn usage_error(message: &str, usage: &str) {
    stderr(&format!("{PROGRAM}: {message}\n{usage}\n"));
}

fn stderr(text: &str) {
    // A failure to report a failure has nowhere left to go; the exit status still tells.
    let _ = io::stderr().lock().write_all(text.as_bytes());
}
