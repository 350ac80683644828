//! JSON, read and written (pure): the engines' answers (`docker manifest inspect`), the SBOM and `push --json`.
//! Small on purpose: a value tree, a strict parser and a writer whose output is the same bytes for the same
//! value (objects keep their keys in the order given), which the reproducible SBOM needs.

use std::fmt::Write as _;

use anyhow::{bail, Result};

/// A JSON value. Numbers are kept as their text, so that what is read is written back unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Json {
    Null,
    Bool(bool),
    Number(String),
    String(String),
    Array(Vec<Json>),
    /// Keys in the order they came (or were given); no two equal keys.
    Object(Vec<(String, Json)>),
}

impl Json {
    /// `{"key": value, ...}` from pairs, in their order.
    pub(crate) fn object<K: Into<String>>(pairs: impl IntoIterator<Item = (K, Json)>) -> Json {
        Json::Object(pairs.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }

    pub(crate) fn string(text: impl Into<String>) -> Json {
        Json::String(text.into())
    }

    pub(crate) fn number(n: u64) -> Json {
        Json::Number(n.to_string())
    }

    /// The member `key` of an object.
    pub(crate) fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Object(members) => members.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            Json::String(s) => Some(s),
            _ => None,
        }
    }

    /// A number that is a whole `u64`.
    pub(crate) fn as_u64(&self) -> Option<u64> {
        match self {
            Json::Number(n) => n.parse().ok(),
            _ => None,
        }
    }

    pub(crate) fn as_array(&self) -> Option<&[Json]> {
        match self {
            Json::Array(items) => Some(items),
            _ => None,
        }
    }

    /// The value as compact JSON text.
    pub(crate) fn to_compact(&self) -> String {
        let mut out = String::new();
        self.write(&mut out, None, 0);
        out
    }

    /// The value as JSON text indented by two spaces, with a final line break.
    pub(crate) fn to_pretty(&self) -> String {
        let mut out = String::new();
        self.write(&mut out, Some(2), 0);
        out.push('\n');
        out
    }

    fn write(&self, out: &mut String, indent: Option<usize>, depth: usize) {
        let newline = |out: &mut String, depth: usize| {
            if let Some(width) = indent {
                out.push('\n');
                out.push_str(&" ".repeat(width * depth));
            }
        };
        match self {
            Json::Null => out.push_str("null"),
            Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Json::Number(n) => out.push_str(n),
            Json::String(s) => quote(out, s),
            Json::Array(items) if items.is_empty() => out.push_str("[]"),
            Json::Object(members) if members.is_empty() => out.push_str("{}"),
            Json::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    newline(out, depth + 1);
                    item.write(out, indent, depth + 1);
                }
                newline(out, depth);
                out.push(']');
            }
            Json::Object(members) => {
                out.push('{');
                for (i, (key, value)) in members.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    newline(out, depth + 1);
                    quote(out, key);
                    out.push_str(if indent.is_some() { ": " } else { ":" });
                    value.write(out, indent, depth + 1);
                }
                newline(out, depth);
                out.push('}');
            }
        }
    }
}

