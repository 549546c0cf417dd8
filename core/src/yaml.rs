//! A YAML document as a tree of located nodes.
//!
//! Validation needs three things a typed `serde` pass cannot give at once: the line and
//! column of every value (so every error can point at it), the scalar exactly as written
//! (so `0755` can be sent as `0755` and `25:25` can still be read the YAML 1.1 way where
//! MaestroNG compatibility demands it), and the freedom to keep going after the first bad
//! value. So the file is parsed once, with the event parser that `serde-saphyr` itself
//! uses, into this tree; `schema` then reads the tree and reports every problem.
//!
//! Anchors and aliases are expanded (budgets of nodes and bytes stop alias bombs), `<<` merge keys behave
//! as in PyYAML (explicit keys win; in `<<: [*a, *b]` the first map wins), and duplicate
//! keys are rejected as MaestroNG's loader rejects them.

use std::collections::HashMap;
use std::fmt;

use serde_saphyr::granit_parser::{Event, Parser, ScalarStyle, ScanError, StructureStyle};

/// A 1-based line and column in the (rendered) environment file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Loc {
    pub line: u32,
    pub col: u32,
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub loc: Loc,
    pub value: Value,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Scalar(Scalar),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Scalar {
    /// The value after YAML escape processing, before any type resolution. Boxed: a
    /// large file is millions of scalars, and a `Box<str>` is 8 bytes smaller than a
    /// `String` and holds no spare capacity.
    pub text: Box<str>,
    /// Plain scalars are subject to type resolution; quoted and block scalars are strings.
    pub plain: bool,
    /// A core-schema tag given explicitly (`!!str 80`).
    pub tag: Option<CoreTag>,
}

/// The YAML core schema's tags (`!!str` ...), the only ones maestro understands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CoreTag {
    Str,
    Int,
    Float,
    Bool,
    Null,
    Map,
    Seq,
}

impl CoreTag {
    const ALL: [(&'static str, CoreTag); 7] = [
        ("str", CoreTag::Str),
        ("int", CoreTag::Int),
        ("float", CoreTag::Float),
        ("bool", CoreTag::Bool),
        ("null", CoreTag::Null),
        ("map", CoreTag::Map),
        ("seq", CoreTag::Seq),
    ];
}

/// What a scalar means. Where YAML 1.1 (PyYAML, hence MaestroNG) and YAML 1.2 disagree,
/// callers pick a reading explicitly with [`Scalar::yaml11`] or [`Scalar::yaml12`].
#[derive(Clone, Debug, PartialEq)]
pub enum Resolved {
    Null,
    Bool(bool),
    /// An integer, as its decimal digits (Python's `str(int)`).
    Int(String),
    Float,
    Str,
}

impl Scalar {
    fn is_str_tagged(&self) -> bool {
        !self.plain || self.tag == Some(CoreTag::Str)
    }

    /// The reading of PyYAML's resolver (YAML 1.1): `yes`/`off` are booleans, `010` is
    /// octal, `25:25` is the base-60 number 1525, a float needs a dot.
    pub fn yaml11(&self) -> Resolved {
        if self.is_str_tagged() {
            return Resolved::Str;
        }
        let t: &str = &self.text;
        match t {
            "" | "~" | "null" | "Null" | "NULL" => return Resolved::Null,
            "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => {
                return Resolved::Bool(true);
            }
            "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => {
                return Resolved::Bool(false);
            }
            _ => {}
        }
        if let Some(value) = yaml11_int(t) {
            return Resolved::Int(value);
        }
        if yaml11_float(t) {
            return Resolved::Float;
        }
        Resolved::Str
    }

    /// The reading of the YAML 1.2 core schema.
    pub fn yaml12(&self) -> Resolved {
        if self.is_str_tagged() {
            return Resolved::Str;
        }
        let t: &str = &self.text;
        match t {
            "" | "~" | "null" | "Null" | "NULL" => Resolved::Null,
            "true" | "True" | "TRUE" => Resolved::Bool(true),
            "false" | "False" | "FALSE" => Resolved::Bool(false),
            _ if yaml12_int(t) => Resolved::Int(t.to_owned()),
            _ if yaml12_float(t) => Resolved::Float,
            _ => Resolved::Str,
        }
    }

    pub fn is_null(&self) -> bool {
        self.yaml12() == Resolved::Null
    }
}

