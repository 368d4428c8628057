//! Lexer and parser for xl.cfg / xm files: `KEY = VALUE` settings separated by newlines or
//! `;`, `#` comments, values that are strings ('...' or "..."), numbers (decimal, `0x` hex,
//! `0` octal), or `[ ... ]` lists (nested, trailing comma allowed). For xm's Python
//! heritage it also accepts `True`/`False`, a leading minus, `"a" + "b"` string
//! concatenation and triple-quoted strings; any other Python gives a syntax error with its position.
use crate::error::{ConfigError, Span};

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(String),
    Num(i64),
    List(Vec<Spanned>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Spanned {
    pub value: Value,
    /// Byte offset of the value in the text.
    pub offset: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Setting {
    pub key: String,
    pub key_offset: usize,
    pub value: Spanned,
}

/// Lists nest at most this deep (keeps the recursive parser's stack bounded).
const MAX_DEPTH: usize = 32;

struct Parser<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    source: &'a str,
}

/// Parse the whole file into its settings, in order.
pub fn parse(text: &str, source: &str) -> Result<Vec<Setting>, ConfigError> {
    let mut p = Parser {
        text,
        bytes: text.as_bytes(),
        pos: 0,
        source,
    };
    let mut out = Vec::new();
    loop {
        p.skip_blank(true);
        let Some(c) = p.peek() else { break };
        if c == b';' {
            p.pos += 1;
            continue;
        }
        if !(c.is_ascii_alphabetic() || c == b'_') {
            return Err(p.error("expected a setting name"));
        }
        let key_offset = p.pos;
        let key = p.ident();
        p.skip_blank(false);
        if p.peek() != Some(b'=') {
            return Err(p.error(&format!("expected `=` after `{key}`")));
        }
        p.pos += 1;
        p.skip_blank(false);
        let value = p.value(0)?;
        p.skip_blank(false);
        match p.peek() {
            None | Some(b'\n' | b';' | b'\r') => {}
            Some(_) => return Err(p.error("expected a newline or `;` after the value")),
        }
        out.push(Setting {
            key,
            key_offset,
            value,
        });
    }
    Ok(out)
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn span(&self, offset: usize) -> Span {
        Span::at_offset(self.source, self.text, offset)
    }

    fn rest(&self) -> &str {
        self.text.get(self.pos..).unwrap_or("")
    }

    fn error(&self, message: &str) -> ConfigError {
        ConfigError::syntax(self.span(self.pos), message, self.rest())
    }

    /// Skip spaces, tabs, comments and line continuations; newlines too when `newlines`.
    fn skip_blank(&mut self, newlines: bool) {
        while let Some(c) = self.peek() {
            match c {
                b' ' | b'\t' | b'\r' => self.pos += 1,
                b'\n' if newlines => self.pos += 1,
                b'\\' if self.bytes.get(self.pos + 1) == Some(&b'\n') => self.pos += 2,
                b'#' => {
                    while self.peek().is_some_and(|c| c != b'\n') {
                        self.pos += 1;
                    }
                }
                _ => break,
            }
        }
    }

    fn ident(&mut self) -> String {
        let start = self.pos;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'.')
        {
            self.pos += 1;
        }
        self.text.get(start..self.pos).unwrap_or("").to_string()
    }

    fn value(&mut self, depth: usize) -> Result<Spanned, ConfigError> {
        let offset = self.pos;
        let value = match self.peek() {
            None => return Err(self.error("expected a value")),
            Some(b'"' | b'\'') => {
                let mut s = self.string()?;
                // xm (Python) concatenation of string literals.
                loop {
                    let save = self.pos;
                    self.skip_blank(false);
                    if self.peek() != Some(b'+') {
                        self.pos = save;
                        break;
                    }
                    self.pos += 1;
                    self.skip_blank(false);
                    if !matches!(self.peek(), Some(b'"' | b'\'')) {
                        return Err(self.error("only string literals can be joined with `+`"));
                    }
                    s.push_str(&self.string()?);
                }
                Value::Str(s)
            }
            Some(b'[') => {
                if depth >= MAX_DEPTH {
                    return Err(self.error("lists nest too deeply"));
                }
                self.pos += 1;
                let mut items = Vec::new();
                loop {
                    self.skip_blank(true);
                    match self.peek() {
                        Some(b']') => {
                            self.pos += 1;
                            break;
                        }
                        None => return Err(self.error("unterminated list: expected `]`")),
                        _ => {}
                    }
                    items.push(self.value(depth + 1)?);
                    self.skip_blank(true);
                    match self.peek() {
                        Some(b',') => self.pos += 1,
                        Some(b']') => {}
                        None => return Err(self.error("unterminated list: expected `]`")),
                        Some(_) => return Err(self.error("expected `,` or `]` in a list")),
                    }
                }
                Value::List(items)
            }
            Some(c) if c.is_ascii_digit() || c == b'-' => Value::Num(self.number()?),
            Some(c) if c.is_ascii_alphabetic() => {
                let word = self.ident();
                match word.as_str() {
                    "True" => Value::Num(1),
                    "False" => Value::Num(0),
                    _ => {
                        self.pos = offset;
                        return Err(self.error(&format!(
                            "`{word}` is not a value: quote strings (\"...\"); expressions and variables are not supported"
                        )));
                    }
                }
            }
            Some(_) => return Err(self.error("expected a value: a string, a number or a list")),
        };
        Ok(Spanned { value, offset })
    }

    fn number(&mut self) -> Result<i64, ConfigError> {
        let start = self.pos;
        let negative = self.peek() == Some(b'-');
        if negative {
            self.pos += 1;
        }
        let digits_start = self.pos;
        while self.peek().is_some_and(|c| c.is_ascii_alphanumeric()) {
            self.pos += 1;
        }
        let digits = self.text.get(digits_start..self.pos).unwrap_or("");
        let parsed = if let Some(hex) = digits.strip_prefix("0x").or(digits.strip_prefix("0X")) {
            i64::from_str_radix(hex, 16)
        } else if digits.len() > 1 && digits.starts_with('0') {
            i64::from_str_radix(&digits[1..], 8)
        } else {
            digits.parse::<i64>()
        };
        match parsed {
            Ok(n) if !digits.is_empty() => Ok(if negative { -n } else { n }),
            _ => {
                let found = self.text.get(start..self.pos).unwrap_or("");
                Err(ConfigError::syntax(
                    self.span(start),
                    "not a number (decimal, 0x hex or 0 octal)",
                    found,
                ))
            }
        }
    }

    fn string(&mut self) -> Result<String, ConfigError> {
        let start = self.pos;
        let Some(quote) = self.peek() else {
            return Err(self.error("expected a string"));
        };
        // Python's triple-quoted strings (three quotes of either kind), which xm files use
        // for values holding the other quote: they may hold lone quotes and newlines.
        let triple = [quote; 3];
        let is_triple = self.bytes.get(self.pos..self.pos + 3) == Some(&triple[..]);
        self.pos += if is_triple { 3 } else { 1 };
        let mut out = String::new();
        loop {
            if is_triple && self.bytes.get(self.pos..self.pos + 3) == Some(&triple[..]) {
                self.pos += 3;
                break;
            }
            let rest = self.rest();
            let Some(c) = rest.chars().next() else {
                return Err(ConfigError::syntax(
                    self.span(start),
                    "unterminated string",
                    self.text.get(start..).unwrap_or(""),
                ));
            };
            self.pos += c.len_utf8();
            match c {
                '\n' if is_triple => out.push(c),
                '\n' => {
                    return Err(ConfigError::syntax(
                        self.span(start),
                        "unterminated string (strings end on the line they start)",
                        self.text.get(start..).unwrap_or(""),
                    ));
                }
                c if c as u32 == u32::from(quote) && !is_triple => break,
                '\\' => {
                    let esc_at = self.pos - 1;
                    let Some(e) = self.rest().chars().next() else {
                        continue;
                    };
                    self.pos += e.len_utf8();
                    match e {
                        'n' => out.push('\n'),
                        't' => out.push('\t'),
                        'r' => out.push('\r'),
                        '\\' | '\'' | '"' => out.push(e),
                        '\n' => {}
                        'x' => {
                            let hex = self.text.get(self.pos..self.pos + 2).unwrap_or("");
                            match u8::from_str_radix(hex, 16) {
                                Ok(b) if b.is_ascii() => {
                                    out.push(char::from(b));
                                    self.pos += 2;
                                }
                                _ => {
                                    return Err(ConfigError::syntax(
                                        self.span(esc_at),
                                        "bad \\x escape (two hex digits, below 0x80)",
                                        self.text.get(esc_at..).unwrap_or(""),
                                    ));
                                }
                            }
                        }
                        other => {
                            // Python keeps unknown escapes as written.
                            out.push('\\');
                            out.push(other);
                        }
                    }
                }
                c => out.push(c),
            }
        }
        Ok(out)
    }
}

