//! Runs the statement tree: variables, menu entries, submenus, includes and the default.

use super::lex::Part;
use super::{Stmt, statements};
use crate::entries::{
    BootEntry, EntryKind, Include, MAX_ENTRIES, MAX_INCLUDE_DEPTH, Menu, ParseError, absolute,
    grub_device_partition, split_device,
};
use std::collections::HashMap;

/// A variable value longer than this is refused (`set a=$a$a` doubling).
const MAX_VALUE: usize = 64 * 1024;

/// A top-level menu item: an entry, or a submenu's entries (indices into `entries`).
#[derive(Debug)]
enum Item {
    Entry(usize),
    Submenu(String, Vec<usize>),
}

#[derive(Default)]
pub struct State {
    vars: HashMap<String, String>,
    entries: Vec<BootEntry>,
    items: Vec<Item>,
    /// Titles of the submenus being run (for entries' own ordering).
    submenu: Option<usize>,
    /// Bytes read through `source` so far.
    included: usize,
}

impl State {
    fn expand(&self, word: &[Part]) -> Result<String, ParseError> {
        let mut s = String::new();
        for p in word {
            match p {
                Part::Lit(l) => s.push_str(l),
                Part::Var(v) => s.push_str(self.vars.get(v).map_or("", String::as_str)),
            }
            if s.len() > MAX_VALUE {
                return Err(ParseError(format!(
                    "a word expands to more than {MAX_VALUE} bytes"
                )));
            }
        }
        Ok(s)
    }

    pub fn run(
        &mut self,
        stmts: &[Stmt],
        include: &mut Include<'_>,
        depth: usize,
    ) -> Result<(), ParseError> {
        for stmt in stmts {
            match stmt {
                Stmt::Cmd(name, args) => self.command(name, args, include, depth, None)?,
                Stmt::Block(header, body) => self.block(header, body, include, depth)?,
            }
        }
        Ok(())
    }

    fn block(
        &mut self,
        header: &[Vec<Part>],
        body: &[Stmt],
        include: &mut Include<'_>,
        depth: usize,
    ) -> Result<(), ParseError> {
        let Some((first, args)) = header.split_first() else {
            return self.run(body, include, depth);
        };
        let args: Vec<String> = args
            .iter()
            .map(|a| self.expand(a))
            .collect::<Result<_, _>>()?;
        match self.expand(first)?.as_str() {
            "menuentry" => self.menuentry(&args, body),
            "submenu" if self.submenu.is_none() => {
                let (title, _) = title_and_id(&args);
                self.items.push(Item::Submenu(title, Vec::new()));
                self.submenu = Some(self.items.len() - 1);
                let r = self.run(body, include, depth);
                self.submenu = None;
                r
            }
            "submenu" => self.run(body, include, depth),
            "function" => Ok(()),
            _ => self.run(body, include, depth),
        }
    }

    fn menuentry(&mut self, args: &[String], body: &[Stmt]) -> Result<(), ParseError> {
        if self.entries.len() >= MAX_ENTRIES {
            return Err(ParseError(format!("more than {MAX_ENTRIES} menu entries")));
        }
        let (title, id) = title_and_id(args);
        let mut e = BootEntry::new(EntryKind::Grub, &title);
        e.id = id;
        // The entry's body sees the variables set so far; its own `set`s stay inside it.
        let saved = self.vars.clone();
        let mut nowhere = |_: &str| None;
        for stmt in body {
            if let Stmt::Cmd(name, args) = stmt {
                self.command(name, args, &mut nowhere, MAX_INCLUDE_DEPTH, Some(&mut e))?;
            }
        }
        self.vars = saved;
        if e.kernel.is_empty() {
            return Ok(()); // chainloader, memtest, firmware setup: not a Linux entry
        }
        self.entries.push(e);
        let index = self.entries.len() - 1;
        match self.submenu.and_then(|s| self.items.get_mut(s)) {
            Some(Item::Submenu(_, list)) => list.push(index),
            _ => self.items.push(Item::Entry(index)),
        }
        Ok(())
    }

