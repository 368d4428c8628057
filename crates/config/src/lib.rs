//! Domain configurations for domboot: one model ([`DomainConfig`]) and four syntaxes.
//!
//! - [`toml`]: domboot's native format (schema in the crate README);
//! - [`libvirt_xml`]: libvirt domain XML, with the `<os>` block unified for PV and HVM;
//! - [`xl`]: xl.cfg and legacy xm configuration files;
//! - [`sexpr`]: xend S-expressions, with an indenting writer.
//!
//! Each syntax module has `parse(text, source_name)`, `parse_with_warnings` (what was read
//! but not kept) and `write(&DomainConfig)`. [`detect`] guesses the syntax of a text;
//! [`losses`] says what a conversion to a syntax would drop.
#![forbid(unsafe_code)]

pub mod error;
pub mod libvirt_xml;
pub mod model;
pub mod sexpr;
pub mod suggest;
pub mod toml;
pub mod xl;

mod diff;

pub use error::{ConfigError, Span, Warning};
pub use model::*;

use std::fmt;
use std::str::FromStr;

/// The four configuration syntaxes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Syntax {
    Toml,
    Xml,
    Xl,
    Sexpr,
}

impl Syntax {
    pub const ALL: [Syntax; 4] = [Syntax::Toml, Syntax::Xml, Syntax::Xl, Syntax::Sexpr];

    pub fn name(self) -> &'static str {
        match self {
            Syntax::Toml => "toml",
            Syntax::Xml => "xml",
            Syntax::Xl => "xl",
            Syntax::Sexpr => "sexpr",
        }
    }
}

impl fmt::Display for Syntax {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Syntax {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "toml" => Ok(Syntax::Toml),
            "xml" | "libvirt" => Ok(Syntax::Xml),
            "xl" | "xm" | "cfg" => Ok(Syntax::Xl),
            "sexpr" | "sxp" | "xend" => Ok(Syntax::Sexpr),
            other => Err(format!(
                "unknown syntax `{other}` (use toml, xml, xl or sexpr)"
            )),
        }
    }
}

/// Parse `text` in `syntax`; `source` names the file in messages.
pub fn parse(text: &str, syntax: Syntax, source: &str) -> Result<DomainConfig, ConfigError> {
    parse_with_warnings(text, syntax, source).map(|(c, _)| c)
}

/// Parse, also returning what was read but not kept (unknown keys, ignored values).
pub fn parse_with_warnings(
    text: &str,
    syntax: Syntax,
    source: &str,
) -> Result<(DomainConfig, Vec<Warning>), ConfigError> {
    match syntax {
        Syntax::Toml => toml::parse(text, source).map(|c| (c, Vec::new())),
        Syntax::Xml => libvirt_xml::parse_with_warnings(text, source),
        Syntax::Xl => xl::parse_with_warnings(text, source),
        Syntax::Sexpr => sexpr::parse_with_warnings(text, source),
    }
}

/// Write `config` in `syntax`.
pub fn write(config: &DomainConfig, syntax: Syntax) -> String {
    match syntax {
        Syntax::Toml => toml::write(config),
        Syntax::Xml => libvirt_xml::write(config),
        Syntax::Xl => xl::write(config),
        Syntax::Sexpr => sexpr::write(config),
    }
}

/// What writing `config` in `syntax` and reading it back would change, one line per
/// field (`memory: 540673KiB → 529MiB`). Empty when the conversion is lossless.
pub fn losses(config: &DomainConfig, syntax: Syntax) -> Vec<String> {
    let text = write(config, syntax);
    match parse(&text, syntax, "<converted>") {
        Ok(mut back) => {
            // The model's default on_crash (destroy) spelled out, as xend needs it, is not
            // a loss.
            if config.on_crash.is_none() && back.on_crash == Some(model::LifecycleAction::Destroy) {
                back.on_crash = None;
            }
            // An HVM guest's clock as xend files are read (a variable offset, 0 from UTC or
            // local time, as libvirt reads them) is the same RTC: not a loss.
            if syntax == Syntax::Sexpr
                && config.guest_type == GuestType::Hvm
                && back.clock == sexpr::hvm_clock(config.clock.as_ref())
            {
                back.clock = config.clock.clone();
            }
            diff::diff(config, &back)
        }
        Err(e) => vec![format!("the {syntax} output does not read back: {e}")],
    }
}

/// Guess the syntax of a configuration text: XML starts with `<`, SEXPR with `(`,
/// TOML has `[tables]` or `key = value` lines that xl would not accept, xl the rest.
/// `file_name` breaks ties by extension.
pub fn detect(text: &str, file_name: &str) -> Option<Syntax> {
    let lower = file_name.to_ascii_lowercase();
    let by_ext = [
        (".toml", Syntax::Toml),
        (".xml", Syntax::Xml),
        (".sxp", Syntax::Sexpr),
        (".sexpr", Syntax::Sexpr),
        (".cfg", Syntax::Xl),
        (".xl", Syntax::Xl),
        (".xm", Syntax::Xl),
    ]
    .into_iter()
    .find(|(e, _)| lower.ends_with(e))
    .map(|(_, s)| s);

    let body = text.trim_start_matches('\u{feff}');
    let first = body
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))?;
    if first.starts_with('<') {
        return Some(Syntax::Xml);
    }
    if first.starts_with('(') {
        return Some(Syntax::Sexpr);
    }
    let looks_toml = body.lines().map(str::trim).any(|l| {
        (l.starts_with('[') && l.ends_with(']') && !l.contains(',') && !l.contains('\''))
            || l.starts_with("[[")
            || l.contains("= true")
            || l.contains("= false")
    });
    if looks_toml {
        return Some(Syntax::Toml);
    }
    if first.contains('=') {
        // Both TOML and xl use `key = value`; the extension decides, then a trial parse.
        if let Some(s @ (Syntax::Toml | Syntax::Xl)) = by_ext {
            return Some(s);
        }
        if toml::parse(body, "").is_ok() {
            return Some(Syntax::Toml);
        }
        return Some(Syntax::Xl);
    }
    by_ext
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_each_syntax() {
        assert_eq!(detect("<domain type='xen'/>", "x"), Some(Syntax::Xml));
        assert_eq!(detect("\n# c\n(vm (name a))", "x"), Some(Syntax::Sexpr));
        assert_eq!(
            detect("name = \"a\"\n[boot]\nkernel = \"k\"", "x"),
            Some(Syntax::Toml)
        );
        assert_eq!(
            detect("name = \"a\"\nvcpus = 1\n", "g.toml"),
            Some(Syntax::Toml)
        );
        assert_eq!(
            detect("name = \"a\"\nvcpus = 1\n", "g.cfg"),
            Some(Syntax::Xl)
        );
        assert_eq!(
            detect("name = 'a'\ndisk = [ 'phy:/dev/x,xvda,w' ]\n", "g"),
            Some(Syntax::Xl)
        );
        assert_eq!(detect("", "g"), None);
        assert_eq!(detect("# only a comment", "g.cfg"), None);
    }

    #[test]
    fn syntax_names_parse() {
        for s in Syntax::ALL {
            assert_eq!(s.name().parse::<Syntax>(), Ok(s));
        }
        assert!("yaml".parse::<Syntax>().is_err());
    }
}
