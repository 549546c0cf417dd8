//! Jinja2's data model on top of minijinja, for the environment file (controller) and
//! the guest's templates (`maestro-guest render`) alike.
//!
//! Jinja2's lists and dicts are Python's: their methods change them in place, and the
//! change is seen wherever the object is (after a loop whose `set` does not leak, in a
//! macro's caller, in an included file). MaestroNG's documentation builds ZooKeeper
//! server ids that way (`{% set DO = serverids.append(...) %}` in a loop). minijinja's
//! values are immutable, so list and dict literals are rewritten before compiling into
//! calls that build [`List`] and [`Dict`], objects with interior mutability:
//! `[a, b]` becomes `__maestro_list([a, b])` and `{k: v}` becomes `__maestro_dict(k, v)`
//! (which keeps Python's insertion order); `a + b` and `a * b` are wrapped in
//! `__maestro_seq(...)`, which makes a list result a new [`List`] at once (minijinja's is
//! a lazy view of its operands). The rewrite reads minijinja's own tokens and syntax
//! tree, touches only expressions and never adds a line, so errors keep their line
//! numbers. The `list`, `sort` and `dictsort` filters, `dict()` and the string methods
//! that return lists (`split`, `rsplit`, `splitlines`) return changeable lists too, as in
//! Python. A loop over a [`List`] reads it live, as Python's iterator does.
//!
//! [`unknown_method`] adds the Python string methods minijinja-contrib's `pycompat` lacks
//! and says why a list made otherwise (a slice, other filters) cannot change.
//!
//! The corners that still differ from Jinja2 are in `tests/jinja2_table.json` (entries
//! with `why`) and the README.

use std::borrow::Cow;
use std::cmp::Reverse;
use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};

use minijinja::machinery::ast::{self, CallArg, Expr, Stmt};
use minijinja::machinery::{Token, parse, tokenize};
use minijinja::syntax::SyntaxConfig;
use minijinja::value::{
    Enumerator, Kwargs, Object, ObjectRepr, Rest, StringInput, Tuple, ValueKind, ValueOrKwargs,
    from_args,
};
use minijinja::{Environment, Error, ErrorKind, State, Value};

/// The function a list literal is wrapped in.
const LIST_FN: &str = "__maestro_list";
/// The function a dict literal becomes.
const DICT_FN: &str = "__maestro_dict";
/// The function `a + b` and `a * b` are wrapped in.
const SEQ_FN: &str = "__maestro_seq";

/// The most instructions one rendering may run (minijinja's fuel): two nested loops over
/// `range(100000)` would otherwise run for hours. Real templates run thousands. Only with
/// the `multi_template` feature (the controller's): minijinja 3.0.5's fuel needs it.
pub const FUEL: u64 = 10_000_000;
/// The longest string one operation (a filter, a method, `~`, `+`, `*`) may make, and the
/// most a template may write: far above any configuration file, far below what exhausts
/// memory. Arguments that allocate (`indent` widths, `center` widths, format widths,
/// `replace` growth) are checked before the allocation.
pub const MAX_STRING: usize = 64 << 20;
/// The most items one list operation may make (`slice`, `[x] * n` made a list).
pub const MAX_ITEMS: usize = 1_000_000;

/// Identifiers after which `[` opens a list literal, not a subscript.
const OPERATOR_WORDS: &[&str] = &["and", "or", "not", "in", "is", "if", "elif", "else"];

/// Makes `jinja` follow Jinja2's data model: the literal functions [`rewrite`] calls,
/// `dict()`, the `list`, `sort` and `dictsort` filters returning changeable values, and
/// [`unknown_method`] as the unknown method callback. Every template source must go
/// through [`rewrite`].
pub fn install(jinja: &mut Environment<'_>) {
    #[cfg(feature = "multi_template")]
    jinja.set_fuel(Some(FUEL));
    install_bounds(jinja);
    jinja.add_function(LIST_FN, |value: Value| -> Result<Value, Error> {
        Ok(List::value(value.try_iter()?.collect()))
    });
    jinja.add_function(DICT_FN, |args: Rest<Value>| -> Result<Value, Error> {
        let dict = Dict::default();
        let mut items = args.0.into_iter();
        while let Some(key) = items.next() {
            let value = items
                .next()
                .ok_or_else(|| invalid("a dict literal lacks a value"))?;
            let mut entries = dict.entries()?;
            insert_entry(&mut entries, key, value)?;
        }
        Ok(Value::from_object(dict))
    });
    jinja.add_function(SEQ_FN, |value: Value| -> Result<Value, Error> {
        // minijinja concatenates and repeats sequences lazily: the result would show later
        // changes of its operands. Python makes a new list, at once.
        let value = bounded(value)?;
        let sequence = matches!(value.kind(), ValueKind::Seq | ValueKind::Iterable)
            && !value.is_tuple()
            && value.downcast_object_ref::<List>().is_none();
        if sequence {
            if let Some(len) = value.len() {
                check_items(len, "a repeated list")?;
            }
            into_list(value)
        } else {
            Ok(value)
        }
    });
    jinja.add_function(
        "dict",
        |other: Option<Value>, kwargs: Kwargs| -> Result<Value, Error> {
            let dict = Arc::new(Dict::default());
            dict_update(&dict, other, &kwargs)?;
            Ok(Value::from_dyn_object(dict))
        },
    );
    jinja.add_filter("list", |state: &State, value: Value| {
        minijinja::filters::list(state, value).and_then(into_list)
    });
    jinja.add_filter("sort", |state: &State, value: Value, kwargs: Kwargs| {
        minijinja::filters::sort(state, value, kwargs).and_then(into_list)
    });
    jinja.add_filter("dictsort", |value: Value, kwargs: Kwargs| {
        minijinja::filters::dictsort(&value, kwargs).and_then(into_list)
    });
    jinja.set_unknown_method_callback(unknown_method);
}