impl Node {
    pub fn as_scalar(&self) -> Option<&Scalar> {
        match &self.value {
            Value::Scalar(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_map(&self) -> Option<&[(Node, Node)]> {
        match &self.value {
            Value::Map(entries) => Some(entries),
            _ => None,
        }
    }

    pub fn as_seq(&self) -> Option<&[Node]> {
        match &self.value {
            Value::Seq(items) => Some(items),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        self.as_scalar().is_some_and(Scalar::is_null)
    }

    /// The text of a scalar, `None` for collections.
    pub fn text(&self) -> Option<&str> {
        self.as_scalar().map(|s| &*s.text)
    }

    /// Looks a key up in a mapping node.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_map()?
            .iter()
            .find(|(k, _)| k.text() == Some(key))
            .map(|(_, v)| v)
    }

    /// A short description of the node's kind for "expected X, found Y" messages.
    pub fn kind(&self) -> &'static str {
        match &self.value {
            Value::Map(_) => "a mapping",
            Value::Seq(_) => "a list",
            Value::Scalar(s) => match s.yaml12() {
                Resolved::Null => "nothing (null)",
                Resolved::Bool(_) => "a boolean",
                Resolved::Int(_) => "a number",
                Resolved::Float => "a number",
                Resolved::Str => "a string",
            },
        }
    }

    /// The node as the user would recognise it in a message: scalars as written (quoted
    /// when they are strings), collections in flow style.
    pub fn display(&self) -> String {
        let mut out = String::new();
        self.write_flow(&mut out);
        out
    }

    fn write_flow(&self, out: &mut String) {
        match &self.value {
            Value::Scalar(s) if s.plain && s.text.is_empty() => out.push_str("null"),
            Value::Scalar(s) if s.yaml12() == Resolved::Str || !s.plain => {
                out.push('"');
                for c in s.text.chars() {
                    match c {
                        '"' => out.push_str("\\\""),
                        '\\' => out.push_str("\\\\"),
                        '\n' => out.push_str("\\n"),
                        '\t' => out.push_str("\\t"),
                        c => out.push(c),
                    }
                }
                out.push('"');
            }
            Value::Scalar(s) => out.push_str(&s.text),
            Value::Seq(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    item.write_flow(out);
                }
                out.push(']');
            }
            Value::Map(entries) => {
                out.push('{');
                for (i, (k, v)) in entries.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    k.write_flow(out);
                    out.push_str(": ");
                    v.write_flow(out);
                }
                out.push('}');
            }
        }
    }
}

/// Why the text is not a YAML document maestro can read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub loc: Option<Loc>,
    pub message: String,
}

/// Parses one YAML document. An empty document is `Ok(None)`.
pub fn parse(text: &str) -> Result<Option<Node>, SyntaxError> {
    Builder::default().run(text)
}

/// [`parse`] with up to `threads` threads: a large block mapping at the top level is read
/// in parts at once (see [`split`]), with the same result as [`parse`], errors included.
pub fn parse_on(text: &str, threads: usize) -> Result<Option<Node>, SyntaxError> {
    split::parse(text, threads, split::MIN_BYTES)
}

/// What anchors and aliases may copy before the file is refused: far above any real
/// environment, far below what exhausts memory. Both nodes and the bytes of scalars count:
/// a few aliases of a long string are a bomb by bytes with few nodes. An anchor counts
/// too, since it keeps a copy of its value (anchors nested in anchors copy quadratically).
pub const NODE_BUDGET: usize = 5_000_000;
/// See [`NODE_BUDGET`]: 64 MiB of scalar text.
pub const BYTE_BUDGET: usize = 64 << 20;

/// How deeply values may nest, aliases included, before the file is refused: far above
/// any real environment, and low enough that every walk over the tree (many recurse, as
/// dropping and cloning a node do) stays well within a thread's stack.
pub const MAX_DEPTH: usize = 1_000;

#[derive(Default)]
struct Builder {
    /// Lines before the text given to the parser (a part of a larger file, see [`split`]).
    line_offset: u32,
    /// Collections around the text given to the parser, for [`MAX_DEPTH`].
    depth_offset: usize,
    /// Each anchor's value, its size (nodes, bytes of scalars) and how deep its values
    /// nest.
    anchors: HashMap<usize, (Node, Size, usize)>,
    /// What anchors and aliases have copied so far.
    copied: Size,
    /// The items of the open sequences, innermost last (see [`Frame`]).
    items: Vec<Node>,
    /// The entries of the open mappings, innermost last.
    entries: Vec<(Node, Node)>,
}