/// Quote a string for xl: double quotes, escaping what needs it.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Value {
        let s = parse(text, "t.cfg").expect("parses");
        assert_eq!(s.len(), 1);
        s[0].value.value.clone()
    }

    #[test]
    fn values() {
        assert_eq!(one("a = 'x'"), Value::Str("x".into()));
        assert_eq!(one("a = \"x\\\"y\\n\""), Value::Str("x\"y\n".into()));
        assert_eq!(one("a = 0x10"), Value::Num(16));
        assert_eq!(one("a = 010"), Value::Num(8));
        assert_eq!(one("a = -5"), Value::Num(-5));
        assert_eq!(one("a = True"), Value::Num(1));
        assert_eq!(
            one("a = '/boot/' + \"vmlinuz\""),
            Value::Str("/boot/vmlinuz".into())
        );
        // libvirt's test-escape-paths.cfg: a triple-quoted string holding both quotes.
        assert_eq!(
            one(r#"a = """phy:/dev/HostVG/XenGuest'",hdb,w""""#),
            Value::Str(r#"phy:/dev/HostVG/XenGuest'",hdb,w"#.into())
        );
        assert_eq!(one("a = '''x\ny'''"), Value::Str("x\ny".into()));
        assert_eq!(one("a = \"\""), Value::Str(String::new()));
        assert!(parse("a = \"\"\"open", "t").is_err());
        let Value::List(items) = one("a = [ 'x', [1, 2],\n  'y', # c\n]") else {
            panic!("not a list")
        };
        assert_eq!(items.len(), 3);
    }

    #[test]
    fn separators_and_comments() {
        let s = parse(
            "# head\nname=\"h0\"; type=\"hvm\"\n\n  vcpus = 2 # two\n",
            "t",
        )
        .expect("ok");
        let keys: Vec<&str> = s.iter().map(|s| s.key.as_str()).collect();
        assert_eq!(keys, ["name", "type", "vcpus"]);
    }

    #[test]
    fn errors_have_line_and_column() {
        let e = parse("name = 'a'\nkernel = '/boot/vmlinuz-' + krn\n", "g.cfg").err();
        assert_eq!(
            e.map(|e| e.to_string()).as_deref(),
            Some(
                "g.cfg:2:29: syntax error: only string literals can be joined with `+` (at `krn`)"
            )
        );
        let e = parse("memory 512\n", "g.cfg").err().map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some("g.cfg:1:8: syntax error: expected `=` after `memory` (at `512`)")
        );
        let e = parse("a = 'abc\nb = 1", "g.cfg")
            .err()
            .map(|e| e.to_string());
        assert!(
            e.as_deref()
                .is_some_and(|e| e.starts_with("g.cfg:1:5: syntax error: unterminated")),
            "{e:?}"
        );
        let e = parse("a = [1, 2", "g.cfg").err().map(|e| e.to_string());
        assert!(
            e.as_deref().is_some_and(|e| e.starts_with("g.cfg:1:10:")),
            "{e:?}"
        );
        let e = parse("a = 12abc", "g.cfg").err().map(|e| e.to_string());
        assert!(
            e.as_deref()
                .is_some_and(|e| e.contains("1:5") && e.contains("12abc")),
            "{e:?}"
        );
        let e = parse("a = krn_vers", "g.cfg").err().map(|e| e.to_string());
        assert!(
            e.as_deref()
                .is_some_and(|e| e.contains("`krn_vers` is not a value")),
            "{e:?}"
        );
        let e = parse("a = 1 2", "g.cfg").err().map(|e| e.to_string());
        assert!(e.as_deref().is_some_and(|e| e.contains("1:7")), "{e:?}");
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let text = format!("a = {}", "[".repeat(10_000));
        assert!(parse(&text, "t").is_err());
    }

    #[test]
    fn quote_round_trips() {
        for s in ["plain", "a\"b", "back\\slash", "tab\tnl\n", "\u{1}", "ünï"] {
            let text = format!("a = {}", quote(s));
            assert_eq!(one(&text), Value::Str(s.to_string()), "{text}");
        }
    }
}