/// Rewrites a template source for [`install`]: list and dict literals become the calls
/// that build [`List`] and [`Dict`], and `a + b` and `a * b` are wrapped in a call that
/// makes their list a new [`List`] at once. A source minijinja cannot parse is returned as
/// is: compiling it reports the error. A literal where a subscript could stand (`x [1]`),
/// and a dict that is not `{key: value, ...}`, are left alone.
pub fn rewrite(source: &str) -> Cow<'_, str> {
    if !(source.contains("{{") || source.contains("{%")) {
        return Cow::Borrowed(source);
    }
    let Ok(template) = parse(source, "<rewrite>", SyntaxConfig::default()) else {
        return Cow::Borrowed(source);
    };
    let mut edits: Vec<Edit> = Vec::new();
    let mut operations = Vec::new();
    walk_stmt(&template, &mut operations);
    for (start, end) in operations {
        edits.push(Edit::open(start, 0, "__maestro_seq(", end));
        edits.push(Edit::close(end, 0, ")", start));
    }
    let mut frames: Vec<Frame> = Vec::new();
    // Whether the previous token ends an operand (then `[` is a subscript).
    let mut after_operand = false;
    for token in tokenize(source, false, SyntaxConfig::default()) {
        let Ok((token, span)) = token else {
            return Cow::Borrowed(source);
        };
        let (start, end) = (span.start_offset as usize, span.end_offset as usize);
        let closer = matches!(
            token,
            Token::BracketClose | Token::BraceClose | Token::ParenClose
        );
        if !closer {
            if let Some(Frame::Dict(dict)) = frames.last_mut() {
                dict.see(&token, start);
            }
        }
        match token {
            Token::TemplateData(_)
            | Token::VariableStart
            | Token::VariableEnd
            | Token::BlockStart
            | Token::BlockEnd => frames.clear(),
            Token::BracketOpen if !after_operand => frames.push(Frame::List { open: start }),
            Token::BracketOpen | Token::ParenOpen => frames.push(Frame::Other),
            Token::BraceOpen => frames.push(Frame::Dict(DictFrame::new(start))),
            Token::BracketClose => {
                if let Some(Frame::List { open }) = frames.pop() {
                    edits.push(Edit::open(open, 0, "__maestro_list(", end));
                    edits.push(Edit::close(end, 0, ")", open));
                }
            }
            Token::BraceClose => {
                if let Some(Frame::Dict(dict)) = frames.pop() {
                    if dict.complete() {
                        edits.push(Edit::open(dict.open, 1, "__maestro_dict(", end));
                        edits.extend(dict.colons.iter().map(|&at| Edit::separator(at)));
                        edits.push(Edit::close(start, 1, ")", dict.open));
                    }
                }
            }
            Token::ParenClose => {
                frames.pop();
            }
            _ => {}
        }
        after_operand = match token {
            Token::Ident(word) => !OPERATOR_WORDS.contains(&word),
            Token::Str(_)
            | Token::String(_)
            | Token::Int(_)
            | Token::Int128(_)
            | Token::Float(_)
            | Token::ParenClose
            | Token::BracketClose
            | Token::BraceClose => true,
            _ => false,
        };
    }
    if edits.is_empty() {
        return Cow::Borrowed(source);
    }
    edits.sort_by_key(|e| (e.at, e.rank));
    let mut out = String::with_capacity(source.len() + edits.len() * 16);
    let mut copied = 0;
    for edit in edits {
        out.push_str(&source[copied..edit.at]);
        out.push_str(edit.insert);
        copied = edit.at + edit.remove;
    }
    out.push_str(&source[copied..]);
    Cow::Owned(out)
}

/// Text to insert at `at`, replacing `remove` bytes.
struct Edit {
    at: usize,
    remove: usize,
    insert: &'static str,
    /// The order of edits at one offset: what closes (the innermost first), then a
    /// dict's colon, then what opens (the outermost first).
    rank: (u8, Reverse<usize>),
}

impl Edit {
    /// Opens what ends at `end`.
    fn open(at: usize, remove: usize, insert: &'static str, end: usize) -> Self {
        let rank = (2, Reverse(end));
        Self {
            at,
            remove,
            insert,
            rank,
        }
    }

    /// Closes what starts at `start`.
    fn close(at: usize, remove: usize, insert: &'static str, start: usize) -> Self {
        let rank = (0, Reverse(start));
        Self {
            at,
            remove,
            insert,
            rank,
        }
    }

    /// A dict literal's colon, which separates arguments in the call.
    fn separator(at: usize) -> Self {
        Self {
            at,
            remove: 1,
            insert: ",",
            rank: (1, Reverse(0)),
        }
    }
}

/// Collects the spans of every `+` and `*` in a statement.
// A feature minijinja was built with but this crate was not told of adds statements that
// fall in `_` (their expressions are not collected); every other arm is then reachable.
#[allow(unreachable_patterns)]
fn walk_stmt(stmt: &Stmt<'_>, out: &mut Vec<(usize, usize)>) {
    let body = |body: &[Stmt<'_>], out: &mut Vec<(usize, usize)>| {
        for stmt in body {
            walk_stmt(stmt, out);
        }
    };
    match stmt {
        Stmt::Template(t) => body(&t.children, out),
        Stmt::EmitExpr(e) => walk_expr(&e.expr, out),
        Stmt::EmitRaw(_) => {}
        Stmt::ForLoop(f) => {
            walk_expr(&f.iter, out);
            if let Some(filter) = &f.filter_expr {
                walk_expr(filter, out);
            }
            body(&f.body, out);
            body(&f.else_body, out);
        }
        Stmt::IfCond(i) => {
            walk_expr(&i.expr, out);
            body(&i.true_body, out);
            body(&i.false_body, out);
        }
        Stmt::WithBlock(w) => {
            for (_, value) in &w.assignments {
                walk_expr(value, out);
            }
            body(&w.body, out);
        }
        Stmt::Set(s) => walk_expr(&s.expr, out),
        Stmt::SetBlock(s) => {
            if let Some(filter) = &s.filter {
                walk_expr(filter, out);
            }
            body(&s.body, out);
        }
        Stmt::AutoEscape(a) => body(&a.body, out),
        Stmt::FilterBlock(f) => {
            walk_expr(&f.filter, out);
            body(&f.body, out);
        }
        Stmt::Macro(m) => {
            for default in &m.defaults {
                walk_expr(default, out);
            }
            body(&m.body, out);
        }
        Stmt::CallBlock(c) => {
            walk_call(&c.call, out);
            body(&c.macro_decl.body, out);
        }
        Stmt::Do(d) => walk_call(&d.call, out),
        #[cfg(feature = "multi_template")]
        Stmt::Block(b) => body(&b.body, out),
        #[cfg(feature = "multi_template")]
        Stmt::Include(i) => walk_expr(&i.name, out),
        #[cfg(feature = "multi_template")]
        Stmt::Extends(e) => walk_expr(&e.name, out),
        #[cfg(feature = "multi_template")]
        Stmt::Import(i) => walk_expr(&i.expr, out),
        #[cfg(feature = "multi_template")]
        Stmt::FromImport(i) => walk_expr(&i.expr, out),
        _ => {}
    }
}

fn walk_call(call: &ast::Call<'_>, out: &mut Vec<(usize, usize)>) {
    walk_expr(&call.expr, out);
    walk_args(&call.args, out);
}

