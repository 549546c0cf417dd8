//! What MaestroNG sends for a YAML value: PyYAML constructs a Python object (YAML 1.1:
//! `yes` is `True`, `0755` is 493, `1:30` is 90, `2001-12-14` is a date, a mapping is a
//! dict) and docker-py formats it with `str()`. Containers were written against those
//! texts, so maestro sends the same, and says so where it differs from the text written.

use super::{Node, Resolved, Scalar, Value};

/// Python's `str()` of the object PyYAML builds for `node`; `None` for null (a variable
/// with no value).
pub fn str_of(node: &Node) -> Option<String> {
    match &node.value {
        Value::Scalar(s) => scalar(s, false),
        Value::Seq(_) | Value::Map(_) => Some(repr(node)),
    }
}

/// Python's `repr()` of the object PyYAML builds for `node` (what `str()` of a dict or
/// list shows of its items).
fn repr(node: &Node) -> String {
    match &node.value {
        Value::Scalar(s) => scalar(s, true).unwrap_or_else(|| "None".to_owned()),
        Value::Seq(items) => {
            let items: Vec<String> = items.iter().map(repr).collect();
            format!("[{}]", items.join(", "))
        }
        Value::Map(entries) => {
            let items: Vec<String> = entries
                .iter()
                .map(|(k, v)| format!("{}: {}", repr(k), repr(v)))
                .collect();
            format!("{{{}}}", items.join(", "))
        }
    }
}

/// `str()` (or `repr()` with `quoted`) of a scalar; `None` for null.
fn scalar(s: &Scalar, quoted: bool) -> Option<String> {
    let text = match s.yaml11() {
        Resolved::Null => return None,
        Resolved::Bool(true) => "True".to_owned(),
        Resolved::Bool(false) => "False".to_owned(),
        Resolved::Int(decimal) => decimal,
        Resolved::Float => float(&s.text),
        Resolved::Str => match (s.plain && s.tag.is_none())
            .then(|| timestamp(&s.text))
            .flatten()
        {
            Some(stamp) if quoted => stamp.repr(),
            Some(stamp) => stamp.str(),
            None if quoted => return Some(string_repr(&s.text)),
            None => s.text.to_string(),
        },
    };
    Some(text)
}

