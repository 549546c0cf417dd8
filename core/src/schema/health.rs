//! `healthcheck:` on services and instances: Compose's health check (test, interval,
//! timeout, start_period, start_interval, retries, disable), plus maestro's
//! `healthcheck: image` (the image's own HEALTHCHECK gates readiness). An extension of
//! MaestroNG's schema: MaestroNG has no such key.

use std::time::Duration;

use crate::model::Healthcheck;
use crate::yaml::{Node, Value};

use super::read::{Reader, get, join};

const KEYS: [&str; 7] = [
    "test",
    "interval",
    "timeout",
    "start_period",
    "start_interval",
    "retries",
    "disable",
];

/// The durations of a health check, by key.
const DURATIONS: [&str; 4] = ["interval", "timeout", "start_period", "start_interval"];

/// What one level (a service or an instance) writes, before the instance's fields are put
/// over the service's.
#[derive(Clone, Debug)]
pub(crate) enum Written {
    Image,
    Fields(Fields),
}

/// The fields one level gives: `None` when the key is absent, `Some(None)` when it is
/// null (Docker's default, overriding the service's value).
#[derive(Clone, Debug, Default)]
pub(crate) struct Fields {
    /// Docker's form; `disable: true` is written here as `[NONE]`.
    test: Option<Option<Vec<String>>>,
    /// By position in [`DURATIONS`].
    durations: [Option<Option<Duration>>; 4],
    retries: Option<Option<u32>>,
}

impl Fields {
    /// `self` (the service's) with every field `over` gives replaced.
    fn under(&self, over: &Fields) -> Fields {
        let mut out = self.clone();
        if over.test.is_some() {
            out.test = over.test.clone();
        }
        for (slot, given) in out.durations.iter_mut().zip(&over.durations) {
            if given.is_some() {
                *slot = *given;
            }
        }
        if over.retries.is_some() {
            out.retries = over.retries;
        }
        out
    }

    fn finish(self) -> Healthcheck {
        let test = self.test.flatten();
        if test
            .as_ref()
            .is_some_and(|t| t.first().is_some_and(|w| w == "NONE"))
        {
            return Healthcheck::Disabled;
        }
        let [interval, timeout, start_period, start_interval] = self.durations.map(Option::flatten);
        Healthcheck::Defined {
            test,
            interval,
            timeout,
            start_period,
            start_interval,
            retries: self.retries.flatten(),
        }
    }
}

/// Reads one level's `healthcheck:` value. `None` when it is null or invalid (the
/// problems are recorded).
pub(crate) fn read(r: &mut Reader, node: &Node, path: &str) -> Option<Written> {
    let entries = match &node.value {
        _ if node.is_null() => return None,
        Value::Scalar(s) if &*s.text == "image" => return Some(Written::Image),
        Value::Map(entries) => entries,
        _ => {
            r.error(
                path,
                node,
                format!(
                    "expected a health check {{test, interval, timeout, start_period, start_interval, retries, disable}} or image, found {} {}",
                    node.kind(),
                    node.display()
                ),
            )
            .help = Some(
                "write healthcheck: {test: \"curl -f http://localhost/\", interval: 10s}, or healthcheck: image for the image's own HEALTHCHECK".into(),
            );
            return None;
        }
    };
    r.known_keys(entries, path, &KEYS);
    let mut fields = Fields::default();
    if let Some(n) = get(entries, "test") {
        fields.test = Some(test(r, n, &join(path, "test")));
    }
    for (slot, name) in fields.durations.iter_mut().zip(DURATIONS) {
        if let Some(n) = get(entries, name) {
            *slot = Some(duration(r, n, &join(path, name)));
        }
    }
    if let Some(n) = get(entries, "retries") {
        fields.retries = Some(if n.is_null() {
            None
        } else {
            r.uint(n, &join(path, "retries"), "a number of retries (0 or more)")
        });
    }
    if let Some(n) = get(entries, "disable") {
        let dpath = join(path, "disable");
        if r.bool(n, &dpath) {
            if fields.test.as_ref().is_some_and(Option::is_some) {
                r.error(
                    &dpath,
                    n,
                    "a disabled health check cannot have a test (disable: true means no health check)",
                )
                .help = Some("remove test, or disable".into());
            } else {
                fields.test = Some(Some(vec!["NONE".into()]));
            }
        }
    }
    Some(Written::Fields(fields))
}

/// An instance's health check: its own `healthcheck:` over its service's, field by field.
pub(crate) fn resolve(
    service: Option<&Written>,
    instance: Option<&Written>,
) -> Option<Healthcheck> {
    Some(match (service, instance) {
        (_, Some(Written::Image)) | (Some(Written::Image), None) => Healthcheck::Image,
        (None, None) => return None,
        (Some(Written::Image) | None, Some(Written::Fields(f)))
        | (Some(Written::Fields(f)), None) => f.clone().finish(),
        (Some(Written::Fields(s)), Some(Written::Fields(i))) => s.under(i).finish(),
    })
}