fn walk_args(args: &[CallArg<'_>], out: &mut Vec<(usize, usize)>) {
    for arg in args {
        match arg {
            CallArg::Pos(e)
            | CallArg::Kwarg(_, e)
            | CallArg::PosSplat(e)
            | CallArg::KwargSplat(e) => walk_expr(e, out),
        }
    }
}

fn walk_expr(expr: &Expr<'_>, out: &mut Vec<(usize, usize)>) {
    match expr {
        Expr::Var(_) | Expr::Const(_) => {}
        Expr::Slice(s) => {
            walk_expr(&s.expr, out);
            for part in [&s.start, &s.stop, &s.step].into_iter().flatten() {
                walk_expr(part, out);
            }
        }
        Expr::UnaryOp(u) => walk_expr(&u.expr, out),
        Expr::BinOp(b) => {
            // `~` too: its result is checked against MAX_STRING (a doubling loop).
            if matches!(
                b.op,
                ast::BinOpKind::Add | ast::BinOpKind::Mul | ast::BinOpKind::Concat
            ) {
                let span = b.span();
                out.push((span.start_offset as usize, span.end_offset as usize));
            }
            walk_expr(&b.left, out);
            walk_expr(&b.right, out);
        }
        Expr::Compare(c) => {
            walk_expr(&c.expr, out);
            for op in &c.ops {
                walk_expr(&op.expr, out);
            }
        }
        Expr::IfExpr(i) => {
            walk_expr(&i.test_expr, out);
            walk_expr(&i.true_expr, out);
            if let Some(e) = &i.false_expr {
                walk_expr(e, out);
            }
        }
        Expr::Filter(f) => {
            if let Some(e) = &f.expr {
                walk_expr(e, out);
            }
            walk_args(&f.args, out);
        }
        Expr::Test(t) => {
            walk_expr(&t.expr, out);
            walk_args(&t.args, out);
        }
        Expr::GetAttr(g) => walk_expr(&g.expr, out),
        Expr::GetItem(g) => {
            walk_expr(&g.expr, out);
            walk_expr(&g.subscript_expr, out);
        }
        Expr::Call(c) => walk_call(c, out),
        Expr::List(l) => l.items.iter().for_each(|e| walk_expr(e, out)),
        Expr::Tuple(t) => t.items.iter().for_each(|e| walk_expr(e, out)),
        Expr::Map(m) => m
            .keys
            .iter()
            .chain(&m.values)
            .for_each(|e| walk_expr(e, out)),
    }
}

enum Frame {
    List { open: usize },
    Dict(DictFrame),
    Other,
}

/// A `{` being read: where its colons are, and whether it is a plain `{k: v, ...}`.
struct DictFrame {
    open: usize,
    colons: Vec<usize>,
    item: Item,
    plain: bool,
}

#[derive(PartialEq)]
enum Item {
    Start,
    Key,
    Value,
}

impl DictFrame {
    fn new(open: usize) -> Self {
        Self {
            open,
            colons: Vec::new(),
            item: Item::Start,
            plain: true,
        }
    }

    /// A token directly inside the braces (not in a nested bracket).
    fn see(&mut self, token: &Token<'_>, at: usize) {
        match token {
            Token::Colon if self.item == Item::Key => {
                self.colons.push(at);
                self.item = Item::Value;
            }
            Token::Comma if self.item == Item::Value => self.item = Item::Start,
            // Splats and keyword arguments would mean something in a call.
            Token::Colon | Token::Comma | Token::Assign | Token::Mul | Token::Pow => {
                self.plain = false
            }
            _ if self.item == Item::Start => self.item = Item::Key,
            _ => {}
        }
    }

    fn complete(&self) -> bool {
        self.plain && self.item != Item::Key
    }
}

// ---------------------------------------------------------------------------------------
// The objects.

/// A Python list: changed in place by its methods.
#[derive(Debug, Default)]
pub struct List {
    items: Mutex<Vec<Value>>,
}

/// A Python dict: changed in place by its methods, in insertion order.
#[derive(Debug, Default)]
pub struct Dict {
    entries: Mutex<Vec<(Value, Value)>>,
}

/// The lock of a list or dict. Nothing is called while it is held, so it is never taken
/// twice; if it ever were, the operation fails instead of deadlocking.
fn lock<T>(mutex: &Mutex<T>) -> Result<MutexGuard<'_, T>, Error> {
    match mutex.try_lock() {
        Ok(guard) => Ok(guard),
        Err(TryLockError::Poisoned(poisoned)) => Ok(poisoned.into_inner()),
        Err(TryLockError::WouldBlock) => {
            Err(invalid("a list or dict was changed while it was read"))
        }
    }
}

impl List {
    pub fn value(items: Vec<Value>) -> Value {
        Value::from_object(Self {
            items: Mutex::new(items),
        })
    }

    fn items(&self) -> Result<MutexGuard<'_, Vec<Value>>, Error> {
        lock(&self.items)
    }

    fn snapshot(&self) -> Vec<Value> {
        self.items().map(|items| items.clone()).unwrap_or_default()
    }
}

impl Dict {
    fn entries(&self) -> Result<MutexGuard<'_, Vec<(Value, Value)>>, Error> {
        lock(&self.entries)
    }

    fn snapshot(&self) -> Vec<(Value, Value)> {
        self.entries().map(|e| e.clone()).unwrap_or_default()
    }
}