/// A document as [`Builder::build`] read it.
struct Built {
    root: Option<Node>,
    /// What its anchors and aliases copied (for [`NODE_BUDGET`]).
    copied: Size,
    /// Whether the document is a block mapping (not `{...}`).
    block_root: bool,
}

#[derive(Clone, Copy, Default)]
struct Size {
    nodes: usize,
    bytes: usize,
}

impl Size {
    fn of(node: &Node) -> Size {
        match &node.value {
            Value::Scalar(s) => Size {
                nodes: 1,
                bytes: s.text.len(),
            },
            Value::Seq(items) => items.iter().fold(Size { nodes: 1, bytes: 0 }, |acc, item| {
                acc.plus(Size::of(item))
            }),
            Value::Map(entries) => entries
                .iter()
                .fold(Size { nodes: 1, bytes: 0 }, |acc, (k, v)| {
                    acc.plus(Size::of(k)).plus(Size::of(v))
                }),
        }
    }

    fn plus(self, other: Size) -> Size {
        Size {
            nodes: self.nodes.saturating_add(other.nodes),
            bytes: self.bytes.saturating_add(other.bytes),
        }
    }
}

/// A collection being read. Its items wait on one stack shared by every open collection
/// (`Builder::items`, `Builder::entries`) from `start` on, and move into a vector of
/// their exact size when it ends: growing a vector per collection by doubling copied
/// every node again, and kept as they were such vectors took 420 MB where exact ones take
/// 300 (the tree of 200,000 instances).
enum Frame {
    Seq {
        loc: Loc,
        anchor: usize,
        start: usize,
        /// How deep the items nest (1 for scalars only).
        height: usize,
    },
    Map {
        loc: Loc,
        anchor: usize,
        start: usize,
        key: Option<Node>,
        height: usize,
    },
}

impl Builder {
    fn run(self, text: &str) -> Result<Option<Node>, SyntaxError> {
        Ok(self.build(text)?.root)
    }

