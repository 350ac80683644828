//! A TOML file read with its spans kept, so that a bad value becomes `path:line:col: what is wrong`.

use std::ops::Range;
use std::path::Path;

use anyhow::{format_err, Context, Result};
use toml_edit::{Document, Item};

/// A parsed TOML file: the text, the immutable document (with spans) and where it came from.
pub(crate) struct TomlFile {
    /// The path as shown in messages (relative to the workspace when possible).
    pub(crate) display: String,
    pub(crate) doc: Document<String>,
}

impl TomlFile {
    /// Reads and parses `path`. `display` is how the file is named in messages.
    pub(crate) fn read(path: &Path, display: &str) -> Result<TomlFile> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {display}"))?;
        TomlFile::parse(display, text)
    }

    pub(crate) fn parse(display: &str, text: String) -> Result<TomlFile> {
        match Document::parse(text.clone()) {
            Ok(doc) => Ok(TomlFile { display: display.to_string(), doc }),
            Err(e) => {
                let at = e.span().map(|s| s.start).unwrap_or(0);
                let (line, col) = line_col(&text, at);
                let message = e.message().trim_end().replace('\n', " ");
                Err(format_err!("{display}:{line}:{col}: invalid TOML: {message}"))
            }
        }
    }

    /// `path:line:col` of a byte offset in the file.
    pub(crate) fn location(&self, offset: usize) -> String {
        let (line, col) = line_col(self.doc.raw(), offset);
        format!("{}:{line}:{col}", self.display)
    }

    /// `path:line:col` of an item (a value or a table), or just the path when the item has no span.
    pub(crate) fn location_of(&self, item: &Item) -> String {
        match span_of(item) {
            Some(span) => self.location(span.start),
            None => self.display.clone(),
        }
    }

    /// An error pointing at `item`: `path:line:col: message`.
    pub(crate) fn error_at(&self, item: &Item, message: impl std::fmt::Display) -> anyhow::Error {
        format_err!("{}: {message}", self.location_of(item))
    }
}

fn span_of(item: &Item) -> Option<Range<usize>> {
    match item {
        Item::None => None,
        Item::Value(v) => v.span(),
        Item::Table(t) => t.span(),
        Item::ArrayOfTables(a) => a.span(),
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let col = text[line_start..offset].chars().count() + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::expect;

    #[test]
    fn syntax_error_names_line_and_column() {
        let err = TomlFile::parse("app/pyproject.toml", "[a]\nb = = 1\n".into()).err().unwrap();
        expect!["app/pyproject.toml:2:5: invalid TOML: extra `=`, expected nothing"].assert_eq(&err.to_string());
    }

    #[test]
    fn value_location() {
        let file = TomlFile::parse("p.toml", "[t]\nport = 'x'\n".into()).unwrap();
        let item = &file.doc["t"]["port"];
        expect!["p.toml:2:8: port must be an integer"]
            .assert_eq(&file.error_at(item, "port must be an integer").to_string());
    }
}
