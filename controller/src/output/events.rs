//! Renders a play's events: live rows on a terminal (indicatif), timestamped lines
//! otherwise, or one JSON object per line with `--json`. Ends with a summary and the
//! details of every failure.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::play::{Event, Outcome, Reporter, Row};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Terminal,
    Plain,
    Json,
}

impl Mode {
    pub fn detect(json: bool) -> Mode {
        if json {
            Mode::Json
        } else if super::stdout_is_terminal() && std::env::var_os("NO_COLOR").is_none() {
            Mode::Terminal
        } else {
            Mode::Plain
        }
    }
}

struct State {
    rows: Vec<Row>,
    outcomes: Vec<Option<Outcome>>,
    bars: Vec<ProgressBar>,
    multi: Option<MultiProgress>,
    width: usize,
}

pub struct Printer {
    mode: Mode,
    began: Instant,
    state: Mutex<State>,
}

impl Printer {
    pub fn new(mode: Mode) -> Arc<Printer> {
        Arc::new(Printer {
            mode,
            began: Instant::now(),
            state: Mutex::new(State {
                rows: Vec::new(),
                outcomes: Vec::new(),
                bars: Vec::new(),
                multi: None,
                width: 0,
            }),
        })
    }

    pub fn reporter(self: &Arc<Self>) -> Reporter {
        let me = self.clone();
        Arc::new(move |event| me.handle(event))
    }

    fn handle(&self, event: Event) {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match self.mode {
            Mode::Json => self.json(&mut state, &event),
            Mode::Plain => self.plain(&mut state, &event),
            Mode::Terminal => self.terminal(&mut state, &event),
        }
    }

    fn stamp(&self) -> String {
        let since = self.began.elapsed();
        format!("{:>7.3}s", since.as_secs_f64())
    }

    fn plain(&self, state: &mut State, event: &Event) {
        match event {
            Event::Began { rows, .. } => start_rows(state, rows),
            Event::Finished { row, outcome, .. } => state.outcomes[*row] = Some(outcome.clone()),
            Event::Step { .. } | Event::Ended { .. } => {}
        }
        // A failure is kept by print_with for the exit code; the play goes on regardless.
        let _ = super::print_with(|out| self.write_plain(state, event, out));
    }

    fn write_plain(
        &self,
        state: &State,
        event: &Event,
        out: &mut dyn std::io::Write,
    ) -> std::io::Result<()> {
        match event {
            Event::Began { play, rows } => {
                writeln!(
                    out,
                    "{} {play}: {} {}{}",
                    self.stamp(),
                    rows.len(),
                    noun(play),
                    plural(rows.len())
                )
            }
            Event::Step { row, message } => {
                writeln!(
                    out,
                    "{} {:w$}  {}",
                    self.stamp(),
                    state.rows[*row].instance,
                    super::visible(message),
                    w = state.width
                )
            }
            Event::Finished {
                row,
                outcome,
                elapsed,
            } => {
                writeln!(
                    out,
                    "{} {:w$}  {}{}",
                    self.stamp(),
                    state.rows[*row].instance,
                    describe(outcome),
                    took(*elapsed),
                    w = state.width
                )
            }
            Event::Ended {
                play,
                elapsed,
                interrupted,
            } => {
                write!(
                    out,
                    "{}",
                    summary(state, play, *elapsed, *interrupted, false)
                )
            }
        }
    }

