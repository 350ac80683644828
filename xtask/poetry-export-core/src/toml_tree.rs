//! A fast, read-only TOML tree for large generated files (`poetry.lock` is often megabytes): every table,
//! array and value of a document lives in one vector of 32-byte slots (no allocation per table or array),
//! strings are spans of the text unless they contain escapes, and every value keeps its offset so that errors
//! still say `path:line:col`. Lock files take a direct parser (`fast`); anything it does not read goes through
//! `toml_parser` (the lexer `toml_edit` uses) without `toml_edit`'s formatting-preserving model, which is
//! several times slower. Errors are phrased as `toml_edit` phrases them (its wording, the same first error:
//! syntax before structure), so they read like those of every other TOML file the tool reads, without
//! compiling `toml_edit` into the engine; a test holds the two to the same messages.

use std::borrow::Cow;

use anyhow::{bail, format_err, Result};
use toml_parser::decoder::Encoding;
use toml_parser::decoder::ScalarKind;
use toml_parser::parser::{EventReceiver, RecursionGuard, ValidateWhitespace};
use toml_parser::{ErrorSink, Expected, ParseError, Raw, Source, Span};

/// The end of a list.
const NONE: u32 = u32::MAX;

/// A string of the document: `len` bytes of the text from `start`, or, when `start` is `DECODED`, the decoded
/// string number `len` (one that had escapes). Eight bytes where a `&str` takes sixteen.
#[derive(Debug, Clone, Copy)]
struct Text {
    start: u32,
    len: u32,
}

const DECODED: u32 = u32::MAX;

/// The key of what has none (array items, the root).
const NO_KEY: Text = Text { start: 0, len: 0 };

/// A key, and where it starts.
type Key = (Text, usize);

/// A dotted key.
type Keys = Vec<Key>;

/// The root table's slot.
const ROOT: u32 = 0;

/// The entries of a table or the items of an array: slots linked through `Slot::next`.
#[derive(Debug, Clone, Copy)]
struct List {
    first: u32,
    last: u32,
}

const EMPTY: List = List { first: NONE, last: NONE };

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TableKind {
    /// Created as the parent of a header or a dotted key.
    Implicit,
    /// Defined by a `[header]` (or an element of `[[header]]`).
    Header,
    Dotted,
    Inline,
}

#[derive(Debug)]
enum Stored {
    String(Text),
    Integer(i64),
    Float(f64),
    Boolean(bool),
    Datetime(Text),
    /// The bool is true for an array of tables (`[[name]]`).
    Array(List, bool),
    Table(List, TableKind),
}

/// One value of the document.
#[derive(Debug)]
struct Slot {
    /// Its key in its table.
    key: Text,
    value: Stored,
    /// Where it starts in the text.
    at: u32,
    /// The next entry of its table, or item of its array.
    next: u32,
}

// The module's promise (and the reason for `Text` and `List`): a slot takes 32 bytes.
const _: () = assert!(std::mem::size_of::<Slot>() <= 32);

/// The document's values, as the parsers build them.
struct Slots<'a> {
    text: &'a str,
    all: Vec<Slot>,
    /// Strings that had escapes, decoded.
    decoded: Vec<String>,
}

