//! The command-line grammar: a table of [`Spec`]s drives parsing, validation, the usage
//! lines and the help texts, so adding a command is adding a row, not a parser.
//!
//! Grammar: `maestro-guest COMMAND [ARG | --opt VALUE | --opt=VALUE | --switch]...`.
//! Options may sit anywhere after the command; `--` ends them (so an instance may be
//! called `-x`). Every positional is required; a last positional whose name ends in `...`
//! (`SPEC...`) takes one or more words. `-h`/`--help` anywhere before `--` wins over every
//! other problem, so a user who typed half a command can still ask for help.

use guestutils::discovery::python_int;

/// The program's name in every usage line and message.
pub const PROGRAM: &str = "maestro-guest";

/// One command: its name, its positionals (all required; a trailing `...` on the last
/// one's name means one or more), its options and what it does.
pub struct Spec<H> {
    pub name: &'static str,
    pub args: &'static [&'static str],
    pub opts: &'static [Opt],
    /// The first line is the command's row in the program's help; the whole text is shown
    /// in the command's own help.
    pub about: &'static str,
    pub handler: H,
}

/// One `--long` option of a command.
pub struct Opt {
    pub name: &'static str,
    pub kind: Kind,
    pub repeat: bool,
    pub help: &'static str,
}

/// What an option accepts. Values are checked while parsing, so a handler never meets a
/// malformed one and a bad value is a usage error (exit 2), not a discovery error.
#[derive(Clone, Copy)]
pub enum Kind {
    /// No value.
    Switch,
    /// Any text; the string names it in the usage line.
    Text(&'static str),
    /// An integer as Python's `int()` reads it, since MaestroNG hands defaults to `int()`.
    Int(&'static str),
    /// A non-negative count.
    Count(&'static str),
    /// One of a fixed set of words.
    Choice(&'static [&'static str]),
}

impl Kind {
    fn metavar(self) -> Option<String> {
        match self {
            Self::Switch => None,
            Self::Text(m) | Self::Int(m) | Self::Count(m) => Some(m.to_owned()),
            Self::Choice(words) => Some(words.join("|")),
        }
    }

    /// `None` when `value` is acceptable, else what was expected.
    fn reject(self, value: &str) -> Option<String> {
        match self {
            Self::Switch | Self::Text(_) => None,
            Self::Int(_) => python_int(value).is_none().then(|| "an integer".to_owned()),
            Self::Count(_) => value
                .parse::<usize>()
                .is_err()
                .then(|| "a non-negative integer".to_owned()),
            Self::Choice(words) => {
                (!words.contains(&value)).then(|| format!("one of {}", words.join(", ")))
            }
        }
    }
}

/// What the command line asks for.
pub enum Parsed<'t, H> {
    /// Help for the whole program (`None`) or for one command.
    Help(Option<&'t Spec<H>>),
    Version,
    Run(&'t Spec<H>, Invocation),
}

/// A command's positionals and options, already checked against its [`Spec`].
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Invocation {
    pub args: Vec<String>,
    opts: Vec<(&'static str, String)>,
}

impl Invocation {
    /// The `index`-th positional; the parser guarantees every declared one is present.
    pub fn arg(&self, index: usize) -> &str {
        self.args.get(index).map_or("", String::as_str)
    }

    pub fn flag(&self, name: &str) -> bool {
        self.opts.iter().any(|(n, _)| *n == name)
    }

    /// The value of a non-repeatable option.
    pub fn value(&self, name: &str) -> Option<&str> {
        self.values(name).next()
    }

    /// Every value of a repeatable option, in command-line order.
    pub fn values<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a str> {
        self.opts
            .iter()
            .filter(move |(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// A [`Kind::Count`] option's value.
    pub fn count(&self, name: &str) -> Option<usize> {
        self.value(name).and_then(|v| v.parse().ok())
    }
}

/// A command line that cannot be run. `spec` picks the usage line shown with it.
pub struct UsageError<'t, H> {
    pub message: String,
    pub spec: Option<&'t Spec<H>>,
}

/// Parses `argv` (without the program name) against `table`.
pub fn parse<'t, H>(
    table: &'t [Spec<H>],
    argv: &[String],
) -> Result<Parsed<'t, H>, UsageError<'t, H>> {
    let fail = |message: String, spec| Err(UsageError { message, spec });
    let Some((first, rest)) = argv.split_first() else {
        return fail("missing command".to_owned(), None);
    };
    match first.as_str() {
        "-h" | "--help" => return Ok(Parsed::Help(None)),
        "--version" => return Ok(Parsed::Version),
        _ => {}
    }
    if first.starts_with('-') && first != "-" {
        return fail(format!("unknown option '{first}'"), None);
    }
    let Some(spec) = table.iter().find(|s| s.name == first) else {
        return fail(format!("unknown command '{first}'"), None);
    };
    let mut before_dashes = rest.iter().take_while(|a| *a != "--");
    if before_dashes.any(|a| a == "-h" || a == "--help") {
        return Ok(Parsed::Help(Some(spec)));
    }
    parse_command(spec, rest)
        .map(|inv| Parsed::Run(spec, inv))
        .or_else(|message| fail(message, Some(spec)))
}

fn parse_command<H>(spec: &Spec<H>, rest: &[String]) -> Result<Invocation, String> {
    let mut inv = Invocation::default();
    let mut words = rest.iter();
    while let Some(word) = words.next() {
        if word == "--" {
            inv.args.extend(words.by_ref().cloned());
            break;
        }
        let Some(long) = word.strip_prefix("--") else {
            if word.starts_with('-') && word != "-" {
                return Err(format!("unknown option '{word}'"));
            }
            inv.args.push(word.clone());
            continue;
        };
        let (name, inline) = match long.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (long, None),
        };
        let Some(opt) = spec.opts.iter().find(|o| o.name == name) else {
            return Err(format!("unknown option '--{name}'"));
        };
        if !opt.repeat && inv.flag(opt.name) {
            return Err(format!("option --{name} given more than once"));
        }
        let value = match (opt.kind, inline) {
            (Kind::Switch, None) => String::new(),
            (Kind::Switch, Some(_)) => return Err(format!("option --{name} takes no value")),
            (_, Some(value)) => value.to_owned(),
            // The next word is the value even when it starts with `-` (`--default -1`).
            (kind, None) => match words.next() {
                Some(value) => value.clone(),
                None => {
                    let metavar = kind.metavar().unwrap_or_default();
                    return Err(format!("option --{name} needs a value {metavar}"));
                }
            },
        };
        if let Some(expected) = opt.kind.reject(&value) {
            return Err(format!(
                "invalid value '{value}' for --{name}: expected {expected}"
            ));
        }
        inv.opts.push((opt.name, value));
    }
    if let Some(missing) = spec.args.get(inv.args.len()) {
        let missing = missing.strip_suffix("...").unwrap_or(missing);
        return Err(format!("missing argument {missing}"));
    }
    let variadic = spec.args.last().is_some_and(|last| last.ends_with("..."));
    if let Some(extra) = inv.args.get(spec.args.len()).filter(|_| !variadic) {
        return Err(format!("unexpected argument '{extra}'"));
    }
    Ok(inv)
}

/// `maestro-guest nodes SERVICE [--port NAME]... [--min N]`: the one-line synopsis.
pub fn usage_line<H>(spec: &Spec<H>) -> String {
    let mut line = format!("{PROGRAM} {}", spec.name);
    // A trailing `NAME...` goes after the options, behind `--` when there are options:
    // its words may look like options themselves (`run -- sh -c ...`).
    let (fixed, variadic) = match spec.args.split_last() {
        Some((last, fixed)) if last.ends_with("...") => (fixed, Some(*last)),
        _ => (spec.args, None),
    };
    for arg in fixed {
        line.push(' ');
        line.push_str(arg);
    }
    for opt in spec.opts {
        line.push_str(" [");
        line.push_str(&opt_synopsis(opt));
        line.push(']');
        if opt.repeat {
            line.push_str("...");
        }
    }
    if let Some(variadic) = variadic {
        line.push_str(if spec.opts.is_empty() { " " } else { " [--] " });
        line.push_str(variadic);
    }
    line
}

/// The usage line shown under a usage error.
pub fn usage_hint<H>(spec: Option<&Spec<H>>) -> String {
    match spec {
        Some(spec) => format!("usage: {}", usage_line(spec)),
        None => format!("usage: {PROGRAM} COMMAND [ARGS]... (see '{PROGRAM} --help')"),
    }
}

/// `--help` for one command.
pub fn command_help<H>(spec: &Spec<H>) -> String {
    let mut text = format!(
        "usage: {}\n\n{}\n\noptions:\n",
        usage_line(spec),
        spec.about
    );
    let mut rows: Vec<(String, &str)> = spec
        .opts
        .iter()
        .map(|o| (opt_synopsis(o), o.help))
        .collect();
    rows.push(("-h, --help".to_owned(), "show this help"));
    push_rows(&mut text, &rows);
    text
}

/// `--help` for the program: one row per command of `table`.
pub fn program_help<H>(about: &str, table: &[Spec<H>]) -> String {
    let mut text = format!("{about}\n\nusage: {PROGRAM} COMMAND [ARGS]...\n\ncommands:\n");
    let rows: Vec<(String, &str)> = table
        .iter()
        .map(|s| (s.name.to_owned(), s.about.lines().next().unwrap_or("")))
        .collect();
    push_rows(&mut text, &rows);
    text.push_str(&format!(
        "\noptions:\n  -h, --help  show this help ('{PROGRAM} COMMAND --help' for a command's)\n  --version   show the version\n"
    ));
    text
}

fn opt_synopsis(opt: &Opt) -> String {
    match opt.kind.metavar() {
        Some(metavar) => format!("--{} {metavar}", opt.name),
        None => format!("--{}", opt.name),
    }
}

fn push_rows(text: &mut String, rows: &[(String, &str)]) {
    let width = rows
        .iter()
        .map(|(left, _)| left.chars().count())
        .max()
        .unwrap_or(0);
    for (left, right) in rows {
        text.push_str(&format!("  {left:width$}  {right}\n"));
    }
}

#[cfg(test)]
mod tests;
