//! S-expressions as xend prints them: `(key value ...)` lists of atoms and lists. Atoms
//! are bare (`hvm`, `tcp:localhost:9999,server,nowait`) or quoted with `'` or `"` (with
//! backslash escapes). A backslash before a newline continues the line, as in libvirt's
//! test files. Also the writers: compact (one line) and indented (readable diffs).
use crate::error::{ConfigError, Span, Warning};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sexp {
    Atom { text: String, offset: usize },
    List { items: Vec<Sexp>, offset: usize },
}

impl Sexp {
    pub fn atom(s: impl Into<String>) -> Sexp {
        Sexp::Atom {
            text: s.into(),
            offset: 0,
        }
    }

    pub fn list(items: Vec<Sexp>) -> Sexp {
        Sexp::List { items, offset: 0 }
    }

    /// `(key value)`.
    pub fn pair(key: &str, value: impl Into<String>) -> Sexp {
        Sexp::list(vec![Sexp::atom(key), Sexp::atom(value)])
    }

    pub fn offset(&self) -> usize {
        match self {
            Sexp::Atom { offset, .. } | Sexp::List { offset, .. } => *offset,
        }
    }

    pub fn as_atom(&self) -> Option<&str> {
        match self {
            Sexp::Atom { text, .. } => Some(text),
            Sexp::List { .. } => None,
        }
    }

    pub fn items(&self) -> &[Sexp] {
        match self {
            Sexp::List { items, .. } => items,
            Sexp::Atom { .. } => &[],
        }
    }

    /// The head atom of a list: `vm` in `(vm ...)`.
    pub fn head(&self) -> Option<&str> {
        self.items().first().and_then(Sexp::as_atom)
    }
}

/// Lists nest at most this deep.
const MAX_DEPTH: usize = 64;

/// Parse one S-expression (the whole text).
pub fn parse(text: &str, source: &str) -> Result<Sexp, ConfigError> {
    let mut p = P {
        text,
        pos: 0,
        source,
    };
    p.blank();
    if p.pos >= text.len() {
        return Err(ConfigError::syntax(
            Span::at_offset(source, text, p.pos),
            "empty file: expected `(`",
            "",
        ));
    }
    if p.peek() != Some('(') {
        return Err(p.error("expected `(` to start the expression"));
    }
    let e = p.expr(0)?;
    p.blank();
    if p.pos < text.len() {
        return Err(p.error("unexpected text after the closing `)`"));
    }
    Ok(e)
}

/// Parse as libvirt's S-expression reader does where it closes lists still open at the end
/// of the text (two of libvirt's own xend test files rely on that); the repair is reported
/// as a warning with its position. A stray `)` after the expression stays an error.
pub fn parse_lenient(text: &str, source: &str) -> Result<(Sexp, Vec<Warning>), ConfigError> {
    let end = Span::at_offset(source, text, text.len());
    let err = match parse(text, source) {
        Ok(e) => return Ok((e, Vec::new())),
        Err(e) => e,
    };
    let msg = err.to_string();
    if msg.contains("unclosed `(`") {
        // Close what is open at the end, as libvirt does (a few at most).
        for missing in 1..=MAX_REPAIR {
            let closed = format!("{text}{}", ")".repeat(missing));
            if let Ok(e) = parse(&closed, source) {
                let w = Warning::new(
                    end,
                    format!(
                        "{missing} `)` missing at the end of the file; read as closed (as libvirt does)"
                    ),
                );
                return Ok((e, vec![w]));
            }
        }
    }
    Err(err)
}

/// At most this many missing `)` are supplied at the end of a file.
const MAX_REPAIR: usize = 3;

struct P<'a> {
    text: &'a str,
    pos: usize,
    source: &'a str,
}

