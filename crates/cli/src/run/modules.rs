//! Kernel modules for `run --exec`: find a module and everything it depends on in a
//! modules tree (modules.dep when depmod made one, each module's `.modinfo` otherwise), in
//! the order they must be loaded.

use anyhow::{Context, bail};
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

/// Module file suffixes, plain or compressed.
const SUFFIXES: [&str; 4] = [".ko", ".ko.xz", ".ko.zst", ".ko.gz"];

/// "vfat", "nf-tables" and "nf_tables" name the same module.
fn normalise(name: &str) -> String {
    name.replace('-', "_")
}

fn module_name(path: &Path) -> Option<String> {
    let file = path.file_name()?.to_str()?;
    SUFFIXES
        .iter()
        .find_map(|s| file.strip_suffix(s))
        .map(normalise)
}

/// Every module file under `dir`, by normalised name.
fn index(dir: &Path) -> anyhow::Result<BTreeMap<String, PathBuf>> {
    let mut found = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries =
            std::fs::read_dir(&d).with_context(|| format!("cannot read {}", d.display()))?;
        for e in entries {
            let e = e.with_context(|| format!("cannot read {}", d.display()))?;
            let path = e.path();
            let kind = e.file_type()?;
            if kind.is_dir() {
                stack.push(path);
            } else if let Some(name) = module_name(&path) {
                found.entry(name).or_insert(path);
            }
        }
    }
    Ok(found)
}

/// Dependencies of one module, by name.
fn depends(
    dir: &Path,
    dep_file: &Option<BTreeMap<String, Vec<String>>>,
    name: &str,
    path: &Path,
) -> anyhow::Result<Vec<String>> {
    if let Some(map) = dep_file
        && let Some(deps) = map.get(name)
    {
        return Ok(deps.clone());
    }
    let bytes = read_module(path)?;
    let elf = domboot_formats::elf::ElfImage::parse(&bytes)
        .with_context(|| format!("{}: not a kernel module", path.display()))?;
    let modinfo = elf
        .sections
        .iter()
        .find(|s| s.name.as_deref() == Some(".modinfo"))
        .and_then(|s| s.bytes(&bytes))
        .with_context(|| {
            format!(
                "{}: no .modinfo section (in {})",
                path.display(),
                dir.display()
            )
        })?;
    Ok(modinfo
        .split(|&b| b == 0)
        .filter_map(|kv| kv.strip_prefix(b"depends="))
        .flat_map(|v| {
            String::from_utf8_lossy(v)
                .split(',')
                .map(normalise)
                .collect::<Vec<_>>()
        })
        .filter(|d| !d.is_empty())
        .collect())
}

/// modules.dep as a map from module name to the names it depends on.
fn read_modules_dep(dir: &Path) -> Option<BTreeMap<String, Vec<String>>> {
    let text = std::fs::read_to_string(dir.join("modules.dep")).ok()?;
    let mut map = BTreeMap::new();
    for line in text.lines() {
        let Some((module, deps)) = line.split_once(':') else {
            continue;
        };
        let Some(name) = module_name(Path::new(module)) else {
            continue;
        };
        let deps = deps
            .split_whitespace()
            .filter_map(|d| module_name(Path::new(d)))
            .collect();
        map.insert(name, deps);
    }
    Some(map)
}

/// The module bytes, decompressed when the file is compressed (busybox's insmod takes
/// plain ELF objects).
pub fn read_module(path: &Path) -> anyhow::Result<Vec<u8>> {
    let data = domboot_formats::map_file(path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let name = path.to_string_lossy();
    if name.ends_with(".ko") {
        return Ok(data.to_vec());
    }
    let chain = domboot_formats::unwrap_bytes(data, &Default::default())
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(chain.innermost().data.to_vec())
}

/// What the dependency walk needs to know about one modules tree.
struct Tree<'a> {
    dir: &'a Path,
    index: BTreeMap<String, PathBuf>,
    dep_file: Option<BTreeMap<String, Vec<String>>>,
    builtin: HashSet<String>,
}

/// The depth-first walk: dependencies before dependents, each module once.
struct Walk {
    seen: HashSet<String>,
    stack: Vec<String>,
    order: Vec<(String, PathBuf)>,
}

impl Walk {
    fn visit(&mut self, tree: &Tree<'_>, name: &str) -> anyhow::Result<()> {
        if self.seen.contains(name) {
            return Ok(());
        }
        if self.stack.iter().any(|s| s == name) {
            bail!(
                "modules depend on each other in a cycle: {} -> {name}",
                self.stack.join(" -> ")
            );
        }
        let Some(path) = tree.index.get(name) else {
            if tree.builtin.contains(name) {
                self.seen.insert(name.to_string());
                return Ok(());
            }
            bail!(
                "module {name} not found in {} (nor built into the kernel)",
                tree.dir.display()
            );
        };
        self.stack.push(name.to_string());
        for dep in depends(tree.dir, &tree.dep_file, name, path)? {
            self.visit(tree, &dep)?;
        }
        self.stack.pop();
        self.seen.insert(name.to_string());
        self.order.push((name.to_string(), path.clone()));
        Ok(())
    }
}

/// `names` and their dependencies, dependencies first, each once.
pub fn resolve(dir: &Path, names: &[String]) -> anyhow::Result<Vec<(String, PathBuf)>> {
    if !dir.is_dir() {
        bail!(
            "modules folder {} does not exist (give one with --modules DIR)",
            dir.display()
        );
    }
    let tree = Tree {
        dir,
        index: index(dir)?,
        dep_file: read_modules_dep(dir),
        builtin: std::fs::read_to_string(dir.join("modules.builtin"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| module_name(Path::new(l)))
            .collect(),
    };
    let mut walk = Walk {
        seen: HashSet::new(),
        stack: Vec::new(),
        order: Vec::new(),
    };
    for n in names {
        walk.visit(&tree, &normalise(n))?;
    }
    Ok(walk.order)
}