impl<'a> Slots<'a> {
    fn new(text: &'a str) -> Slots<'a> {
        // About one value per 40 bytes of a lock file (33 to 44 in the conformance locks): room for one per 32
        // bytes, so that the vector does not grow.
        let mut all = Vec::with_capacity(text.len() / 32 + 1);
        all.push(Slot { key: NO_KEY, value: Stored::Table(EMPTY, TableKind::Implicit), at: 0, next: NONE });
        Slots { text, all, decoded: Vec::new() }
    }

    /// The string `t`.
    fn str(&self, t: Text) -> &str {
        if t.start == DECODED {
            return self.decoded[t.len as usize].as_str();
        }
        // Texts are made by `span` and the direct parser, inside `text` and at char boundaries.
        &self.text[t.start as usize..t.start as usize + t.len as usize]
    }

    /// The span of `s`, a slice of the text.
    fn span(&self, s: &str) -> Text {
        let start = s.as_ptr() as usize - self.text.as_ptr() as usize;
        debug_assert!(start + s.len() <= self.text.len());
        Text { start: start as u32, len: s.len() as u32 }
    }

    /// A string of the text, or a decoded one.
    fn text_of(&mut self, s: Cow<'a, str>) -> Text {
        match s {
            Cow::Borrowed(s) => self.span(s),
            Cow::Owned(s) => self.decoded(s),
        }
    }

    fn decoded(&mut self, s: String) -> Text {
        self.decoded.push(s);
        Text { start: DECODED, len: (self.decoded.len() - 1) as u32 }
    }

    fn push(&mut self, value: Stored, at: usize) -> u32 {
        let id = self.all.len() as u32;
        self.all.push(Slot { key: NO_KEY, value, at: at as u32, next: NONE });
        id
    }

    fn list(&self, owner: u32) -> List {
        match self.all[owner as usize].value {
            Stored::Array(list, _) | Stored::Table(list, _) => list,
            _ => EMPTY,
        }
    }

    /// Adds `id` at the end of the table or array `owner`.
    fn append(&mut self, owner: u32, id: u32) {
        let mut list = self.list(owner);
        if list.last == NONE {
            list.first = id;
        } else {
            self.all[list.last as usize].next = id;
        }
        list.last = id;
        if let Stored::Array(l, _) | Stored::Table(l, _) = &mut self.all[owner as usize].value {
            *l = list;
        }
    }

    /// The entry `key` of the table `table`.
    fn find(&self, table: u32, key: &str) -> Option<u32> {
        let mut id = self.list(table).first;
        while id != NONE {
            let slot = &self.all[id as usize];
            if self.is(slot.key, key) {
                return Some(id);
            }
            id = slot.next;
        }
        None
    }

    /// Whether the string `t` is `s` (lengths first: most keys differ in length). Byte by byte, without slicing
    /// the text: at opt-level 1 a `str` slice is a call.
    fn is(&self, t: Text, s: &str) -> bool {
        let s = s.as_bytes();
        let (text, start, len) = if t.start == DECODED {
            let decoded = self.decoded[t.len as usize].as_bytes();
            (decoded, 0, decoded.len())
        } else {
            (self.text.as_bytes(), t.start as usize, t.len as usize)
        };
        if len != s.len() {
            return false;
        }
        let mut i = 0;
        while i < len && text[start + i] == s[i] {
            i += 1;
        }
        i == len
    }

    /// Adds a new table `key` to `parent`.
    fn add_table(&mut self, parent: u32, key: Text, kind: TableKind, at: usize) -> u32 {
        let id = self.push(Stored::Table(EMPTY, kind), at);
        self.all[id as usize].key = key;
        self.append(parent, id);
        id
    }

    fn table_kind(&self, id: u32) -> Option<TableKind> {
        match self.all[id as usize].value {
            Stored::Table(_, kind) => Some(kind),
            _ => None,
        }
    }
}

/// `[keys]` or `[[keys]]`: defines the table (or appends one to the array of tables) and returns it.
fn define_header(slots: &mut Slots<'_>, keys: &[Key], array: bool, start: usize) -> Result<u32, (usize, String)> {
    let Some(((last, _), parents)) = keys.split_last() else { return Err((start, "empty table name".into())) };
    let parent = navigate(slots, parents)?;
    match slots.find(parent, slots.str(*last)) {
        None => {
            if array {
                let id = slots.push(Stored::Array(EMPTY, true), start);
                slots.all[id as usize].key = *last;
                slots.append(parent, id);
                let table = slots.push(Stored::Table(EMPTY, TableKind::Header), start);
                slots.append(id, table);
                Ok(table)
            } else {
                Ok(slots.add_table(parent, *last, TableKind::Header, start))
            }
        }
        Some(existing) => match (&mut slots.all[existing as usize].value, array) {
            (Stored::Array(_, true), true) => {
                let table = slots.push(Stored::Table(EMPTY, TableKind::Header), start);
                slots.append(existing, table);
                Ok(table)
            }
            (Stored::Table(_, kind), false) if *kind == TableKind::Implicit => {
                *kind = TableKind::Header;
                Ok(existing)
            }
            _ => Err((keys[keys.len() - 1].1, "duplicate key".to_string())),
        },
    }
}

/// The table at `path` under the root, creating implicit tables; arrays of tables lead to their last table.
fn navigate(slots: &mut Slots<'_>, path: &[Key]) -> Result<u32, (usize, String)> {
    let mut current = ROOT;
    for &(key, at) in path {
        let Some(id) = slots.find(current, slots.str(key)) else {
            current = slots.add_table(current, key, TableKind::Implicit, at);
            continue;
        };
        current = match slots.all[id as usize].value {
            Stored::Table(_, kind) if kind != TableKind::Inline => id,
            Stored::Array(list, true) if slots.table_kind(list.last).is_some() => list.last,
            _ => return Err((at, cannot_extend(slots, id))),
        };
    }
    Ok(current)
}

/// `toml_edit`'s message for a dotted key (or a header) that goes through the value `id`.
fn cannot_extend(slots: &Slots<'_>, id: u32) -> String {
    let kind = match slots.all[id as usize].value {
        Stored::String(_) => "string",
        Stored::Integer(_) => "integer",
        Stored::Float(_) => "float",
        Stored::Boolean(_) => "boolean",
        Stored::Datetime(_) => "datetime",
        Stored::Array(_, false) => "array",
        Stored::Array(_, true) => "array of tables",
        Stored::Table(_, TableKind::Inline) => "inline table",
        Stored::Table(..) => "table",
    };
    format!("cannot extend value of type {kind} with a dotted key")
}

/// Adds the value `value` under the (dotted) `keys` to `table`, creating dotted tables.
fn insert(slots: &mut Slots<'_>, table: u32, keys: &[Key], value: u32) -> Result<(), (usize, String)> {
    let Some((last, parents)) = keys.split_last() else {
        return Err((slots.all[value as usize].at as usize, "a value without a key".to_string()));
    };
    // Inside an inline table, `toml_edit` calls any clash with an inline table a duplicate key.
    let inline = slots.table_kind(table) == Some(TableKind::Inline);
    let mut current = table;
    for &(key, key_at) in parents {
        current = match slots.find(current, slots.str(key)) {
            None => slots.add_table(current, key, TableKind::Dotted, key_at),
            Some(id) => match slots.table_kind(id) {
                Some(TableKind::Dotted | TableKind::Implicit) => id,
                Some(TableKind::Header) => return Err((key_at, "duplicate key".to_string())),
                Some(TableKind::Inline) if inline => return Err((key_at, "duplicate key".to_string())),
                // An array of tables: `toml_edit` goes on into its last table, then refuses the key.
                None if matches!(slots.all[id as usize].value, Stored::Array(_, true)) => {
                    return Err((last.1, "duplicate key".to_string()))
                }
                _ => return Err((key_at, cannot_extend(slots, id))),
            },
        };
    }
    insert_one(slots, current, *last, value)
}

/// Adds the value `value` under `key` to `table`.
fn insert_one(slots: &mut Slots<'_>, table: u32, key: Key, value: u32) -> Result<(), (usize, String)> {
    if slots.find(table, slots.str(key.0)).is_some() {
        return Err((key.1, "duplicate key".to_string()));
    }
    slots.all[value as usize].key = key.0;
    slots.append(table, value);
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------
// Reading the tree
// ---------------------------------------------------------------------------------------------------------

/// A parsed document and where it came from.
pub struct Document<'a> {
    pub text: &'a str,
    pub display: String,
    slots: Slots<'a>,
}

/// A value of a document (a cheap handle: copy it freely).
#[derive(Clone, Copy)]
pub struct Node<'d> {
    slots: &'d Slots<'d>,
    id: u32,
}