impl P<'_> {
    fn peek(&self) -> Option<char> {
        self.text.get(self.pos..).and_then(|r| r.chars().next())
    }

    fn error(&self, message: &str) -> ConfigError {
        ConfigError::syntax(
            Span::at_offset(self.source, self.text, self.pos),
            message,
            self.text.get(self.pos..).unwrap_or(""),
        )
    }

    fn blank(&mut self) {
        while let Some(c) = self.peek() {
            if c.is_whitespace() {
                self.pos += c.len_utf8();
            } else if c == '\\'
                && self
                    .text
                    .get(self.pos + 1..)
                    .is_some_and(|r| r.starts_with('\n'))
            {
                self.pos += 2;
            } else {
                break;
            }
        }
    }

    fn expr(&mut self, depth: usize) -> Result<Sexp, ConfigError> {
        let offset = self.pos;
        match self.peek() {
            Some('(') => {
                if depth >= MAX_DEPTH {
                    return Err(self.error("lists nest too deeply"));
                }
                self.pos += 1;
                let mut items = Vec::new();
                loop {
                    self.blank();
                    match self.peek() {
                        None => {
                            return Err(ConfigError::syntax(
                                Span::at_offset(self.source, self.text, offset),
                                "unclosed `(`: expected `)` before the end of the file",
                                self.text.get(offset..).unwrap_or(""),
                            ));
                        }
                        Some(')') => {
                            self.pos += 1;
                            return Ok(Sexp::List { items, offset });
                        }
                        Some(_) => items.push(self.expr(depth + 1)?),
                    }
                }
            }
            Some(')') => Err(self.error("unexpected `)`")),
            Some(q @ ('\'' | '"')) => self.quoted(q),
            Some(_) => {
                let start = self.pos;
                while let Some(c) = self.peek() {
                    if c.is_whitespace() || c == '(' || c == ')' {
                        break;
                    }
                    self.pos += c.len_utf8();
                }
                Ok(Sexp::Atom {
                    text: self.text.get(start..self.pos).unwrap_or("").to_string(),
                    offset,
                })
            }
            None => Err(self.error("expected an atom or a list")),
        }
    }

    fn quoted(&mut self, quote: char) -> Result<Sexp, ConfigError> {
        let offset = self.pos;
        self.pos += 1;
        let mut out = String::new();
        loop {
            let Some(c) = self.peek() else {
                return Err(ConfigError::syntax(
                    Span::at_offset(self.source, self.text, offset),
                    "unterminated string",
                    self.text.get(offset..).unwrap_or(""),
                ));
            };
            self.pos += c.len_utf8();
            if c == quote {
                return Ok(Sexp::Atom { text: out, offset });
            }
            if c == '\\' {
                let Some(e) = self.peek() else { continue };
                self.pos += e.len_utf8();
                match e {
                    '\n' => {}
                    'n' => out.push('\n'),
                    't' => out.push('\t'),
                    'r' => out.push('\r'),
                    other => out.push(other),
                }
            } else {
                out.push(c);
            }
        }
    }
}

/// Whether an atom can be written bare: keys (a list's head) that are plain words, and
/// values that are numbers; xend quotes every other value.
fn is_bare(s: &str, head: bool) -> bool {
    let word = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
    let number = !s.is_empty() && s.chars().all(|c| c.is_ascii_digit());
    if head { word } else { number }
}