/// `test`: a string (run by the container's shell) or Docker's list form.
fn test(r: &mut Reader, node: &Node, path: &str) -> Option<Vec<String>> {
    const HELP: &str = "write a command line (run by the shell), [CMD, program, arg...], [CMD-SHELL, \"command line\"] or [NONE]";
    match &node.value {
        _ if node.is_null() => None,
        Value::Scalar(s) if s.text.trim().is_empty() => {
            r.error(
                path,
                node,
                "expected a health check command, found an empty string",
            )
            .help = Some(HELP.into());
            None
        }
        Value::Scalar(s) => Some(vec!["CMD-SHELL".into(), s.text.to_string()]),
        Value::Seq(items) => {
            let words: Vec<String> = items
                .iter()
                .enumerate()
                .filter_map(|(i, item)| r.string(item, &format!("{path}[{i}]"), "a word"))
                .collect();
            if words.len() != items.len() {
                return None;
            }
            let problem = match words.first().map(String::as_str) {
                None => Some(
                    "expected CMD, CMD-SHELL or NONE and its command, found an empty list"
                        .to_owned(),
                ),
                Some("CMD") if words.len() < 2 => {
                    Some("[CMD] needs the program to run: [CMD, program, arg...]".to_owned())
                }
                Some("CMD-SHELL") if words.len() != 2 => Some(format!(
                    "[CMD-SHELL, ...] takes exactly one command line, found {}",
                    words.len() - 1
                )),
                Some("NONE") if words.len() > 1 => {
                    Some("[NONE] disables the health check and takes nothing after it".to_owned())
                }
                Some("CMD" | "CMD-SHELL" | "NONE") => None,
                Some(other) => Some(format!(
                    "the first word of a test list must be CMD, CMD-SHELL or NONE, found {other:?}"
                )),
            };
            match problem {
                Some(message) => {
                    r.error(path, node, message).help = Some(HELP.into());
                    None
                }
                None => Some(words),
            }
        }
        Value::Map(_) => {
            r.error(
                path,
                node,
                "expected a health check command (a string or a list), found a mapping",
            )
            .help = Some(HELP.into());
            None
        }
    }
}

/// A Compose duration (`1m30s`, `10s`, `500ms`, `1h`, `1.5s`) or a whole number of
/// seconds. `None` when null or invalid (recorded).
fn duration(r: &mut Reader, node: &Node, path: &str) -> Option<Duration> {
    if node.is_null() {
        return None;
    }
    let parsed = node.as_scalar().and_then(|s| parse_duration(&s.text));
    match parsed {
        None => {
            r.error(
                path,
                node,
                format!(
                    "invalid duration {}: expected a duration such as 1m30s, 10s, 500ms or 1h, or a whole number of seconds",
                    node.display()
                ),
            )
            .help = Some("units: h, m, s, ms, us, ns; no spaces, no sign".into());
            None
        }
        // Docker refuses a non-zero duration under a millisecond (zero means its default).
        Some(d) if !d.is_zero() && d < Duration::from_millis(1) => {
            r.error(
                path,
                node,
                format!(
                    "invalid duration {}: Docker needs at least 1ms (or 0 for its default)",
                    node.display()
                ),
            );
            None
        }
        // Docker takes nanoseconds as a signed 64-bit number.
        Some(d) if i64::try_from(d.as_nanos()).is_err() => {
            r.error(
                path,
                node,
                format!(
                    "invalid duration {}: longer than Docker accepts (about 292 years)",
                    node.display()
                ),
            );
            None
        }
        Some(d) => Some(d),
    }
}

/// Go's `time.ParseDuration` without a sign (what Compose reads), or bare digits as
/// seconds.
pub(crate) fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse::<u64>().ok().map(Duration::from_secs);
    }
    let mut rest = text;
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let digits_end = |s: &str| s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (whole, after) = rest.split_at(digits_end(rest));
        let (fraction, after) = match after.strip_prefix('.') {
            Some(a) => a.split_at(digits_end(a)),
            None => ("", after),
        };
        if whole.is_empty() && fraction.is_empty() {
            return None;
        }
        let unit_end = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_end);
        let scale: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return None,
        };
        let whole: u128 = if whole.is_empty() {
            0
        } else {
            whole.parse().ok()?
        };
        let mut value = whole.checked_mul(scale)?;
        // Digits past the nanosecond do not count (as in Go).
        let fraction = &fraction[..fraction.len().min(18)];
        if !fraction.is_empty() {
            let numerator: u128 = fraction.parse().ok()?;
            value += numerator * scale / 10u128.pow(fraction.len() as u32);
        }
        total = total.checked_add(value)?;
        rest = after;
    }
    u64::try_from(total).ok().map(Duration::from_nanos)
}

#[cfg(test)]
mod tests;
