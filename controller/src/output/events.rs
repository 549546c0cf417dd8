//! Renders a play's events: live rows on a terminal (indicatif), timestamped lines
//! otherwise, or one JSON object per line with `--json`. Ends with a summary and the
//! details of every failure.
//!
//! An event costs the same whatever the number of rows: counts are kept as events
//! arrive, never recounted, and JSON lines are written as they come. A terminal shows a
//! line per instance while they fit on the screen; beyond that (a play of 20,000
//! instances) it shows lines of counts — the whole play, each service and each ship when
//! there are few —, each failure in full as it happens, and the slowest instances at the
//! end.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::play::{Event, Failure, Outcome, Reporter, Row};

/// The most rows a terminal shows a line each; more are counted instead.
const MAX_ROW_LINES: usize = 40;
/// The most services (or ships) given a line of counts each when rows are counted.
const MAX_GROUP_LINES: usize = 12;
/// How many of the slowest instances are named at the end when rows are counted.
const SLOWEST: usize = 5;
/// Width of the text bar in a line of counts.
const BAR_WIDTH: usize = 20;

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

/// How far a row has got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Progress {
    Waiting,
    Active,
    Finished,
}

/// How many rows are where; kept up to date event by event.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Counts {
    waiting: usize,
    active: usize,
    done: usize,
    warnings: usize,
    skipped: usize,
    failed: usize,
    not_run: usize,
}

impl Counts {
    fn began(rows: usize) -> Counts {
        Counts {
            waiting: rows,
            ..Counts::default()
        }
    }

    /// A row that was `before` had a step.
    fn step(&mut self, before: Progress) {
        if before == Progress::Waiting {
            self.waiting = self.waiting.saturating_sub(1);
            self.active += 1;
        }
    }

    /// A row that was `before` finished with `outcome` (counted once: a row finishes once).
    fn finish(&mut self, before: Progress, outcome: &Outcome) {
        match before {
            Progress::Waiting => self.waiting = self.waiting.saturating_sub(1),
            Progress::Active => self.active = self.active.saturating_sub(1),
            Progress::Finished => return,
        }
        *match outcome {
            Outcome::Done(_) => &mut self.done,
            Outcome::Warning(_) => &mut self.warnings,
            Outcome::Skipped(_) => &mut self.skipped,
            Outcome::Failed(_) => &mut self.failed,
            Outcome::NotRun(_) => &mut self.not_run,
        } += 1;
    }

    fn finished(&self) -> usize {
        self.done + self.warnings + self.skipped + self.failed + self.not_run
    }

    fn total(&self) -> usize {
        self.waiting + self.active + self.finished()
    }
}

struct State {
    rows: Vec<Row>,
    progress: Vec<Progress>,
    counts: Counts,
    /// Each failed row and its failure, in the order they failed.
    failures: Vec<(usize, Failure)>,
    width: usize,
    view: View,
}

/// What a terminal shows while a play runs.
enum View {
    /// Nothing live (plain lines, JSON, or before the play began).
    None,
    /// A line per row.
    Rows {
        /// Held for as long as its bars draw.
        _multi: MultiProgress,
        bars: Vec<ProgressBar>,
    },
    /// Lines of counts: too many rows for a line each.
    Counted(Box<Counted>),
}

impl State {
    fn begin(&mut self, rows: &[Row]) {
        self.rows = rows.to_vec();
        self.progress = vec![Progress::Waiting; rows.len()];
        self.counts = Counts::began(rows.len());
        self.failures.clear();
        self.width = rows.iter().map(|r| r.instance.len()).max().unwrap_or(0);
    }

    /// Records a step of `row`; its progress before, or `None` if the play has no such row.
    fn step(&mut self, row: usize) -> Option<Progress> {
        let progress = self.progress.get_mut(row)?;
        let before = *progress;
        if before == Progress::Waiting {
            *progress = Progress::Active;
        }
        self.counts.step(before);
        Some(before)
    }

    /// Records the end of `row`; its progress before, or `None` if the play has no such row.
    fn finish(&mut self, row: usize, outcome: &Outcome) -> Option<Progress> {
        let progress = self.progress.get_mut(row)?;
        let before = *progress;
        *progress = Progress::Finished;
        self.counts.finish(before, outcome);
        if let (Outcome::Failed(f), false) = (outcome, before == Progress::Finished) {
            self.failures.push((row, f.clone()));
        }
        Some(before)
    }
}

