//! Errors and warnings: every message names the file, and where known the line, column,
//! the offending text and (for semantic problems) the configuration key.
use std::fmt;

/// A place in a configuration file. `line` and `column` are 1-based; 0 means unknown.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Span {
    pub file: String,
    pub line: u32,
    pub column: u32,
}

impl Span {
    pub fn new(file: &str, line: u32, column: u32) -> Self {
        Span {
            file: file.to_string(),
            line,
            column,
        }
    }

    /// A span naming only the file (no position known).
    pub fn file(file: &str) -> Self {
        Span::new(file, 0, 0)
    }

    /// The line and column of byte `offset` in `text`.
    pub fn at_offset(file: &str, text: &str, offset: usize) -> Self {
        let (line, column) = line_col(text, offset);
        Span::new(file, line, column)
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.file)
        } else {
            write!(f, "{}:{}:{}", self.file, self.line, self.column)
        }
    }
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
pub fn line_col(text: &str, offset: usize) -> (u32, u32) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (
        u32::try_from(line).unwrap_or(u32::MAX),
        u32::try_from(column).unwrap_or(u32::MAX),
    )
}

/// Shorten offending text for a message: one line, at most 40 characters.
pub fn snippet(text: &str) -> String {
    let line = text.lines().next().unwrap_or("");
    let mut out: String = line.chars().take(40).collect();
    if line.chars().count() > 40 || text.lines().nth(1).is_some() {
        out.push('…');
    }
    out
}

/// Why a configuration could not be read or used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The text is not valid in its syntax.
    #[error("{at}: syntax error: {message}{}", found_suffix(.found))]
    Syntax {
        at: Span,
        message: String,
        /// The offending text (may be empty at end of input).
        found: String,
    },
    /// The text parses but a value is wrong: `key` names the configuration key.
    #[error("{at}: {key}: {message}")]
    Semantic {
        at: Span,
        key: String,
        message: String,
    },
    /// `--from auto` could not tell which syntax a file uses.
    #[error("{file}: cannot tell the configuration syntax ({hint}); name it with --from")]
    UnknownSyntax { file: String, hint: String },
}

fn found_suffix(found: &str) -> String {
    if found.is_empty() {
        " (at end of input)".to_string()
    } else {
        format!(" (at `{found}`)")
    }
}

impl ConfigError {
    pub fn syntax(at: Span, message: impl Into<String>, found: &str) -> Self {
        ConfigError::Syntax {
            at,
            message: message.into(),
            found: snippet(found),
        }
    }

    pub fn semantic(at: Span, key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError::Semantic {
            at,
            key: key.into(),
            message: message.into(),
        }
    }

    /// The configuration key a semantic error is about.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::Semantic { key, .. } => Some(key),
            _ => None,
        }
    }

    /// Where the problem is.
    pub fn span(&self) -> Option<&Span> {
        match self {
            ConfigError::Syntax { at, .. } | ConfigError::Semantic { at, .. } => Some(at),
            ConfigError::UnknownSyntax { .. } => None,
        }
    }
}

/// Something read but not kept, or kept but suspicious; never fatal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub at: Span,
    pub message: String,
    /// Set when the warning is about a name that is most likely a typo of this known one
    /// (`--strict` makes such a warning an error).
    pub typo_of: Option<String>,
}

impl Warning {
    pub fn new(at: Span, message: impl Into<String>) -> Self {
        Warning {
            at,
            message: message.into(),
            typo_of: None,
        }
    }

    /// An unknown `name` that is most likely a typo of the known `meant`.
    pub fn typo(at: Span, name: &str, meant: &str) -> Self {
        Warning {
            at,
            message: format!("`{name}` is not a key domboot knows; did you mean `{meant}`?"),
            typo_of: Some(meant.to_string()),
        }
    }
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.at, self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_from_one() {
        let t = "ab\ncdé\nf";
        assert_eq!(line_col(t, 0), (1, 1));
        assert_eq!(line_col(t, 3), (2, 1));
        assert_eq!(line_col(t, 7), (2, 4));
        assert_eq!(line_col(t, 100), (3, 2));
        // Inside a multi-byte character: snaps back.
        assert_eq!(line_col(t, 6), (2, 3));
    }

    #[test]
    fn messages_name_position_and_text() {
        let e = ConfigError::syntax(Span::new("a.cfg", 3, 7), "expected `=`", "foo bar");
        assert_eq!(
            e.to_string(),
            "a.cfg:3:7: syntax error: expected `=` (at `foo bar`)"
        );
        let e = ConfigError::semantic(Span::new("a.cfg", 2, 1), "memory", "must not be 0");
        assert_eq!(e.to_string(), "a.cfg:2:1: memory: must not be 0");
        assert_eq!(e.key(), Some("memory"));
        let e = ConfigError::semantic(Span::file("x.toml"), "vcpus", "too many");
        assert_eq!(e.to_string(), "x.toml: vcpus: too many");
    }

    #[test]
    fn snippet_is_short() {
        assert_eq!(snippet("abc\ndef"), "abc…");
        assert_eq!(snippet(&"x".repeat(50)).chars().count(), 41);
    }
}
