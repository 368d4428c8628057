//! Human rendering of a chain. Each layer is rendered from its JSON form, so every field the
//! format modules expose is shown, with addresses in hex and sizes in hex plus MiB.

use crate::table::{Table, human_size};
use domboot_formats::Chain;
use serde_json::{Map, Value};
use std::fmt::Write;
use std::path::Path;

/// Fields left out of the table view (shown by `--json`): the raw setup header repeats the
/// summary above it.
const HIDDEN: &[&str] = &["setup_header", "format", "size"];

pub fn render(file: &Path, chain: &Chain) -> String {
    let mut out = String::new();
    let size = chain.layers.first().map_or(0, |l| l.size);
    let path: Vec<&str> = chain.layers.iter().map(|l| l.format.name()).collect();
    let _ = writeln!(
        out,
        "{}: {} ({})",
        file.display(),
        path.join(" → "),
        human_size(size)
    );
    for (i, layer) in chain.layers.iter().enumerate() {
        let _ = writeln!(
            out,
            "\n[{i}] {} — {} ({} bytes)",
            layer.format,
            human_size(layer.size),
            layer.size
        );
        match serde_json::to_value(layer) {
            Ok(Value::Object(mut map)) => {
                for key in HIDDEN {
                    map.shift_remove(*key);
                }
                render_object(&mut out, &map, 4)
            }
            Ok(other) => {
                let _ = writeln!(out, "    {other}");
            }
            Err(e) => {
                let _ = writeln!(out, "    (cannot render: {e})");
            }
        }
    }
    out
}

fn render_object(out: &mut String, map: &Map<String, Value>, indent: usize) {
    let scalars: Vec<(&String, &Value)> = map.iter().filter(|(_, v)| !is_compound(v)).collect();
    let width = scalars.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (k, v) in &scalars {
        let _ = writeln!(out, "{:indent$}{:<width$}  {}", "", k, scalar(k, v));
    }
    for (k, v) in map {
        if !is_compound(v) {
            continue;
        }
        match v {
            Value::Object(inner) => {
                let _ = writeln!(out, "{:indent$}{k}:", "");
                render_object(out, inner, indent + 2);
            }
            Value::Array(items) if items.iter().all(Value::is_object) => {
                let _ = writeln!(out, "{:indent$}{k} ({}):", "", items.len());
                out.push_str(&object_table(items).render(indent + 2));
            }
            Value::Array(items) => {
                let _ = writeln!(out, "{:indent$}{k}:", "");
                for item in items {
                    let _ = writeln!(out, "{:indent$}  - {}", "", scalar(k, item));
                }
            }
            _ => {}
        }
    }
}

/// Objects and non-empty arrays of objects get their own block; lists of scalars (flag
/// names) print on one line.
fn is_compound(v: &Value) -> bool {
    match v {
        Value::Object(_) => true,
        Value::Array(items) => items.iter().any(|i| !i.is_string() && !i.is_number()),
        _ => false,
    }
}

fn object_table(items: &[Value]) -> Table {
    let mut columns: Vec<&str> = Vec::new();
    for item in items {
        if let Value::Object(m) = item {
            for k in m.keys() {
                if !columns.contains(&k.as_str()) {
                    columns.push(k);
                }
            }
        }
    }
    let mut table = Table::new(&columns);
    for item in items {
        if let Value::Object(m) = item {
            table.row(
                columns
                    .iter()
                    .map(|c| m.get(*c).map_or(String::new(), |v| cell(c, v)))
                    .collect(),
            );
        }
    }
    table
}

/// Table cells longer than this are cut (the JSON output has them whole).
const MAX_CELL: usize = 48;

fn cell(key: &str, v: &Value) -> String {
    let text = cell_text(key, v);
    if text.chars().count() > MAX_CELL {
        let cut: String = text.chars().take(MAX_CELL - 1).collect();
        format!("{cut}…")
    } else {
        text
    }
}

fn cell_text(key: &str, v: &Value) -> String {
    match v {
        Value::Number(n) if n.as_u64().is_some() && is_address(key) => {
            format!("{:#x}", n.as_u64().unwrap_or(0))
        }
        Value::Number(n) if n.as_u64().is_some() && is_size(key) => {
            format!("{:#x}", n.as_u64().unwrap_or(0))
        }
        _ => scalar(key, v),
    }
}

fn scalar(key: &str, v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::Bool(b) => if *b { "yes" } else { "no" }.into(),
        Value::String(s) => s.clone(),
        Value::Number(n) => match n.as_u64() {
            Some(u) if is_size(key) => format!("{u:#x} ({})", human_size(u)),
            Some(u) if is_address(key) => format!("{u:#x}"),
            Some(_) | None if n.is_f64() => format!("{:.2}", n.as_f64().unwrap_or(0.0)),
            _ => n.to_string(),
        },
        Value::Array(items) if items.is_empty() => "(none)".into(),
        Value::Array(items) => items
            .iter()
            .map(|i| scalar(key, i))
            .collect::<Vec<_>>()
            .join(" "),
        Value::Object(_) => v.to_string(),
    }
}

fn is_size(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    (k.contains("size") && !k.contains("cmdline_size"))
        || k.ends_with("length")
        || k.ends_with("filesz")
        || k.ends_with("memsz")
        || k == "trailer"
}

fn is_address(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    [
        "addr", "address", "entry", "offset", "start", "end", "align", "ptr", "rva", "base", "max",
    ]
    .iter()
    .any(|s| k.contains(s))
        || is_xen_number(&k)
}

/// Numeric Xen notes are addresses (HYPERCALL_PAGE, INIT_P2M, HV_START_LOW...), feature
/// bitmaps or flag words, which read in hex as Xen's own tools print them; a note's
/// decoded `value` in the notes table is one of them or a small flag.
fn is_xen_number(k: &str) -> bool {
    k == "value"
        || [
            "hypercall_page",
            "init_p2m",
            "hv_start_low",
            "supported_features",
            "l1_mfn_valid",
            "suspend_cancel",
            "mod_start_pfn",
        ]
        .contains(&k)
}
