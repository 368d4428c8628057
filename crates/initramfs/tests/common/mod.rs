//! Test helpers: an independent newc parser, extraction with the host's `cpio`, and a
//! snapshot of a directory tree to compare what went in with what came out.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::process::{Command, Stdio};

/// One parsed newc entry.
#[derive(Debug, Clone)]
pub struct Parsed {
    pub name: String,
    pub ino: u32,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub nlink: u32,
    pub mtime: u32,
    pub rdev: (u32, u32),
    pub data: Vec<u8>,
}

/// Parses a newc archive strictly: magic, hex fields, 4-byte alignment of every header
/// and data, the trailer, and nothing but zeros after it.
pub fn parse_newc(bytes: &[u8]) -> Vec<Parsed> {
    let mut at = 0;
    let mut out = Vec::new();
    loop {
        assert_eq!(at % 4, 0, "header at {at} not 4-aligned");
        let h = &bytes[at..at + 110];
        assert_eq!(&h[..6], b"070701", "magic at {at}");
        let f = |i: usize| {
            u32::from_str_radix(std::str::from_utf8(&h[6 + 8 * i..14 + 8 * i]).unwrap(), 16)
                .unwrap()
        };
        let namesize = f(11) as usize;
        let name_bytes = &bytes[at + 110..at + 110 + namesize];
        assert_eq!(name_bytes.last(), Some(&0), "name NUL-terminated");
        let name = String::from_utf8(name_bytes[..namesize - 1].to_vec()).unwrap();
        let data_at = (at + 110 + namesize + 3) & !3;
        assert!(
            bytes[at + 110 + namesize..data_at].iter().all(|&b| b == 0),
            "name padding is zeros"
        );
        let size = f(6) as usize;
        let data = bytes[data_at..data_at + size].to_vec();
        let next = (data_at + size + 3) & !3;
        assert!(bytes[data_at + size..next].iter().all(|&b| b == 0));
        assert_eq!(f(12), 0, "check field");
        assert_eq!((f(7), f(8)), (0, 0), "dev fields");
        at = next;
        if name == "TRAILER!!!" {
            assert_eq!(bytes.len() % 512, 0, "archive padded to 512");
            assert!(bytes[at..].iter().all(|&b| b == 0));
            return out;
        }
        out.push(Parsed {
            name,
            ino: f(0),
            mode: f(1),
            uid: f(2),
            gid: f(3),
            nlink: f(4),
            mtime: f(5),
            rdev: (f(9), f(10)),
            data,
        });
    }
}

/// Checks what every archive of ours must satisfy: sequential inodes from 1, sorted
/// names, every parent directory before its children, no hard links.
pub fn check_invariants(entries: &[Parsed]) {
    let mut dirs = std::collections::HashSet::new();
    for (i, e) in entries.iter().enumerate() {
        assert_eq!(e.ino as usize, i + 1, "inode of {}", e.name);
        if i > 0 {
            assert!(entries[i - 1].name < e.name, "sorted at {}", e.name);
        }
        if let Some((parent, _)) = e.name.rsplit_once('/') {
            assert!(dirs.contains(parent), "{} before its parent", e.name);
        }
        let is_dir = e.mode & 0o170000 == 0o040000;
        assert_eq!(e.nlink, if is_dir { 2 } else { 1 }, "nlink of {}", e.name);
        if is_dir {
            dirs.insert(e.name.clone());
        }
    }
}

/// Extracts an uncompressed archive with the host's GNU cpio into `dir`.
pub fn cpio_extract(archive: &[u8], dir: &Path) {
    use std::io::Write;
    std::fs::create_dir_all(dir).unwrap();
    let mut child = Command::new("cpio")
        .args(["-idm", "--quiet", "--no-absolute-filenames"])
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cpio runs (apt-get install cpio)");
    child.stdin.take().unwrap().write_all(archive).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "cpio -i failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "cpio -i complained: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Dir { mode: u32 },
    File { mode: u32, data: Vec<u8> },
    Symlink { target: Vec<u8> },
    Char { mode: u32, rdev: u64 },
    Block { mode: u32, rdev: u64 },
    Fifo { mode: u32 },
}

/// Every object below `root` by relative path (symlinks not followed).
pub fn snapshot(root: &Path) -> BTreeMap<String, Node> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for item in std::fs::read_dir(&dir).unwrap() {
            let path = item.unwrap().path();
            let rel = String::from_utf8(
                path.strip_prefix(root)
                    .unwrap()
                    .as_os_str()
                    .as_bytes()
                    .to_vec(),
            )
            .unwrap();
            let m = std::fs::symlink_metadata(&path).unwrap();
            let mode = m.mode() & 0o7777;
            let ft = m.file_type();
            let node = if ft.is_dir() {
                stack.push(path.clone());
                Node::Dir { mode }
            } else if ft.is_file() {
                Node::File {
                    mode,
                    data: std::fs::read(&path).unwrap(),
                }
            } else if ft.is_symlink() {
                Node::Symlink {
                    target: std::fs::read_link(&path)
                        .unwrap()
                        .as_os_str()
                        .as_bytes()
                        .to_vec(),
                }
            } else if ft.is_char_device() {
                Node::Char {
                    mode,
                    rdev: m.rdev(),
                }
            } else if ft.is_block_device() {
                Node::Block {
                    mode,
                    rdev: m.rdev(),
                }
            } else if ft.is_fifo() {
                Node::Fifo { mode }
            } else {
                continue; // sockets are not archived
            };
            out.insert(rel, node);
        }
    }
    out
}

pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

pub fn chmod(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Runs `tool args` with `input` on stdin; returns (success, stdout, stderr).
pub fn pipe(tool: &str, args: &[&str], input: &[u8]) -> (bool, Vec<u8>, String) {
    use std::io::Write;
    let mut child = Command::new(tool)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{tool} runs: {e}"));
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let feeder = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    (
        out.status.success(),
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Deterministic pseudo-random bytes, half of them compressible text.
pub fn payload(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut v = Vec::with_capacity(len);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        if (v.len() / 4096) % 2 == 0 {
            v.extend_from_slice(&x.to_le_bytes());
        } else {
            v.extend_from_slice(format!("{:08} ", x % 100_000_000).as_bytes());
        }
    }
    v.truncate(len);
    v
}