    fn command(
        &mut self,
        name: &[Part],
        args: &[Vec<Part>],
        include: &mut Include<'_>,
        depth: usize,
        entry: Option<&mut BootEntry>,
    ) -> Result<(), ParseError> {
        let name = self.expand(name)?;
        let args: Vec<String> = args
            .iter()
            .map(|a| self.expand(a))
            .collect::<Result<_, _>>()?;
        if let Some((var, value)) = name.split_once('=').filter(|(v, _)| is_name(v)) {
            self.vars.insert(var.to_string(), value.to_string());
            return Ok(());
        }
        match (name.as_str(), entry) {
            ("set", _) => {
                for a in &args {
                    if let Some((var, value)) = a.split_once('=') {
                        self.vars.insert(var.to_string(), value.to_string());
                    }
                }
            }
            ("linux" | "linux16" | "linuxefi" | "kernel", Some(e)) => {
                if let Some((path, rest)) = args.split_first() {
                    let (device, path) = self.device_and_path(path);
                    e.kernel = absolute(&path);
                    e.partition = device;
                    e.cmdline = rest.join(" ");
                }
            }
            ("initrd" | "initrd16" | "initrdefi", Some(e)) => {
                e.initrds = args
                    .iter()
                    .map(|a| absolute(&self.device_and_path(a).1))
                    .collect();
            }
            ("source" | "configfile", None) if depth < MAX_INCLUDE_DEPTH => {
                if let Some(path) = args.first() {
                    if let Some(text) = include(&split_device(path, false).1) {
                        crate::entries::count_included(&mut self.included, &text)?;
                        self.run(&statements(&text)?, include, depth + 1)?;
                    }
                }
            }
            ("source" | "configfile", None) => {
                return Err(ParseError(format!(
                    "files included more than {MAX_INCLUDE_DEPTH} deep"
                )));
            }
            _ => {}
        }
        Ok(())
    }

    /// "(hd0,gpt2)/vmlinuz" or "/vmlinuz" with `root` set: the partition and the path.
    fn device_and_path(&self, path: &str) -> (Option<u32>, String) {
        match split_device(path, false) {
            (Some(device), path) => (device, path),
            (None, path) => (
                self.vars
                    .get("root")
                    .and_then(|r| grub_device_partition(r, false)),
                path,
            ),
        }
    }

    /// The menu, with `default` resolved: a number ("2", or "1>0" into a submenu), a
    /// title or id (also "submenu title>entry title"), or "saved" (then `saved_entry`).
    pub fn finish(self) -> Menu {
        let mut wanted = self.vars.get("default").cloned().unwrap_or_default();
        if wanted == "saved" || wanted == "${saved_entry}" {
            wanted = self.vars.get("saved_entry").cloned().unwrap_or_default();
        }
        let default = self
            .resolve(wanted.trim())
            .or((!self.entries.is_empty()).then_some(0));
        Menu {
            entries: self.entries,
            default,
        }
    }

    fn resolve(&self, wanted: &str) -> Option<usize> {
        if wanted.is_empty() {
            return None;
        }
        let (head, tail) = match wanted.split_once('>') {
            Some((h, t)) => (h, Some(t)),
            None => (wanted, None),
        };
        let named = |i: usize| {
            let e = &self.entries[i];
            e.title == head || e.id.as_deref() == Some(head)
        };
        let item = match head.parse::<usize>() {
            Ok(n) => self.items.get(n)?,
            Err(_) => self.items.iter().find(|it| match it {
                Item::Entry(i) => named(*i),
                Item::Submenu(t, _) => t == head,
            })?,
        };
        match (item, tail) {
            (Item::Entry(i), _) => Some(*i),
            (Item::Submenu(_, list), None) => list.first().copied(),
            (Item::Submenu(_, list), Some(t)) => match t.parse::<usize>() {
                Ok(n) => list.get(n).copied(),
                Err(_) => list.iter().copied().find(|i| {
                    let e = &self.entries[*i];
                    e.title == t || e.id.as_deref() == Some(t)
                }),
            },
        }
    }
}

fn is_name(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The first argument that is not an option is the title; `--id X` names it. Only
/// GRUB's own options are options ("--" ends them), so a title may start with "--".
fn title_and_id(args: &[String]) -> (String, Option<String>) {
    let (mut title, mut id) = (None, None);
    let mut options = true;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let (name, inline) = match a.split_once('=') {
            Some((n, v)) if options && n.starts_with("--") => (n, Some(v.to_string())),
            _ => (a.as_str(), None),
        };
        match name {
            "--" if options => options = false,
            "--id" if options => id = inline.or_else(|| it.next().cloned()),
            "--class" | "--users" | "--hotkey" | "--source" if options && inline.is_none() => {
                it.next();
            }
            "--class" | "--users" | "--hotkey" | "--source" if options => {}
            "--unrestricted" if options => {}
            _ if title.is_none() => title = Some(a.to_string()),
            // grub-mkconfig writes `$menuentry_id_option 'gnulinux-…'`; which branch set
            // the option is not evaluated here, so a bare word after the title is the id.
            "" => {}
            _ if id.is_none() => id = Some(a.to_string()),
            _ => {}
        }
    }
    (title.unwrap_or_default(), id)
}