/// A table of a document.
#[derive(Clone, Copy)]
pub struct Table<'d> {
    slots: &'d Slots<'d>,
    id: u32,
}

/// A value, as `Node::value` shows it.
pub enum Value<'d> {
    String(&'d str),
    Integer(i64),
    Float(f64),
    Boolean(bool),
    Datetime(&'d str),
    Array(Items<'d>),
    Table(Table<'d>),
}

/// The items of an array, in order.
#[derive(Clone)]
pub struct Items<'d> {
    slots: &'d Slots<'d>,
    next: u32,
}

impl<'d> Iterator for Items<'d> {
    type Item = Node<'d>;
    fn next(&mut self) -> Option<Node<'d>> {
        if self.next == NONE {
            return None;
        }
        let node = Node { slots: self.slots, id: self.next };
        self.next = self.slots.all[self.next as usize].next;
        Some(node)
    }
}

/// The entries of a table, in document order.
pub struct Entries<'d> {
    slots: &'d Slots<'d>,
    next: u32,
}

impl<'d> Iterator for Entries<'d> {
    type Item = (&'d str, Node<'d>);
    fn next(&mut self) -> Option<(&'d str, Node<'d>)> {
        if self.next == NONE {
            return None;
        }
        let slot = &self.slots.all[self.next as usize];
        let entry = (self.slots.str(slot.key), Node { slots: self.slots, id: self.next });
        self.next = slot.next;
        Some(entry)
    }
}

impl<'d> Table<'d> {
    fn list(self) -> List {
        self.slots.list(self.id)
    }
    pub fn get(self, key: &str) -> Option<Node<'d>> {
        self.slots.find(self.id, key).map(|id| Node { slots: self.slots, id })
    }
    pub fn iter(self) -> Entries<'d> {
        Entries { slots: self.slots, next: self.list().first }
    }
    pub fn is_empty(self) -> bool {
        self.list().first == NONE
    }
}

impl<'d> Node<'d> {
    fn slot(self) -> &'d Slot {
        &self.slots.all[self.id as usize]
    }
    /// Where the value starts in the text.
    pub fn at(self) -> usize {
        self.slot().at as usize
    }
    pub fn value(self) -> Value<'d> {
        match &self.slot().value {
            Stored::String(s) => Value::String(self.slots.str(*s)),
            Stored::Integer(i) => Value::Integer(*i),
            Stored::Float(f) => Value::Float(*f),
            Stored::Boolean(b) => Value::Boolean(*b),
            Stored::Datetime(d) => Value::Datetime(self.slots.str(*d)),
            Stored::Array(list, _) => Value::Array(Items { slots: self.slots, next: list.first }),
            Stored::Table(..) => Value::Table(Table { slots: self.slots, id: self.id }),
        }
    }
    pub fn as_str(self) -> Option<&'d str> {
        match &self.slot().value {
            Stored::String(s) => Some(self.slots.str(*s)),
            _ => None,
        }
    }
    pub fn is_str(self) -> bool {
        matches!(self.slot().value, Stored::String(_))
    }
    pub fn as_bool(self) -> Option<bool> {
        match self.slot().value {
            Stored::Boolean(b) => Some(b),
            _ => None,
        }
    }
    pub fn as_table(self) -> Option<Table<'d>> {
        match self.slot().value {
            Stored::Table(..) => Some(Table { slots: self.slots, id: self.id }),
            _ => None,
        }
    }
    /// The items of an array or of an array of tables.
    pub fn as_array(self) -> Option<Items<'d>> {
        match self.slot().value {
            Stored::Array(list, _) => Some(Items { slots: self.slots, next: list.first }),
            _ => None,
        }
    }
    pub fn get(self, key: &str) -> Option<Node<'d>> {
        self.as_table().and_then(|t| t.get(key))
    }
}

impl<'a> Document<'a> {
    /// Parses `text`; `display` names the file in messages.
    pub fn parse(text: &'a str, display: &str) -> Result<Document<'a>> {
        if u32::try_from(text.len()).is_err() {
            bail!("{display} is too large (4 GiB or more)");
        }
        if let Some(slots) = fast::parse(text) {
            return Ok(Document { text, display: display.to_string(), slots });
        }
        match Builder::parse(text) {
            Ok(slots) => Ok(Document { text, display: display.to_string(), slots }),
            Err((at, message)) => {
                let (line, col) = line_col(text, at);
                let message = message.trim_end().replace('\n', " ");
                Err(format_err!("{display}:{line}:{col}: invalid TOML: {message}"))
            }
        }
    }

    /// The top-level table.
    pub fn root(&self) -> Table<'_> {
        Table { slots: &self.slots, id: ROOT }
    }

    /// `path:line:col` of a value.
    pub fn location(&self, node: Node<'_>) -> String {
        let (line, col) = line_col(self.text, node.at());
        format!("{}:{line}:{col}", self.display)
    }

    /// An error pointing at `node`: `path:line:col: message`.
    pub fn error_at(&self, node: Node<'_>, message: impl std::fmt::Display) -> anyhow::Error {
        format_err!("{}: {message}", self.location(node))
    }
}

/// 1-based line and column (in characters) of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let col = text[line_start..offset].chars().count() + 1;
    (line, col)
}

// ---------------------------------------------------------------------------------------------------------
// The general parser: `toml_parser`'s events
// ---------------------------------------------------------------------------------------------------------

/// How deep arrays and inline tables may nest (`toml_edit`'s limit).
const MAX_NESTING: u32 = 80;

/// A `toml_parser` error as `toml_edit` words it: the description, then what was expected.
fn describe(error: &ParseError) -> String {
    let mut message = error.description().to_string();
    if let Some(expected) = error.expected() {
        message.push_str(", expected ");
        if expected.is_empty() {
            message.push_str("nothing");
        }
        for (i, expected) in expected.iter().enumerate() {
            if i != 0 {
                message.push_str(", ");
            }
            match expected {
                Expected::Literal("\n") => message.push_str("newline"),
                Expected::Literal("`") => message.push_str("'`'"),
                Expected::Literal(s) if s.chars().all(|c| c.is_ascii_control()) => {
                    message.push_str(&format!("`{}`", s.escape_debug()))
                }
                Expected::Literal(s) => message.push_str(&format!("`{s}`")),
                Expected::Description(s) => message.push_str(s),
                _ => message.push_str("etc"),
            }
        }
    }
    message
}

