//! Reading a large file on several threads, with the result of reading it on one.
//!
//! Why: the YAML parser reads about 50 MB a second on one core, and a file of 200,000
//! instances is about 100 MB: two of the three seconds its loading took were the parser
//! alone (bench/README, `scale.py`).
//!
//! How: an environment file is a block mapping, and nearly all of it is the value of one
//! top-level key (`services:`), itself a block mapping with one key per line at one
//! indentation. In a valid file, a line at exactly that indentation that starts with a
//! letter, a digit or `_` can only be that mapping's next key: deeper values (block
//! scalars, continued plain scalars) must be indented further, and a quoted scalar or
//! flow collection that a cut leaves open makes its part fail. So the value's lines are
//! cut there into one part per thread, each part is parsed on its own thread as a
//! document of its own (line numbers offset, nesting depth counted from the mapping's),
//! the rest of the file (with blank lines in place of the value) on this one, and the
//! parts' entries are checked together as one mapping (duplicate keys across parts).
//!
//! Anything that could make the parts differ from the whole, and any error, sends the
//! whole file to the one-thread parser instead, so the tree and every error message are
//! exactly [`super::parse`]'s: an alias (it may name an anchor in another part), a key
//! at the mapping's indentation that is not a plain word (`<<`, `?`, a flow collection),
//! a line indented less than the mapping's, copies beyond the alias budgets, a top-level
//! entry not where it was expected.

use std::ops::Range;

use super::{BYTE_BUDGET, Builder, NODE_BUDGET, Node, SyntaxError, Value, merge};

/// Below this there is little to gain: 1 MiB parses in about 40 ms (a file of 2,000
/// instances is half of that).
pub(super) const MIN_BYTES: usize = 1 << 20;

/// Parses `text` in parts on up to `threads` threads when its largest top-level value has
/// at least `min_bytes`.
pub(super) fn parse(
    text: &str,
    threads: usize,
    min_bytes: usize,
) -> Result<Option<Node>, SyntaxError> {
    if threads > 1 && text.len() >= min_bytes {
        if let Some(root) = Plan::find(text, threads, min_bytes).and_then(|plan| plan.run(text)) {
            return Ok(Some(root));
        }
    }
    Builder::default().run(text)
}

/// Where the file is cut.
#[derive(Debug, PartialEq)]
struct Plan {
    /// The 0-based line of the top-level key whose value is read in parts.
    key_line: usize,
    /// The key, as written.
    key: String,
    /// The value's lines.
    body: Range<usize>,
    /// Each part's bytes and the number of lines before it.
    parts: Vec<(Range<usize>, usize)>,
}

/// The lines of `text` from byte `start` on: (start, end without the newline, 0-based
/// line number).
fn lines(
    text: &str,
    start: usize,
    first_line: usize,
) -> impl Iterator<Item = (usize, usize, usize)> + '_ {
    let bytes = text.as_bytes();
    let mut at = start;
    let mut line = first_line;
    std::iter::from_fn(move || {
        if at >= bytes.len() {
            return None;
        }
        let end = bytes[at..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(bytes.len(), |i| at + i);
        let item = (at, end, line);
        at = end + 1;
        line += 1;
        Some(item)
    })
}

/// Spaces before the line's content, or `None` for a blank or comment-only line.
fn indent(line: &[u8]) -> Option<usize> {
    let spaces = line.iter().take_while(|&&b| b == b' ').count();
    match line[spaces..]
        .iter()
        .find(|&&b| b != b' ' && b != b'\t' && b != b'\r')
    {
        None | Some(b'#') => None,
        Some(_) => Some(spaces),
    }
}

/// `name:` alone on its line (a comment may follow): the key's name.
fn key_alone(line: &[u8]) -> Option<&str> {
    let colon = line.iter().position(|&b| b == b':')?;
    let name = &line[..colon];
    let first = *name.first()?;
    if !(first.is_ascii_alphabetic() || first == b'_')
        || !name
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
    {
        return None;
    }
    let rest = &line[colon + 1..];
    let content = rest
        .iter()
        .position(|&b| !matches!(b, b' ' | b'\t' | b'\r'));
    match content {
        None => {}
        // A comment needs a space before it; `name:#` is not a key alone.
        Some(i) if rest[i] == b'#' && i > 0 => {}
        Some(_) => return None,
    }
    std::str::from_utf8(name).ok()
}

/// An alias (`*name` after a space, `[`, `{` or `,`) anywhere: a part could name an
/// anchor defined in another. Stars inside strings count too; such files are read whole.
fn has_alias(text: &[u8]) -> bool {
    let mut from = 0;
    while let Some(i) = text[from..].iter().position(|&b| b == b'*') {
        let at = from + i;
        if at == 0
            || matches!(
                text[at - 1],
                b' ' | b'\t' | b'\n' | b'\r' | b'[' | b'{' | b','
            )
        {
            return true;
        }
        from = at + 1;
    }
    false
}

