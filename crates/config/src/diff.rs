//! Field-by-field differences between two models, for loss reports.
use crate::model::DomainConfig;
use ::toml::Value;

/// One line per differing field: `path: before → after`.
pub fn diff(before: &DomainConfig, after: &DomainConfig) -> Vec<String> {
    if before == after {
        return Vec::new();
    }
    let a = Value::try_from(before).ok();
    let b = Value::try_from(after).ok();
    let mut out = Vec::new();
    match (a, b) {
        (Some(a), Some(b)) => walk("", Some(&a), Some(&b), &mut out),
        _ => out.push("the configuration changed".to_string()),
    }
    if out.is_empty() {
        out.push("the configuration changed".to_string());
    }
    out
}

fn show(v: Option<&Value>) -> String {
    match v {
        None => "(none)".to_string(),
        Some(Value::String(s)) => format!("{s:?}"),
        Some(v) => {
            let s = v.to_string();
            if s.chars().count() > 60 {
                format!("{}…", s.chars().take(60).collect::<String>())
            } else {
                s
            }
        }
    }
}

fn walk(path: &str, a: Option<&Value>, b: Option<&Value>, out: &mut Vec<String>) {
    let join = |k: &str| {
        if path.is_empty() {
            k.to_string()
        } else {
            format!("{path}.{k}")
        }
    };
    match (a, b) {
        (Some(Value::Table(x)), Some(Value::Table(y))) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                walk(&join(k), x.get(k), y.get(k), out);
            }
        }
        (Some(Value::Array(x)), Some(Value::Array(y))) if x.len() == y.len() => {
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                walk(&format!("{path}[{i}]"), Some(p), Some(q), out);
            }
        }
        (a, b) if a != b => out.push(format!("{path}: {} → {}", show(a), show(b))),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::MemSize;

    #[test]
    fn names_changed_fields() {
        let a = DomainConfig {
            name: "a".into(),
            memory: Some(MemSize::from_kib(1025)),
            ..Default::default()
        };
        let mut b = a.clone();
        assert!(diff(&a, &b).is_empty());
        b.memory = MemSize::from_mib(2);
        b.boot.root = Some("/dev/xvda".into());
        assert_eq!(
            diff(&a, &b),
            [
                "boot: (none) → { root = \"/dev/xvda\" }",
                "memory: \"1025KiB\" → \"2MiB\""
            ]
        );
    }
}
