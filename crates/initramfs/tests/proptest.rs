//! Random trees: what GNU `cpio -i` extracts from our archive is exactly the tree we put
//! in, every archive satisfies the format's invariants, and the insertion order does not
//! change a reproducible archive.

mod common;

use common::*;
use domboot_initramfs::{Compression, Initramfs};
use proptest::prelude::*;
use std::collections::BTreeMap;

#[derive(Clone, Debug)]
enum T {
    File(u32, Vec<u8>),
    Link(String),
    Dir(u32, BTreeMap<String, T>),
}

fn name() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 _.,+=é-]{1,12}".prop_filter("not . or ..", |n| n != "." && n != "..")
}

fn file_mode() -> impl Strategy<Value = u32> {
    let root = is_root();
    any::<u32>().prop_map(move |m| {
        if root {
            m & 0o7777
        } else {
            (m & 0o777) | 0o600
        }
    })
}

fn dir_mode() -> impl Strategy<Value = u32> {
    if is_root() {
        prop::sample::select(vec![0o755u32, 0o700, 0o750, 0o1777, 0o2755, 0o555])
    } else {
        prop::sample::select(vec![0o755u32, 0o700, 0o750])
    }
}

fn tree() -> impl Strategy<Value = BTreeMap<String, T>> {
    let leaf = prop_oneof![
        (file_mode(), prop::collection::vec(any::<u8>(), 0..700)).prop_map(|(m, d)| T::File(m, d)),
        "[a-z./]{1,12}".prop_map(T::Link),
        dir_mode().prop_map(|m| T::Dir(m, BTreeMap::new())),
    ];
    let node = leaf.prop_recursive(3, 48, 6, |inner| {
        (dir_mode(), prop::collection::btree_map(name(), inner, 0..6))
            .prop_map(|(m, c)| T::Dir(m, c))
    });
    prop::collection::btree_map(name(), node, 0..8)
}

/// (path, node) pairs, parents first.
fn flatten(prefix: &str, t: &BTreeMap<String, T>, out: &mut Vec<(String, T)>) {
    for (n, node) in t {
        let path = if prefix.is_empty() {
            n.clone()
        } else {
            format!("{prefix}/{n}")
        };
        out.push((path.clone(), node.clone()));
        if let T::Dir(_, children) = node {
            flatten(&path, children, out);
        }
    }
}

fn build(items: &[(String, T)]) -> Initramfs {
    let mut fs = Initramfs::new().reproducible(true);
    for (path, node) in items {
        let p = format!("/{path}");
        fs = match node {
            T::File(m, d) => fs.file(&p, *m, d.clone()),
            T::Link(target) => fs.symlink(&p, target),
            T::Dir(m, _) => fs.dir(&p, *m),
        };
    }
    fs
}

fn expected(items: &[(String, T)]) -> BTreeMap<String, Node> {
    items
        .iter()
        .map(|(p, n)| {
            let node = match n {
                T::File(m, d) => Node::File {
                    mode: *m,
                    data: d.clone(),
                },
                T::Link(t) => Node::Symlink {
                    target: t.as_bytes().to_vec(),
                },
                T::Dir(m, _) => Node::Dir { mode: *m },
            };
            (p.clone(), node)
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn gnu_cpio_extracts_the_same_tree(t in tree()) {
        let mut items = Vec::new();
        flatten("", &t, &mut items);
        let archive = build(&items).to_bytes(Compression::None).unwrap();
        let entries = parse_newc(&archive);
        check_invariants(&entries);
        prop_assert_eq!(entries.len(), items.len());

        let dir = tempfile::tempdir().unwrap();
        cpio_extract(&archive, dir.path());
        prop_assert_eq!(snapshot(dir.path()), expected(&items));

        // Children before parents, reversed: the archive does not change.
        items.reverse();
        prop_assert!(build(&items).to_bytes(Compression::None).unwrap() == archive);
    }
}