enum Frame {
    /// An array being read.
    Array(u32),
    /// An inline table being read, and the keys of its value being read.
    Inline(u32, Keys),
}

struct Builder<'a> {
    source: Source<'a>,
    slots: Slots<'a>,
    /// The current `[table]`.
    current: u32,
    /// Keys of the header being read: (is an array of tables, keys, start).
    header: Option<(bool, Keys, usize)>,
    /// Keys of the key/value being read at the top level.
    pending: Keys,
    frames: Vec<Frame>,
    error: Option<(usize, String)>,
}

impl<'a> Builder<'a> {
    /// The values of `text`, or the first error (the tree's, else `toml_parser`'s) and where it is.
    fn parse(text: &'a str) -> Result<Slots<'a>, (usize, String)> {
        let source = Source::new(text);
        let tokens = source.lex().into_vec();
        let mut builder = Builder {
            source,
            slots: Slots::new(text),
            current: ROOT,
            header: None,
            pending: Vec::new(),
            frames: Vec::new(),
            error: None,
        };
        // The first syntax error, else the first error in the values and tables: `toml_edit`'s order, with the
        // same checks of whitespace and comments and the same limit on nesting.
        let mut syntax: Option<ParseError> = None;
        {
            let mut whitespace = ValidateWhitespace::new(&mut builder, source);
            let mut nesting = RecursionGuard::new(&mut whitespace, MAX_NESTING);
            toml_parser::parser::parse_document(&tokens, &mut nesting, &mut syntax);
        }
        match syntax.map(|e| (e.unexpected().map_or(0, |s| s.start()), describe(&e))).or(builder.error) {
            None => Ok(builder.slots),
            Some(error) => Err(error),
        }
    }

    /// Records an error of decoding (a bad escape, a bad number) in its place among the tree's errors.
    fn decoding(&mut self, error: Option<ParseError>) {
        if let Some(e) = error {
            self.fail(e.unexpected().map_or(0, |s| s.start()), describe(&e));
        }
    }

    fn fail(&mut self, at: usize, message: String) {
        if self.error.is_none() {
            self.error = Some((at, message));
        }
    }

    fn raw(&self, span: Span, encoding: Option<Encoding>) -> Raw<'a> {
        let text = &self.source.input()[span.start()..span.end()];
        Raw::new_unchecked(text, encoding, span)
    }

    fn deliver(&mut self, value: u32) {
        let result = match self.frames.last_mut() {
            Some(Frame::Array(array)) => {
                self.slots.append(*array, value);
                Ok(())
            }
            Some(Frame::Inline(table, keys)) => {
                let (table, keys) = (*table, std::mem::take(keys));
                insert(&mut self.slots, table, &keys, value)
            }
            None => {
                let keys = std::mem::take(&mut self.pending);
                insert(&mut self.slots, self.current, &keys, value)
            }
        };
        if let Err((at, m)) = result {
            self.fail(at, m);
        }
    }

