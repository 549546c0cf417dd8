//! The output formats of `nodes`: lines, one CSV record, or a JSON array of strings,
//! each escaped by hand (the guest carries no serialisation crates).

use std::fmt::Write as _;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Lines,
    Csv,
    Json,
}

impl Format {
    /// The `--format` words, in the order `from_name` knows them.
    pub const NAMES: &'static [&'static str] = &["lines", "csv", "json"];

    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "lines" => Some(Self::Lines),
            "csv" => Some(Self::Csv),
            "json" => Some(Self::Json),
            _ => None,
        }
    }
}

/// The output lines for `nodes`. `Lines` gives no line at all for no nodes, so that
/// `while read` loops and `wc -l` see zero nodes; the other two always give one line.
pub fn nodes(format: Format, nodes: &[String]) -> Vec<String> {
    match format {
        Format::Lines => nodes.to_vec(),
        Format::Csv => vec![
            nodes
                .iter()
                .map(|n| csv_field(n))
                .collect::<Vec<_>>()
                .join(","),
        ],
        Format::Json => vec![json_array(nodes)],
    }
}

/// RFC 4180: a field holding a comma, a quote or a line break is quoted, quotes doubled.
/// Ordinary `host:port` nodes never need it, so `a:1,b:2` stays a plain join.
fn csv_field(field: &str) -> String {
    if field.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_owned()
    }
}

fn json_array(items: &[String]) -> String {
    let mut out = String::from("[");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        json_string(&mut out, item);
    }
    out.push(']');
    out
}

/// RFC 8259 string: `"` and `\` escaped, control characters as short escapes or
/// `\u00XX`; everything else, non-ASCII included, passes through as UTF-8.
fn json_string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if c < '\u{20}' => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn formats() {
        let two = strings(&["h1:1", "h2:2"]);
        let cases: &[(Format, &[String], &[&str])] = &[
            (Format::Lines, &two, &["h1:1", "h2:2"]),
            (Format::Csv, &two, &["h1:1,h2:2"]),
            (Format::Json, &two, &[r#"["h1:1","h2:2"]"#]),
            (Format::Lines, &[], &[]),
            (Format::Csv, &[], &[""]),
            (Format::Json, &[], &["[]"]),
        ];
        for (format, nodes, want) in cases {
            assert_eq!(
                super::nodes(*format, nodes),
                strings(want),
                "{format:?} {nodes:?}"
            );
        }
    }

    #[test]
    fn csv_quoting() {
        let cases = [
            ("plain:1", "plain:1"),
            ("a,b", "\"a,b\""),
            ("say \"hi\"", "\"say \"\"hi\"\"\""),
            ("two\nlines", "\"two\nlines\""),
            ("", ""),
        ];
        for (field, want) in cases {
            assert_eq!(csv_field(field), want, "{field:?}");
        }
    }

    #[test]
    fn json_escaping() {
        let cases = [
            ("plain", r#""plain""#),
            ("q\"b\\s/", r#""q\"b\\s/""#),
            ("\n\r\t\u{8}\u{c}", r#""\n\r\t\b\f""#),
            ("\u{0}\u{1f}\u{7f}", "\"\\u0000\\u001f\u{7f}\""),
            ("café ✓ 𝄞", "\"café ✓ 𝄞\""),
        ];
        for (text, want) in cases {
            let mut out = String::new();
            json_string(&mut out, text);
            assert_eq!(out, want, "{text:?}");
        }
    }
}