    fn terminal(&self, state: &mut State, event: &Event) {
        match event {
            Event::Began { play, rows } => {
                start_rows(state, rows);
                let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stdout());
                let _ = multi.println(format!(
                    "{play}: {} {}{}",
                    rows.len(),
                    noun(play),
                    plural(rows.len())
                ));
                let style = ProgressStyle::with_template(
                    "{spinner:.cyan} {prefix} {wide_msg} {elapsed:>4}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_spinner());
                state.bars = rows
                    .iter()
                    .map(|row| {
                        let bar = multi.add(ProgressBar::new_spinner());
                        bar.set_style(style.clone());
                        bar.set_prefix(format!(
                            "{:w$} {:s$} {:h$}",
                            row.instance,
                            row.service,
                            row.ship,
                            w = state.width,
                            s = rows.iter().map(|r| r.service.len()).max().unwrap_or(0),
                            h = rows.iter().map(|r| r.ship.len()).max().unwrap_or(0),
                        ));
                        bar.set_message("waiting");
                        bar.enable_steady_tick(Duration::from_millis(100));
                        bar
                    })
                    .collect();
                state.multi = Some(multi);
            }
            Event::Step { row, message } => {
                state.bars[*row].set_message(super::visible(message).into_owned())
            }
            Event::Finished {
                row,
                outcome,
                elapsed,
            } => {
                state.outcomes[*row] = Some(outcome.clone());
                let (color, mark) = match outcome {
                    Outcome::Done(_) => ("32", "✔"),
                    Outcome::Warning(_) | Outcome::Skipped(_) => ("33", "•"),
                    Outcome::NotRun(_) => ("2", "-"),
                    Outcome::Failed(_) => ("31", "✘"),
                };
                let bar = &state.bars[*row];
                bar.set_style(
                    ProgressStyle::with_template("{msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_bar()),
                );
                bar.finish_with_message(format!(
                    "\x1b[{color}m{mark}\x1b[0m {} \x1b[{color}m{}\x1b[0m{}",
                    bar.prefix(),
                    describe(outcome),
                    took(*elapsed)
                ));
            }
            Event::Ended {
                play,
                elapsed,
                interrupted,
            } => {
                for bar in &state.bars {
                    if !bar.is_finished() {
                        bar.finish();
                    }
                }
                let text = summary(state, play, *elapsed, *interrupted, true);
                let _ = super::print(&text);
            }
        }
    }

    fn json(&self, state: &mut State, event: &Event) {
        let time = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        let value = match event {
            Event::Began { play, rows } => {
                start_rows(state, rows);
                serde_json::json!({"time": time, "event": "began", "play": play,
                    "instances": rows.iter().map(|r| serde_json::json!({"instance": r.instance, "service": r.service, "ship": r.ship})).collect::<Vec<_>>()})
            }
            Event::Step { row, message } => {
                serde_json::json!({"time": time, "event": "step", "instance": state.rows[*row].instance, "message": message})
            }
            Event::Finished {
                row,
                outcome,
                elapsed,
            } => {
                state.outcomes[*row] = Some(outcome.clone());
                let (result, message, failure) = match outcome {
                    Outcome::Done(m) => ("done", m.clone(), None),
                    Outcome::Warning(m) => ("warning", m.clone(), None),
                    Outcome::Skipped(m) => ("skipped", m.clone(), None),
                    Outcome::NotRun(m) => ("not_run", m.clone(), None),
                    Outcome::Failed(f) => ("failed", f.message.clone(), Some(f)),
                };
                let mut value = serde_json::json!({"time": time, "event": "finished", "instance": state.rows[*row].instance,
                    "result": result, "message": message, "seconds": elapsed.as_secs_f64()});
                if let Some(f) = failure {
                    value["exit_code"] = serde_json::json!(f.exit_code);
                    value["logs"] = serde_json::json!(f.logs);
                }
                value
            }
            Event::Ended {
                play,
                elapsed,
                interrupted,
            } => {
                let count = |f: fn(&Outcome) -> bool| {
                    state.outcomes.iter().flatten().filter(|o| f(o)).count()
                };
                serde_json::json!({"time": time, "event": "ended", "play": play, "seconds": elapsed.as_secs_f64(),
                    "interrupted": interrupted,
                    "done": count(|o| matches!(o, Outcome::Done(_) | Outcome::Warning(_) | Outcome::Skipped(_))),
                    "failed": count(|o| matches!(o, Outcome::Failed(_))),
                    "not_run": count(|o| matches!(o, Outcome::NotRun(_)))})
            }
        };
        let _ = super::print(&format!("{value}\n"));
    }
}

fn start_rows(state: &mut State, rows: &[Row]) {
    state.rows = rows.to_vec();
    state.outcomes = vec![None; rows.len()];
    state.width = rows.iter().map(|r| r.instance.len()).max().unwrap_or(0);
}

/// What a play's rows are: images for a pull, orphan containers for `clean --orphans`,
/// instances otherwise.
fn noun(play: &str) -> &'static str {
    match play {
        "pull" => "image",
        "clean --orphans" => "orphan",
        _ => "instance",
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn took(elapsed: Duration) -> String {
    if elapsed.is_zero() {
        String::new()
    } else {
        format!(" ({:.1}s)", elapsed.as_secs_f64())
    }
}

/// An outcome in words, safe for a terminal (its text may quote an engine or container).
fn describe(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Done(m) | Outcome::Warning(m) | Outcome::Skipped(m) | Outcome::NotRun(m) => {
            super::visible(m).into_owned()
        }
        Outcome::Failed(f) => format!("failed: {}", super::visible(&f.message)),
    }
}

/// The closing lines: counts, then each failure with its exit code and last lines.
fn summary(state: &State, play: &str, elapsed: Duration, interrupted: bool, color: bool) -> String {
    let paint = |code: &str, text: String| {
        if color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text
        }
    };
    let outcomes: Vec<&Outcome> = state.outcomes.iter().flatten().collect();
    let count = |f: &dyn Fn(&Outcome) -> bool| outcomes.iter().filter(|o| f(o)).count();
    let done = count(&|o| matches!(o, Outcome::Done(_)));
    let warnings = count(&|o| matches!(o, Outcome::Warning(_)));
    let skipped = count(&|o| matches!(o, Outcome::Skipped(_)));
    let failed = count(&|o| matches!(o, Outcome::Failed(_)));
    let not_run = count(&|o| matches!(o, Outcome::NotRun(_)));
    let mut parts = vec![format!("{done} done")];
    if warnings > 0 {
        parts.push(format!("{warnings} with warnings"));
    }
    if skipped > 0 {
        parts.push(format!("{skipped} skipped"));
    }
    if failed > 0 {
        parts.push(paint("31", format!("{failed} failed")));
    }
    if not_run > 0 {
        parts.push(format!("{not_run} not run"));
    }
    let mut out = String::new();
    for (row, outcome) in state.outcomes.iter().enumerate() {
        if let Some(Outcome::Failed(f)) = outcome {
            out.push_str(&format!(
                "\n{}: {}\n",
                paint("1;31", format!("{} failed", state.rows[row].instance)),
                super::visible(&f.message)
            ));
            if let Some(code) = f.exit_code {
                out.push_str(&format!("  exit code: {code}\n"));
            }
            if !f.logs.is_empty() {
                out.push_str(&format!("  last {} lines of output:\n", f.logs.len()));
                for line in &f.logs {
                    out.push_str(&format!("  | {}\n", super::visible(line)));
                }
            }
        }
    }
    let interrupted = if interrupted { ", interrupted" } else { "" };
    out.push_str(&format!(
        "{play}: {} in {:.1}s{interrupted}\n",
        parts.join(", "),
        elapsed.as_secs_f64()
    ));
    out
}
