//! Boot Loader Specification type #1 entries (`/loader/entries/*.conf`) and the default
//! from `loader.conf`, ordered as the specification says: entries with a `sort-key`
//! first, by sort-key, then machine-id, then version (newest first); then the rest by
//! file name, newest version first.

use super::version;
use super::{BootEntry, EntryKind};
use std::cmp::Ordering;

/// One parsed entry file, with the fields that order it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlsEntry {
    pub entry: BootEntry,
    pub sort_key: Option<String>,
    pub machine_id: Option<String>,
    pub version: Option<String>,
}

/// Parses the entry file `id`.conf ("key value" lines; `initrd` and `options` repeat).
/// Returns None for an entry without `linux` (a `uki`/`efi` entry we cannot boot).
pub fn parse_entry(id: &str, text: &str) -> Option<BlsEntry> {
    let mut e = BootEntry::new(EntryKind::Bls, "");
    let (mut sort_key, mut machine_id, mut version, mut options) = (None, None, None, Vec::new());
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = match line.split_once(|c: char| c.is_ascii_whitespace()) {
            Some((k, v)) => (k, v.trim()),
            None => (line, ""),
        };
        match key {
            "title" => e.title = value.to_string(),
            "version" => version = Some(value.to_string()),
            "machine-id" => machine_id = Some(value.to_string()),
            "sort-key" => sort_key = Some(value.to_string()),
            "linux" => e.kernel = super::absolute(value),
            "initrd" => e.initrds.extend(value.split_whitespace().map(|w| {
                // `$tuned_initrd` and the like come from grubenv (see expand_grubenv).
                if w.starts_with('$') {
                    w.to_string()
                } else {
                    super::absolute(w)
                }
            })),
            "options" => options.push(value.to_string()),
            _ => {}
        }
    }
    if e.kernel.is_empty() {
        return None;
    }
    e.cmdline = options.join(" ");
    e.id = Some(id.to_string());
    if e.title.is_empty() {
        e.title = match &version {
            Some(v) => format!("{id} ({v})"),
            None => id.to_string(),
        };
    }
    Some(BlsEntry {
        entry: e,
        sort_key,
        machine_id,
        version,
    })
}

/// The specification's order.
pub fn sort(entries: &mut [BlsEntry]) {
    entries.sort_by(order);
}

fn order(a: &BlsEntry, b: &BlsEntry) -> Ordering {
    let id = |e: &BlsEntry| e.entry.id.clone().unwrap_or_default();
    match (&a.sort_key, &b.sort_key) {
        (Some(ka), Some(kb)) => ka
            .cmp(kb)
            .then_with(|| a.machine_id.cmp(&b.machine_id))
            .then_with(|| {
                let v = |e: &BlsEntry| e.version.clone().unwrap_or_default();
                version::compare(&v(b), &v(a))
            })
            .then_with(|| version::compare(&id(b), &id(a))),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => version::compare(&id(b), &id(a)),
    }
}

/// The `default` pattern of a loader.conf, if it sets one (glob, matched against ids).
pub fn loader_default(loader_conf: &str) -> Option<String> {
    loader_conf.lines().find_map(|line| {
        let line = line.trim();
        let (key, value) = line.split_once(|c: char| c.is_ascii_whitespace())?;
        (key == "default").then(|| value.trim().to_string())
    })
}

/// Which of the sorted ids the pattern picks: the first match (ids compared with and
/// without ".conf"); without a pattern, or with no match, the first entry.
pub fn default_index(ids: &[&str], pattern: Option<&str>) -> Option<usize> {
    if ids.is_empty() {
        return None;
    }
    let Some(pattern) = pattern.filter(|p| !p.starts_with('@')) else {
        return Some(0);
    };
    let found = ids.iter().position(|id| {
        glob(pattern, id)
            || glob(pattern, &format!("{id}.conf"))
            || glob(pattern, &format!("{id}.efi"))
    });
    Some(found.unwrap_or(0))
}

/// Shell-style glob with '*' and '?' (what loader.conf patterns use), iterative so a
/// hostile pattern stays linear-ish (backtracks to the last '*' only).
pub fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Expands `$name` / `${name}` in BLS `options` from a GRUB environment block
/// (`grubenv`: "name=value" lines): RHEL 8 and Fedora 30–33 write `options $kernelopts`
/// and keep the command line in grubenv, which GRUB's `blscfg` expands. Unknown names
/// stay as written.
pub fn expand_grubenv(options: &str, grubenv: &str) -> String {
    let value = |name: &str| {
        grubenv.lines().find_map(|l| {
            let (k, v) = l.split_once('=')?;
            (k == name).then(|| v.to_string())
        })
    };
    options
        .split(' ')
        .map(|word| {
            let name = word
                .strip_prefix("${")
                .and_then(|w| w.strip_suffix('}'))
                .or_else(|| word.strip_prefix('$'));
            name.and_then(value).unwrap_or_else(|| word.to_string())
        })
        .collect::<Vec<_>>()
        .join(" ")
}