    /// At the end of a `[header]` or `[[header]]`: defines its table, the current one from now on.
    fn open_header(&mut self) {
        let Some((array, keys, start)) = self.header.take() else { return };
        match define_header(&mut self.slots, &keys, array, start) {
            Ok(table) => self.current = table,
            Err((at, m)) => self.fail(at, m),
        }
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

impl<'a> EventReceiver for Builder<'a> {
    fn std_table_open(&mut self, span: Span, _error: &mut dyn ErrorSink) {
        self.header = Some((false, Vec::new(), span.start()));
    }
    fn std_table_close(&mut self, _span: Span, _error: &mut dyn ErrorSink) {
        self.open_header();
    }
    fn array_table_open(&mut self, span: Span, _error: &mut dyn ErrorSink) {
        self.header = Some((true, Vec::new(), span.start()));
    }
    fn array_table_close(&mut self, _span: Span, _error: &mut dyn ErrorSink) {
        self.open_header();
    }
    fn inline_table_open(&mut self, span: Span, _error: &mut dyn ErrorSink) -> bool {
        let table = self.slots.push(Stored::Table(EMPTY, TableKind::Inline), span.start());
        self.frames.push(Frame::Inline(table, Vec::new()));
        true
    }
    fn inline_table_close(&mut self, _span: Span, _error: &mut dyn ErrorSink) {
        if let Some(Frame::Inline(table, _)) = self.frames.pop() {
            self.deliver(table);
        }
    }
    fn array_open(&mut self, span: Span, _error: &mut dyn ErrorSink) -> bool {
        let array = self.slots.push(Stored::Array(EMPTY, false), span.start());
        self.frames.push(Frame::Array(array));
        true
    }
    fn array_close(&mut self, _span: Span, _error: &mut dyn ErrorSink) {
        if let Some(Frame::Array(array)) = self.frames.pop() {
            self.deliver(array);
        }
    }
    fn simple_key(&mut self, span: Span, kind: Option<Encoding>, _error: &mut dyn ErrorSink) {
        let raw = self.raw(span, kind);
        let key = match plain_string(raw.as_str(), kind) {
            Some(s) => self.slots.span(s),
            None => {
                let mut key: Cow<'a, str> = Cow::Borrowed("");
                let mut error = None;
                raw.decode_key(&mut key, &mut error);
                self.decoding(error);
                self.slots.text_of(key)
            }
        };
        if let Some((_, keys, _)) = &mut self.header {
            keys.push((key, span.start()));
            return;
        }
        match self.frames.last_mut() {
            Some(Frame::Inline(_, keys)) => keys.push((key, span.start())),
            Some(Frame::Array(..)) => self.fail(span.start(), "a key inside an array".to_string()),
            None => self.pending.push((key, span.start())),
        }
    }
    fn scalar(&mut self, span: Span, kind: Option<Encoding>, _error: &mut dyn ErrorSink) {
        let raw = self.raw(span, kind);
        let value = match plain_string(raw.as_str(), kind).filter(|_| kind.is_some()) {
            Some(s) => Stored::String(self.slots.span(s)),
            None => {
                let mut out: Cow<'a, str> = Cow::Borrowed("");
                let mut error = None;
                let decoded = raw.decode_scalar(&mut out, &mut error);
                self.decoding(error);
                match decoded {
                    ScalarKind::String => Stored::String(self.slots.text_of(out)),
                    ScalarKind::Boolean(b) => Stored::Boolean(b),
                    ScalarKind::DateTime => Stored::Datetime(self.slots.span(raw.as_str())),
                    ScalarKind::Float => match out.parse::<f64>() {
                        Ok(f) => Stored::Float(f),
                        Err(_) => match out.as_ref() {
                            "inf" | "+inf" => Stored::Float(f64::INFINITY),
                            "-inf" => Stored::Float(f64::NEG_INFINITY),
                            _ => Stored::Float(f64::NAN),
                        },
                    },
                    ScalarKind::Integer(radix) => match i64::from_str_radix(&out, radix.value()) {
                        Ok(i) => Stored::Integer(i),
                        Err(_) => {
                            // The decoder checked the digits: what is left is overflow.
                            self.fail(span.start(), "integer number overflowed".to_string());
                            return;
                        }
                    },
                }
            }
        };
        let id = self.slots.push(value, span.start());
        self.deliver(id);
    }
}

// ---------------------------------------------------------------------------------------------------------
// The direct parser
// ---------------------------------------------------------------------------------------------------------

/// A direct parser for the TOML that generated lock files use: tables and arrays of tables, bare or plain
/// quoted keys, one-line strings, decimal integers, booleans, arrays, one-line inline tables, comments. It
/// accepts nothing that is not valid TOML; on anything else (multi-line strings, floats, dates, an error) it
/// gives up and the `toml_parser` builder takes over.
///
/// Written with indexing and plain loops: `cargo xtask` runs an unoptimized build of the dependencies, and
/// std's generic helpers (`Option::copied`, `slice::get`...) would come from there, uninlined.
mod fast {
    use super::{define_header, insert, insert_one, Key, Keys, Slots, Stored, TableKind, Text, EMPTY, ROOT};

    struct Parser<'a> {
        s: &'a str,
        b: &'a [u8],
        i: usize,
        slots: Slots<'a>,
        /// The vector of dotted keys, reused from one to the next.
        spare: Keys,
    }

    pub(super) fn parse(text: &str) -> Option<Slots<'_>> {
        let mut p = Parser { s: text, b: text.as_bytes(), i: 0, slots: Slots::new(text), spare: Vec::new() };
        let mut table = ROOT;
        loop {
            p.skip_ws();
            if p.i == p.b.len() {
                return Some(p.slots);
            }
            match p.b[p.i] {
                b'\n' => p.i += 1,
                b'\r' => p.newline()?,
                b'#' => p.line_end()?,
                b'[' => {
                    let start = p.i;
                    p.i += 1;
                    let array = p.eat(b'[');
                    p.skip_ws();
                    let first = p.key()?;
                    let keys = p.dotted(first)?;
                    p.skip_ws();
                    if !p.eat(b']') || (array && !p.eat(b']')) {
                        return None;
                    }
                    p.line_end()?;
                    table = define_header(&mut p.slots, &keys, array, start).ok()?;
                    p.spare = keys;
                }
                _ => {
                    p.key_value(table, 0)?;
                    p.line_end()?;
                }
            }
        }
    }

    /// Whether a byte may appear as is in a one-line string delimited by `quote`: not the quote, not a
    /// backslash in a basic string, no control character but tab.
    fn plain_byte(c: u8, quote: u8) -> bool {
        (c >= 0x20 || c == b'\t') && c != 0x7f && c != quote && !(c == b'\\' && quote == b'"')
    }

    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;

    /// The high bit of each of the eight bytes of `w` that may need a look in a string delimited by
    /// `quote`: the quote, a backslash, below 0x20, 0x7f and above. The lowest set bit is exact (the higher
    /// ones may be false positives).
    fn special_bytes(w: u64, quote: u8) -> u64 {
        let zero = |v: u64| v.wrapping_sub(LO) & !v & HI;
        zero(w ^ (LO * u64::from(quote)))
            | zero(w ^ (LO * u64::from(b'\\')))
            | (w.wrapping_sub(LO * 0x20) & !w & HI)
            | ((w | w.wrapping_add(LO)) & HI)
    }

    /// The first byte of `b` from `i` on that may need a look in a string delimited by `quote` (see
    /// `special_bytes`), or the end: sixteen bytes at a time (two words, independent), then eight, then one.
    fn skip_plain(b: &[u8], mut i: usize, quote: u8) -> usize {
        while let Some(&[b0, b1, b2, b3, b4, b5, b6, b7, b8, b9, b10, b11, b12, b13, b14, b15]) = b.get(i..i + 16) {
            let low = special_bytes(u64::from_le_bytes([b0, b1, b2, b3, b4, b5, b6, b7]), quote);
            let high = special_bytes(u64::from_le_bytes([b8, b9, b10, b11, b12, b13, b14, b15]), quote);
            if low | high != 0 {
                let special = if low != 0 { low.trailing_zeros() } else { 64 + high.trailing_zeros() };
                return i + (special / 8) as usize;
            }
            i += 16;
        }
        if let Some(&[b0, b1, b2, b3, b4, b5, b6, b7]) = b.get(i..i + 8) {
            let special = special_bytes(u64::from_le_bytes([b0, b1, b2, b3, b4, b5, b6, b7]), quote);
            if special != 0 {
                return i + (special.trailing_zeros() / 8) as usize;
            }
            i += 8;
        }
        while i < b.len() && plain_byte(b[i], quote) {
            i += 1;
        }
        i
    }

