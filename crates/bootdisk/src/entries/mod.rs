//! Boot entries and the parsers of each boot loader's syntax. The parsers are pure
//! functions of text (plus a loader for included files), so proptest and cargo-fuzz drive
//! them directly; `image.rs` finds the files and ties entries to partitions.

pub mod bls;
pub mod extlinux;
pub mod grub;
pub mod menulst;
pub mod version;

use serde::Serialize;

/// Files included from included files, at most this deep (grub `source`, extlinux
/// `INCLUDE`): deeper is a loop or a hostile image.
pub const MAX_INCLUDE_DEPTH: usize = 8;
/// Text all included files of one configuration may add up to: with only a depth bound,
/// a file sourcing itself k times would be read k^8 times.
pub const MAX_INCLUDED_BYTES: usize = 4 << 20;

/// Counts what includes add, failing past MAX_INCLUDED_BYTES.
pub fn count_included(total: &mut usize, text: &str) -> Result<(), ParseError> {
    // Each counts as at least 1 KiB, so tiny files cannot be included millions of times.
    *total = total.saturating_add(text.len().max(1024));
    if *total > MAX_INCLUDED_BYTES {
        return Err(ParseError(format!(
            "included files add up to more than {MAX_INCLUDED_BYTES} bytes"
        )));
    }
    Ok(())
}
/// Entries one configuration may define.
pub const MAX_ENTRIES: usize = 1024;
/// A block nesting deeper than this (grub `{ }`, extlinux MENU BEGIN) is refused.
pub const MAX_NESTING: usize = 32;

/// Which boot loader configuration an entry came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EntryKind {
    /// Boot Loader Specification type #1 (`/loader/entries/*.conf`).
    Bls,
    /// A unified kernel image (BLS type #2, `/EFI/Linux/*.efi`).
    Uki,
    Grub,
    Extlinux,
    MenuLst,
}

impl EntryKind {
    pub fn name(self) -> &'static str {
        match self {
            EntryKind::Bls => "bls",
            EntryKind::Uki => "uki",
            EntryKind::Grub => "grub",
            EntryKind::Extlinux => "extlinux",
            EntryKind::MenuLst => "menu.lst",
        }
    }
}

/// One bootable entry: what to load and with which command line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BootEntry {
    pub title: String,
    /// BLS file id, grub `--id`, extlinux label: what `--boot-entry` may also name.
    pub id: Option<String>,
    pub kind: EntryKind,
    /// Absolute path of the kernel inside its partition's filesystem.
    pub kernel: String,
    pub initrds: Vec<String>,
    pub cmdline: String,
    /// The partition holding kernel and initrds (0: the whole disk). Parsers set it when
    /// the configuration names a device ("(hd0,gpt2)"), else leave None.
    pub partition: Option<u32>,
    /// Where the entry was defined: "partition 1 (gpt): /boot/grub/grub.cfg".
    pub source: String,
}

impl BootEntry {
    pub fn new(kind: EntryKind, title: &str) -> BootEntry {
        BootEntry {
            title: title.to_string(),
            id: None,
            kind,
            kernel: String::new(),
            initrds: Vec::new(),
            cmdline: String::new(),
            partition: None,
            source: String::new(),
        }
    }
}

/// What one configuration defines.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Menu {
    pub entries: Vec<BootEntry>,
    /// Index into `entries`.
    pub default: Option<usize>,
}

/// Reads an included file by the path the configuration gives (None: missing).
pub type Include<'a> = dyn FnMut(&str) -> Option<String> + 'a;

/// A configuration the parser refuses (only for bounds: the syntax itself is read as
/// leniently as the boot loaders do).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub String);

/// The partition a GRUB device names: "(hd0,gpt2)", "hd0,msdos1", "(hd0,2)" → 2 (GRUB 2
/// counts from 1); None for other devices ("(cd)", "(memdisk)", "(loop)").
pub fn grub_device_partition(device: &str, legacy: bool) -> Option<u32> {
    let d = device.trim_start_matches('(').trim_end_matches(')');
    let (disk, part) = d.split_once(',')?;
    if !disk.starts_with("hd") {
        return None;
    }
    let part = part.split(',').next()?;
    let digits = part.trim_start_matches(|c: char| c.is_ascii_alphabetic());
    let n: u32 = digits.parse().ok()?;
    if legacy { n.checked_add(1) } else { Some(n) }
}

/// Splits "(hd0,gpt2)/boot/vmlinuz" into the device partition and the path.
pub fn split_device(path: &str, legacy: bool) -> (Option<Option<u32>>, String) {
    // "($root)/x" with root="(hd0,1)" doubles the parentheses.
    if let Some(rest) = path.strip_prefix('(') {
        if let Some((device, path)) = rest.trim_start_matches('(').split_once(')') {
            let path = path.trim_start_matches(')');
            let p = if path.is_empty() { "/" } else { path };
            return (Some(grub_device_partition(device, legacy)), p.to_string());
        }
    }
    (None, path.to_string())
}

/// An absolute path: relative ones are taken from the root, as GRUB does.
pub fn absolute(path: &str) -> String {
    if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{path}")
    }
}

/// "/boot/extlinux/../vmlinuz" → "/boot/vmlinuz": "." and ".." taken lexically, as the
/// boot loaders do before they look anything up.
pub fn normalize(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    format!("/{}", out.join("/"))
}

#[cfg(test)]
mod tests;