/// `text` as a JSON string literal.
fn quote(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Parses one JSON document (surrounding white space allowed).
pub(crate) fn parse(text: &str) -> Result<Json> {
    let mut parser = Parser { bytes: text.as_bytes(), at: 0 };
    let value = parser.value(0)?;
    parser.space();
    if parser.at != parser.bytes.len() {
        bail!("unexpected text after the JSON value at byte {}", parser.at);
    }
    Ok(value)
}

struct Parser<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Parser<'_> {
    fn space(&mut self) {
        while self.bytes.get(self.at).is_some_and(|b| b" \t\r\n".contains(b)) {
            self.at += 1;
        }
    }

    fn expect(&mut self, byte: u8) -> Result<()> {
        self.space();
        if self.bytes.get(self.at) != Some(&byte) {
            bail!("expected '{}' at byte {} of the JSON text", byte as char, self.at);
        }
        self.at += 1;
        Ok(())
    }

    fn value(&mut self, depth: usize) -> Result<Json> {
        if depth > 128 {
            bail!("JSON nested too deeply");
        }
        self.space();
        let rest = &self.bytes[self.at..];
        let literal = |word: &str| rest.starts_with(word.as_bytes());
        match rest.first() {
            None => bail!("unexpected end of the JSON text"),
            Some(b'{') => {
                self.at += 1;
                let mut members = Vec::new();
                self.space();
                if self.bytes.get(self.at) == Some(&b'}') {
                    self.at += 1;
                    return Ok(Json::Object(members));
                }
                loop {
                    self.space();
                    let key = self.string()?;
                    self.expect(b':')?;
                    let value = self.value(depth + 1)?;
                    if members.iter().any(|(k, _)| *k == key) {
                        bail!("the key {key:?} appears twice in a JSON object");
                    }
                    members.push((key, value));
                    self.space();
                    match self.bytes.get(self.at) {
                        Some(b',') => self.at += 1,
                        Some(b'}') => {
                            self.at += 1;
                            return Ok(Json::Object(members));
                        }
                        _ => bail!("expected ',' or '}}' at byte {} of the JSON text", self.at),
                    }
                }
            }
            Some(b'[') => {
                self.at += 1;
                let mut items = Vec::new();
                self.space();
                if self.bytes.get(self.at) == Some(&b']') {
                    self.at += 1;
                    return Ok(Json::Array(items));
                }
                loop {
                    items.push(self.value(depth + 1)?);
                    self.space();
                    match self.bytes.get(self.at) {
                        Some(b',') => self.at += 1,
                        Some(b']') => {
                            self.at += 1;
                            return Ok(Json::Array(items));
                        }
                        _ => bail!("expected ',' or ']' at byte {} of the JSON text", self.at),
                    }
                }
            }
            Some(b'"') => Ok(Json::String(self.string()?)),
            Some(_) if literal("true") => {
                self.at += 4;
                Ok(Json::Bool(true))
            }
            Some(_) if literal("false") => {
                self.at += 5;
                Ok(Json::Bool(false))
            }
            Some(_) if literal("null") => {
                self.at += 4;
                Ok(Json::Null)
            }
            Some(b'-' | b'0'..=b'9') => {
                let start = self.at;
                self.at += 1;
                while self.bytes.get(self.at).is_some_and(|b| b"0123456789.eE+-".contains(b)) {
                    self.at += 1;
                }
                let number = std::str::from_utf8(&self.bytes[start..self.at]).unwrap_or_default();
                if number.parse::<f64>().is_err() {
                    bail!("invalid number {number:?} in the JSON text");
                }
                Ok(Json::Number(number.to_string()))
            }
            Some(_) => bail!("unexpected character at byte {} of the JSON text", self.at),
        }
    }

    fn string(&mut self) -> Result<String> {
        if self.bytes.get(self.at) != Some(&b'"') {
            bail!("expected a string at byte {} of the JSON text", self.at);
        }
        self.at += 1;
        let mut out: Vec<u8> = Vec::new();
        loop {
            let Some(&byte) = self.bytes.get(self.at) else { bail!("unterminated string in the JSON text") };
            self.at += 1;
            match byte {
                b'"' => break,
                b'\\' => {
                    let Some(&escape) = self.bytes.get(self.at) else { bail!("unterminated string in the JSON text") };
                    self.at += 1;
                    let c = match escape {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let first = self.hex4()?;
                            let code = if (0xd800..0xdc00).contains(&first) && self.bytes[self.at..].starts_with(b"\\u")
                            {
                                self.at += 2;
                                let second = self.hex4()?;
                                0x10000 + ((first - 0xd800) << 10) + (second.wrapping_sub(0xdc00) & 0x3ff)
                            } else {
                                first
                            };
                            char::from_u32(code).unwrap_or('\u{fffd}')
                        }
                        _ => bail!("invalid escape in a JSON string at byte {}", self.at),
                    };
                    let mut buffer = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buffer).as_bytes());
                }
                byte => out.push(byte),
            }
        }
        String::from_utf8(out).map_err(|_| anyhow::format_err!("a JSON string is not UTF-8"))
    }

    fn hex4(&mut self) -> Result<u32> {
        let digits = self.bytes.get(self.at..self.at + 4).and_then(|d| std::str::from_utf8(d).ok());
        let Some(code) = digits.and_then(|d| u32::from_str_radix(d, 16).ok()) else {
            bail!("invalid \\u escape in a JSON string at byte {}", self.at);
        };
        self.at += 4;
        Ok(code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_it_writes() {
        let text = r#" {"a": [1, -2.5e3, true, false, null], "b": {"c": "x\"y\\z\u00e9\ud83d\ude00\n"}, "e": []} "#;
        let value = parse(text).unwrap();
        assert_eq!(value.get("b").and_then(|b| b.get("c")).and_then(Json::as_str), Some("x\"y\\zé😀\n"));
        assert_eq!(value.to_compact(), r#"{"a":[1,-2.5e3,true,false,null],"b":{"c":"x\"y\\zé😀\n"},"e":[]}"#);
        assert_eq!(parse(&value.to_pretty()).unwrap(), value);
        assert_eq!(
            Json::object([("k", Json::Array(vec![Json::number(1)])), ("o", Json::object::<&str>([]))]).to_pretty(),
            "{\n  \"k\": [\n    1\n  ],\n  \"o\": {}\n}\n"
        );
        assert_eq!(Json::string("\u{1}").to_compact(), "\"\\u0001\"");
    }

    #[test]
    fn refuses_what_is_not_json() {
        for bad in ["", "{", "[1,]", "{\"a\" 1}", "tru", "\"x", "1 2", "{\"a\":1,\"a\":2}", "-"] {
            assert!(parse(bad).is_err(), "{bad:?} parsed");
        }
    }
}
