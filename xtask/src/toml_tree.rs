//! A fast, read-only TOML tree for large generated files (`poetry.lock` is often megabytes): strings are
//! borrowed from the text unless they contain escapes, and every value keeps its offset so that errors
//! still say `path:line:col`. Built on `toml_parser` (the lexer `toml_edit` uses) without `toml_edit`'s
//! formatting-preserving model, which is several times slower. Syntax errors are reported through
//! `TomlFile`, so they read exactly like everywhere else in the tool.

use std::borrow::Cow;

use anyhow::{format_err, Result};
use toml_parser::decoder::Encoding;
use toml_parser::decoder::ScalarKind;
use toml_parser::parser::EventReceiver;
use toml_parser::{ErrorSink, ParseError, Raw, Source, Span};

use crate::toml_file::{line_col, TomlFile};

/// A TOML value and where it starts in the text.
#[derive(Debug, Clone)]
pub(crate) struct Node<'a> {
    pub(crate) value: Value<'a>,
    pub(crate) at: usize,
}

#[derive(Debug, Clone)]
pub(crate) enum Value<'a> {
    String(Cow<'a, str>),
    Integer(i64),
    Float(f64),
    Boolean(bool),
    Datetime(&'a str),
    /// `tables` is true for an array of tables (`[[name]]`).
    Array {
        items: Vec<Node<'a>>,
        tables: bool,
    },
    Table(Table<'a>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TableKind {
    /// Created as the parent of a header or a dotted key.
    Implicit,
    /// Defined by a `[header]` (or an element of `[[header]]`).
    Header,
    Dotted,
    Inline,
}

/// A table: entries in document order.
#[derive(Debug, Clone)]
pub(crate) struct Table<'a> {
    entries: Vec<(Cow<'a, str>, Node<'a>)>,
    kind: TableKind,
}

impl<'a> Table<'a> {
    fn new(kind: TableKind) -> Table<'a> {
        Table { entries: Vec::new(), kind }
    }
    pub(crate) fn get(&self, key: &str) -> Option<&Node<'a>> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &Node<'a>)> {
        self.entries.iter().map(|(k, v)| (k.as_ref(), v))
    }
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
    fn get_mut(&mut self, key: &str) -> Option<&mut Node<'a>> {
        self.entries.iter_mut().find(|(k, _)| k == key).map(|(_, v)| v)
    }
}

impl<'a> Node<'a> {
    pub(crate) fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::String(s) => Some(s),
            _ => None,
        }
    }
    pub(crate) fn is_str(&self) -> bool {
        matches!(self.value, Value::String(_))
    }
    pub(crate) fn as_bool(&self) -> Option<bool> {
        match self.value {
            Value::Boolean(b) => Some(b),
            _ => None,
        }
    }
    pub(crate) fn as_table(&self) -> Option<&Table<'a>> {
        match &self.value {
            Value::Table(t) => Some(t),
            _ => None,
        }
    }
    /// The items of an array or of an array of tables.
    pub(crate) fn as_array(&self) -> Option<&[Node<'a>]> {
        match &self.value {
            Value::Array { items, .. } => Some(items),
            _ => None,
        }
    }
    pub(crate) fn get(&self, key: &str) -> Option<&Node<'a>> {
        self.as_table().and_then(|t| t.get(key))
    }
}

/// A parsed document and where it came from.
pub(crate) struct Document<'a> {
    pub(crate) text: &'a str,
    pub(crate) display: String,
    pub(crate) root: Table<'a>,
}

