//! Where entries come from: a host directory tree, a `gen_init_cpio` file list, a TOML
//! manifest. The formats are described in the crate's README.

use crate::builder::{Contents, Entry, Initramfs, Kind, Owner};
use crate::cpio::{self, PERM_MASK, Special};
use crate::error::{Error, Result};
use serde::Deserialize;
use std::fs::Metadata;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// An entry with a host file's permissions, owner and mtime.
pub(crate) fn host_entry(kind: Kind, meta: &Metadata) -> Entry {
    Entry {
        kind,
        mode: meta.mode() & PERM_MASK,
        owner: Owner::Host {
            uid: meta.uid(),
            gid: meta.gid(),
        },
        mtime: Some(meta.mtime().max(0) as u64),
    }
}

/// Linux's encoding of dev_t (glibc's gnu_dev_major / gnu_dev_minor).
fn dev_major(rdev: u64) -> u32 {
    (((rdev >> 8) & 0xfff) | ((rdev >> 32) & !0xfff)) as u32
}

fn dev_minor(rdev: u64) -> u32 {
    ((rdev & 0xff) | ((rdev >> 12) & !0xff)) as u32
}

/// The entry for one host object (not followed if a symlink), or `None` for a socket.
fn entry_for(path: &Path, meta: &Metadata) -> Result<Option<Entry>> {
    let ft = meta.file_type();
    let kind = if ft.is_dir() {
        Kind::Dir
    } else if ft.is_file() {
        Kind::File(Contents::HostFile(path.to_path_buf()))
    } else if ft.is_symlink() {
        let target =
            std::fs::read_link(path).map_err(|e| Error::io(path, "cannot read the link", e))?;
        Kind::Symlink(target.as_os_str().as_bytes().to_vec())
    } else if ft.is_char_device() {
        Kind::Special(Special::Char {
            major: dev_major(meta.rdev()),
            minor: dev_minor(meta.rdev()),
        })
    } else if ft.is_block_device() {
        Kind::Special(Special::Block {
            major: dev_major(meta.rdev()),
            minor: dev_minor(meta.rdev()),
        })
    } else if ft.is_fifo() {
        Kind::Special(Special::Fifo)
    } else {
        return Ok(None);
    };
    Ok(Some(host_entry(kind, meta)))
}

fn join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(dir.len() + 1 + name.len());
    p.extend_from_slice(dir);
    if !dir.is_empty() {
        p.push(b'/');
    }
    p.extend_from_slice(name);
    p
}