impl Object for List {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Seq
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let index = key.as_usize()?;
        self.items().ok()?.get(index).cloned()
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Iter(Box::new(LiveIter {
            list: self.clone(),
            index: 0,
        }))
    }

    fn enumerator_len(self: &Arc<Self>) -> Option<usize> {
        self.items().ok().map(|items| items.len())
    }

    fn call_method(
        self: &Arc<Self>,
        _state: &mut State<'_, '_>,
        method: &str,
        args: &[Value],
    ) -> Result<Value, Error> {
        let none = || Ok(Value::from(()));
        match method {
            "append" => {
                let (item,): (Value,) = from_args(args)?;
                self.check_cycle(&item)?;
                self.items()?.push(item);
                none()
            }
            "extend" => {
                let (other,): (Value,) = from_args(args)?;
                let new: Vec<Value> = other.try_iter()?.collect();
                for item in &new {
                    self.check_cycle(item)?;
                }
                self.items()?.extend(new);
                none()
            }
            "insert" => {
                let (index, item): (i64, Value) = from_args(args)?;
                self.check_cycle(&item)?;
                let mut items = self.items()?;
                let at = clamp_index(index, items.len());
                items.insert(at, item);
                none()
            }
            "pop" => {
                let (index,): (Option<i64>,) = from_args(args)?;
                let mut items = self.items()?;
                if items.is_empty() {
                    return Err(invalid("pop from an empty list"));
                }
                let len = items.len();
                let at = match index {
                    None => len - 1,
                    Some(i) => resolve_index(i, len)
                        .ok_or_else(|| invalid(format!("pop index {i} out of range")))?,
                };
                Ok(items.remove(at))
            }
            "remove" => {
                let (item,): (Value,) = from_args(args)?;
                let at = self.snapshot().iter().position(|x| *x == item);
                match at {
                    Some(at) => {
                        self.items()?.remove(at);
                        none()
                    }
                    None => Err(invalid(format!(
                        "list.remove({}): {} is not in the list",
                        repr(&item),
                        repr(&item)
                    ))),
                }
            }
            "index" => {
                let (item, start, stop): (Value, Option<i64>, Option<i64>) = from_args(args)?;
                let items = self.snapshot();
                let len = items.len();
                let start = start.map_or(0, |i| clamp_index(i, len));
                let stop = stop.map_or(len, |i| clamp_index(i, len));
                (start..stop.max(start))
                    .find(|&i| items[i] == item)
                    .map(Value::from)
                    .ok_or_else(|| {
                        invalid(format!(
                            "list.index({}): {} is not in the list",
                            repr(&item),
                            repr(&item)
                        ))
                    })
            }
            "clear" => {
                let () = from_args(args)?;
                self.items()?.clear();
                none()
            }
            "reverse" => {
                let () = from_args(args)?;
                self.items()?.reverse();
                none()
            }
            "sort" => {
                let (kwargs,): (Kwargs,) = from_args(args)?;
                let reverse = kwargs.get::<Option<bool>>("reverse")?.unwrap_or(false);
                if kwargs.has("key") {
                    return Err(invalid(
                        "list.sort(key=...) is not supported: use the sort filter with attribute=",
                    ));
                }
                kwargs.assert_all_used()?;
                let mut items = self.snapshot();
                items.sort();
                if reverse {
                    items.reverse();
                }
                *self.items()? = items;
                none()
            }
            "copy" => {
                let () = from_args(args)?;
                Ok(List::value(self.snapshot()))
            }
            "__setitem__" => {
                let (index, item): (i64, Value) = from_args(args)?;
                self.check_cycle(&item)?;
                let mut items = self.items()?;
                let at = resolve_index(index, items.len()).ok_or_else(|| {
                    invalid(format!("list assignment index {index} out of range"))
                })?;
                items[at] = item;
                none()
            }
            _ => Err(Error::from(ErrorKind::UnknownMethod)),
        }
    }
}

/// Python's list iterator: it reads the list as it is at each step, so a loop sees what
/// its body appends (a work queue) or removes.
struct LiveIter {
    list: Arc<List>,
    index: usize,
}

impl Iterator for LiveIter {
    type Item = Value;

    fn next(&mut self) -> Option<Value> {
        let item = self.list.items().ok()?.get(self.index).cloned();
        self.index += 1;
        item
    }

    /// What is left now: `loop.length` and friends as the list is when the loop starts.
    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self
            .list
            .items()
            .map_or(0, |items| items.len().saturating_sub(self.index));
        (left, Some(left))
    }
}

impl List {
    fn check_cycle(self: &Arc<Self>, item: &Value) -> Result<(), Error> {
        check_cycle(Arc::as_ptr(self).cast(), item, "list")
    }
}

impl Object for Dict {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Map
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let entries = self.entries().ok()?;
        entries
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::RevKeyValueIter(Box::new(self.snapshot().into_iter()))
    }

    fn enumerator_len(self: &Arc<Self>) -> Option<usize> {
        self.entries().ok().map(|entries| entries.len())
    }

    fn call_method(
        self: &Arc<Self>,
        _state: &mut State<'_, '_>,
        method: &str,
        args: &[Value],
    ) -> Result<Value, Error> {
        let none = || Ok(Value::from(()));
        match method {
            "update" => {
                let (other, kwargs): (Option<Value>, Kwargs) = from_args(args)?;
                dict_update(self, other, &kwargs)?;
                none()
            }
            "setdefault" => {
                let (key, default): (Value, Option<Value>) = from_args(args)?;
                if let Some(value) = self.get_value(&key) {
                    return Ok(value);
                }
                let default = default.unwrap_or(Value::from(()));
                self.check_cycle(&default)?;
                insert_entry(&mut *self.entries()?, key, default.clone())?;
                Ok(default)
            }
            "pop" => {
                let (key, default): (Value, Option<Value>) = from_args(args)?;
                let mut entries = self.entries()?;
                match entries.iter().position(|(k, _)| *k == key) {
                    Some(at) => Ok(entries.remove(at).1),
                    None => default
                        .ok_or_else(|| invalid(format!("dict.pop({}): no such key", repr(&key)))),
                }
            }
            "popitem" => {
                let () = from_args(args)?;
                let (key, value) = self
                    .entries()?
                    .pop()
                    .ok_or_else(|| invalid("popitem(): the dictionary is empty"))?;
                Ok(Value::from_object(Tuple::from([key, value])))
            }
            "clear" => {
                let () = from_args(args)?;
                self.entries()?.clear();
                none()
            }
            "copy" => {
                let () = from_args(args)?;
                Ok(Value::from_object(Dict {
                    entries: Mutex::new(self.snapshot()),
                }))
            }
            "__setitem__" => {
                let (key, value): (Value, Value) = from_args(args)?;
                self.check_cycle(&value)?;
                insert_entry(&mut *self.entries()?, key, value)?;
                none()
            }
            _ => Err(Error::from(ErrorKind::UnknownMethod)),
        }
    }
}

impl Dict {
    fn check_cycle(self: &Arc<Self>, value: &Value) -> Result<(), Error> {
        check_cycle(Arc::as_ptr(self).cast(), value, "dict")
    }
}

/// `dict.update(other, **kwargs)` and `dict(other, **kwargs)`: `other` is a mapping or
/// pairs.
fn dict_update(dict: &Arc<Dict>, other: Option<Value>, kwargs: &Kwargs) -> Result<(), Error> {
    let mut new = Vec::new();
    match other {
        None => {}
        Some(other) if other.kind() == ValueKind::Map => {
            for key in other.try_iter()? {
                let value = other.get_item(&key)?;
                new.push((key, value));
            }
        }
        Some(other) => {
            for (n, pair) in other.try_iter()?.enumerate() {
                let items: Vec<Value> = pair.try_iter().map(Iterator::collect).map_err(|_| {
                    invalid(format!(
                        "cannot convert dictionary update sequence element #{n} ({}) to a sequence",
                        repr(&pair)
                    ))
                })?;
                let [key, value]: [Value; 2] = items.try_into().map_err(|items: Vec<Value>| {
                    invalid(format!(
                        "dictionary update sequence element #{n} has length {}; 2 is required",
                        items.len()
                    ))
                })?;
                new.push((key, value));
            }
        }
    }
    for key in kwargs.args() {
        new.push((Value::from(key), kwargs.get::<Value>(key)?));
    }
    kwargs.assert_all_used()?;
    for (_, value) in &new {
        dict.check_cycle(value)?;
    }
    let mut entries = dict.entries()?;
    for (key, value) in new {
        insert_entry(&mut entries, key, value)?;
    }
    Ok(())
}