impl<'a> Document<'a> {
    /// Parses `text`; `display` names the file in messages.
    pub(crate) fn parse(text: &'a str, display: &str) -> Result<Document<'a>> {
        if let Some(root) = fast::parse(text) {
            return Ok(Document { text, display: display.to_string(), root });
        }
        let source = Source::new(text);
        let tokens = source.lex().into_vec();
        let mut builder = Builder {
            source,
            root: Table::new(TableKind::Implicit),
            table_path: Vec::new(),
            header: None,
            pending: Vec::new(),
            frames: Vec::new(),
            error: None,
        };
        let mut errors: Vec<ParseError> = Vec::new();
        toml_parser::parser::parse_document(&tokens, &mut builder, &mut errors);
        if !errors.is_empty() || builder.error.is_some() {
            // Let the formatting-preserving parser phrase the error like everywhere else.
            TomlFile::parse(display, text.to_string())?;
            let (at, message) = builder
                .error
                .or_else(|| {
                    errors
                        .first()
                        .map(|e| (e.unexpected().map(|s| s.start()).unwrap_or(0), e.description().to_string()))
                })
                .unwrap_or((0, "invalid TOML".to_string()));
            let (line, col) = line_col(text, at);
            return Err(format_err!("{display}:{line}:{col}: invalid TOML: {message}"));
        }
        Ok(Document { text, display: display.to_string(), root: builder.root })
    }

    /// `path:line:col` of a value.
    pub(crate) fn location(&self, node: &Node<'_>) -> String {
        let (line, col) = line_col(self.text, node.at);
        format!("{}:{line}:{col}", self.display)
    }

    /// An error pointing at `node`: `path:line:col: message`.
    pub(crate) fn error_at(&self, node: &Node<'_>, message: impl std::fmt::Display) -> anyhow::Error {
        format_err!("{}: {message}", self.location(node))
    }
}

enum Frame<'a> {
    Array(Vec<Node<'a>>, usize),
    Inline(Table<'a>, usize, Vec<(Cow<'a, str>, usize)>),
}

struct Builder<'a> {
    source: Source<'a>,
    root: Table<'a>,
    /// The current `[table]`: keys from the root.
    table_path: Vec<Cow<'a, str>>,
    /// Keys of the header being read: (is an array of tables, keys, start).
    header: Option<(bool, Vec<Cow<'a, str>>, usize)>,
    /// Keys of the key/value being read at the top level.
    pending: Vec<(Cow<'a, str>, usize)>,
    frames: Vec<Frame<'a>>,
    error: Option<(usize, String)>,
}

impl<'a> Builder<'a> {
    fn fail(&mut self, at: usize, message: String) {
        if self.error.is_none() {
            self.error = Some((at, message));
        }
    }

    fn raw(&self, span: Span, encoding: Option<Encoding>) -> Raw<'a> {
        let text = &self.source.input()[span.start()..span.end()];
        Raw::new_unchecked(text, encoding, span)
    }

    fn deliver(&mut self, node: Node<'a>) {
        match self.frames.last_mut() {
            Some(Frame::Array(items, _)) => items.push(node),
            Some(Frame::Inline(table, _, keys)) => {
                let keys = std::mem::take(keys);
                if let Err((at, m)) = insert(table, &keys, node) {
                    self.fail(at, m);
                }
            }
            None => {
                let keys = std::mem::take(&mut self.pending);
                let path = self.table_path.clone();
                let result = navigate(&mut self.root, &path, 0).and_then(|t| insert(t, &keys, node));
                if let Err((at, m)) = result {
                    self.fail(at, m);
                }
            }
        }
    }

    fn open_header(&mut self, start: usize) {
        let Some((array, keys, _)) = self.header.take() else { return };
        match define_header(&mut self.root, &keys, array, start) {
            Ok(()) => self.table_path = keys,
            Err((at, m)) => self.fail(at, m),
        }
    }
}

/// `[keys]` or `[[keys]]`: defines the table (or appends one to the array of tables).
fn define_header<'a>(
    root: &mut Table<'a>,
    keys: &[Cow<'a, str>],
    array: bool,
    start: usize,
) -> Result<(), (usize, String)> {
    let Some((last, parents)) = keys.split_last() else { return Err((start, "empty table name".into())) };
    let parent = navigate(root, parents, start)?;
    match parent.get_mut(last) {
        None => {
            let table = Node { value: Value::Table(Table::new(TableKind::Header)), at: start };
            let node = if array {
                Node { value: Value::Array { items: vec![table], tables: true }, at: start }
            } else {
                table
            };
            parent.entries.push((last.clone(), node));
            Ok(())
        }
        Some(existing) => match (&mut existing.value, array) {
            (Value::Array { items, tables: true }, true) => {
                items.push(Node { value: Value::Table(Table::new(TableKind::Header)), at: start });
                Ok(())
            }
            (Value::Table(t), false) if t.kind == TableKind::Implicit => {
                t.kind = TableKind::Header;
                Ok(())
            }
            _ => Err((start, format!("duplicate key `{last}`"))),
        },
    }
}