    fn build(mut self, text: &str) -> Result<Built, SyntaxError> {
        let mut block_root = false;
        let mut stack: Vec<Frame> = Vec::new();
        let mut documents = 0;
        let mut root: Option<Node> = None;
        for event in Parser::new_from_str(text) {
            let (event, span) = event.map_err(scan_error)?;
            let loc = Loc {
                line: u32::try_from(span.start.line())
                    .unwrap_or(u32::MAX)
                    .saturating_add(self.line_offset),
                col: u32::try_from(span.start.col() + 1).unwrap_or(u32::MAX),
            };
            // The node this event completes, and how deep its values nest.
            let (node, height) = match event {
                Event::DocumentStart(..) => {
                    documents += 1;
                    if documents > 1 {
                        return Err(SyntaxError {
                            loc: Some(loc),
                            message: "expected a single YAML document, found a second one".into(),
                        });
                    }
                    continue;
                }
                Event::Scalar(text, style, anchor, tag) => {
                    let tag = match tag {
                        None => None,
                        Some(tag) => Some(core_tag(tag.handle(), tag.suffix(), loc)?),
                    };
                    let node = Node {
                        loc,
                        value: Value::Scalar(Scalar {
                            text: text.into(),
                            plain: style == ScalarStyle::Plain,
                            tag,
                        }),
                    };
                    self.anchor(anchor, &node, 1)?;
                    (node, 1)
                }
                Event::Alias(id) => {
                    let Some((target, size, height)) = self.anchors.get(&id) else {
                        return Err(SyntaxError {
                            loc: Some(loc),
                            message: "alias to an unknown anchor".into(),
                        });
                    };
                    let (mut node, size, height) = (target.clone(), *size, *height);
                    self.charge(size, loc)?;
                    node.loc = loc;
                    (node, height)
                }
                Event::SequenceStart(_, anchor, tag) => {
                    if let Some(tag) = tag {
                        core_tag(tag.handle(), tag.suffix(), loc)?;
                    }
                    stack.push(Frame::Seq {
                        loc,
                        anchor,
                        start: self.items.len(),
                        height: 0,
                    });
                    continue;
                }
                Event::MappingStart(style, anchor, tag) => {
                    block_root |= stack.is_empty() && style == StructureStyle::Block;
                    if let Some(tag) = tag {
                        core_tag(tag.handle(), tag.suffix(), loc)?;
                    }
                    stack.push(Frame::Map {
                        loc,
                        anchor,
                        start: self.entries.len(),
                        key: None,
                        height: 0,
                    });
                    continue;
                }
                Event::SequenceEnd => {
                    let Some(Frame::Seq {
                        loc,
                        anchor,
                        start,
                        height,
                    }) = stack.pop()
                    else {
                        unreachable!("the parser balances sequence events")
                    };
                    let node = Node {
                        loc,
                        value: Value::Seq(self.items.drain(start..).collect()),
                    };
                    self.anchor(anchor, &node, height + 1)?;
                    (node, height + 1)
                }
                Event::MappingEnd => {
                    let Some(Frame::Map {
                        loc,
                        anchor,
                        start,
                        height,
                        ..
                    }) = stack.pop()
                    else {
                        unreachable!("the parser balances mapping events")
                    };
                    let node = Node {
                        loc,
                        value: Value::Map(merge(self.entries.drain(start..).collect())?),
                    };
                    self.anchor(anchor, &node, height + 1)?;
                    (node, height + 1)
                }
                _ => continue,
            };
            // The parser bounds how deeply collections nest as written, but an alias can
            // put a deep value inside another deep value, again and again.
            if self.depth_offset + stack.len() + height > MAX_DEPTH {
                return Err(SyntaxError {
                    loc: Some(node.loc),
                    message: format!(
                        "values nested more than {MAX_DEPTH} levels deep (through aliases); refusing to go on"
                    ),
                });
            }
            match stack.last_mut() {
                None => root = Some(node),
                Some(Frame::Seq { height: parent, .. }) => {
                    *parent = (*parent).max(height);
                    self.items.push(node);
                }
                Some(Frame::Map {
                    key,
                    height: parent,
                    ..
                }) => match key.take() {
                    None => {
                        if node.as_scalar().is_none() {
                            return Err(SyntaxError {
                                loc: Some(node.loc),
                                message: format!(
                                    "mapping keys must be plain values, found {}",
                                    node.kind()
                                ),
                            });
                        }
                        *key = Some(node);
                    }
                    Some(k) => {
                        *parent = (*parent).max(height);
                        self.entries.push((k, node));
                    }
                },
            }
        }
        Ok(Built {
            root: root.filter(|node| !node.is_null()),
            copied: self.copied,
            block_root,
        })
    }

    fn anchor(&mut self, anchor: usize, node: &Node, height: usize) -> Result<(), SyntaxError> {
        if anchor != 0 {
            let size = Size::of(node);
            self.charge(size, node.loc)?;
            self.anchors.insert(anchor, (node.clone(), size, height));
        }
        Ok(())
    }

    /// Counts a copy made for an anchor or an alias against the budgets.
    fn charge(&mut self, size: Size, loc: Loc) -> Result<(), SyntaxError> {
        self.copied = self.copied.plus(size);
        let over = if self.copied.bytes > BYTE_BUDGET {
            format!("more than {} MiB of text", BYTE_BUDGET >> 20)
        } else if self.copied.nodes > NODE_BUDGET {
            format!("more than {NODE_BUDGET} values")
        } else {
            return Ok(());
        };
        Err(SyntaxError {
            loc: Some(loc),
            message: format!("anchors and aliases expand to {over}; refusing to go on"),
        })
    }
}

fn scan_error(e: ScanError) -> SyntaxError {
    SyntaxError {
        loc: Some(Loc {
            line: u32::try_from(e.marker().line()).unwrap_or(u32::MAX),
            col: u32::try_from(e.marker().col() + 1).unwrap_or(u32::MAX),
        }),
        message: e.info(),
    }
}