/// Sets `key` (replacing its value in place, as Python does) or appends it.
fn insert_entry(entries: &mut Vec<(Value, Value)>, key: Value, value: Value) -> Result<(), Error> {
    if let Some(kind) = unhashable(&key) {
        return Err(invalid(format!(
            "unhashable type: '{kind}' cannot be a dict key"
        )));
    }
    match entries.iter_mut().find(|(k, _)| *k == key) {
        Some(entry) => entry.1 = value,
        None => entries.push((key, value)),
    }
    Ok(())
}

/// Python refuses lists and dicts (and tuples holding them) as dict keys. Keeping them
/// out also means comparing keys never reads a list or dict.
fn unhashable(key: &Value) -> Option<&'static str> {
    match key.kind() {
        ValueKind::Map => Some("dict"),
        ValueKind::Seq if key.downcast_object_ref::<Tuple>().is_some() => key
            .try_iter()
            .ok()?
            .find_map(|item| unhashable(&item).map(|_| ()))
            .map(|()| "tuple holding a list or dict"),
        ValueKind::Seq => Some("list"),
        _ => None,
    }
}

/// Refuses to put a list or dict inside itself: minijinja compares and prints values by
/// recursion, which such a value would never end. (Python prints `[[...]]`; no
/// environment file needs it.)
fn check_cycle(target: *const (), value: &Value, what: &str) -> Result<(), Error> {
    const BUDGET: usize = 100_000;
    let mut seen = HashSet::new();
    let mut stack = vec![value.clone()];
    let mut visited = 0;
    while let Some(value) = stack.pop() {
        if !matches!(value.kind(), ValueKind::Seq | ValueKind::Map) {
            continue;
        }
        visited += 1;
        if visited > BUDGET {
            return Err(invalid(format!(
                "a value of more than {BUDGET} lists and dicts cannot be put in a {what}"
            )));
        }
        if let Some(list) = value.downcast_object_ref::<List>() {
            let at = (list as *const List).cast::<()>();
            if at == target {
                return Err(invalid(format!("a {what} cannot contain itself")));
            }
            if seen.insert(at as usize) {
                stack.extend(list.snapshot());
            }
        } else if let Some(dict) = value.downcast_object_ref::<Dict>() {
            let at = (dict as *const Dict).cast::<()>();
            if at == target {
                return Err(invalid(format!("a {what} cannot contain itself")));
            }
            if seen.insert(at as usize) {
                stack.extend(dict.snapshot().into_iter().map(|(_, v)| v));
            }
        } else if value.kind() == ValueKind::Map {
            for key in value.try_iter()? {
                stack.push(value.get_item(&key)?);
            }
        } else {
            stack.extend(value.try_iter()?);
        }
    }
    Ok(())
}

/// A filter's list, changeable as Python's.
fn into_list(value: Value) -> Result<Value, Error> {
    Ok(List::value(value.try_iter()?.collect()))
}

/// Python's index rules for `insert` (clamped) ...
fn clamp_index(index: i64, len: usize) -> usize {
    let len_i = i64::try_from(len).unwrap_or(i64::MAX);
    let i = if index < 0 { index + len_i } else { index };
    usize::try_from(i.clamp(0, len_i)).unwrap_or(len)
}

/// ... and for `pop` and item assignment (in range or nothing).
fn resolve_index(index: i64, len: usize) -> Option<usize> {
    let len_i = i64::try_from(len).ok()?;
    let i = if index < 0 { index + len_i } else { index };
    usize::try_from(i).ok().filter(|&i| i < len)
}

fn invalid(message: impl Into<Cow<'static, str>>) -> Error {
    Error::new(ErrorKind::InvalidOperation, message)
}

/// A value as Python's `repr` shows it in a message (`'a'`, `1`, `None`): as minijinja
/// prints it inside a list, which is Python's way.
fn repr(value: &Value) -> String {
    let shown = Value::from(vec![value.clone()]).to_string();
    shown
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .map_or_else(|| value.to_string(), str::to_owned)
}

// ---------------------------------------------------------------------------------------
// Methods.

/// The methods of lists and dicts that change them.
const CHANGING: &[&str] = &[
    "append",
    "extend",
    "insert",
    "pop",
    "remove",
    "clear",
    "reverse",
    "sort",
    "update",
    "setdefault",
    "popitem",
    "__setitem__",
];

/// The unknown method callback: Python's string methods beyond minijinja-contrib's
/// `pycompat`, changeable lists from `split`, and a clear error for changing a tuple or a
/// list minijinja made (`a + b`, a slice, most filters); then `pycompat`.
pub fn unknown_method(
    state: &mut State<'_, '_>,
    value: &Value,
    method: &str,
    args: &[Value],
) -> Result<Value, Error> {
    match value.kind() {
        ValueKind::String => {
            if let Some(s) = value.as_str() {
                check_string_method(s, method, args)?;
                if let Some(result) = string_method(s, method, args) {
                    return result.and_then(bounded);
                }
            }
            let result =
                minijinja_contrib::pycompat::unknown_method_callback(state, value, method, args)?;
            if matches!(method, "split" | "splitlines") {
                into_list(result)
            } else {
                bounded(result)
            }
        }
        // A List or Dict that lacks the method (`[].update()`) is not a read-only one.
        ValueKind::Seq | ValueKind::Map | ValueKind::Iterable
            if CHANGING.contains(&method)
                && value.downcast_object_ref::<List>().is_none()
                && value.downcast_object_ref::<Dict>().is_none() =>
        {
            let message = if value.downcast_object_ref::<Tuple>().is_some() {
                format!("a tuple cannot be changed (it has no method {method})")
            } else {
                let (kind, copy) = match value.kind() {
                    ValueKind::Map => ("dict", "dict(x)"),
                    ValueKind::Seq => ("list", "x|list"),
                    _ => ("sequence", "x|list"),
                };
                format!(
                    "this {kind} cannot be changed in place (it has no method {method}): \
                     lists and dicts written as literals ([...], {{...}}) or made by dict(), \
                     +, *, |list, |sort, |dictsort, .split() or .copy() can, not those made \
                     by slicing, range() or other filters; {copy} makes a changeable copy"
                )
            };
            Err(Error::new(ErrorKind::UnknownMethod, message))
        }
        _ => minijinja_contrib::pycompat::unknown_method_callback(state, value, method, args),
    }
}