/// The text of a one-line quoted string (or a bare key) that needs no decoding: no escapes and no
/// characters TOML forbids there. Anything else goes through `toml_parser`'s decoder, which also reports errors.
fn plain_string(raw: &str, kind: Option<Encoding>) -> Option<&str> {
    let inner = match kind {
        Some(Encoding::BasicString) => raw.strip_prefix('"')?.strip_suffix('"')?,
        Some(Encoding::LiteralString) => raw.strip_prefix('\'')?.strip_suffix('\'')?,
        None => {
            return raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                .then_some(raw)
                .filter(|r| !r.is_empty());
        }
        _ => return None,
    };
    let escape_allowed = matches!(kind, Some(Encoding::LiteralString));
    inner.bytes().all(|b| (b >= 0x20 && b != 0x7f && (escape_allowed || b != b'\\')) || b == b'\t').then_some(inner)
}

/// The table at `path` under `table`, creating implicit tables; arrays of tables lead to their last table.
fn navigate<'t, 'a>(
    table: &'t mut Table<'a>,
    path: &[Cow<'a, str>],
    at: usize,
) -> Result<&'t mut Table<'a>, (usize, String)> {
    let mut current = table;
    for key in path {
        if current.get(key).is_none() {
            current.entries.push((key.clone(), Node { value: Value::Table(Table::new(TableKind::Implicit)), at }));
        }
        let node = current.get_mut(key).unwrap();
        current = match &mut node.value {
            Value::Table(t) if t.kind != TableKind::Inline => t,
            Value::Array { items, tables: true } => match items.last_mut().map(|n| &mut n.value) {
                Some(Value::Table(t)) => t,
                _ => return Err((at, format!("`{key}` is not a table"))),
            },
            _ => return Err((at, format!("`{key}` is already defined as a value"))),
        };
    }
    Ok(current)
}

fn insert<'a>(table: &mut Table<'a>, keys: &[(Cow<'a, str>, usize)], node: Node<'a>) -> Result<(), (usize, String)> {
    let Some(((last, at), parents)) = keys.split_last() else {
        return Err((node.at, "a value without a key".to_string()));
    };
    let mut current = table;
    for (key, key_at) in parents {
        if current.get(key).is_none() {
            current
                .entries
                .push((key.clone(), Node { value: Value::Table(Table::new(TableKind::Dotted)), at: *key_at }));
        }
        current = match &mut current.get_mut(key).unwrap().value {
            Value::Table(t) if matches!(t.kind, TableKind::Dotted | TableKind::Implicit) => t,
            _ => return Err((*key_at, format!("duplicate key `{key}`"))),
        };
    }
    if current.get(last).is_some() {
        return Err((*at, format!("duplicate key `{last}`")));
    }
    current.entries.push((last.clone(), node));
    Ok(())
}

impl<'a> EventReceiver for Builder<'a> {
    fn std_table_open(&mut self, span: Span, _error: &mut dyn ErrorSink) {
        self.header = Some((false, Vec::new(), span.start()));
    }
    fn std_table_close(&mut self, _span: Span, _error: &mut dyn ErrorSink) {
        let start = self.header.as_ref().map(|h| h.2).unwrap_or(0);
        self.open_header(start);
    }
    fn array_table_open(&mut self, span: Span, _error: &mut dyn ErrorSink) {
        self.header = Some((true, Vec::new(), span.start()));
    }
    fn array_table_close(&mut self, _span: Span, _error: &mut dyn ErrorSink) {
        let start = self.header.as_ref().map(|h| h.2).unwrap_or(0);
        self.open_header(start);
    }
    fn inline_table_open(&mut self, span: Span, _error: &mut dyn ErrorSink) -> bool {
        self.frames.push(Frame::Inline(Table::new(TableKind::Inline), span.start(), Vec::new()));
        true
    }
    fn inline_table_close(&mut self, _span: Span, _error: &mut dyn ErrorSink) {
        if let Some(Frame::Inline(table, at, _)) = self.frames.pop() {
            self.deliver(Node { value: Value::Table(table), at });
        }
    }
    fn array_open(&mut self, span: Span, _error: &mut dyn ErrorSink) -> bool {
        self.frames.push(Frame::Array(Vec::new(), span.start()));
        true
    }
    fn array_close(&mut self, _span: Span, _error: &mut dyn ErrorSink) {
        if let Some(Frame::Array(items, at)) = self.frames.pop() {
            self.deliver(Node { value: Value::Array { items, tables: false }, at });
        }
    }
    fn simple_key(&mut self, span: Span, kind: Option<Encoding>, error: &mut dyn ErrorSink) {
        let raw = self.raw(span, kind);
        let key: Cow<'a, str> = match plain_string(raw.as_str(), kind) {
            Some(s) => Cow::Borrowed(s),
            None => {
                let mut key: Cow<'a, str> = Cow::Borrowed("");
                raw.decode_key(&mut key, error);
                key
            }
        };
        if let Some((_, keys, _)) = &mut self.header {
            keys.push(key);
            return;
        }
        match self.frames.last_mut() {
            Some(Frame::Inline(_, _, keys)) => keys.push((key, span.start())),
            Some(Frame::Array(..)) => self.fail(span.start(), "a key inside an array".to_string()),
            None => self.pending.push((key, span.start())),
        }
    }
    fn scalar(&mut self, span: Span, kind: Option<Encoding>, error: &mut dyn ErrorSink) {
        let raw = self.raw(span, kind);
        if let Some(s) = plain_string(raw.as_str(), kind).filter(|_| kind.is_some()) {
            self.deliver(Node { value: Value::String(Cow::Borrowed(s)), at: span.start() });
            return;
        }
        let mut out: Cow<'a, str> = Cow::Borrowed("");
        let scalar = raw.decode_scalar(&mut out, error);
        let value = match scalar {
            ScalarKind::String => Value::String(out),
            ScalarKind::Boolean(b) => Value::Boolean(b),
            ScalarKind::DateTime => Value::Datetime(raw.as_str()),
            ScalarKind::Float => match out.parse::<f64>() {
                Ok(f) => Value::Float(f),
                Err(_) => match out.as_ref() {
                    "inf" | "+inf" => Value::Float(f64::INFINITY),
                    "-inf" => Value::Float(f64::NEG_INFINITY),
                    _ => Value::Float(f64::NAN),
                },
            },
            ScalarKind::Integer(radix) => match i64::from_str_radix(&out, radix.value()) {
                Ok(i) => Value::Integer(i),
                Err(_) => {
                    self.fail(span.start(), format!("invalid integer `{}`", raw.as_str()));
                    return;
                }
            },
        };
        self.deliver(Node { value, at: span.start() });
    }
}

/// A direct parser for the TOML that generated lock files use: tables and arrays of tables, bare or plain
/// quoted keys, one-line strings without escapes, decimal integers, booleans, arrays, one-line inline tables,
/// comments. It accepts nothing that is not valid TOML; on anything else (escapes, multi-line strings,
/// floats, dates, an error) it gives up and the `toml_parser` builder takes over.
mod fast {
    use std::borrow::Cow;

    use super::{define_header, insert, navigate, Node, Table, TableKind, Value};

    struct Parser<'a> {
        s: &'a str,
        b: &'a [u8],
        i: usize,
        spare: Vec<(Cow<'a, str>, usize)>,
    }

    pub(super) fn parse(text: &str) -> Option<Table<'_>> {
        let mut p = Parser { s: text, b: text.as_bytes(), i: 0, spare: Vec::new() };
        let mut root = Table::new(TableKind::Implicit);
        let mut table_path: Vec<Cow<'_, str>> = Vec::new();
        loop {
            p.skip_ws();
            match p.peek() {
                None => return Some(root),
                Some(b'\n') => p.i += 1,
                Some(b'\r') => p.newline()?,
                Some(b'#') => p.line_end()?,
                Some(b'[') => {
                    let start = p.i;
                    p.i += 1;
                    let array = p.eat(b'[');
                    p.skip_ws();
                    let keys: Vec<Cow<'_, str>> = p.keys()?.into_iter().map(|(k, _)| k).collect();
                    p.skip_ws();
                    if !p.eat(b']') || (array && !p.eat(b']')) {
                        return None;
                    }
                    p.line_end()?;
                    define_header(&mut root, &keys, array, start).ok()?;
                    table_path = keys;
                }
                Some(_) => {
                    let keys = p.keys()?;
                    p.skip_ws();
                    if !p.eat(b'=') {
                        return None;
                    }
                    p.skip_ws();
                    let value = p.value(0)?;
                    p.line_end()?;
                    let table = navigate(&mut root, &table_path, 0).ok()?;
                    insert(table, &keys, value).ok()?;
                    p.recycle(keys);
                }
            }
        }
    }

    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;

    /// Non-zero when one of the eight bytes of `w` is `quote`, `backslash`, below 0x20 or 0x7f.
    fn special_bytes(w: u64, quote: u8, backslash: u8) -> u64 {
        let zero = |v: u64| v.wrapping_sub(LO) & !v & HI;
        let below_space = w.wrapping_sub(LO * 0x20) & !w & HI;
        zero(w ^ (LO * u64::from(quote))) | zero(w ^ (LO * u64::from(backslash))) | zero(w ^ (LO * 0x7f)) | below_space
    }

    impl<'a> Parser<'a> {
        fn recycle(&mut self, keys: Vec<(Cow<'a, str>, usize)>) {
            if keys.capacity() > self.spare.capacity() {
                self.spare = keys;
            }
        }
        fn peek(&self) -> Option<u8> {
            self.b.get(self.i).copied()
        }
        fn eat(&mut self, c: u8) -> bool {
            if self.peek() == Some(c) {
                self.i += 1;
                true
            } else {
                false
            }
        }
        fn skip_ws(&mut self) {
            while matches!(self.peek(), Some(b' ' | b'\t')) {
                self.i += 1;
            }
        }
        fn newline(&mut self) -> Option<()> {
            if self.eat(b'\n') || (self.eat(b'\r') && self.eat(b'\n')) {
                return Some(());
            }
            None
        }
        /// Whitespace, an optional comment, then a newline or the end.
        fn line_end(&mut self) -> Option<()> {
            self.skip_ws();
            if self.eat(b'#') {
                while let Some(c) = self.peek() {
                    if c == b'\n' || c == b'\r' {
                        break;
                    }
                    if (c < 0x20 && c != b'\t') || c == 0x7f {
                        return None;
                    }
                    self.i += 1;
                }
            }
            if self.peek().is_none() {
                return Some(());
            }
            self.newline()
        }
        /// Whitespace, newlines and comments inside an array.
        fn skip_array_space(&mut self) -> Option<()> {
            loop {
                self.skip_ws();
                match self.peek() {
                    Some(b'\n' | b'\r') => self.newline()?,
                    Some(b'#') => {
                        self.line_end()?;
                    }
                    _ => return Some(()),
                }
            }
        }
        fn key(&mut self) -> Option<(Cow<'a, str>, usize)> {
            let start = self.i;
            if self.peek() == Some(b'"') {
                let text = self.plain_string(b'"')?;
                return Some((Cow::Borrowed(text), start));
            }
            while matches!(self.peek(), Some(c) if c.is_ascii_alphanumeric() || c == b'-' || c == b'_') {
                self.i += 1;
            }
            (self.i > start).then(|| (Cow::Borrowed(&self.s[start..self.i]), start))
        }
        /// A dotted key. The vector is recycled (`recycle`): one allocation serves the whole file.
        fn keys(&mut self) -> Option<Vec<(Cow<'a, str>, usize)>> {
            let mut keys = std::mem::take(&mut self.spare);
            keys.clear();
            keys.push(self.key()?);
            loop {
                let save = self.i;
                self.skip_ws();
                if !self.eat(b'.') {
                    self.i = save;
                    return Some(keys);
                }
                self.skip_ws();
                keys.push(self.key()?);
            }
        }
        /// A one-line string with no escapes and no control characters.
        fn plain_string(&mut self, quote: u8) -> Option<&'a str> {
            self.i += 1;
            if self.peek() == Some(quote) && self.b.get(self.i + 1) == Some(&quote) {
                return None; // multi-line
            }
            let start = self.i;
            let backslash = if quote == b'"' { b'\\' } else { quote };
            loop {
                // Eight bytes at a time while none of them needs a look (SWAR).
                while let Some(chunk) = self.b.get(self.i..self.i + 8) {
                    let w = u64::from_le_bytes(chunk.try_into().unwrap());
                    if special_bytes(w, quote, backslash) != 0 {
                        break;
                    }
                    self.i += 8;
                }
                let c = self.peek()?;
                if c == quote {
                    let text = &self.s[start..self.i];
                    self.i += 1;
                    return Some(text);
                }
                if (c < 0x20 && c != b'\t') || c == 0x7f || (c == b'\\' && quote == b'"') {
                    return None;
                }
                self.i += 1;
            }
        }
        /// A one-line basic string; the common escapes are decoded.
        fn basic_string(&mut self) -> Option<Cow<'a, str>> {
            let save = self.i;
            if let Some(text) = self.plain_string(b'"') {
                return Some(Cow::Borrowed(text));
            }
            self.i = save + 1;
            if self.peek() == Some(b'"') && self.b.get(self.i + 1) == Some(&b'"') {
                return None;
            }
            let mut out = String::new();
            let mut start = self.i;
            loop {
                let c = self.peek()?;
                match c {
                    b'"' => {
                        out.push_str(&self.s[start..self.i]);
                        self.i += 1;
                        return Some(Cow::Owned(out));
                    }
                    b'\\' => {
                        out.push_str(&self.s[start..self.i]);
                        let e = *self.b.get(self.i + 1)?;
                        self.i += 2;
                        match e {
                            b'"' => out.push('"'),
                            b'\\' => out.push('\\'),
                            b'n' => out.push('\n'),
                            b't' => out.push('\t'),
                            b'r' => out.push('\r'),
                            b'b' => out.push('\u{8}'),
                            b'f' => out.push('\u{c}'),
                            b'u' | b'U' => {
                                let n = if e == b'u' { 4 } else { 8 };
                                let hex = self.s.get(self.i..self.i + n)?;
                                if !hex.bytes().all(|h| h.is_ascii_hexdigit()) {
                                    return None;
                                }
                                out.push(char::from_u32(u32::from_str_radix(hex, 16).ok()?)?);
                                self.i += n;
                            }
                            _ => return None,
                        }
                        start = self.i;
                    }
                    c if (c < 0x20 && c != b'\t') || c == 0x7f => return None,
                    _ => self.i += 1,
                }
            }
        }
        fn delimited(&self) -> bool {
            matches!(self.peek(), None | Some(b' ' | b'\t' | b'\n' | b'\r' | b',' | b']' | b'}' | b'#'))
        }
        fn value(&mut self, depth: usize) -> Option<Node<'a>> {
            if depth > 32 {
                return None;
            }
            let at = self.i;
            let value = match self.peek()? {
                b'"' => Value::String(self.basic_string()?),
                b'\'' => Value::String(Cow::Borrowed(self.plain_string(b'\'')?)),
                b't' if self.b[self.i..].starts_with(b"true") => {
                    self.i += 4;
                    Value::Boolean(true)
                }
                b'f' if self.b[self.i..].starts_with(b"false") => {
                    self.i += 5;
                    Value::Boolean(false)
                }
                b'0'..=b'9' | b'-' | b'+' => {
                    let start = self.i;
                    if matches!(self.peek(), Some(b'-' | b'+')) {
                        self.i += 1;
                    }
                    let digits = self.i;
                    while matches!(self.peek(), Some(b'0'..=b'9')) {
                        self.i += 1;
                    }
                    let n = self.i - digits;
                    if n == 0 || (n > 1 && self.b[digits] == b'0') {
                        return None;
                    }
                    Value::Integer(self.s[start..self.i].parse().ok()?)
                }
                b'[' => {
                    self.i += 1;
                    let mut items = Vec::new();
                    loop {
                        self.skip_array_space()?;
                        if self.eat(b']') {
                            break;
                        }
                        items.push(self.value(depth + 1)?);
                        self.skip_array_space()?;
                        if self.eat(b',') {
                            continue;
                        }
                        if self.eat(b']') {
                            break;
                        }
                        return None;
                    }
                    Value::Array { items, tables: false }
                }
                b'{' => {
                    self.i += 1;
                    let mut table = Table::new(TableKind::Inline);
                    self.skip_ws();
                    if !self.eat(b'}') {
                        loop {
                            self.skip_ws();
                            let keys = self.keys()?;
                            self.skip_ws();
                            if !self.eat(b'=') {
                                return None;
                            }
                            self.skip_ws();
                            let value = self.value(depth + 1)?;
                            insert(&mut table, &keys, value).ok()?;
                            self.recycle(keys);
                            self.skip_ws();
                            if self.eat(b',') {
                                continue;
                            }
                            if self.eat(b'}') {
                                break;
                            }
                            return None;
                        }
                    }
                    Value::Table(table)
                }
                _ => return None,
            };
            if !self.delimited() {
                return None;
            }
            Some(Node { value, at })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::expect;

    fn show(node: &Node<'_>) -> String {
        match &node.value {
            Value::String(s) => format!("{s:?}"),
            Value::Integer(i) => i.to_string(),
            Value::Float(f) => f.to_string(),
            Value::Boolean(b) => b.to_string(),
            Value::Datetime(d) => d.to_string(),
            Value::Array { items, tables } => {
                let inner: Vec<String> = items.iter().map(show).collect();
                format!("{}[{}]", if *tables { "aot" } else { "" }, inner.join(", "))
            }
            Value::Table(t) => {
                let inner: Vec<String> = t.iter().map(|(k, v)| format!("{k}={}", show(v))).collect();
                format!("{{{}}}", inner.join(", "))
            }
        }
    }

    #[test]
    fn builds_tables() {
        let text = r#"# comment
[[package]]
name = "a"
files = [{file = "a.whl", hash = "sha256:x"}]

[package.dependencies]
b = ">=1"
c = {version = "*", markers = "python_version < \"3.8\""}

[[package.dependencies.d]]
version = "<6"

[[package]]
name = "b\u00e9"
x.y = 1
"k 2" = 0x1f

[metadata]
lock-version = "2.0"
"#;
        let doc = Document::parse(text, "poetry.lock").unwrap();
        let root = Node { value: Value::Table(doc.root.clone()), at: 0 };
        expect![[r#"{package=aot[{name="a", files=[{file="a.whl", hash="sha256:x"}], dependencies={b=">=1", c={version="*", markers="python_version < \"3.8\""}, d=aot[{version="<6"}]}}, {name="bé", x={y=1}, k 2=31}], metadata={lock-version="2.0"}}"#]]
            .assert_eq(&show(&root));
        let files = doc.root.get("package").unwrap().as_array().unwrap()[0].get("files").unwrap();
        expect!["poetry.lock:4:9"].assert_eq(&doc.location(files));
    }

    #[test]
    fn fast_path_and_full_parser_agree() {
        let texts = [
            "[[package]]\nname = \"a\" # c\nfiles = [\n  {file = \"a\", hash = \"h\"},\n]\n[package.extras]\nx = []\n",
            "a.b = 1\n\"c d\" = [1, [true, false], {x = -3}]\n[t]\n",
            "s = 'lit\\eral'\n",
            "m = \"python_version < \\\"3.8\\\" \\u00e9\\n\"\n",
        ];
        for text in texts {
            let fast = fast::parse(text).unwrap_or_else(|| panic!("fast path gave up on {text:?}"));
            let full = {
                let source = Source::new(text);
                let tokens = source.lex().into_vec();
                let mut b = Builder {
                    source,
                    root: Table::new(TableKind::Implicit),
                    table_path: vec![],
                    header: None,
                    pending: vec![],
                    frames: vec![],
                    error: None,
                };
                let mut errors: Vec<ParseError> = Vec::new();
                toml_parser::parser::parse_document(&tokens, &mut b, &mut errors);
                assert!(errors.is_empty() && b.error.is_none());
                b.root
            };
            let show = |t: Table<'_>| show(&Node { value: Value::Table(t), at: 0 });
            assert_eq!(show(fast), show(full), "{text}");
        }
        // Not handled by the fast path: the full parser takes these.
        for text in [
            "a = \"x\\qy\"\n",
            "a = 1.5\n",
            "a = 1979-05-27\n",
            "a = \"\"\"m\"\"\"\n",
            "a = 01\n",
            "a = {b = 1,}\n",
            "a = 1 b = 2\n",
        ] {
            assert!(fast::parse(text).is_none(), "{text:?}");
        }
    }

    #[test]
    fn errors() {
        let err = |text: &str| Document::parse(text, "poetry.lock").err().unwrap().to_string();
        expect!["poetry.lock:2:5: invalid TOML: extra `=`, expected nothing"].assert_eq(&err("[a]\nb = = 1\n"));
        expect![[r#"poetry.lock:2:1: invalid TOML: duplicate key"#]].assert_eq(&err("a = 1\na = 2\n"));
    }
}