    impl<'a> Parser<'a> {
        /// The current byte; 0 at the end (a NUL is never valid where the parser looks).
        fn byte(&self) -> u8 {
            if self.i < self.b.len() {
                self.b[self.i]
            } else {
                0
            }
        }
        fn byte_at(&self, i: usize) -> u8 {
            if i < self.b.len() {
                self.b[i]
            } else {
                0
            }
        }
        /// The span from `start` to the current position.
        fn span(&self, start: usize) -> Text {
            Text { start: start as u32, len: (self.i - start) as u32 }
        }
        /// The text from `start` to the current position.
        fn cut(&self, start: usize) -> &'a str {
            // `start <= i <= len`, and the parser cuts only next to ASCII bytes (char boundaries).
            &self.s[start..self.i]
        }
        fn eat(&mut self, c: u8) -> bool {
            if self.i < self.b.len() && self.b[self.i] == c {
                self.i += 1;
                true
            } else {
                false
            }
        }
        fn skip_ws(&mut self) {
            while self.i < self.b.len() && (self.b[self.i] == b' ' || self.b[self.i] == b'\t') {
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
                while self.i < self.b.len() {
                    let c = self.b[self.i];
                    if c == b'\n' || c == b'\r' {
                        break;
                    }
                    if (c < 0x20 && c != b'\t') || c == 0x7f {
                        return None;
                    }
                    self.i += 1;
                }
            }
            if self.i == self.b.len() {
                return Some(());
            }
            self.newline()
        }
        /// Whitespace, newlines and comments inside an array.
        fn skip_array_space(&mut self) -> Option<()> {
            loop {
                self.skip_ws();
                match self.byte() {
                    b'\n' | b'\r' => self.newline()?,
                    b'#' => self.line_end()?,
                    _ => return Some(()),
                }
            }
        }
        /// A bare key or a plain quoted one.
        fn key(&mut self) -> Option<Key> {
            let start = self.i;
            if self.byte() == b'"' {
                return Some((self.plain_string(b'"')?, start));
            }
            while self.i < self.b.len() {
                let c = self.b[self.i];
                if !(c.is_ascii_alphanumeric() || c == b'-' || c == b'_') {
                    break;
                }
                self.i += 1;
            }
            if self.i == start {
                return None;
            }
            Some((self.span(start), start))
        }
        /// Whether a `.` follows (after whitespace): the key is dotted.
        fn dot_follows(&self) -> bool {
            let mut i = self.i;
            while i < self.b.len() && (self.b[i] == b' ' || self.b[i] == b'\t') {
                i += 1;
            }
            i < self.b.len() && self.b[i] == b'.'
        }
        /// The rest of a dotted key that starts with `first`, in the reused vector `spare` (give it back).
        fn dotted(&mut self, first: Key) -> Option<Keys> {
            let mut keys = std::mem::take(&mut self.spare);
            keys.clear();
            keys.push(first);
            while self.dot_follows() {
                self.skip_ws();
                self.i += 1;
                self.skip_ws();
                keys.push(self.key()?);
            }
            Some(keys)
        }
        /// `key = value` into `table`.
        fn key_value(&mut self, table: u32, depth: usize) -> Option<()> {
            let first = self.key()?;
            if !self.dot_follows() {
                let value = self.assigned(depth)?;
                return insert_one(&mut self.slots, table, first, value).ok();
            }
            let keys = self.dotted(first)?;
            let value = self.assigned(depth)?;
            insert(&mut self.slots, table, &keys, value).ok()?;
            self.spare = keys;
            Some(())
        }
        /// `= value`, after a key.
        fn assigned(&mut self, depth: usize) -> Option<u32> {
            self.skip_ws();
            if !self.eat(b'=') {
                return None;
            }
            self.skip_ws();
            self.value(depth)
        }
        /// A one-line string with no escapes and no control characters.
        fn plain_string(&mut self, quote: u8) -> Option<Text> {
            self.i += 1;
            if self.byte() == quote && self.byte_at(self.i + 1) == quote {
                return None; // multi-line
            }
            let start = self.i;
            loop {
                self.i = skip_plain(self.b, self.i, quote);
                if self.i == self.b.len() {
                    return None;
                }
                let c = self.b[self.i];
                if c == quote {
                    let text = self.span(start);
                    self.i += 1;
                    return Some(text);
                }
                if !plain_byte(c, quote) {
                    return None; // an escape or a control character
                }
                self.i += 1;
            }
        }
        /// A one-line basic string; the common escapes are decoded.
        fn basic_string(&mut self) -> Option<Text> {
            let save = self.i;
            if let Some(text) = self.plain_string(b'"') {
                return Some(text);
            }
            self.i = save + 1;
            if self.byte() == b'"' && self.byte_at(self.i + 1) == b'"' {
                return None;
            }
            let mut out = String::new();
            let mut start = self.i;
            loop {
                if self.i == self.b.len() {
                    return None;
                }
                match self.b[self.i] {
                    b'"' => {
                        out.push_str(self.cut(start));
                        self.i += 1;
                        return Some(self.slots.decoded(out));
                    }
                    b'\\' => {
                        out.push_str(self.cut(start));
                        let e = self.byte_at(self.i + 1);
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
            self.i == self.b.len() || matches!(self.b[self.i], b' ' | b'\t' | b'\n' | b'\r' | b',' | b']' | b'}' | b'#')
        }
        fn starts_with(&self, word: &[u8]) -> bool {
            self.i + word.len() <= self.b.len() && &self.b[self.i..self.i + word.len()] == word
        }
        /// `{file = "...", hash = "..."}` exactly as Poetry writes the entries of `files` (most of a lock),
        /// stored as the general path stores it; `None` (nothing read) for anything else.
        fn file_entry(&mut self) -> Option<u32> {
            let start = self.i;
            let entry = self.file_entry_fields();
            if entry.is_none() {
                self.i = start;
            }
            entry
        }
        fn file_entry_fields(&mut self) -> Option<u32> {
            let at = self.i;
            if !self.starts_with(b"{file = \"") {
                return None;
            }
            self.i += 8;
            let file_key = Text { start: at as u32 + 1, len: 4 };
            let file_at = self.i;
            let file = self.plain_string(b'"')?;
            if !self.starts_with(b", hash = \"") {
                return None;
            }
            let hash_key = Text { start: self.i as u32 + 2, len: 4 };
            self.i += 9;
            let hash_at = self.i;
            let hash = self.plain_string(b'"')?;
            if !self.eat(b'}') || !self.delimited() {
                return None;
            }
            let table = self.slots.push(Stored::Table(EMPTY, TableKind::Inline), at);
            for (key, value, value_at) in [(file_key, file, file_at), (hash_key, hash, hash_at)] {
                let id = self.slots.push(Stored::String(value), value_at);
                self.slots.all[id as usize].key = key;
                self.slots.append(table, id);
            }
            Some(table)
        }
        /// A value, stored; returns its slot.
        fn value(&mut self, depth: usize) -> Option<u32> {
            if depth > 32 || self.i == self.b.len() {
                return None;
            }
            let at = self.i;
            let value = match self.b[self.i] {
                b'"' => Stored::String(self.basic_string()?),
                b'\'' => Stored::String(self.plain_string(b'\'')?),
                b't' if self.starts_with(b"true") => {
                    self.i += 4;
                    Stored::Boolean(true)
                }
                b'f' if self.starts_with(b"false") => {
                    self.i += 5;
                    Stored::Boolean(false)
                }
                b'0'..=b'9' | b'-' | b'+' => {
                    let start = self.i;
                    if self.b[self.i] == b'-' || self.b[self.i] == b'+' {
                        self.i += 1;
                    }
                    let digits = self.i;
                    while self.byte().is_ascii_digit() {
                        self.i += 1;
                    }
                    let n = self.i - digits;
                    if n == 0 || (n > 1 && self.b[digits] == b'0') {
                        return None;
                    }
                    Stored::Integer(self.cut(start).parse().ok()?)
                }
                b'[' => {
                    self.i += 1;
                    let array = self.slots.push(Stored::Array(EMPTY, false), at);
                    loop {
                        self.skip_array_space()?;
                        if self.eat(b']') {
                            break;
                        }
                        let item = self.value(depth + 1)?;
                        self.slots.append(array, item);
                        self.skip_array_space()?;
                        if self.eat(b',') {
                            continue;
                        }
                        if self.eat(b']') {
                            break;
                        }
                        return None;
                    }
                    return self.delimited().then_some(array);
                }
                b'{' => {
                    if let Some(table) = self.file_entry() {
                        return Some(table);
                    }
                    self.i += 1;
                    let table = self.slots.push(Stored::Table(EMPTY, TableKind::Inline), at);
                    self.skip_ws();
                    if !self.eat(b'}') {
                        loop {
                            self.skip_ws();
                            self.key_value(table, depth + 1)?;
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
                    return self.delimited().then_some(table);
                }
                _ => return None,
            };
            if !self.delimited() {
                return None;
            }
            Some(self.slots.push(value, at))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::expect;

    fn show(node: Node<'_>) -> String {
        match node.value() {
            Value::String(s) => format!("{s:?}"),
            Value::Integer(i) => i.to_string(),
            Value::Float(f) => f.to_string(),
            Value::Boolean(b) => b.to_string(),
            Value::Datetime(d) => d.to_string(),
            Value::Array(items) => {
                let tables = matches!(node.slot().value, Stored::Array(_, true));
                let inner: Vec<String> = items.map(show).collect();
                format!("{}[{}]", if tables { "aot" } else { "" }, inner.join(", "))
            }
            Value::Table(t) => show_table(t),
        }
    }

    fn show_table(table: Table<'_>) -> String {
        let inner: Vec<String> = table.iter().map(|(k, v)| format!("{k}={}", show(v))).collect();
        format!("{{{}}}", inner.join(", "))
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
        expect![[r#"{package=aot[{name="a", files=[{file="a.whl", hash="sha256:x"}], dependencies={b=">=1", c={version="*", markers="python_version < \"3.8\""}, d=aot[{version="<6"}]}}, {name="bé", x={y=1}, k 2=31}], metadata={lock-version="2.0"}}"#]]
            .assert_eq(&show_table(doc.root()));
        let files = doc.root().get("package").unwrap().as_array().unwrap().next().unwrap().get("files").unwrap();
        expect!["poetry.lock:4:9"].assert_eq(&doc.location(files));
    }

    #[test]
    fn fast_path_and_full_parser_agree() {
        let texts = [
            "[[package]]\nname = \"a\" # c\nfiles = [\n  {file = \"a\", hash = \"h\"},\n]\n[package.extras]\nx = []\n",
            "a.b = 1\n\"c d\" = [1, [true, false], {x = -3}]\n[t]\n",
            "s = 'lit\\eral'\n",
            "m = \"python_version < \\\"3.8\\\" \\u00e9\\n\"\n",
            "[a.b]\nx = 1\n[a]\ny = {p.q = 2, r = [[], [{}]]}\n[[c]]\n[[c]]\nz.w = 3\n[c.d]\n",
            // Poetry's file entries (read by a shortcut), and others like them.
            "files = [\n    {file = \"a-1.0-py3-none-any.whl\", hash = \"sha256:0123456789abcdef0123456789\"},\n    \
             {file = \"b\", hash = \"c\"}, {file = \"x\", hash = \"y\", z = 1}, {file = \"é\\n\", hash = \"\"},\n]\n",
            // Long strings: sixteen bytes at a time, stopping at non-ASCII bytes and backslashes.
            "s = 'a long literal string with a \\ backslash and é non-ASCII characters in it'\n",
            "k = \"a long basic string with é non-ASCII characters, and a tab\there, past sixteen bytes\"\n",
        ];
        let agree = |text: &str| {
            let fast = fast::parse(text).unwrap_or_else(|| panic!("fast path gave up on {text:?}"));
            let full = Builder::parse(text).unwrap_or_else(|(at, m)| panic!("{text:?}: {at}: {m}"));
            let show = |s: &Slots<'_>| show_table(Table { slots: s, id: ROOT });
            assert_eq!(show(&fast), show(&full), "{text}");
            // Values in the same order at the same offsets.
            let offsets = |s: &Slots<'_>| -> Vec<u32> {
                let mut v: Vec<u32> = s.all.iter().map(|slot| slot.at).collect();
                v.sort();
                v
            };
            assert_eq!(offsets(&fast), offsets(&full), "{text}");
        };
        for text in texts {
            agree(text);
        }
        // Strings of every length up to 40 with a byte to look at in every position: the scan, sixteen and eight
        // bytes at a time, must stop at the first one, near the end of the text too.
        let specials = [("\"", "\\n"), ("\"", "é"), ("\"", "\t"), ("\"", "'"), ("'", "\\"), ("'", "\""), ("'", "é")];
        for len in 0..40 {
            for at in 0..len {
                for (quote, special) in specials {
                    let (before, after) = ("a".repeat(at), "b".repeat(len - at - 1));
                    agree(&format!("s = {quote}{before}{special}{after}{quote}\n"));
                    agree(&format!("s = {quote}{before}{special}{after}{quote}\nt = {quote}{after}{quote}\n"));
                }
            }
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
            "a = \"sixteen bytes and more, then a control character \u{1}\"\n",
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

    /// Every error reads as `toml_edit` (which the rest of the tool reads TOML with) words it, at the same place.
    #[test]
    fn errors_read_like_toml_edit() {
        let texts = [
            // Syntax.
            "[a]\nb = = 1\n",
            "a = \"x\n",
            "a = 'x\n",
            "a = \"\"\"abc\n",
            "a = 1 b = 2\n",
            "a = 1,\n",
            "[a\nb = 1\n",
            "[[a]\n",
            "[a]]\n",
            "[]\n",
            "a = [1, 2\n",
            "a = [1 2]\n",
            "a = [1,,2]\n",
            "a = {b = 1,}\n",
            "a = {b = 1\n",
            "a = {b = 1\n}\n",
            "a = {b}\n",
            "a\n",
            "= 1\n",
            "a = \n",
            "a.b. = 1\n",
            "a = tru\n",
            "a = 1.\n",
            "a = 1e\n",
            "a = 1 # a comment with a control character \u{1}\n",
            "a = 1\rb = 2\n",
            "# \u{7f}\n",
            &format!("a = {}1{}\n", "[".repeat(90), "]".repeat(90)),
            &format!("a = {}\n", "{b = ".repeat(90) + "1" + &"}".repeat(90)),
            // Decoding.
            "a = \"x\\qy\"\n",
            "a = \"\\uD800\"\n",
            "a = 01\n",
            "a = 1__2\n",
            "a = 0x\n",
            "a = 0xZ\n",
            "a = 99999999999999999999\n",
            "\"a\\q\" = 1\n",
            "a = \"\"\"x\\q\"\"\"\n",
            // Structure.
            "a = 1\na = 2\n",
            "\"a\" = 1\na = 2\n",
            "[a]\n[a]\n",
            "[a]\nb = 1\n[a]\n",
            "a = 1\n[a]\n",
            "a = 1\na.b = 2\n",
            "a = \"s\"\na.b = 2\n",
            "a = true\na.b = 2\n",
            "a = 1.5\na.b = 2\n",
            "a = [1]\na.b = 2\n",
            "a = {b = 1}\na.c = 2\n",
            "a = [1]\n[a.b]\n",
            "a = {}\n[a.b]\n",
            "a = 1\n[a.b]\n",
            "a = 1\n[a.b.c]\n",
            "[a]\nb = 1\n[a.b]\n",
            "[[a]]\n[a]\n",
            "[a]\n[[a]]\n",
            "a = 1\n[[a]]\n",
            "[a]\nx = 1\n[[a]]\n",
            "[[a]]\nb = 1\n[a.b]\n",
            "a.b = 1\n[a]\n",
            "a.b.c = 1\n[a.b]\n",
            "a.b = 1\n[a.b.c]\n",
            "[a]\nb.c = 1\n[a.b]\n",
            "[a.b]\n[a]\nb = 1\n",
            "[a.b]\nc = 1\n[a]\nb.d = 1\n",
            "[[x.a]]\n[x]\na = 1\n",
            "[[x.a]]\n[x]\na.b = 1\n",
            "a = {b = 1, b = 2}\n",
            "a = {b = {}, b.c = 1}\n",
            "a = {b = 1, b.c = 1}\n",
            "a = {b.c = 1, b = 2}\n",
            "a = [{b = 1, b = 2}]\n",
            // Several errors: the first syntax error, else the first other one.
            "x = \"\\q\"\na = 1\na = 2\n",
            "a = 1\na = 2\nb = = 3\n",
            "a = 99999999999999999999\nb = \"\\q\"\n",
        ];
        let theirs = |text: &str| {
            let e = toml_edit::Document::parse(text).err()?;
            let (line, col) = line_col(text, e.span().map_or(0, |s| s.start));
            Some(format!("poetry.lock:{line}:{col}: invalid TOML: {}", e.message().trim_end().replace('\n', " ")))
        };
        let ours = |text: &str| Document::parse(text, "poetry.lock").err().map(|e| e.to_string());
        let differ: Vec<String> = texts
            .iter()
            .filter(|text| ours(text) != theirs(text))
            .map(|text| format!("{text:?}: ours {:?}, toml_edit {:?}", ours(text), theirs(text)))
            .collect();
        assert!(differ.is_empty(), "{differ:#?}");
    }
}