/// Python string methods `pycompat` does not have. `None` for any other method.
fn string_method(s: &str, method: &str, args: &[Value]) -> Option<Result<Value, Error>> {
    let result = match method {
        "rsplit" => from_args(args).and_then(|(sep, max): (Option<&str>, Option<i64>)| {
            let parts = rsplit(s, sep, max.unwrap_or(-1))?;
            Ok(List::value(parts.into_iter().map(Value::from).collect()))
        }),
        "removeprefix" => from_args(args)
            .map(|(prefix,): (&str,)| Value::from(s.strip_prefix(prefix).unwrap_or(s))),
        "removesuffix" => from_args(args)
            .map(|(suffix,): (&str,)| Value::from(s.strip_suffix(suffix).unwrap_or(s))),
        "partition" | "rpartition" => from_args(args).and_then(|(sep,): (&str,)| {
            if sep.is_empty() {
                return Err(invalid("empty separator"));
            }
            let found = if method == "partition" {
                s.split_once(sep)
            } else {
                s.rsplit_once(sep)
            };
            let parts = match (found, method) {
                (Some((before, after)), _) => [before, sep, after],
                (None, "partition") => [s, "", ""],
                (None, _) => ["", "", s],
            };
            Ok(Value::from_object(Tuple::from(parts.map(Value::from))))
        }),
        "ljust" | "rjust" | "center" => {
            from_args(args).and_then(|(width, fill): (i64, Option<&str>)| {
                let fill = match fill {
                    None => ' ',
                    Some(f) => {
                        let mut chars = f.chars();
                        match (chars.next(), chars.next()) {
                            (Some(c), None) => c,
                            _ => {
                                return Err(invalid(
                                    "the fill character must be exactly one character long",
                                ));
                            }
                        }
                    }
                };
                Ok(Value::from(justify(s, method, width, fill)))
            })
        }
        "zfill" => from_args(args).map(|(width,): (i64,)| Value::from(zfill(s, width))),
        "index" | "rindex" => from_args(args).and_then(|(sub,): (&str,)| {
            let found = if method == "index" {
                s.find(sub)
            } else {
                s.rfind(sub)
            };
            found
                .map(|at| Value::from(s[..at].chars().count()))
                .ok_or_else(|| {
                    invalid(format!(
                        "str.{method}({}): substring not found",
                        repr(&Value::from(sub))
                    ))
                })
        }),
        "swapcase" => from_args(args).map(|()| {
            Value::from(
                s.chars()
                    .flat_map(|c| {
                        if c.is_uppercase() {
                            c.to_lowercase().collect::<Vec<_>>()
                        } else {
                            c.to_uppercase().collect::<Vec<_>>()
                        }
                    })
                    .collect::<String>(),
            )
        }),
        "casefold" => from_args(args).map(|()| Value::from(s.to_lowercase())),
        _ => return None,
    };
    Some(result)
}

/// Python's `str.rsplit(sep, maxsplit)`.
fn rsplit(s: &str, sep: Option<&str>, max: i64) -> Result<Vec<String>, Error> {
    let mut parts: Vec<String> = Vec::new();
    match sep {
        Some("") => return Err(invalid("empty separator")),
        Some(sep) => {
            if max < 0 {
                parts.extend(s.split(sep).map(str::to_owned));
            } else {
                let limit = usize::try_from(max).unwrap_or(usize::MAX).saturating_add(1);
                parts.extend(s.rsplitn(limit, sep).map(str::to_owned));
                parts.reverse();
            }
        }
        None => {
            let mut rest = s.trim_end();
            let mut splits = 0;
            while !rest.is_empty() && (max < 0 || splits < max) {
                match rest.rfind(char::is_whitespace) {
                    Some(at) => {
                        let ws_len = rest[at..].chars().next().map_or(1, char::len_utf8);
                        parts.push(rest[at + ws_len..].to_owned());
                        rest = rest[..at].trim_end();
                        splits += 1;
                    }
                    None => break,
                }
            }
            if !rest.is_empty() {
                parts.push(rest.to_owned());
            }
            parts.reverse();
        }
    }
    Ok(parts)
}

/// Python's `ljust`, `rjust` and `center`.
fn justify(s: &str, method: &str, width: i64, fill: char) -> String {
    let len = s.chars().count();
    let width = usize::try_from(width).unwrap_or(0);
    if width <= len {
        return s.to_owned();
    }
    let pad = width - len;
    let left = match method {
        "ljust" => 0,
        "rjust" => pad,
        // CPython: the odd extra goes left when the width is odd.
        _ => pad / 2 + (pad & width & 1),
    };
    let fill = |n: usize| std::iter::repeat_n(fill, n).collect::<String>();
    format!("{}{s}{}", fill(left), fill(pad - left))
}

/// Python's `zfill`: zeros after a sign.
fn zfill(s: &str, width: i64) -> String {
    let len = s.chars().count();
    let width = usize::try_from(width).unwrap_or(0);
    if width <= len {
        return s.to_owned();
    }
    let zeros = "0".repeat(width - len);
    match s.chars().next() {
        Some(sign @ ('+' | '-')) => format!("{sign}{zeros}{}", &s[1..]),
        _ => format!("{zeros}{s}"),
    }
}

// ---------------------------------------------------------------------------------------
// Bounds: what a hostile template could make take all memory.

/// Filters that allocate by an argument, checked before they run.
fn install_bounds(jinja: &mut Environment<'_>) {
    jinja.add_filter("indent", bounded_indent);
    jinja.add_filter("replace", bounded_replace);
    jinja.add_filter("join", bounded_join);
    jinja.add_filter("format", bounded_format);
    jinja.add_filter("slice", bounded_slice);
    jinja.add_filter("tojson", bounded_tojson);
}

fn bounded_indent(
    value: StringInput<'_>,
    width: Option<usize>,
    first: Option<bool>,
    blank: Option<bool>,
    kwargs: Kwargs,
) -> Result<Value, Error> {
    let chosen = match width {
        Some(width) => width,
        None => kwargs.peek::<Option<usize>>("width")?.unwrap_or(4),
    };
    let text = value.as_str();
    let lines = text.bytes().filter(|&b| b == b'\n').count() + 1;
    // The indent itself is made once, whatever the lines.
    check_len(Some(chosen), "indent")?;
    check_len(
        chosen
            .checked_mul(lines)
            .and_then(|n| n.checked_add(text.len())),
        "indent",
    )?;
    minijinja::filters::indent(value, width, first, blank, kwargs)
}