/// Python's `repr()` of a string: single quotes unless it holds a single quote and no
/// double one; backslash escapes for the quote, backslash and unprintable characters.
fn string_repr(text: &str) -> String {
    let quote = if text.contains('\'') && !text.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(text.len() + 2);
    out.push(quote);
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if ('\u{80}'..='\u{a0}').contains(&c) || c == '\u{ad}' => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// PyYAML's float constructor (underscores dropped, base 60, `.inf`, `.nan`), then
/// Python's `repr(float)`.
fn float(text: &str) -> String {
    let cleaned = text.replace('_', "").to_ascii_lowercase();
    let (sign, body) = match cleaned.strip_prefix('-') {
        Some(rest) => (-1.0, rest),
        None => (1.0, cleaned.strip_prefix('+').unwrap_or(&cleaned)),
    };
    let value = if body == ".inf" {
        f64::INFINITY
    } else if body == ".nan" {
        return "nan".to_owned();
    } else if body.contains(':') {
        let mut value = 0.0;
        for group in body.split(':') {
            value = value * 60.0 + group.parse::<f64>().unwrap_or(0.0);
        }
        value
    } else {
        body.parse::<f64>().unwrap_or(0.0)
    };
    float_repr(sign * value)
}

/// Python's `repr(float)`: the shortest text that reads back as the same number, in
/// positional notation when its decimal exponent is within [-4, 16), else scientific
/// with at least two exponent digits (`1e+16`, `1.5e-05`).
pub(crate) fn float_repr(value: f64) -> String {
    if value.is_nan() {
        return "nan".to_owned();
    }
    if value.is_infinite() {
        return if value > 0.0 { "inf" } else { "-inf" }.to_owned();
    }
    // Rust's `{:e}` is the shortest round-trip digits: `d[.ddd]e[-]x`.
    let scientific = format!("{value:e}");
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let negative = mantissa.starts_with('-');
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let sign = if negative { "-" } else { "" };
    if (-4..16).contains(&exponent) {
        let point = exponent + 1;
        let text = if point <= 0 {
            format!("0.{}{digits}", "0".repeat((-point) as usize))
        } else if point as usize >= digits.len() {
            format!("{digits}{}.0", "0".repeat(point as usize - digits.len()))
        } else {
            format!(
                "{}.{}",
                &digits[..point as usize],
                &digits[point as usize..]
            )
        };
        format!("{sign}{text}")
    } else {
        let (first, rest) = digits.split_at(1);
        let fraction = if rest.is_empty() {
            String::new()
        } else {
            format!(".{rest}")
        };
        let exp_sign = if exponent < 0 { '-' } else { '+' };
        format!("{sign}{first}{fraction}e{exp_sign}{:02}", exponent.abs())
    }
}

/// A timestamp as PyYAML constructs it: a `datetime.date`, or a `datetime.datetime`
/// (time with microseconds, and an offset from UTC in minutes when one is given).
struct Stamp {
    date: (u32, u32, u32),
    time: Option<(u32, u32, u32, u32, Option<i32>)>,
}

impl Stamp {
    /// Python's `str()`: `2001-12-14`, `2001-12-14 21:59:43.100000-05:00`.
    fn str(&self) -> String {
        let (y, m, d) = self.date;
        let mut out = format!("{y:04}-{m:02}-{d:02}");
        if let Some((h, mi, s, us, offset)) = self.time {
            out.push_str(&format!(" {h:02}:{mi:02}:{s:02}"));
            if us != 0 {
                out.push_str(&format!(".{us:06}"));
            }
            if let Some(offset) = offset {
                let sign = if offset < 0 { '-' } else { '+' };
                let a = offset.unsigned_abs();
                out.push_str(&format!("{sign}{:02}:{:02}", a / 60, a % 60));
            }
        }
        out
    }

    /// Python's `repr()`: `datetime.date(2001, 12, 14)`,
    /// `datetime.datetime(2001, 12, 15, 2, 59, 43, 100000, tzinfo=datetime.timezone.utc)`.
    fn repr(&self) -> String {
        let (y, m, d) = self.date;
        let Some((h, mi, s, us, offset)) = self.time else {
            return format!("datetime.date({y}, {m}, {d})");
        };
        // Trailing zero fields are left out, as Python does.
        let mut fields = format!("{y}, {m}, {d}, {h}, {mi}");
        if s != 0 || us != 0 {
            fields.push_str(&format!(", {s}"));
        }
        if us != 0 {
            fields.push_str(&format!(", {us}"));
        }
        match offset {
            None => {}
            Some(0) => fields.push_str(", tzinfo=datetime.timezone.utc"),
            Some(minutes) => {
                // timedelta normalises to days and non-negative seconds.
                let seconds = i64::from(minutes) * 60;
                let (days, seconds) = (seconds.div_euclid(86400), seconds.rem_euclid(86400));
                let delta = if days == 0 {
                    format!("seconds={seconds}")
                } else {
                    format!("days={days}, seconds={seconds}")
                };
                fields.push_str(&format!(
                    ", tzinfo=datetime.timezone(datetime.timedelta({delta}))"
                ));
            }
        }
        format!("datetime.datetime({fields})")
    }
}

/// PyYAML's timestamp resolver and constructor: a date (exactly `YYYY-MM-DD`) or a
/// datetime (`YYYY-M[M]-D[D]`, `T`, `t` or spaces, `H[H]:MM:SS[.fraction]`, then spaces
/// and `Z` or `±H[H][:MM]`); `None` when `text` is neither (or not a real date, which
/// PyYAML refuses).
fn timestamp(text: &str) -> Option<Stamp> {
    let b = text.as_bytes();
    let digits = |s: &[u8]| !s.is_empty() && s.iter().all(u8::is_ascii_digit);
    if b.len() == 10 && b[4] == b'-' && b[7] == b'-' {
        if digits(&b[..4]) && digits(&b[5..7]) && digits(&b[8..]) {
            let date = valid_date(&text[..4], &text[5..7], &text[8..])?;
            return Some(Stamp { date, time: None });
        }
        return None;
    }
    let (date, rest) = text.split_at(text.find(['T', 't', ' ', '\t'])?);
    let mut parts = date.split('-');
    let (y, m, d) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some()
        || y.len() != 4
        || !digits(y.as_bytes())
        || !(1..=2).contains(&m.len())
        || !digits(m.as_bytes())
        || !(1..=2).contains(&d.len())
        || !digits(d.as_bytes())
    {
        return None;
    }
    let date = valid_date(y, m, d)?;
    let rest = if rest.starts_with(['T', 't']) {
        &rest[1..]
    } else {
        rest.trim_start_matches([' ', '\t'])
    };
    let time_end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == ':' || c == '.'))
        .unwrap_or(rest.len());
    let (time, zone) = rest.split_at(time_end);
    let (clock, fraction) = match time.split_once('.') {
        Some((clock, fraction)) if fraction.bytes().all(|c| c.is_ascii_digit()) => {
            (clock, fraction)
        }
        Some(_) => return None,
        None => (time, ""),
    };
    let mut hms = clock.split(':');
    let (h, mi, s) = (hms.next()?, hms.next()?, hms.next()?);
    if hms.next().is_some()
        || !(1..=2).contains(&h.len())
        || !digits(h.as_bytes())
        || mi.len() != 2
        || !digits(mi.as_bytes())
        || s.len() != 2
        || !digits(s.as_bytes())
    {
        return None;
    }
    let (hour, minute, second): (u32, u32, u32) =
        (h.parse().ok()?, mi.parse().ok()?, s.parse().ok()?);
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let zone = zone.trim_start_matches([' ', '\t']);
    let offset = match zone {
        "" => None,
        "Z" => Some(0),
        z => {
            let (sign, body) = z.split_at(1);
            if sign != "+" && sign != "-" {
                return None;
            }
            let (zh, zm) = body.split_once(':').unwrap_or((body, "00"));
            if !(1..=2).contains(&zh.len())
                || !digits(zh.as_bytes())
                || zm.len() != 2
                || !digits(zm.as_bytes())
            {
                return None;
            }
            let minutes = zh.parse::<i32>().ok()? * 60 + zm.parse::<i32>().ok()?;
            Some(if sign == "-" { -minutes } else { minutes })
        }
    };
    let micro: String = fraction
        .chars()
        .chain(std::iter::repeat('0'))
        .take(6)
        .collect();
    Some(Stamp {
        date,
        time: Some((hour, minute, second, micro.parse().ok()?, offset)),
    })
}