pub struct Printer {
    mode: Mode,
    began: Instant,
    /// The most rows shown a line each on the terminal.
    row_lines: usize,
    /// Where the terminal view draws (stdout; nowhere in tests).
    target: fn() -> ProgressDrawTarget,
    state: Mutex<State>,
}

impl Printer {
    pub fn new(mode: Mode) -> Arc<Printer> {
        let row_lines = if mode == Mode::Terminal {
            screen_lines()
        } else {
            MAX_ROW_LINES
        };
        Printer::with(mode, row_lines, ProgressDrawTarget::stdout)
    }

    fn with(mode: Mode, row_lines: usize, target: fn() -> ProgressDrawTarget) -> Arc<Printer> {
        Arc::new(Printer {
            mode,
            began: Instant::now(),
            row_lines,
            target,
            state: Mutex::new(State {
                rows: Vec::new(),
                progress: Vec::new(),
                counts: Counts::default(),
                failures: Vec::new(),
                width: 0,
                view: View::None,
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
        let before = match &event {
            Event::Began { rows, .. } => {
                state.begin(rows);
                Progress::Waiting
            }
            Event::Step { row, .. } => match state.step(*row) {
                Some(before) => before,
                None => return, // about no row of this play: nothing to show
            },
            Event::Finished { row, outcome, .. } => match state.finish(*row, outcome) {
                Some(before) => before,
                None => return,
            },
            Event::Ended { .. } => Progress::Finished,
        };
        match self.mode {
            Mode::Json => self.json(&state, &event),
            Mode::Plain => self.plain(&state, &event),
            Mode::Terminal => self.terminal(&mut state, &event, before),
        }
    }

    fn stamp(&self) -> String {
        let since = self.began.elapsed();
        format!("{:>7.3}s", since.as_secs_f64())
    }

    fn plain(&self, state: &State, event: &Event) {
        // A line or a few, made before stdout is locked, and written at once (print_with
        // would allocate its 64 KiB buffer for each). A failure is kept for the exit code;
        // the play goes on regardless.
        let mut line = Vec::with_capacity(128);
        if self.write_plain(state, event, &mut line).is_ok() {
            let _ = super::print_bytes(&line);
        }
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

    fn terminal(&self, state: &mut State, event: &Event, before: Progress) {
        match event {
            Event::Began { play, rows } => {
                let multi = MultiProgress::with_draw_target((self.target)());
                let _ = multi.println(format!(
                    "{play}: {} {}{}",
                    rows.len(),
                    noun(play),
                    plural(rows.len())
                ));
                state.view = if rows.len() <= self.row_lines {
                    View::Rows {
                        bars: row_bars(&multi, rows, state.width),
                        _multi: multi,
                    }
                } else {
                    View::Counted(Box::new(Counted::new(multi, rows, self.row_lines)))
                };
            }
            Event::Step { row, message } => match &mut state.view {
                View::Rows { bars, .. } => {
                    bars[*row].set_message(super::visible(message).into_owned())
                }
                View::Counted(counted) => counted.apply(*row, |c| c.step(before)),
                View::None => {}
            },
            Event::Finished {
                row,
                outcome,
                elapsed,
            } => match &mut state.view {
                View::Rows { bars, .. } => {
                    let (color, mark) = match outcome {
                        Outcome::Done(_) => ("32", "✔"),
                        Outcome::Warning(_) | Outcome::Skipped(_) => ("33", "•"),
                        Outcome::NotRun(_) => ("2", "-"),
                        Outcome::Failed(_) => ("31", "✘"),
                    };
                    let bar = &bars[*row];
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
                View::Counted(counted) => {
                    counted.apply(*row, |c| c.finish(before, outcome));
                    if before != Progress::Finished {
                        counted.finished(&state.rows, *row, outcome, *elapsed);
                    }
                }
                View::None => {}
            },
            Event::Ended {
                play,
                elapsed,
                interrupted,
            } => {
                let mut text = String::new();
                match &state.view {
                    View::Rows { bars, .. } => {
                        for bar in bars {
                            if !bar.is_finished() {
                                bar.finish();
                            }
                        }
                    }
                    View::Counted(counted) => {
                        counted.finish();
                        text = counted.slowest(&state.rows);
                    }
                    View::None => {}
                }
                text.push_str(&summary(state, play, *elapsed, *interrupted, true));
                let _ = super::print(&text);
            }
        }
    }

    fn json(&self, state: &State, event: &Event) {
        let time = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        let value = match event {
            Event::Began { play, rows } => {
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
                let c = &state.counts;
                serde_json::json!({"time": time, "event": "ended", "play": play, "seconds": elapsed.as_secs_f64(),
                    "interrupted": interrupted,
                    "done": c.done + c.warnings + c.skipped,
                    "failed": c.failed,
                    "not_run": c.not_run})
            }
        };
        // Straight to stdout, one line per event: nothing is held back.
        if let Ok(mut line) = serde_json::to_vec(&value) {
            line.push(b'\n');
            let _ = super::print_bytes(&line);
        }
    }
}

/// The most rows the terminal can show a line each: [`MAX_ROW_LINES`], or fewer on a
/// short screen (keeping room for the heading, the summary and the prompt).
fn screen_lines() -> usize {
    match rustix::termios::tcgetwinsize(std::io::stdout()) {
        Ok(size) if size.ws_row > 0 => {
            MAX_ROW_LINES.min(usize::from(size.ws_row).saturating_sub(3))
        }
        _ => MAX_ROW_LINES,
    }
}

/// A spinner per row, the widths of its columns measured once.
fn row_bars(multi: &MultiProgress, rows: &[Row], width: usize) -> Vec<ProgressBar> {
    let style = ProgressStyle::with_template("{spinner:.cyan} {prefix} {wide_msg} {elapsed:>4}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner());
    let service_width = rows.iter().map(|r| r.service.len()).max().unwrap_or(0);
    let ship_width = rows.iter().map(|r| r.ship.len()).max().unwrap_or(0);
    rows.iter()
        .map(|row| {
            let bar = multi.add(ProgressBar::new_spinner());
            bar.set_style(style.clone());
            bar.set_prefix(format!(
                "{:width$} {:service_width$} {:ship_width$}",
                row.instance, row.service, row.ship,
            ));
            bar.set_message("waiting");
            bar.enable_steady_tick(Duration::from_millis(100));
            bar
        })
        .collect()
}

/// A line of counts: its label, the counts, and its bar once on screen.
struct Group {
    label: String,
    counts: Counts,
    bar: Option<ProgressBar>,
}

/// The terminal view of a play with more rows than lines: the whole play's counts, then
/// each service's and each ship's when they are few enough to fit, failures printed above
/// as they happen, and the slowest rows kept for the end. An event updates at most three
/// lines: its row's play, service and ship.
struct Counted {
    multi: MultiProgress,
    /// The whole play, then the services, then the ships (those that are shown).
    groups: Vec<Group>,
    /// For each row, the index in `groups` of its service's and ship's lines, if shown.
    lines_of: Vec<[Option<usize>; 2]>,
    /// The widths of the labels and of the numbers, so that the lines align.
    widths: (usize, usize),
    /// The slowest rows so far (at most [`SLOWEST`]), the quickest of them on top.
    slowest: BinaryHeap<Reverse<(Duration, usize)>>,
}

impl Counted {
    fn new(multi: MultiProgress, rows: &[Row], max_lines: usize) -> Counted {
        let mut counted = Counted::text(rows, max_lines);
        counted.multi = multi;
        let style = |template| {
            ProgressStyle::with_template(template)
                .unwrap_or_else(|_| ProgressStyle::default_spinner())
        };
        for (i, group) in counted.groups.iter_mut().enumerate() {
            let bar = counted.multi.add(ProgressBar::new_spinner());
            // One ticking spinner (one thread), on the first line, shows the play is alive.
            if i == 0 {
                bar.set_style(style("{spinner:.cyan} {msg} {elapsed:>4}"));
                bar.enable_steady_tick(Duration::from_millis(100));
            } else {
                bar.set_style(style("  {msg}"));
            }
            bar.set_message(group_line(&group.label, counted.widths, &group.counts));
            group.bar = Some(bar);
        }
        counted
    }

    /// The lines and their counts, without drawing anything.
    fn text(rows: &[Row], max_lines: usize) -> Counted {
        let mut groups = vec![Group {
            label: "all".into(),
            counts: Counts::began(rows.len()),
            bar: None,
        }];
        let mut lines_of = vec![[None, None]; rows.len()];
        let mut room = max_lines.saturating_sub(1);
        for (column, name_of) in [
            (0, (|r: &Row| r.service.as_str()) as fn(&Row) -> &str),
            (1, |r: &Row| r.ship.as_str()),
        ] {
            let mut index: HashMap<&str, usize> = HashMap::new();
            for row in rows {
                let next = index.len();
                index.entry(name_of(row)).or_insert(next);
            }
            // Lines for one service (or ship) would only repeat the whole play's.
            if index.len() < 2 || index.len() > MAX_GROUP_LINES.min(room) {
                continue;
            }
            room -= index.len();
            let first = groups.len();
            let mut names: Vec<(&str, usize)> = index.iter().map(|(n, i)| (*n, *i)).collect();
            names.sort_by_key(|(_, i)| *i);
            let kind = if column == 0 { "service" } else { "ship" };
            groups.extend(names.iter().map(|(name, _)| Group {
                label: format!("{kind} {name}"),
                counts: Counts::default(),
                bar: None,
            }));
            for (row, lines) in rows.iter().zip(&mut lines_of) {
                let line = first + index[name_of(row)];
                lines[column] = Some(line);
                groups[line].counts.waiting += 1;
            }
        }
        let label_width = groups.iter().map(|g| g.label.len()).max().unwrap_or(0);
        let digits = rows.len().to_string().len();
        Counted {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::hidden()),
            groups,
            lines_of,
            widths: (label_width, digits),
            slowest: BinaryHeap::new(),
        }
    }

    /// Applies a change of `row` to its lines, and redraws them.
    fn apply(&mut self, row: usize, change: impl Fn(&mut Counts)) {
        let [service, ship] = self.lines_of.get(row).copied().unwrap_or_default();
        for line in [Some(0), service, ship].into_iter().flatten() {
            let group = &mut self.groups[line];
            change(&mut group.counts);
            if let Some(bar) = &group.bar {
                bar.set_message(group_line(&group.label, self.widths, &group.counts));
            }
        }
    }

    /// A row finished: a failure is printed above the lines at once; the time is kept if
    /// among the slowest.
    fn finished(&mut self, rows: &[Row], row: usize, outcome: &Outcome, elapsed: Duration) {
        if let Outcome::Failed(f) = outcome {
            let _ = self
                .multi
                .println(failure_text(&rows[row], f, elapsed, true));
        }
        if !elapsed.is_zero() {
            self.slowest.push(Reverse((elapsed, row)));
            if self.slowest.len() > SLOWEST {
                self.slowest.pop();
            }
        }
    }

    /// The lines as they stand, one per group.
    fn lines(&self) -> Vec<String> {
        self.groups
            .iter()
            .map(|g| group_line(&g.label, self.widths, &g.counts))
            .collect()
    }

    /// Leaves the last counts on screen.
    fn finish(&self) {
        for (group, line) in self.groups.iter().zip(self.lines()) {
            if let Some(bar) = &group.bar {
                bar.finish_with_message(line);
            }
        }
    }

    /// The slowest rows, slowest first.
    fn slowest(&self, rows: &[Row]) -> String {
        let mut slowest: Vec<(Duration, usize)> =
            self.slowest.iter().map(|Reverse(entry)| *entry).collect();
        slowest.sort_by(|a, b| b.cmp(a));
        let mut out = String::new();
        if slowest.is_empty() {
            return out;
        }
        out.push_str("slowest:\n");
        for (elapsed, row) in slowest {
            let r = &rows[row];
            out.push_str(&format!(
                "  {} ({} on {}) {:.1}s\n",
                r.instance,
                r.service,
                r.ship,
                elapsed.as_secs_f64()
            ));
        }
        out
    }
}

/// One line of counts: `label  [####......]  12/20  3 waiting, 5 in progress, 12 done`,
/// the label and the numbers padded to `width` and `digits`.
fn group_line(label: &str, (width, digits): (usize, usize), counts: &Counts) -> String {
    let total = counts.total();
    let finished = counts.finished();
    let filled = (finished * BAR_WIDTH).checked_div(total).unwrap_or(0);
    let parts: Vec<String> = [
        (counts.waiting, "waiting"),
        (counts.active, "in progress"),
        (counts.done, "done"),
        (counts.warnings, "with warnings"),
        (counts.skipped, "skipped"),
        (counts.failed, "failed"),
        (counts.not_run, "not run"),
    ]
    .iter()
    .filter(|(n, _)| *n > 0)
    .map(|(n, what)| format!("{n} {what}"))
    .collect();
    format!(
        "{label:width$}  [{}{}]  {finished:>digits$}/{total:<digits$}  {}",
        "#".repeat(filled),
        ".".repeat(BAR_WIDTH - filled),
        parts.join(", ")
    )
}

/// A failure in full: the row, its message, exit code and last lines of output.
fn failure_text(row: &Row, f: &Failure, elapsed: Duration, color: bool) -> String {
    let paint = |code: &str, text: String| {
        if color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text
        }
    };
    let mut out = format!(
        "{} ({} on {}){}: {}",
        paint("1;31", format!("{} failed", row.instance)),
        row.service,
        row.ship,
        took(elapsed),
        super::visible(&f.message)
    );
    for line in failure_details(f) {
        out.push('\n');
        out.push_str(&line);
    }
    out
}

/// What a failure adds below its message: the exit code and the last lines of output,
/// each line indented (and escaped: they are the container's).
fn failure_details(f: &Failure) -> Vec<String> {
    let mut lines = Vec::new();
    if let Some(code) = f.exit_code {
        lines.push(format!("  exit code: {code}"));
    }
    if !f.logs.is_empty() {
        lines.push(format!("  last {} lines of output:", f.logs.len()));
        for line in &f.logs {
            lines.push(format!("  | {}", super::visible(line)));
        }
    }
    lines
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
    let c = &state.counts;
    let mut parts = vec![format!("{} done", c.done)];
    if c.warnings > 0 {
        parts.push(format!("{} with warnings", c.warnings));
    }
    if c.skipped > 0 {
        parts.push(format!("{} skipped", c.skipped));
    }
    if c.failed > 0 {
        parts.push(paint("31", format!("{} failed", c.failed)));
    }
    if c.not_run > 0 {
        parts.push(format!("{} not run", c.not_run));
    }
    let mut out = String::new();
    // In the order of the rows, whatever the order they failed in.
    let mut failures: Vec<&(usize, Failure)> = state.failures.iter().collect();
    failures.sort_by_key(|(row, _)| *row);
    for (row, f) in failures {
        out.push_str(&format!(
            "\n{}: {}\n",
            paint("1;31", format!("{} failed", state.rows[*row].instance)),
            super::visible(&f.message)
        ));
        for line in failure_details(f) {
            out.push_str(&line);
            out.push('\n');
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

#[cfg(test)]
impl Printer {
    /// How many live lines the terminal view keeps (one bar each).
    fn live_lines(&self) -> usize {
        match &self.state.lock().map(|s| match &s.view {
            View::None => 0,
            View::Rows { bars, .. } => bars.len(),
            View::Counted(counted) => counted.groups.len(),
        }) {
            Ok(n) => *n,
            Err(_) => 0,
        }
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    fn rows(n: usize, services: usize, ships: usize) -> Vec<Row> {
        (0..n)
            .map(|i| Row {
                instance: format!("svc{}-{i}", i % services),
                service: format!("svc{}", i % services),
                ship: format!("ship{}", i % ships),
            })
            .collect()
    }

    fn hidden(row_lines: usize) -> Arc<Printer> {
        Printer::with(Mode::Terminal, row_lines, ProgressDrawTarget::hidden)
    }

    fn failed(message: &str) -> Outcome {
        Outcome::Failed(Failure {
            message: message.into(),
            exit_code: Some(3),
            logs: vec!["boom".into()],
        })
    }

    fn counted_lines(printer: &Printer) -> String {
        let state = printer.state.lock().unwrap();
        let View::Counted(counted) = &state.view else {
            panic!("not the counted view")
        };
        let mut text = counted.lines().join("\n");
        text.push('\n');
        text.push_str(&counted.slowest(&state.rows));
        text
    }

    /// 20,000 rows on a terminal: the view keeps a few lines of counts, not a bar (and a
    /// ticking thread) per row, and every event is counted.
    #[test]
    fn a_terminal_view_of_20000_rows_keeps_a_few_lines() {
        let printer = hidden(MAX_ROW_LINES);
        let n = 20_000;
        printer.handle(Event::Began {
            play: "start",
            rows: rows(n, 10, 100),
        });
        for row in 0..n {
            printer.handle(Event::Step {
                row,
                message: "creating".into(),
            });
            printer.handle(Event::Finished {
                row,
                outcome: Outcome::Done("started".into()),
                elapsed: Duration::from_millis(row as u64),
            });
        }
        assert!(
            printer.live_lines() <= 1 + 10,
            "{} lines",
            printer.live_lines()
        );
        let text = counted_lines(&printer);
        assert!(
            text.starts_with("all           [####################]  20000/20000  20000 done\n"),
            "{text}"
        );
        assert!(
            text.contains("  svc9-19999 (svc9 on ship99) 20.0s\n"),
            "{text}"
        );
    }

    /// What the counted view shows mid-play: the whole play, each service, each ship, and
    /// the slowest rows so far.
    #[test]
    fn the_counted_view_shows_counts_per_service_and_ship() {
        let printer = hidden(8);
        printer.handle(Event::Began {
            play: "start",
            rows: rows(12, 3, 2),
        });
        for (row, outcome) in [
            (0, Some(Outcome::Done("started".into()))),
            (1, Some(failed("exited with code 3"))),
            (2, Some(Outcome::Skipped("already running".into()))),
            (3, None),
            (4, Some(Outcome::NotRun("svc1-1 failed".into()))),
            (5, Some(Outcome::Warning("outdated".into()))),
            (6, None),
        ] {
            printer.handle(Event::Step {
                row,
                message: "creating".into(),
            });
            if let Some(outcome) = outcome {
                let elapsed = Duration::from_millis(if row == 4 { 0 } else { 100 * row as u64 });
                printer.handle(Event::Finished {
                    row,
                    outcome,
                    elapsed,
                });
            }
        }
        insta::assert_snapshot!(counted_lines(&printer));
    }

    /// In the counted view a failure is printed above the lines as it happens, in full.
    #[test]
    fn a_failure_is_printed_in_full() {
        let row = &rows(1, 1, 1)[0];
        let Outcome::Failed(f) = failed("exited with code 3\x1b[2J") else {
            unreachable!()
        };
        assert_eq!(
            failure_text(row, &f, Duration::from_millis(1500), false),
            "svc0-0 failed (svc0 on ship0) (1.5s): exited with code 3\\x1b[2J\n  exit code: 3\n  last 1 lines of output:\n  | boom"
        );
    }

    /// Services and ships get lines only while they fit: above the limit only the whole
    /// play's line is shown; a single service or ship would repeat it.
    #[test]
    fn lines_per_service_and_ship_only_while_they_fit() {
        let cases = [
            // (rows, services, ships, lines available, lines shown)
            (100, 3, 2, 40, 1 + 3 + 2),
            (100, 3, 1, 40, 1 + 3),
            (100, 1, 1, 40, 1),
            (100, 30, 2, 40, 1 + 2),
            (100, 3, 20, 40, 1 + 3),
            (100, 10, 10, 12, 1 + 10),
            (100, 3, 2, 0, 1),
        ];
        for (n, services, ships, room, shown) in cases {
            let counted = Counted::text(&rows(n, services, ships), room);
            assert_eq!(
                counted.groups.len(),
                shown,
                "{services} services, {ships} ships, {room} lines"
            );
        }
    }

    /// Counts are kept as events come: a row finishing twice counts once, events about
    /// rows the play does not have change nothing, and the summary says what the rows did.
    #[test]
    fn the_summary_counts_each_row_once() {
        let mut state = State {
            rows: Vec::new(),
            progress: Vec::new(),
            counts: Counts::default(),
            failures: Vec::new(),
            width: 0,
            view: View::None,
        };
        state.begin(&rows(6, 2, 2));
        assert_eq!(state.finish(3, &failed("exited")), Some(Progress::Waiting));
        assert_eq!(state.step(0), Some(Progress::Waiting));
        assert_eq!(state.step(0), Some(Progress::Active));
        state.finish(0, &Outcome::Done("started".into()));
        state.finish(0, &failed("again"));
        state.finish(1, &failed("no image"));
        state.finish(2, &Outcome::NotRun("svc1-1 failed".into()));
        assert_eq!(state.step(99), None);
        assert_eq!(state.finish(99, &failed("no such row")), None);
        assert_eq!(
            state.counts,
            Counts {
                waiting: 2,
                done: 1,
                failed: 2,
                not_run: 1,
                ..Counts::default()
            }
        );
        insta::assert_snapshot!(summary(
            &state,
            "start",
            Duration::from_secs(2),
            false,
            false
        ));
    }
}
