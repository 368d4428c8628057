//! domboot's native TOML format: the serde form of [`DomainConfig`] (schema in README.md).
use crate::error::{ConfigError, Span};
use crate::model::DomainConfig;

/// Parse a TOML domain configuration.
pub fn parse(text: &str, source: &str) -> Result<DomainConfig, ConfigError> {
    let mut config: DomainConfig =
        ::toml::from_str(text).map_err(|e| convert_error(&e, text, source))?;
    config.normalize();
    Ok(config)
}

/// Write `config` as TOML, scalar keys first, then one table per section.
pub fn write(config: &DomainConfig) -> String {
    match ::toml::to_string(config) {
        Ok(s) => s,
        // The model has no values TOML cannot hold; keep the signature total anyway.
        Err(e) => format!("# domboot could not write this configuration as TOML: {e}\n"),
    }
}

fn convert_error(e: &::toml::de::Error, text: &str, source: &str) -> ConfigError {
    let (at, found) = match e.span() {
        Some(r) => (
            Span::at_offset(source, text, r.start),
            text.get(r.clone()).unwrap_or("").to_string(),
        ),
        None => (Span::file(source), String::new()),
    };
    let message = e.message().trim().to_string();
    // serde reports field problems as "... for key `a.b`" or "unknown field `x`":
    // those are semantic (the TOML itself is fine) and name the key.
    if let Some(key) = semantic_key(&message, text, e.span()) {
        return ConfigError::semantic(at, key, message);
    }
    ConfigError::syntax(at, message, &found)
}

fn semantic_key(message: &str, text: &str, span: Option<std::ops::Range<usize>>) -> Option<String> {
    let is_semantic = message.starts_with("unknown field")
        || message.starts_with("unknown variant")
        || message.starts_with("invalid type")
        || message.starts_with("invalid value")
        || message.starts_with("missing field")
        || message.contains("is not a")
        || message.contains("size")
        || message.contains("negative");
    if !is_semantic {
        return None;
    }
    if let Some(rest) = message.strip_prefix("missing field `") {
        return rest.split('`').next().map(str::to_string);
    }
    if let Some(rest) = message.strip_prefix("unknown field `") {
        return rest.split('`').next().map(str::to_string);
    }
    // Otherwise name the key the span points at (the value's line `key = value`).
    let span = span?;
    let line_start = text.get(..span.start)?.rfind('\n').map_or(0, |i| i + 1);
    let line = text.get(line_start..)?.lines().next()?;
    let key = line.split('=').next()?.trim();
    if key.is_empty() || key.starts_with('[') {
        Some("(table)".to_string())
    } else {
        Some(key.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{GuestType, MemSize};

    #[test]
    fn minimal_file() {
        let c = parse(
            "name = \"t\"\ntype = \"hvm\"\nmemory = 512\n[boot]\nkernel = \"/k\"\n",
            "t.toml",
        );
        let c = c.expect("parses");
        assert_eq!(c.guest_type, GuestType::Hvm);
        assert_eq!(c.memory, MemSize::from_mib(512));
        assert_eq!(c.boot.kernel.as_deref(), Some("/k"));
        assert_eq!(parse(&write(&c), "x"), Ok(c));
    }

    #[test]
    fn errors_have_positions_and_keys() {
        let e = parse("name = \"t\"\nmemory = \"12 parsecs\"\n", "t.toml").err();
        let e = e.expect("error");
        assert_eq!(e.key(), Some("memory"), "{e}");
        assert_eq!(e.span().map(|s| s.line), Some(2), "{e}");

        let e = parse("name = \"t\"\ntype = \"xen-hvm\"\n", "t.toml").expect_err("error");
        assert_eq!(e.key(), Some("type"), "{e}");

        let e = parse("name = \"t\"\nbogus = 1\n", "t.toml").expect_err("error");
        assert_eq!(e.key(), Some("bogus"), "{e}");

        let e = parse("name = \"t\nmemory = 1", "t.toml").expect_err("error");
        assert!(matches!(e, ConfigError::Syntax { .. }), "{e}");
        assert!(e.to_string().starts_with("t.toml:1:"), "{e}");
    }
}
