//! Whole chains of real kernels: every payload compression of the tiny kernels, the Debian
//! kernels, and the limits on nesting and decompressed size.

use domboot_testkit as support;

use bytes::Bytes;
use domboot_formats::{ChainOptions, Format, LayerErrorKind, open, unwrap_bytes};

fn segments_json(layer: &domboot_formats::Layer) -> serde_json::Value {
    serde_json::to_value(layer.elf().expect("an ELF layer")).unwrap()["segments"].clone()
}

#[test]
fn tiny_kernels_unwrap_to_the_segments_of_their_vmlinux() {
    for &(name, compression, is64, _, pvh) in support::TINY_KERNELS {
        let chain = open(
            support::shared_kernel(&format!("bzImage-{name}")),
            &Default::default(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let formats: Vec<&str> = chain.layers.iter().map(|l| l.format.name()).collect();
        let elf = if is64 { "elf64" } else { "elf32" };
        assert_eq!(formats, ["bzimage", compression, elf], "{name}");

        let inner = chain.kernel_elf().unwrap();
        let vmlinux = open(
            support::shared_kernel(&format!("vmlinux-{name}")),
            &Default::default(),
        )
        .unwrap();
        assert_eq!(vmlinux.layers.len(), 1);
        let reference = &vmlinux.layers[0];
        assert_eq!(reference.format.name(), elf, "{name}");
        let ours = segments_json(inner);
        assert!(ours.as_array().is_some_and(|s| !s.is_empty()), "{name}");
        assert_eq!(ours, segments_json(reference), "{name}: PT_LOADs differ");
        let e = inner.elf().unwrap();
        assert_eq!(e.pvh_entry.is_some(), pvh, "{name}: PVH note");
        assert_eq!(e.pvh_entry, reference.elf().unwrap().pvh_entry, "{name}");

        let c = chain.layers[1].compressed().unwrap();
        assert_eq!(c.decompressed_size, inner.size, "{name}");
        // The stream, then the kernel's 4-byte size trailer, then any zero padding.
        let c_json = serde_json::to_value(c).unwrap();
        let trailer = if c_json["trailer"].is_null() { 0 } else { 4 };
        let padding = c_json["padding"].as_u64().unwrap();
        // Kbuild appends the size to every payload but gzip (whose ISIZE says it already).
        let expect_trailer = if compression == "gzip" { 0 } else { 4 };
        assert_eq!(trailer, expect_trailer, "{name}: the kernel's size trailer");
        assert_eq!(
            c.compressed_size + trailer + padding,
            chain.layers[1].size,
            "{name}"
        );
    }
}

#[test]
fn debian_kernels_unwrap_to_a_pvh_elf() {
    for (flavour, compression) in [("cloud", Format::Lz4), ("generic", Format::Xz)] {
        let k = support::debian_kernel(flavour);
        let chain = open(&k.vmlinuz, &Default::default()).unwrap_or_else(|e| panic!("{e}"));
        let formats: Vec<Format> = chain.layers.iter().map(|l| l.format).collect();
        assert_eq!(
            formats,
            [Format::BzImage, compression, Format::Elf64],
            "{flavour}"
        );
        let elf = chain.kernel_elf().unwrap().elf().unwrap();
        assert!(
            elf.pvh_entry.is_some(),
            "{flavour}: Debian kernels carry the PVH note"
        );
        let b = chain.bzimage().unwrap().bzimage().unwrap();
        assert!(
            chain.kernel_elf().unwrap().size <= u64::from(b.init_size.unwrap()),
            "the decompressed kernel fits in init_size"
        );
    }
}

#[test]
fn a_small_decompression_limit_stops_a_payload() {
    let path = support::shared_kernel("bzImage-x64-pvh-gzip");
    let opts = ChainOptions {
        max_decompressed: Some(64 * 1024),
        ..Default::default()
    };
    let err = open(&path, &opts).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("bzImage-x64-pvh-gzip"), "{msg}");
    assert!(msg.contains("layer 1 (gzip)"), "{msg}");
    assert!(msg.contains("65536"), "{msg}");
}

#[test]
fn nesting_beyond_the_limit_is_rejected() {
    // gzip of gzip of ... of a vmlinux.
    let mut data = std::fs::read(support::shared_kernel("vmlinux-x64-pvh-gzip")).unwrap();
    for _ in 0..3 {
        use std::io::Write;
        let mut enc = flate2_gz(&data);
        enc.flush().unwrap();
        data = enc.finish().unwrap();
    }
    let opts = ChainOptions {
        max_depth: 3,
        ..Default::default()
    };
    let err = unwrap_bytes(Bytes::from(data.clone()), &opts).unwrap_err();
    assert!(
        matches!(err.kind, LayerErrorKind::TooDeep { limit: 3 }),
        "{err}"
    );
    let chain = unwrap_bytes(Bytes::from(data), &Default::default()).unwrap();
    assert_eq!(chain.layers.len(), 4);
}

fn flate2_gz(data: &[u8]) -> flate2::write::GzEncoder<Vec<u8>> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(data).unwrap();
    enc
}

#[test]
fn unknown_content_names_the_layer_and_what_it_came_from() {
    let mut gz = flate2_gz(b"definitely not a kernel");
    let data = {
        use std::io::Write;
        gz.flush().unwrap();
        gz.finish().unwrap()
    };
    let err = unwrap_bytes(Bytes::from(data), &Default::default()).unwrap_err();
    let msg = err.to_string();
    assert!(msg.starts_with("layer 1: unrecognised format"), "{msg}");
    assert!(msg.contains("unwrapped from gzip"), "{msg}");
}