/// Only the core schema's tags have a meaning here; PyYAML's safe loader refuses the
/// others too.
fn core_tag(handle: &str, suffix: &str, loc: Loc) -> Result<CoreTag, SyntaxError> {
    let known = CoreTag::ALL.iter().find(|(name, _)| *name == suffix);
    match known {
        Some((_, tag)) if handle == "tag:yaml.org,2002:" => Ok(*tag),
        _ => Err(SyntaxError {
            loc: Some(loc),
            message: format!(
                "unsupported YAML tag {handle}{suffix}: only the core tags (!!str, !!int ...) are understood"
            ),
        }),
    }
}

/// Applies `<<` merge keys and rejects duplicate keys, as PyYAML's constructor does.
fn merge(entries: Vec<(Node, Node)>) -> Result<Vec<(Node, Node)>, SyntaxError> {
    // Most mappings have neither merge keys nor duplicates: they are checked in place and
    // kept as they are. Copying every mapping and every key into a set took 0.35 s of the
    // 4.3 s that loading a file of 200,000 instances took.
    let is_merge = |key: &Node| {
        let scalar = key.as_scalar().expect("keys are scalars");
        scalar.plain && scalar.tag.is_none() && &*scalar.text == "<<"
    };
    fn text(key: &Node) -> &str {
        key.as_scalar().map_or("", |s| &s.text)
    }
    let mut merges = 0;
    // Small mappings are searched; a large one gets an index of its keys.
    let mut index: HashMap<&str, usize> = HashMap::new();
    for (i, (key, value)) in entries.iter().enumerate() {
        if is_merge(key) {
            match &value.value {
                Value::Map(_) => {}
                Value::Seq(items) if items.iter().all(|i| i.as_map().is_some()) => {}
                _ => {
                    return Err(SyntaxError {
                        loc: Some(value.loc),
                        message: format!(
                            "a merge key (<<) takes a mapping or a list of mappings, found {}",
                            value.kind()
                        ),
                    });
                }
            }
            merges += 1;
            continue;
        }
        let first = if entries.len() <= 16 {
            entries[..i]
                .iter()
                .find(|(k, _)| !is_merge(k) && text(k) == text(key))
                .map(|(k, _)| k)
        } else {
            match index.entry(text(key)) {
                std::collections::hash_map::Entry::Occupied(e) => Some(&entries[*e.get()].0),
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(i);
                    None
                }
            }
        };
        if let Some(first) = first {
            return Err(SyntaxError {
                loc: Some(key.loc),
                message: format!(
                    "duplicate key {} (first defined at line {})",
                    key.display(),
                    first.loc.line
                ),
            });
        }
    }
    if merges == 0 {
        return Ok(entries);
    }
    let mut explicit: Vec<(Node, Node)> = Vec::with_capacity(entries.len() - merges);
    let mut sources: Vec<Node> = Vec::new();
    for (key, value) in entries {
        if !is_merge(&key) {
            explicit.push((key, value));
        } else if let Value::Seq(items) = value.value {
            sources.extend(items);
        } else {
            sources.push(value);
        }
    }
    if sources.is_empty() {
        return Ok(explicit);
    }
    // Merged entries come first (PyYAML puts them before the explicit ones); an explicit
    // key replaces the merged value, and among sources the first one wins.
    let mut out: Vec<(Node, Node)> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for source in sources {
        let Value::Map(entries) = source.value else {
            unreachable!("checked above")
        };
        for (k, v) in entries {
            let text = k.text().unwrap_or_default().to_owned();
            if let std::collections::hash_map::Entry::Vacant(slot) = index.entry(text) {
                slot.insert(out.len());
                out.push((k, v));
            }
        }
    }
    for (k, v) in explicit {
        let text = k.text().unwrap_or_default().to_owned();
        match index.get(&text) {
            Some(&i) => out[i] = (k, v),
            None => {
                index.insert(text, out.len());
                out.push((k, v));
            }
        }
    }
    Ok(out)
}

