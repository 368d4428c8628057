//! `domboot inspect` and `domboot extract` on real kernels, as a user runs them.

use assert_cmd::Command;
use serde_json::Value;
use std::path::PathBuf;

use domboot_testkit::shared_kernel;

fn cloud_kernel() -> PathBuf {
    domboot_testkit::debian_kernel("cloud").vmlinuz
}

fn domboot() -> Command {
    Command::cargo_bin("domboot").unwrap()
}

fn inspect_json(path: &std::path::Path) -> Value {
    let out = domboot()
        .args(["inspect", "--json"])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn json_follows_the_documented_contract() {
    let k = cloud_kernel();
    let v = inspect_json(&k);
    assert_eq!(v["file"], k.to_str().unwrap());
    let layers = v["layers"].as_array().unwrap();
    let formats: Vec<&str> = layers
        .iter()
        .map(|l| l["format"].as_str().unwrap())
        .collect();
    assert_eq!(formats, ["bzimage", "lz4", "elf64"]);
    let bz = &layers[0];
    assert_eq!(bz["protocol_version"], "2.15");
    assert_eq!(bz["relocatable"], true);
    assert!(bz["kernel_alignment"].as_u64().unwrap().is_power_of_two());
    assert_eq!(bz["pref_address"], 0x100_0000);
    assert!(bz["init_size"].as_u64().unwrap() > 0);
    let xl: Vec<&str> = bz["xloadflags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap())
        .collect();
    assert!(xl.contains(&"XLF_KERNEL_64") && xl.contains(&"XLF_CAN_BE_LOADED_ABOVE_4G"));
    assert!(
        bz["kernel_version"]
            .as_str()
            .unwrap()
            .contains("cloud-amd64")
    );
    let elf = &layers[2];
    assert!(elf["entry"].is_u64());
    assert!(elf["pvh_entry"].is_u64());
    let seg = &elf["segments"][0];
    for key in ["paddr", "vaddr", "offset", "filesz", "memsz"] {
        assert!(seg[key].is_u64(), "segment field {key}: {seg}");
    }
    assert!(
        layers[1]["decompressed_size"].as_u64().unwrap()
            > layers[1]["compressed_size"].as_u64().unwrap()
    );
}

#[test]
fn non_pvh_elf_has_null_pvh_entry() {
    let v = inspect_json(&shared_kernel("vmlinux-x64-norelo-gzip"));
    assert_eq!(v["layers"][0]["format"], "elf64");
    assert!(v["layers"][0]["pvh_entry"].is_null());
    let v = inspect_json(&shared_kernel("bzImage-i386-norelo-xz"));
    assert_eq!(v["layers"][2]["format"], "elf32");
    assert_eq!(v["layers"][0]["relocatable"], false);
}

#[test]
fn human_output_is_a_readable_table() {
    let out = domboot()
        .arg("inspect")
        .arg(shared_kernel("bzImage-x64-pvh-zstd"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("bzimage → zstd → elf64"), "{text}");
    assert!(text.contains("protocol_version"), "{text}");
    assert!(text.contains("2.15"), "{text}");
    assert!(text.contains("pvh_entry"), "{text}");
    assert!(text.contains("segments ("), "{text}");
}

#[test]
fn extract_writes_the_inner_elf_by_default_and_layers_on_request() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("vmlinux");
    domboot()
        .arg("extract")
        .arg(shared_kernel("bzImage-x64-pvh-xz"))
        .arg("-o")
        .arg(&out)
        .assert()
        .success();
    let elf = std::fs::read(&out).unwrap();
    assert_eq!(&elf[..4], b"\x7fELF");
    // The extracted ELF inspects to the PT_LOADs of the matching vmlinux.
    let ours = inspect_json(&out);
    let reference = inspect_json(&shared_kernel("vmlinux-x64-pvh-xz"));
    assert_eq!(
        ours["layers"][0]["segments"],
        reference["layers"][0]["segments"]
    );

    let xz = dir.path().join("payload.xz");
    domboot()
        .arg("extract")
        .arg(shared_kernel("bzImage-x64-pvh-xz"))
        .args(["--layer", "xz", "-o"])
        .arg(&xz)
        .assert()
        .success();
    let payload = std::fs::read(&xz).unwrap();
    assert_eq!(&payload[..6], b"\xfd7zXZ\0");
    let by_index = dir.path().join("layer1");
    domboot()
        .arg("extract")
        .arg(shared_kernel("bzImage-x64-pvh-xz"))
        .args(["--layer", "1", "-o"])
        .arg(&by_index)
        .assert()
        .success();
    assert_eq!(std::fs::read(&by_index).unwrap(), payload);
}

#[test]
fn extract_of_a_missing_layer_fails_without_writing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x");
    let assert = domboot()
        .arg("extract")
        .arg(shared_kernel("bzImage-x64-pvh-xz"))
        .args(["--layer", "gzip", "-o"])
        .arg(&out)
        .assert()
        .failure();
    let err = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
    assert!(err.contains("no gzip layer"), "{err}");
    assert!(err.contains("0:bzimage → 1:xz → 2:elf64"), "{err}");
    assert!(!out.exists());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn malformed_images_get_an_error_naming_file_layer_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let mut data = std::fs::read(shared_kernel("bzImage-x64-pvh-lz4")).unwrap();
    // payload_length far past the end of the file.
    data[0x24C..0x250].copy_from_slice(&0x7fff_ffffu32.to_le_bytes());
    let bad = dir.path().join("bad-bzImage");
    std::fs::write(&bad, &data).unwrap();
    let out = dir.path().join("out");
    let assert = domboot()
        .arg("extract")
        .arg(&bad)
        .arg("-o")
        .arg(&out)
        .assert()
        .code(2);
    let err = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
    assert!(err.contains("bad-bzImage: layer 0 (bzimage)"), "{err}");
    assert!(err.contains("payload_offset + payload_length"), "{err}");
    assert!(!out.exists());

    let truncated = dir.path().join("truncated");
    std::fs::write(&truncated, &data[..0x230]).unwrap();
    let assert = domboot().arg("inspect").arg(&truncated).assert().code(2);
    let err = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
    assert!(err.contains("truncated: kernel_alignment"), "{err}");

    let assert = domboot()
        .arg("inspect")
        .arg(dir.path().join("nope"))
        .assert()
        .code(2);
    let err = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
    assert!(err.contains("nope: No such file"), "{err}");
}