impl Plan {
    fn find(text: &str, threads: usize, min_bytes: usize) -> Option<Plan> {
        let bytes = text.as_bytes();
        // The top-level key with the largest value.
        let mut best: Option<(usize, &str, Range<usize>)> = None;
        let mut open: Option<(usize, &str, usize)> = None;
        type Open<'a> = Option<(usize, &'a str, usize)>;
        fn close<'a>(
            best: &mut Option<(usize, &'a str, Range<usize>)>,
            open: Open<'a>,
            end: usize,
        ) {
            if let Some((line, key, start)) = open {
                if best
                    .as_ref()
                    .is_none_or(|(_, _, body)| end - start > body.len())
                {
                    *best = Some((line, key, start..end));
                }
            }
        }
        for (start, end, line) in lines(text, 0, 0) {
            let content = &bytes[start..end];
            if indent(content) != Some(0) {
                continue;
            }
            close(&mut best, open.take(), start);
            if let Some(key) = key_alone(content) {
                open = Some((line, key, (end + 1).min(bytes.len())));
            }
        }
        close(&mut best, open, bytes.len());
        let (key_line, key, body) = best?;
        if body.len() < min_bytes || has_alias(bytes) {
            return None;
        }

        // The mapping's indentation is its first line's; every line is a key at it
        // (a cut may come before it) or deeper.
        let mut mapping_indent = None;
        let mut starts: Vec<(usize, usize)> = Vec::new();
        for (start, end, line) in lines(&text[..body.end], body.start, key_line + 1) {
            let content = &bytes[start..end];
            let Some(spaces) = indent(content) else {
                continue;
            };
            let at = *mapping_indent.get_or_insert(spaces);
            if spaces < at || at == 0 {
                return None;
            }
            if spaces == at {
                let first = content[spaces];
                if first.is_ascii_alphanumeric() || first == b'_' {
                    starts.push((start, line));
                } else if starts.is_empty() || !matches!(first, b'"' | b'\'') {
                    // A quoted key is read in the part before it; anything else (`<<`,
                    // `?`, `{`, `-`, an anchor or tag) could read differently apart.
                    return None;
                }
            }
        }
        let first = *starts.first()?;
        // One part per thread, cut at the first key after each equal share of bytes.
        let share = (body.end - first.0) / threads;
        let mut parts: Vec<(Range<usize>, usize)> = Vec::new();
        let mut from = first;
        for k in 1..threads {
            let target = first.0 + k * share;
            let Some(&cut) = starts
                .iter()
                .find(|(start, _)| *start >= target && *start > from.0)
            else {
                break;
            };
            parts.push((from.0..cut.0, from.1));
            from = cut;
        }
        parts.push((from.0..body.end, from.1));
        if parts.len() < 2 {
            return None;
        }
        Some(Plan {
            key_line,
            key: key.to_owned(),
            body: first.0..body.end,
            parts,
        })
    }

    /// The document, or `None` when the parts do not make it up exactly: then it is read
    /// whole.
    fn run(&self, text: &str) -> Option<Node> {
        // The rest of the file keeps its line numbers: the value's lines become blank.
        let blank = text[self.body.clone()]
            .bytes()
            .filter(|&b| b == b'\n')
            .count();
        let mut rest = String::with_capacity(text.len() - self.body.len() + blank);
        rest.push_str(&text[..self.body.start]);
        rest.extend(std::iter::repeat_n('\n', blank));
        rest.push_str(&text[self.body.end..]);

        let (rest, parts) = std::thread::scope(|scope| {
            let handles: Vec<_> = self
                .parts
                .iter()
                .map(|(range, before)| {
                    let part = &text[range.clone()];
                    let builder = Builder {
                        line_offset: u32::try_from(*before).unwrap_or(u32::MAX),
                        // The document's mapping holds the part's.
                        depth_offset: 1,
                        ..Builder::default()
                    };
                    scope.spawn(move || builder.build(part))
                })
                .collect();
            let rest = Builder::default().build(&rest);
            let parts: Vec<_> = handles.into_iter().map(|h| h.join()).collect();
            (rest, parts)
        });

        // In a flow mapping (`{` at the top) the value's lines would not be a block
        // mapping's.
        let rest = rest.ok()?;
        let (Some(mut root), mut copied, true) = (rest.root, rest.copied, rest.block_root) else {
            return None;
        };
        let mut loc = None;
        let mut entries: Vec<(Node, Node)> = Vec::new();
        for part in parts {
            // A panic in a part is the parser's; reading whole meets it again, where it
            // would have been met without threads.
            let part = part.ok()?.ok()?;
            let (Some(node), true) = (part.root, part.block_root) else {
                return None;
            };
            copied = copied.plus(part.copied);
            let Value::Map(part_entries) = node.value else {
                return None;
            };
            loc.get_or_insert(node.loc);
            if entries.is_empty() {
                entries = part_entries;
            } else {
                entries.extend(part_entries);
            }
        }
        if copied.nodes > NODE_BUDGET || copied.bytes > BYTE_BUDGET {
            return None;
        }
        let entries = merge(entries).ok()?;

        // The key must be in the document's mapping, where it was written, with nothing
        // (the blank lines) as its value.
        let Value::Map(top) = &mut root.value else {
            return None;
        };
        let line = u32::try_from(self.key_line + 1).ok()?;
        let (_, value) = top.iter_mut().find(|(k, _)| {
            k.loc.line == line && k.loc.col == 1 && k.text() == Some(self.key.as_str())
        })?;
        match &value.value {
            // The parser's empty value is `~`.
            Value::Scalar(s) if s.plain && s.tag.is_none() && matches!(&*s.text, "" | "~") => {}
            _ => return None,
        }
        *value = Node {
            loc: loc?,
            value: Value::Map(entries),
        };
        Some(root)
    }
}

#[cfg(test)]
mod tests;
