//! Every MaestroNG 0.8.3 command-line flag is accepted by maestro's parser or refused
//! with a message: a walk over `tests/parity/flags.tsv` (see its header for the columns
//! and statuses).

use clap::error::ErrorKind;

use super::parse_from;

const FLAGS: &str = include_str!("../../../tests/parity/flags.tsv");

fn parsed(line: &str) -> Result<String, clap::Error> {
    parse_from(std::iter::once("maestro").chain(line.split(' '))).map(|cli| format!("{cli:?}"))
}

fn check(n: usize, cols: &[&str]) -> Option<String> {
    let [command, flag, status, line, without, rest @ ..] = cols else {
        return Some(format!(
            "flags.tsv:{n}: expected 5 or 6 columns, got {cols:?}"
        ));
    };
    let what = format!("flags.tsv:{n} {command} {flag} ({status}): maestro {line}");
    let got = parsed(line);
    match (*status, got) {
        ("accepted", Ok(with)) => match parsed(without) {
            Ok(plain) if plain != with => None,
            Ok(_) => Some(format!("{what}: parses as if the flag were not there")),
            Err(e) => Some(format!("{what}: the line without it does not parse: {e}")),
        },
        ("refused", Err(e)) if e.kind() != ErrorKind::DisplayHelp => {
            let message = e.to_string();
            let fragment = rest.first().copied().unwrap_or_default();
            (!message.contains(fragment))
                .then(|| format!("{what}: the message lacks {fragment:?}: {message}"))
        }
        ("version", Err(e)) if e.kind() == ErrorKind::DisplayVersion => None,
        ("help", Err(e)) if e.kind() == ErrorKind::DisplayHelp => None,
        (_, Ok(cli)) => Some(format!("{what}: parsed as {cli}")),
        (_, Err(e)) => Some(format!("{what}: {:?}: {e}", e.kind())),
    }
}

#[test]
fn every_maestrong_flag_is_accepted_or_refused() {
    let mut rows = 0;
    let mut failures = Vec::new();
    for (i, line) in FLAGS.lines().enumerate() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        rows += 1;
        let cols: Vec<&str> = line.split('\t').collect();
        failures.extend(check(i + 1, &cols));
    }
    assert!(rows > 100, "flags.tsv has only {rows} rows");
    assert!(
        failures.is_empty(),
        "{} of {rows} flags:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
