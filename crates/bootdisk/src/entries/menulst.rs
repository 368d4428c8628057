//! GRUB legacy `menu.lst` / `grub.conf`: `title` blocks with `root (hd0,0)`, `kernel PATH
//! ARGS`, `initrd PATH`, and `default N` (counting from 0; "saved" means 0 here, as the
//! saved default lives outside the file). Legacy GRUB counts partitions from 0.

use super::{
    BootEntry, EntryKind, MAX_ENTRIES, Menu, ParseError, absolute, grub_device_partition,
    split_device,
};

pub fn parse(text: &str) -> Result<Menu, ParseError> {
    let mut entries: Vec<BootEntry> = Vec::new();
    let mut current: Option<BootEntry> = None;
    let mut default = 0usize;
    let mut root: Option<u32> = None;
    let close =
        |current: &mut Option<BootEntry>, entries: &mut Vec<BootEntry>| -> Result<(), ParseError> {
            if let Some(e) = current.take().filter(|e| !e.kernel.is_empty()) {
                if entries.len() == MAX_ENTRIES {
                    return Err(ParseError(format!("more than {MAX_ENTRIES} entries")));
                }
                entries.push(e);
            }
            Ok(())
        };
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') {
            continue;
        }
        let (key, rest) = match line.split_once(|c: char| c.is_ascii_whitespace() || c == '=') {
            Some((k, r)) => (k.to_ascii_lowercase(), r.trim()),
            None => (line.to_ascii_lowercase(), ""),
        };
        match key.as_str() {
            "default" => default = rest.parse().unwrap_or(0),
            "title" => {
                close(&mut current, &mut entries)?;
                root = None;
                current = Some(BootEntry::new(EntryKind::MenuLst, rest));
            }
            "root" => root = grub_device_partition(rest, true),
            "kernel" => {
                if let Some(e) = &mut current {
                    let args: Vec<&str> = rest
                        .split_whitespace()
                        .filter(|a| !a.starts_with("--type="))
                        .collect();
                    if let Some((path, cmdline)) = args.split_first() {
                        let (device, path) = split_device(path, true);
                        e.kernel = absolute(&path);
                        e.partition = device.unwrap_or(root);
                        e.cmdline = cmdline.join(" ");
                    }
                }
            }
            "initrd" => {
                if let Some(e) = &mut current {
                    if let Some(path) = rest.split_whitespace().next() {
                        e.initrds = vec![absolute(&split_device(path, true).1)];
                    }
                }
            }
            _ => {}
        }
    }
    close(&mut current, &mut entries)?;
    let default =
        (!entries.is_empty()).then_some(if default < entries.len() { default } else { 0 });
    Ok(Menu { entries, default })
}