/// Adds everything below `src` (followed if a symlink itself) under `dest`.
pub(crate) fn add_tree(fs: &mut Initramfs, src: &Path, dest: &[u8]) -> Result<()> {
    let dest = cpio::normalize(dest)?;
    let root = std::fs::metadata(src).map_err(|e| Error::io(src, "cannot read", e))?;
    if !root.is_dir() {
        return Err(Error::NotADirectory {
            path: src.to_path_buf(),
        });
    }
    if !dest.is_empty() {
        fs.insert_normalized(dest.clone(), host_entry(Kind::Dir, &root));
    }
    // An explicit stack: trees of any depth, no recursion.
    let mut stack = vec![(src.to_path_buf(), dest)];
    while let Some((dir, at)) = stack.pop() {
        let listing =
            std::fs::read_dir(&dir).map_err(|e| Error::io(&dir, "cannot list the directory", e))?;
        for item in listing {
            let item = item.map_err(|e| Error::io(&dir, "cannot list the directory", e))?;
            let path = item.path();
            let meta =
                std::fs::symlink_metadata(&path).map_err(|e| Error::io(&path, "cannot read", e))?;
            let name = join(&at, item.file_name().as_bytes());
            if name.len() + 1 > crate::error::MAX_NAME {
                return Err(Error::NameTooLong {
                    path: crate::error::ArchivePath(name.clone()),
                    len: name.len() + 1,
                });
            }
            match entry_for(&path, &meta)? {
                Some(entry) => {
                    if matches!(entry.kind, Kind::Dir) {
                        stack.push((path, name.clone()));
                    }
                    fs.insert_normalized(name, entry);
                }
                None => fs.warn(format!("{}: skipping a socket", path.display())),
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// gen_init_cpio lists

/// `${NAME}` from the environment, as gen_init_cpio expands locations.
fn expand_env(s: &str) -> std::result::Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find("${") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("unterminated ${{ in {s:?}"))?;
        let name = &after[..end];
        let value = std::env::var(name)
            .map_err(|_| format!("environment variable {name} (in {s:?}) is not set"))?;
        out.push_str(&value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn parse_mode(s: &str) -> std::result::Result<u32, String> {
    let mode = u32::from_str_radix(s, 8).map_err(|_| format!("mode {s:?} is not octal"))?;
    if mode & !PERM_MASK != 0 {
        return Err(format!(
            "mode {s:?} has bits outside the permission bits 0o7777"
        ));
    }
    Ok(mode)
}

fn parse_num(s: &str, what: &str) -> std::result::Result<u32, String> {
    s.parse()
        .map_err(|_| format!("{what} {s:?} is not a decimal number"))
}

const LIST_SYNTAX: &str = "file NAME LOCATION MODE UID GID [LINKS...] | dir NAME MODE UID GID | \
nod NAME MODE UID GID b|c MAJ MIN | slink NAME TARGET MODE UID GID | pipe NAME MODE UID GID | \
sock NAME MODE UID GID | DEST SRC";

/// Adds the entries of a gen_init_cpio file list.
pub(crate) fn add_list(fs: &mut Initramfs, text: &str, origin: &Path, base: &Path) -> Result<()> {
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let err = |message: String| Error::List {
            file: origin.to_path_buf(),
            line: i + 1,
            message,
        };
        let f: Vec<&str> = line.split_whitespace().collect();
        let want = |n: usize| {
            if f.len() == n {
                Ok(())
            } else {
                Err(err(format!(
                    "{} takes {} fields, found {}: {line:?}",
                    f[0],
                    n - 1,
                    f.len() - 1
                )))
            }
        };
        let owner = |uid: &str, gid: &str| -> Result<Owner> {
            Ok(Owner::Explicit {
                uid: parse_num(uid, "uid").map_err(err)?,
                gid: parse_num(gid, "gid").map_err(err)?,
            })
        };
        let put = |fs: &mut Initramfs, name: &str, entry: Entry| -> Result<()> {
            let key = cpio::normalize(name.as_bytes()).map_err(|e| err(e.to_string()))?;
            if key.is_empty() {
                return Err(err("the root cannot be an entry".into()));
            }
            fs.insert_normalized(key, entry);
            Ok(())
        };
        match f[0] {
            "file" => {
                if f.len() < 6 {
                    return Err(err(format!(
                        "file takes at least 5 fields (NAME LOCATION MODE UID GID [LINKS...]): {line:?}"
                    )));
                }
                let location = expand_env(f[2]).map_err(err)?;
                let src = base.join(location);
                let meta =
                    std::fs::metadata(&src).map_err(|e| err(format!("{}: {e}", src.display())))?;
                if !meta.is_file() {
                    return Err(err(format!("{}: not a regular file", src.display())));
                }
                let entry = Entry {
                    kind: Kind::File(Contents::HostFile(src)),
                    mode: parse_mode(f[3]).map_err(err)?,
                    owner: owner(f[4], f[5])?,
                    mtime: Some(meta.mtime().max(0) as u64),
                };
                // Hard links become copies: the archive holds none.
                for name in f[6..].iter().copied().chain([f[1]]) {
                    put(fs, name, entry.clone())?;
                }
            }
            "dir" => {
                want(5)?;
                let entry = Entry {
                    kind: Kind::Dir,
                    mode: parse_mode(f[2]).map_err(err)?,
                    owner: owner(f[3], f[4])?,
                    mtime: None,
                };
                put(fs, f[1], entry)?;
            }
            "nod" => {
                want(8)?;
                let major = parse_num(f[6], "major").map_err(err)?;
                let minor = parse_num(f[7], "minor").map_err(err)?;
                let special = match f[5] {
                    "c" => Special::Char { major, minor },
                    "b" => Special::Block { major, minor },
                    other => {
                        return Err(err(format!(
                            "device type {other:?} is neither b (block) nor c (character)"
                        )));
                    }
                };
                let entry = Entry {
                    kind: Kind::Special(special),
                    mode: parse_mode(f[2]).map_err(err)?,
                    owner: owner(f[3], f[4])?,
                    mtime: None,
                };
                put(fs, f[1], entry)?;
            }
            "slink" => {
                want(6)?;
                let entry = Entry {
                    kind: Kind::Symlink(f[2].as_bytes().to_vec()),
                    mode: parse_mode(f[3]).map_err(err)?,
                    owner: owner(f[4], f[5])?,
                    mtime: None,
                };
                put(fs, f[1], entry)?;
            }
            "pipe" | "sock" => {
                want(5)?;
                let special = if f[0] == "pipe" {
                    Special::Fifo
                } else {
                    Special::Socket
                };
                let entry = Entry {
                    kind: Kind::Special(special),
                    mode: parse_mode(f[2]).map_err(err)?,
                    owner: owner(f[3], f[4])?,
                    mtime: None,
                };
                put(fs, f[1], entry)?;
            }
            _ if f.len() == 2 => {
                // DEST SRC: a host file, symlink, device or directory tree.
                let src = base.join(expand_env(f[1]).map_err(err)?);
                let meta = std::fs::symlink_metadata(&src)
                    .map_err(|e| err(format!("`{} {}`: {}: {e}", f[0], f[1], src.display())))?;
                if meta.is_dir() {
                    add_tree(fs, &src, f[0].as_bytes())?;
                } else {
                    match entry_for(&src, &meta)? {
                        Some(entry) => put(fs, f[0], entry)?,
                        None => return Err(err(format!("{}: is a socket", src.display()))),
                    }
                }
            }
            other => {
                return Err(err(format!(
                    "unknown entry type {other:?}; lines are: {LIST_SYNTAX}"
                )));
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// TOML manifests

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    #[serde(default)]
    busybox: Option<BusyboxSetting>,
    #[serde(default)]
    tree: Vec<TreeItem>,
    #[serde(default)]
    dir: Vec<DirItem>,
    #[serde(default)]
    file: Vec<FileItem>,
    #[serde(default)]
    symlink: Vec<SymlinkItem>,
    #[serde(default)]
    node: Vec<NodeItem>,
}

/// A mode in a manifest: a string of octal digits. Integers are refused, since TOML's
/// `755` is decimal (0o1363) and `0o755` cannot be told apart from `493`.
struct Mode(String);

impl<'de> Deserialize<'de> for Mode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Mode;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a mode as a string of octal digits, like \"0755\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> std::result::Result<Mode, E> {
                Ok(Mode(v.to_string()))
            }
        }
        d.deserialize_str(V)
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum BusyboxSetting {
    Auto(bool),
    Path(PathBuf),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TreeItem {
    source: PathBuf,
    #[serde(default = "slash")]
    path: String,
}

fn slash() -> String {
    "/".into()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DirItem {
    path: String,
    mode: Option<Mode>,
    uid: Option<u32>,
    gid: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileItem {
    path: String,
    source: Option<PathBuf>,
    contents: Option<String>,
    mode: Option<Mode>,
    uid: Option<u32>,
    gid: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SymlinkItem {
    path: String,
    target: String,
    uid: Option<u32>,
    gid: Option<u32>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum NodeType {
    Char,
    Block,
    Fifo,
    Socket,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NodeItem {
    path: String,
    #[serde(rename = "type")]
    kind: NodeType,
    major: Option<u32>,
    minor: Option<u32>,
    mode: Option<Mode>,
    uid: Option<u32>,
    gid: Option<u32>,
}

/// Adds the entries of a TOML manifest: busybox first, then trees, directories, files,
/// symlinks and nodes, so explicit entries override what a tree brought at the same path.
pub(crate) fn add_manifest(
    fs: &mut Initramfs,
    text: &str,
    origin: &Path,
    base: &Path,
) -> Result<()> {
    let err = |message: String| Error::Manifest {
        file: origin.to_path_buf(),
        message,
    };
    let m: Manifest = toml::from_str(text).map_err(|e| err(e.to_string()))?;
    let host = |p: &Path| base.join(p);
    let mode = |what: &str, path: &str, m: &Option<Mode>, default: u32| match m {
        None => Ok(default),
        Some(Mode(s)) => {
            parse_mode(s.trim_start_matches("0o")).map_err(|e| err(format!("{what} {path:?}: {e}")))
        }
    };
    let owner = |uid: Option<u32>, gid: Option<u32>| match (uid, gid) {
        (None, None) => Owner::Root,
        (u, g) => Owner::Explicit {
            uid: u.unwrap_or(0),
            gid: g.unwrap_or(0),
        },
    };
    let put = |fs: &mut Initramfs, what: &str, path: &str, entry: Entry| -> Result<()> {
        let key = cpio::normalize(path.as_bytes()).map_err(|e| err(format!("{what}: {e}")))?;
        if key.is_empty() {
            return Err(err(format!("{what} {path:?}: the root cannot be an entry")));
        }
        fs.insert_normalized(key, entry);
        Ok(())
    };

    match m.busybox {
        None | Some(BusyboxSetting::Auto(false)) => {}
        Some(BusyboxSetting::Auto(true)) => {
            let path = crate::busybox::find()?;
            crate::busybox::add(fs, &path)?;
        }
        Some(BusyboxSetting::Path(p)) => crate::busybox::add(fs, &host(&p))?,
    }
    for t in &m.tree {
        add_tree(fs, &host(&t.source), t.path.as_bytes())?;
    }
    for d in &m.dir {
        let entry = Entry {
            kind: Kind::Dir,
            mode: mode("[[dir]]", &d.path, &d.mode, 0o755)?,
            owner: owner(d.uid, d.gid),
            mtime: None,
        };
        put(fs, "[[dir]]", &d.path, entry)?;
    }
    for f in &m.file {
        let (contents, default_mode, mtime) = match (&f.source, &f.contents) {
            (Some(src), None) => {
                let src = host(src);
                let meta = std::fs::metadata(&src)
                    .map_err(|e| err(format!("[[file]] {:?}: {}: {e}", f.path, src.display())))?;
                if !meta.is_file() {
                    return Err(err(format!(
                        "[[file]] {:?}: {} is not a regular file",
                        f.path,
                        src.display()
                    )));
                }
                (
                    Contents::HostFile(src),
                    meta.mode() & PERM_MASK,
                    Some(meta.mtime().max(0) as u64),
                )
            }
            (None, Some(text)) => (Contents::Bytes(text.as_bytes().into()), 0o644, None),
            _ => {
                return Err(err(format!(
                    "[[file]] {:?}: give exactly one of `source` and `contents`",
                    f.path
                )));
            }
        };
        let entry = Entry {
            kind: Kind::File(contents),
            mode: mode("[[file]]", &f.path, &f.mode, default_mode)?,
            owner: owner(f.uid, f.gid),
            mtime,
        };
        put(fs, "[[file]]", &f.path, entry)?;
    }
    for s in &m.symlink {
        if s.target.is_empty() {
            return Err(err(format!("[[symlink]] {:?}: empty target", s.path)));
        }
        let entry = Entry {
            kind: Kind::Symlink(s.target.as_bytes().to_vec()),
            mode: 0o777,
            owner: owner(s.uid, s.gid),
            mtime: None,
        };
        put(fs, "[[symlink]]", &s.path, entry)?;
    }
    for n in &m.node {
        let numbers = || match (n.major, n.minor) {
            (Some(major), Some(minor)) => Ok((major, minor)),
            _ => Err(err(format!(
                "[[node]] {:?}: a char or block device needs `major` and `minor`",
                n.path
            ))),
        };
        let (special, default_mode) = match n.kind {
            NodeType::Char => {
                let (major, minor) = numbers()?;
                (Special::Char { major, minor }, 0o600)
            }
            NodeType::Block => {
                let (major, minor) = numbers()?;
                (Special::Block { major, minor }, 0o600)
            }
            NodeType::Fifo => (Special::Fifo, 0o644),
            NodeType::Socket => (Special::Socket, 0o755),
        };
        let entry = Entry {
            kind: Kind::Special(special),
            mode: mode("[[node]]", &n.path, &n.mode, default_mode)?,
            owner: owner(n.uid, n.gid),
            mtime: None,
        };
        put(fs, "[[node]]", &n.path, entry)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_t_decoding() {
        // makedev(5, 1) and makedev(259, 70000) as glibc encodes them.
        let mk = |maj: u64, min: u64| {
            ((maj & 0xfff) << 8) | ((maj & !0xfff) << 32) | (min & 0xff) | ((min & !0xff) << 12)
        };
        assert_eq!((dev_major(mk(5, 1)), dev_minor(mk(5, 1))), (5, 1));
        let d = mk(259, 70000);
        assert_eq!((dev_major(d), dev_minor(d)), (259, 70000));
    }

    #[test]
    fn env_expansion() {
        // SAFETY-free: only reads; HOME is set in any test environment worth the name.
        let home = std::env::var("HOME").unwrap_or_default();
        if !home.is_empty() {
            assert_eq!(expand_env("${HOME}/x").unwrap(), format!("{home}/x"));
        }
        assert_eq!(expand_env("plain $x").unwrap(), "plain $x");
        assert!(expand_env("${DOMBOOT_SURELY_UNSET_VARIABLE}").is_err());
        assert!(expand_env("${OPEN").is_err());
    }

    #[test]
    fn modes() {
        assert_eq!(parse_mode("0755").unwrap(), 0o755);
        assert_eq!(parse_mode("4755").unwrap(), 0o4755);
        assert!(parse_mode("100644").is_err());
        assert!(parse_mode("9").is_err());
    }

    proptest::proptest! {
        #[test]
        fn lists_and_manifests_never_panic(text in "(file|dir|nod|slink|pipe|sock|[a-z.{}=\\[\\]\" 0-9#\n])*") {
            // No '/' or '$' in the text: every host path stays below a missing base.
            let base = std::path::Path::new("/nonexistent-base");
            let mut fs = Initramfs::new();
            let _ = add_list(&mut fs, &text, Path::new("l"), base);
            let _ = add_manifest(&mut fs, &text, Path::new("m"), base);
        }
    }
}