fn bounded_replace(
    state: &mut State<'_, '_>,
    value: StringInput<'_>,
    from: StringInput<'_>,
    to: StringInput<'_>,
) -> Result<Value, Error> {
    check_replace(value.as_str(), from.as_str(), to.as_str())?;
    minijinja::filters::replace(state, value, from, to)
}

fn bounded_join(
    state: &mut State<'_, '_>,
    value: &Value,
    joiner: Option<StringInput<'_>>,
    attribute: Option<&str>,
    kwargs: Kwargs,
) -> Result<Value, Error> {
    check_join(value, joiner.as_ref().map(StringInput::as_str))?;
    minijinja::filters::join(state, value, joiner, attribute, kwargs).and_then(bounded)
}

fn bounded_format(
    state: &mut State<'_, '_>,
    format: &Value,
    args: Rest<ValueOrKwargs>,
) -> Result<Value, Error> {
    if let Some(format) = format.as_str() {
        check_format(format)?;
    }
    minijinja::filters::format(state, format, args).and_then(bounded)
}

fn bounded_slice(
    state: &State<'_, '_>,
    value: Value,
    count: usize,
    fill: Option<Value>,
) -> Result<Value, Error> {
    check_items(count, "slice")?;
    minijinja::filters::slice(state, value, count, fill)
}

/// JSON's indent is written once per line and level: wider than any screen is refused.
fn bounded_tojson(value: &Value, indent: Option<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    let chosen = match &indent {
        Some(indent) => Some(indent.clone()),
        None => kwargs.peek::<Option<Value>>("indent")?,
    };
    if let Some(width) = chosen.and_then(|i| i64::try_from(i).ok()) {
        if width > 1024 {
            return Err(invalid(format!(
                "tojson's indent {width} is above 1024 (the limit); refusing to go on"
            )));
        }
    }
    minijinja::filters::tojson(value, indent, kwargs).and_then(bounded)
}

/// The error of an operation that would make a string longer than [`MAX_STRING`].
fn too_long(what: &str) -> Error {
    invalid(format!(
        "{what} would make a string longer than {} MiB (the limit); refusing to go on",
        MAX_STRING >> 20
    ))
}

/// `Ok` when `len` (`None`: it overflowed) is within [`MAX_STRING`].
fn check_len(len: Option<usize>, what: &str) -> Result<(), Error> {
    match len {
        Some(len) if len <= MAX_STRING => Ok(()),
        _ => Err(too_long(what)),
    }
}

fn check_items(count: usize, what: &str) -> Result<(), Error> {
    if count > MAX_ITEMS {
        return Err(invalid(format!(
            "{what} would make {count} items, more than {MAX_ITEMS} (the limit); refusing to go on"
        )));
    }
    Ok(())
}

/// A string result within [`MAX_STRING`] (checked after the fact: for operations whose
/// result is at most twice as long as their operands, as `~` and `join`).
fn bounded(value: Value) -> Result<Value, Error> {
    match value.as_str() {
        Some(s) if s.len() > MAX_STRING => Err(too_long("this operation")),
        _ => Ok(value),
    }
}

/// `s.replace(from, to)` grows by `to - from` per match; an empty `from` matches between
/// every character.
fn check_replace(s: &str, from: &str, to: &str) -> Result<(), Error> {
    if to.len() <= from.len() {
        return Ok(());
    }
    let matches = if from.is_empty() {
        s.chars().count() + 1
    } else {
        s.matches(from).count()
    };
    check_len(
        matches
            .checked_mul(to.len() - from.len())
            .and_then(|n| n.checked_add(s.len())),
        "replace",
    )
}

/// The joined length of a sequence's items, before joining.
fn check_join(value: &Value, joiner: Option<&str>) -> Result<(), Error> {
    let Ok(items) = value.try_iter() else {
        return Ok(());
    };
    let mut total: usize = 0;
    for item in items {
        let len = match item.as_str() {
            Some(s) => s.len(),
            None => item.to_string().len(),
        };
        total = total
            .saturating_add(len)
            .saturating_add(joiner.map_or(0, str::len));
        check_len(Some(total), "join")?;
    }
    Ok(())
}

/// Widths and precisions in a format string (`%9999s`, `{:>9999}`, `%.9999f`) are
/// allocations: any number in it above [`MAX_STRING`] is refused.
fn check_format(format: &str) -> Result<(), Error> {
    for digits in format.split(|c: char| !c.is_ascii_digit()) {
        if !digits.is_empty() {
            check_len(digits.parse().ok(), "this format")?;
        }
    }
    Ok(())
}

/// The string methods that allocate by an argument, checked before they run.
fn check_string_method(s: &str, method: &str, args: &[Value]) -> Result<(), Error> {
    match (method, args) {
        ("ljust" | "rjust" | "center" | "zfill", [width, ..]) => {
            let width = i64::try_from(width.clone()).unwrap_or(0);
            check_len(usize::try_from(width.max(0)).ok(), method)
        }
        ("replace", [from, to, ..]) => match (from.as_str(), to.as_str()) {
            (Some(from), Some(to)) => check_replace(s, from, to),
            _ => Ok(()),
        },
        ("join", [items, ..]) => check_join(items, Some(s)),
        ("format", _) => check_format(s),
        _ => Ok(()),
    }
}

