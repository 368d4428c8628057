//! extlinux.conf / syslinux.cfg / isolinux.cfg (the syslinux family): `LABEL` blocks with
//! `MENU LABEL`, `KERNEL`/`LINUX`, `APPEND` (whose `initrd=` names initrds), `INITRD`,
//! `DEFAULT`/`ONTIMEOUT`, `MENU DEFAULT`, `INCLUDE`/`MENU INCLUDE` and `MENU BEGIN` submenus
//! (flattened). Keywords are case-insensitive. Labels that run a COM32 module
//! (menu.c32, chain.c32, hdt.c32) or `LOCALBOOT` are not Linux entries and are skipped.
//! Paths stay as written: relative ones are resolved against the configuration's
//! directory by the caller, as syslinux does from its working directory.

use super::{BootEntry, EntryKind, Include, MAX_ENTRIES, MAX_INCLUDE_DEPTH, Menu, ParseError};

#[derive(Default)]
struct State {
    entries: Vec<BootEntry>,
    /// Whether each entry's label block said MENU DEFAULT.
    menu_default: Vec<bool>,
    default: Option<String>,
    ontimeout: Option<String>,
    current: Option<BootEntry>,
    current_default: bool,
    /// The APPEND of the global section, used by labels without their own.
    global_append: String,
    append_seen: bool,
    /// Bytes read through INCLUDE so far.
    included: usize,
}

pub fn parse(text: &str, include: &mut Include<'_>) -> Result<Menu, ParseError> {
    let mut s = State::default();
    s.lines(text, include, 0)?;
    s.close();
    let label = |want: &str| {
        s.entries.iter().position(|e| {
            e.id.as_deref()
                .is_some_and(|id| id.eq_ignore_ascii_case(want))
        })
    };
    let default = s
        .menu_default
        .iter()
        .position(|d| *d)
        .or_else(|| {
            s.default
                .as_deref()
                .and_then(|d| label(d.split_whitespace().next()?))
        })
        .or_else(|| {
            s.ontimeout
                .as_deref()
                .and_then(|d| label(d.split_whitespace().next()?))
        })
        .or((!s.entries.is_empty()).then_some(0));
    Ok(Menu {
        entries: s.entries,
        default,
    })
}

impl State {
    fn lines(
        &mut self,
        text: &str,
        include: &mut Include<'_>,
        depth: usize,
    ) -> Result<(), ParseError> {
        let mut in_text = false;
        for line in text.lines() {
            let line = line.trim();
            // TEXT HELP … ENDTEXT is help text, not configuration.
            if in_text {
                in_text = !line.eq_ignore_ascii_case("endtext");
                continue;
            }
            let (key, rest) = match line.split_once(|c: char| c.is_ascii_whitespace()) {
                Some((k, r)) => (k.to_ascii_lowercase(), r.trim()),
                None => (line.to_ascii_lowercase(), ""),
            };
            let (key, rest) = if key == "menu" {
                let (sub, r) = rest
                    .split_once(|c: char| c.is_ascii_whitespace())
                    .unwrap_or((rest, ""));
                (format!("menu {}", sub.to_ascii_lowercase()), r.trim())
            } else {
                (key, rest)
            };
            match key.as_str() {
                "label" => {
                    self.close();
                    let mut e = BootEntry::new(EntryKind::Extlinux, rest);
                    e.id = Some(rest.to_string());
                    self.current = Some(e);
                }
                "menu label" => {
                    if let Some(e) = &mut self.current {
                        e.title = rest.replace('^', "");
                    }
                }
                "kernel" | "linux" => self.with(|e| e.kernel = rest.to_string()),
                "com32" | "localboot" | "boot" | "bss" | "pxe" | "fdimage" | "comboot" => {
                    self.with(|e| e.kernel.clear());
                }
                "initrd" => self.with(|e| e.initrds = split_initrds(rest)),
                "append" => self.append(rest),
                "default" => self.default = Some(rest.to_string()),
                "ontimeout" => self.ontimeout = Some(rest.to_string()),
                "menu default" => self.current_default = self.current.is_some(),
                "include" | "menu include" => self.include(rest, include, depth)?,
                "text" => in_text = true,
                // A submenu's own MENU LABEL names the submenu, not the label before it.
                "menu begin" | "menu end" => self.close(),
                _ => {}
            }
        }
        Ok(())
    }

    fn with(&mut self, f: impl FnOnce(&mut BootEntry)) {
        if let Some(e) = &mut self.current {
            f(e);
        }
    }

    /// APPEND of a label, or the global default for labels without one. `initrd=` is
    /// taken out: domboot loads the initrds itself.
    fn append(&mut self, rest: &str) {
        let mut initrds = Vec::new();
        let args: Vec<&str> = rest
            .split_whitespace()
            .filter(|a| match a.strip_prefix("initrd=") {
                Some(list) => {
                    initrds.extend(split_initrds(list));
                    false
                }
                None => true,
            })
            .collect();
        match &mut self.current {
            Some(e) => {
                e.cmdline = args.join(" ");
                if !initrds.is_empty() {
                    e.initrds = initrds;
                }
                self.append_seen = true;
            }
            None => self.global_append = args.join(" "),
        }
    }

    fn include(
        &mut self,
        rest: &str,
        include: &mut Include<'_>,
        depth: usize,
    ) -> Result<(), ParseError> {
        if depth >= MAX_INCLUDE_DEPTH {
            return Err(ParseError(format!(
                "files included more than {MAX_INCLUDE_DEPTH} deep"
            )));
        }
        let Some(path) = rest.split_whitespace().next() else {
            return Ok(());
        };
        if let Some(text) = include(path) {
            super::count_included(&mut self.included, &text)?;
            self.lines(&text, include, depth + 1)?;
        }
        Ok(())
    }

    /// Ends the current label block; keeps it if it boots a Linux kernel.
    fn close(&mut self) {
        let Some(mut e) = self.current.take() else {
            return;
        };
        let is_default = std::mem::take(&mut self.current_default);
        if !std::mem::take(&mut self.append_seen) {
            e.cmdline = self.global_append.clone();
        }
        let lower = e.kernel.to_ascii_lowercase();
        if e.kernel.is_empty()
            || lower.ends_with(".c32")
            || lower.ends_with(".0")
            || lower.ends_with(".bin")
        {
            return;
        }
        if self.entries.len() < MAX_ENTRIES {
            self.entries.push(e);
            self.menu_default.push(is_default);
        }
    }
}

fn split_initrds(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}