/// PyYAML's `int` resolver and constructor: returns the decimal value as text.
fn yaml11_int(t: &str) -> Option<String> {
    let (negative, body) = match t.as_bytes().first()? {
        b'-' => (true, &t[1..]),
        b'+' => (false, &t[1..]),
        _ => (false, t),
    };
    let first = body.as_bytes().first()?;
    if !first.is_ascii_digit() {
        return None;
    }
    let value: i128 = if let Some(bin) = body.strip_prefix("0b") {
        radix(bin, 2)?
    } else if let Some(hex) = body.strip_prefix("0x") {
        radix(hex, 16)?
    } else if body.contains(':') {
        // Base 60 (`[1-9][0-9_]*(:[0-5]?[0-9])+`): 25:25 is 1525, 1:30 is 90.
        let mut groups = body.split(':');
        let head = groups.next()?;
        if !head.starts_with(|c: char| ('1'..='9').contains(&c))
            || !head.bytes().all(|b| b.is_ascii_digit() || b == b'_')
        {
            return None;
        }
        let mut value = radix(head, 10)?;
        for group in groups {
            let ok = matches!(group.len(), 1 | 2)
                && group.bytes().all(|b| b.is_ascii_digit())
                && (group.len() == 1 || group.as_bytes()[0] <= b'5');
            if !ok {
                return None;
            }
            value = value
                .checked_mul(60)?
                .checked_add(group.parse::<i128>().ok()?)?;
        }
        value
    } else if body.len() > 1 && body.starts_with('0') {
        if !body
            .bytes()
            .all(|b| (b'0'..=b'7').contains(&b) || b == b'_')
        {
            return None;
        }
        radix(&body[1..], 8)?
    } else {
        if !body.bytes().all(|b| b.is_ascii_digit() || b == b'_') {
            return None;
        }
        radix(body, 10)?
    };
    Some(if negative {
        (-value).to_string()
    } else {
        value.to_string()
    })
}

fn radix(digits: &str, base: u32) -> Option<i128> {
    let cleaned: String = digits.chars().filter(|&c| c != '_').collect();
    if cleaned.is_empty() {
        // PyYAML accepts `0_` style oddities only as octal zero; nothing real uses them.
        return if base == 8 { Some(0) } else { None };
    }
    i128::from_str_radix(&cleaned, base).ok()
}

/// PyYAML's `float` resolver (a dot is required; base-60 floats; .inf and .nan).
fn yaml11_float(t: &str) -> bool {
    let body = t.strip_prefix(['-', '+']).unwrap_or(t);
    if matches!(body, ".inf" | ".Inf" | ".INF") || matches!(t, ".nan" | ".NaN" | ".NAN") {
        return true;
    }
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    if let Some(exp) = exponent {
        let digits = exp.strip_prefix(['-', '+']);
        match digits {
            Some(d) if !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()) => {}
            _ => return false,
        }
    }
    let Some((int_part, frac)) = mantissa.split_once('.') else {
        return false;
    };
    if !frac.bytes().all(|b| b.is_ascii_digit() || b == b'_') {
        return false;
    }
    if int_part.is_empty() {
        return !frac.is_empty() && frac.as_bytes()[0] != b'_';
    }
    if int_part.contains(':') {
        let mut groups = int_part.split(':');
        let head = groups.next().unwrap_or_default();
        return !head.is_empty()
            && head.bytes().all(|b| b.is_ascii_digit() || b == b'_')
            && groups.all(|g| {
                matches!(g.len(), 1 | 2)
                    && g.bytes().all(|b| b.is_ascii_digit())
                    && (g.len() == 1 || g.as_bytes()[0] <= b'5')
            });
    }
    int_part.as_bytes()[0].is_ascii_digit()
        && int_part.bytes().all(|b| b.is_ascii_digit() || b == b'_')
}

fn yaml12_int(t: &str) -> bool {
    if let Some(oct) = t.strip_prefix("0o") {
        return !oct.is_empty() && oct.bytes().all(|b| (b'0'..=b'7').contains(&b));
    }
    if let Some(hex) = t.strip_prefix("0x") {
        return !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit());
    }
    let digits = t.strip_prefix(['-', '+']).unwrap_or(t);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

fn yaml12_float(t: &str) -> bool {
    let body = t.strip_prefix(['-', '+']).unwrap_or(t);
    if matches!(body, ".inf" | ".Inf" | ".INF") || matches!(t, ".nan" | ".NaN" | ".NAN") {
        return true;
    }
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    if let Some(exp) = exponent {
        let d = exp.strip_prefix(['-', '+']).unwrap_or(exp);
        if d.is_empty() || !d.bytes().all(|b| b.is_ascii_digit()) {
            return false;
        }
    }
    let (int_part, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    (!int_part.is_empty() || !frac.is_empty()) && digits(int_part) && digits(frac)
}

pub mod python;
mod split;

#[cfg(test)]
mod tests;