/// Renders `template` with what it writes bounded by [`MAX_STRING`]: a loop that writes
/// a long string many times is refused when the output passes the limit, not when memory
/// runs out.
pub fn render_bounded(template: &minijinja::Template<'_, '_>, ctx: Value) -> Result<String, Error> {
    struct Limited(Vec<u8>);
    impl std::io::Write for Limited {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if self.0.len().saturating_add(buf.len()) > MAX_STRING {
                return Err(std::io::Error::other("limit"));
            }
            self.0.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut out = Limited(Vec::new());
    match template.render_captured_to(ctx, &mut out) {
        Ok(_) => String::from_utf8(out.0).map_err(|_| invalid("the output is not UTF-8")),
        Err(e) if e.kind() == ErrorKind::WriteFailure => Err(invalid(format!(
            "the template writes more than {} MiB (the limit); refusing to go on",
            MAX_STRING >> 20
        ))),
        Err(e) => Err(e),
    }
}

/// A plain explanation of minijinja's own limits, for messages: `None` for other errors.
pub fn explain_limit(err: &Error) -> Option<String> {
    #[cfg(feature = "multi_template")]
    if err.kind() == ErrorKind::OutOfFuel {
        return Some(format!(
            "the template runs more than {FUEL} steps (the limit: a loop too long?); refusing to go on"
        ));
    }
    let _ = err;
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn rewrites(source: &str, want: &str) {
        assert_eq!(rewrite(source), want, "rewrite of {source:?}");
    }

    #[test]
    fn the_rewrite_calls_the_functions_install_defines() {
        for (name, text) in [
            (LIST_FN, "__maestro_list("),
            (DICT_FN, "__maestro_dict("),
            (SEQ_FN, "__maestro_seq("),
        ] {
            assert_eq!(format!("{name}("), text);
        }
    }

    #[test]
    fn literals_become_calls() {
        rewrites("{% set x = [] %}", "{% set x = __maestro_list([]) %}");
        rewrites("{{ [1, 'a'] }}", "{{ __maestro_list([1, 'a']) }}");
        rewrites("{{ {} }}", "{{ __maestro_dict() }}");
        rewrites(
            "{{ {'a': 1, 'b': x,} }}",
            "{{ __maestro_dict('a', 1, 'b', x,) }}",
        );
        rewrites(
            "{% for a, b in [('x', 1)] if b in [1] %}{% endfor %}",
            "{% for a, b in __maestro_list([('x', 1)]) if b in __maestro_list([1]) %}{% endfor %}",
        );
        rewrites("{{- [1] -}}", "{{- __maestro_list([1]) -}}");
        rewrites(
            "{% if a %}{% elif [1] %}{% endif %}",
            "{% if a %}{% elif __maestro_list([1]) %}{% endif %}",
        );
        rewrites(
            "{{ f([1], k={}) }}",
            "{{ f(__maestro_list([1]), k=__maestro_dict()) }}",
        );
    }

    #[test]
    fn nested_literals_close_inside_out() {
        rewrites(
            "{{ [[1], []] }}",
            "{{ __maestro_list([__maestro_list([1]), __maestro_list([])]) }}",
        );
        rewrites(
            "{{ {'a': {'b': [1]}} }}",
            "{{ __maestro_dict('a', __maestro_dict('b', __maestro_list([1]))) }}",
        );
        // The list closes before the dict's colon at the same offset becomes a comma.
        rewrites(
            "{{ {[1]: 2} }}",
            "{{ __maestro_dict(__maestro_list([1]), 2) }}",
        );
        rewrites("{{ [{}] }}", "{{ __maestro_list([__maestro_dict()]) }}");
    }

    #[test]
    fn subscripts_and_slices_stay() {
        for source in [
            "{{ x[0] }}",
            "{{ x [0] }}",
            "{{ f()[0] }}",
            "{{ 'ab'[0] }}",
            "{{ x[1:2] }}",
            "{{ x.y[0][1] }}",
            "{{ x is sameas [1] }}",
        ] {
            rewrites(source, source);
        }
        rewrites("{{ [1][0] }}", "{{ __maestro_list([1])[0] }}");
        rewrites("{{ {'a': x[1:2]} }}", "{{ __maestro_dict('a', x[1:2]) }}");
    }

    #[test]
    fn sums_and_products_are_wrapped() {
        rewrites(
            "{{ [1] + [2] }}",
            "{{ __maestro_seq(__maestro_list([1]) + __maestro_list([2])) }}",
        );
        rewrites(
            "{{ a + b + c }}",
            "{{ __maestro_seq(__maestro_seq(a + b) + c) }}",
        );
        rewrites("{{ (a) * 2 }}", "{{ __maestro_seq((a) * 2) }}");
        rewrites("{{ (a + b)[0] }}", "{{ (__maestro_seq(a + b))[0] }}");
        // `~` binds tighter than `+` (Jinja2's grammar); it is wrapped too, for its
        // result's length (a doubling loop).
        rewrites(
            "{{ x ~ a + b }}",
            "{{ __maestro_seq(__maestro_seq(x ~ a) + b) }}",
        );
        rewrites("{{ x ~ y }}", "{{ __maestro_seq(x ~ y) }}");
        rewrites("{{ x == a + b }}", "{{ x == __maestro_seq(a + b) }}");
        rewrites("{{ a - b / c }}", "{{ a - b / c }}");
    }

    #[test]
    fn text_comments_raw_blocks_and_strings_stay() {
        for source in [
            "plain: [1, 2]\nmap: {a: b}\n",
            "a: [1]\n{# {{ [1] }} {% set x = [] %} #}\n",
            "{% raw %}{{ [1] }}{% set x = {} %}{% endraw %}",
            "{{ '[1] {a: b} + *' }}",
        ] {
            rewrites(source, source);
        }
    }

    #[test]
    fn what_minijinja_cannot_parse_is_left_to_it() {
        for source in [
            "{{ [1 }}",
            "{{ {'a' 1} }}",
            "{% set x = [] %}{{ x.",
            "{% for %}",
        ] {
            rewrites(source, source);
        }
    }

    #[test]
    fn lines_stay_where_they_were() {
        let source = "a: 1\n{% set x = [\n  1,\n  {'k':\n  [2]},\n] + [3] %}\nb: {{ x }}\n";
        let rewritten = rewrite(source);
        assert_ne!(rewritten, source);
        let lines = |s: &str| s.lines().map(|l| l.starts_with("b:")).collect::<Vec<_>>();
        assert_eq!(lines(&rewritten), lines(source));
    }

    #[test]
    fn python_string_helpers() {
        let split = |s: &str, sep: Option<&str>, max: i64| rsplit(s, sep, max).unwrap();
        assert_eq!(split("a b  c", None, -1), ["a", "b", "c"]);
        assert_eq!(split("  a b c ", None, 1), ["  a b", "c"]);
        assert_eq!(split("a=b=c", Some("="), 0), ["a=b=c"]);
        assert_eq!(split("", None, -1), Vec::<String>::new());
        assert!(rsplit("a", Some(""), -1).is_err());
        assert_eq!(justify("ab", "center", 5, '*'), "**ab*");
        assert_eq!(justify("ab", "center", 6, '*'), "**ab**");
        assert_eq!(justify("abc", "center", 6, ' '), " abc  ");
        assert_eq!(justify("ab", "ljust", -3, ' '), "ab");
        assert_eq!(zfill("-5", 4), "-005");
        assert_eq!(zfill("+", 3), "+00");
        assert_eq!(clamp_index(-100, 3), 0);
        assert_eq!(clamp_index(100, 3), 3);
        assert_eq!(resolve_index(-1, 3), Some(2));
        assert_eq!(resolve_index(3, 3), None);
        assert_eq!(resolve_index(-4, 3), None);
    }
}