/// The date, if it exists (PyYAML builds a `datetime.date`, which refuses 2001-02-30).
fn valid_date(y: &str, m: &str, d: &str) -> Option<(u32, u32, u32)> {
    let (year, month, day): (u32, u32, u32) = (y.parse().ok()?, m.parse().ok()?, d.parse().ok()?);
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    (year >= 1 && (1..=days).contains(&day)).then_some((year, month, day))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of `v` in `v: TEXT`.
    fn value(text: &str) -> Node {
        let doc = crate::yaml::parse(&format!("v: {text}\n"))
            .expect("valid YAML")
            .expect("a document");
        doc.as_map().expect("a mapping")[0].1.clone()
    }

    /// What Python 3 prints for `str(yaml.safe_load("v: TEXT")["v"])`.
    #[test]
    fn values_read_as_pyyaml_and_printed_as_python() {
        let cases = [
            ("yes", Some("True")),
            ("Off", Some("False")),
            ("true", Some("True")),
            ("~", None),
            ("", None),
            ("42", Some("42")),
            ("-7", Some("-7")),
            ("+12", Some("12")),
            ("1_000", Some("1000")),
            ("0755", Some("493")),
            ("0x1F", Some("31")),
            ("0b101", Some("5")),
            ("1:30", Some("90")),
            ("1.5", Some("1.5")),
            ("1.50", Some("1.5")),
            ("1.0e+3", Some("1000.0")),
            ("1e3", Some("1e3")),
            ("6.02e+23", Some("6.02e+23")),
            ("1.0e-5", Some("1e-05")),
            ("0.0001", Some("0.0001")),
            ("10000000000000000.0", Some("1e+16")),
            ("123456789012345.6", Some("123456789012345.6")),
            (".5", Some("0.5")),
            ("-.inf", Some("-inf")),
            (".NaN", Some("nan")),
            ("1:30.5", Some("90.5")),
            ("2001-12-14", Some("2001-12-14")),
            (
                "2001-12-14t21:59:43.10-05:00",
                Some("2001-12-14 21:59:43.100000-05:00"),
            ),
            (
                "2001-12-14 21:59:43.10 -5",
                Some("2001-12-14 21:59:43.100000-05:00"),
            ),
            (
                "2001-12-15T02:59:43.1Z",
                Some("2001-12-15 02:59:43.100000+00:00"),
            ),
            ("2002-12-14 3:04:05", Some("2002-12-14 03:04:05")),
            ("2001-1-2 00:00:00.000", Some("2001-01-02 00:00:00")),
            ("plain text", Some("plain text")),
            ("1.2.3", Some("1.2.3")),
            ("\"yes\"", Some("yes")),
            ("'0755'", Some("0755")),
            ("!!str 1:30", Some("1:30")),
            (
                "{a: 1, b: \"it's\", c: ~, d: on, e: [x, 2.50, 'back\\slash'], f: 2001-12-14}",
                Some(
                    "{'a': 1, 'b': \"it's\", 'c': None, 'd': True, 'e': ['x', 2.5, 'back\\\\slash'], \
                     'f': datetime.date(2001, 12, 14)}",
                ),
            ),
            (
                "{g: 2001-12-15T02:59:43.1Z, h: 2002-12-14 3:04:05, i: 2002-12-14 3:04:00 +5:30, \
                 j: 2002-12-14 3:04:00-5}",
                Some(
                    "{'g': datetime.datetime(2001, 12, 15, 2, 59, 43, 100000, tzinfo=datetime.timezone.utc), \
                     'h': datetime.datetime(2002, 12, 14, 3, 4, 5), \
                     'i': datetime.datetime(2002, 12, 14, 3, 4, tzinfo=datetime.timezone(datetime.timedelta(seconds=19800))), \
                     'j': datetime.datetime(2002, 12, 14, 3, 4, tzinfo=datetime.timezone(datetime.timedelta(days=-1, seconds=68400)))}",
                ),
            ),
        ];
        for (text, want) in cases {
            assert_eq!(str_of(&value(text)).as_deref(), want, "{text}");
        }
    }
}