fn quote(s: &str, head: bool, out: &mut String) {
    if is_bare(s, head) {
        out.push_str(s);
        return;
    }
    out.push('\'');
    for c in s.chars() {
        match c {
            '\'' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out.push('\'');
}

/// One line, as xend and libvirt print it: `(vm (name 'a')(memory 512))`.
pub fn to_compact(e: &Sexp, out: &mut String) {
    match e {
        Sexp::Atom { text, .. } => quote(text, false, out),
        Sexp::List { items, .. } => {
            out.push('(');
            let mut prev_list = false;
            for (i, item) in items.iter().enumerate() {
                let is_list = matches!(item, Sexp::List { .. });
                if i > 0 && !(is_list && prev_list) {
                    out.push(' ');
                }
                match item {
                    Sexp::Atom { text, .. } => quote(text, i == 0, out),
                    Sexp::List { .. } => to_compact(item, out),
                }
                prev_list = is_list;
            }
            out.push(')');
        }
    }
}

/// Indented: a list of atoms stays on one line; a list holding lists puts each on its
/// own line, two spaces deeper (the "indenting flag for sexpr2string" seed 002 asks for).
pub fn to_indented(e: &Sexp, depth: usize, out: &mut String) {
    let Sexp::List { items, .. } = e else {
        to_compact(e, out);
        return;
    };
    if items.iter().all(|i| matches!(i, Sexp::Atom { .. })) {
        to_compact(e, out);
        return;
    }
    out.push('(');
    let mut first = true;
    for item in items {
        match item {
            Sexp::Atom { text, .. } => {
                if !first {
                    out.push(' ');
                }
                quote(text, first, out);
            }
            Sexp::List { .. } => {
                out.push('\n');
                for _ in 0..=depth {
                    out.push_str("  ");
                }
                to_indented(item, depth + 1, out);
            }
        }
        first = false;
    }
    out.push(')');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atoms_lists_and_quotes() {
        let e = parse(
            "(vm (name 'a b')(serial tcp:localhost:9999,server,nowait)(x \"q\\\"\"))",
            "t",
        )
        .expect("ok");
        assert_eq!(e.head(), Some("vm"));
        assert_eq!(e.items()[1].items()[1].as_atom(), Some("a b"));
        assert_eq!(
            e.items()[2].items()[1].as_atom(),
            Some("tcp:localhost:9999,server,nowait")
        );
        assert_eq!(e.items()[3].items()[1].as_atom(), Some("q\""));
    }

    #[test]
    fn continuation_lines_from_libvirt_tests() {
        let e = parse(
            "(vm (args ' method=http://x/\\\ncore/os  ')\\\n(vcpus 2))",
            "t",
        )
        .expect("ok");
        assert_eq!(
            e.items()[1].items()[1].as_atom(),
            Some(" method=http://x/core/os  ")
        );
        assert_eq!(e.items().len(), 3);
    }

    #[test]
    fn errors_have_positions() {
        let err = |t: &str| {
            parse(t, "d.sxp")
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert_eq!(
            err(""),
            "d.sxp:1:1: syntax error: empty file: expected `(` (at end of input)"
        );
        assert_eq!(
            err("(vm\n (name 'a')"),
            "d.sxp:1:1: syntax error: unclosed `(`: expected `)` before the end of the file (at `(vm…`)"
        );
        assert_eq!(
            err("(vm (name 'a))"),
            "d.sxp:1:11: syntax error: unterminated string (at `'a))`)"
        );
        assert_eq!(
            err("(vm) x"),
            "d.sxp:1:6: syntax error: unexpected text after the closing `)` (at `x`)"
        );
        assert_eq!(
            err("name"),
            "d.sxp:1:1: syntax error: expected `(` to start the expression (at `name`)"
        );
        assert!(parse(&"(".repeat(100_000), "t").is_err());
    }

    #[test]
    fn writers() {
        let e = parse(
            "(vm (name 'a b')(memory 512)(image (hvm (kernel '/k')(boot c))))",
            "t",
        )
        .expect("ok");
        let mut compact = String::new();
        to_compact(&e, &mut compact);
        assert_eq!(
            compact,
            "(vm (name 'a b')(memory 512)(image (hvm (kernel '/k')(boot 'c'))))"
        );
        let mut ind = String::new();
        to_indented(&e, 0, &mut ind);
        assert_eq!(
            ind,
            "(vm\n  (name 'a b')\n  (memory 512)\n  (image\n    (hvm\n      (kernel '/k')\n      (boot 'c'))))"
        );
        for text in [compact, ind] {
            let back = parse(&text, "t").expect("reads back");
            let strip = |e: &Sexp| format!("{:?}", e).replace(|c: char| c.is_ascii_digit(), "");
            assert_eq!(strip(&back), strip(&e));
        }
    }
}
