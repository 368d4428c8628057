//! `run --exec` with the host's userland (`--rootfs host`, the default under TCG): the
//! host's / read-only through virtio-fs with writes kept in the guest, the current
//! directory kept, `--rwdir`/`--rodir`, `--user`, and the virtiofsd processes gone when
//! the run ends. Debian's cloud kernel under QEMU TCG; each boot takes a few seconds, so
//! the checks are batched.

use domboot_testkit as kit;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn domboot() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_domboot"));
    c.arg("run")
        .arg("--kernel")
        .arg(kit::debian_kernel("cloud").vmlinuz)
        .args(["--accel", "tcg"]);
    c
}

fn run(mut cmd: Command, stdin: &[u8]) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

/// The value after `KEY ` on a line of its own.
fn field<'a>(out: &'a str, key: &str) -> Option<&'a str> {
    let tag = format!("{key} ");
    out.lines().find_map(|l| l.strip_prefix(&tag))
}

/// virtiofsd processes still sharing `dir`.
fn virtiofsd_for(dir: &Path) -> Vec<String> {
    let want = format!("--shared-dir\0{}\0", dir.display());
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).into_owned())
        .filter(|c| c.contains("virtiofsd") && c.contains(&want))
        .collect()
}

#[test]
fn the_default_is_the_hosts_userland_with_writes_kept_in_memory() {
    let probe = format!("/etc/domboot-rootfs-test-{}", std::process::id());
    let mut cmd = domboot();
    cmd.args(["--timeout", "180", "--exec"]).arg(format!(
        "echo \"LINES $(wc -l)\"; echo \"VERSION $(cat /etc/debian_version)\"; \
         echo \"UID $(id -u)\"; echo kept > {probe} && echo \"WROTE $(cat {probe})\"; exit 42"
    ));
    let out = run(cmd, b"a\nb\n");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(42), "{stdout}\n{stderr}");
    assert!(!stderr.contains("busybox"), "no fallback: {stderr}");
    assert_eq!(field(&stdout, "LINES"), Some("2"), "stdin: {stdout}");
    let version = std::fs::read_to_string("/etc/debian_version").unwrap();
    assert_eq!(field(&stdout, "VERSION"), Some(version.trim()), "{stdout}");
    assert_eq!(
        field(&stdout, "UID"),
        Some("0"),
        "root without --user: {stdout}"
    );
    assert_eq!(
        field(&stdout, "WROTE"),
        Some("kept"),
        "/ is writable: {stdout}"
    );
    assert!(!Path::new(&probe).exists(), "the write stayed in the guest");
}

#[test]
fn user_cwd_rwdir_and_rodir() {
    let top = tempfile::tempdir().unwrap();
    let cwd = top.path().join("current dir");
    let rw = top.path().join("rw");
    let ro = top.path().join("ro");
    for d in [&cwd, &rw, &ro] {
        std::fs::create_dir(d).unwrap();
    }
    let mut cmd = domboot();
    cmd.current_dir(&cwd)
        .args(["--timeout", "180", "--rootfs", "host", "--user"])
        .arg("--rwdir")
        .arg(&rw)
        .arg("--rodir")
        .arg(&ro)
        .arg("--exec")
        .arg(format!(
            "echo \"PWD $(pwd)\"; echo \"ID $(id -u):$(id -g)\"; echo \"HOME $HOME\"; \
             echo landed > '{rw}/out.txt'; echo \"RW $?\"; \
             (echo no > '{ro}/f') 2>/dev/null; echo \"RO $?\"",
            rw = rw.display(),
            ro = ro.display()
        ));
    let out = run(cmd, b"");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    let cwd = std::fs::canonicalize(&cwd).unwrap();
    assert_eq!(
        field(&stdout, "PWD"),
        Some(cwd.to_str().unwrap()),
        "{stdout}"
    );
    // SAFETY: getuid and getgid cannot fail.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    assert_eq!(
        field(&stdout, "ID"),
        Some(&*format!("{uid}:{gid}")),
        "{stdout}"
    );
    let home = std::env::var("HOME").unwrap_or_else(|_| "/".into());
    assert_eq!(field(&stdout, "HOME"), Some(home.as_str()), "{stdout}");
    assert_eq!(field(&stdout, "RW"), Some("0"), "{stdout}\n{stderr}");
    assert_eq!(
        std::fs::read_to_string(rw.join("out.txt")).unwrap(),
        "landed\n"
    );
    assert_ne!(
        field(&stdout, "RO"),
        Some("0"),
        "--rodir refuses writes: {stdout}"
    );
    assert!(!ro.join("f").exists());
    assert_eq!(
        virtiofsd_for(&rw),
        Vec::<String>::new(),
        "virtiofsd stopped"
    );
}

#[test]
fn a_timeout_stops_virtiofsd_too() {
    let rw = tempfile::tempdir().unwrap();
    let mut cmd = domboot();
    cmd.args(["--timeout", "10", "--rwdir"])
        .arg(rw.path())
        .args(["--exec", "sleep 1000"]);
    let out = run(cmd, b"");
    assert_eq!(
        out.status.code(),
        Some(124),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(virtiofsd_for(rw.path()), Vec::<String>::new());
}

/// pids of the virtiofsd processes sharing `dir`.
fn virtiofsd_pids(dir: &Path) -> Vec<i32> {
    let want = format!("--shared-dir\0{}\0", dir.display());
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let pid = e.file_name().to_str()?.parse::<i32>().ok()?;
            let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
            let cmd = String::from_utf8_lossy(&cmd);
            (cmd.contains("virtiofsd") && cmd.contains(&want)).then_some(pid)
        })
        .collect()
}

/// A virtiofsd killed while the command runs: without it the guest's next file access
/// would wait forever (here: until --timeout). The run ends at once with status 2 and
/// says which folder was lost and how its virtiofsd ended; nothing is left running.
#[test]
fn a_virtiofsd_killed_mid_run_ends_the_run_with_the_reason() {
    use std::io::BufRead;
    let rw = tempfile::tempdir().unwrap();
    let mut cmd = domboot();
    cmd.args(["--timeout", "150", "--json", "--rwdir"])
        .arg(rw.path())
        .args(["--exec", "echo ready; sleep 1000; echo never"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line, "ready\n");
    let pids = virtiofsd_pids(rw.path());
    assert_eq!(
        pids.len(),
        1,
        "one virtiofsd shares {}",
        rw.path().display()
    );
    let killed = std::time::Instant::now();
    // SAFETY: kill only sends a signal to the process the pid names (ours to stop).
    assert_eq!(unsafe { libc::kill(pids[0], libc::SIGKILL) }, 0);
    let out = child.wait_with_output().unwrap();
    let took = killed.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        took < std::time::Duration::from_secs(30),
        "the run went on for {took:?} after virtiofsd died"
    );
    let expected = format!(
        "virtiofsd serving {} to the guest (pid {}) was killed by signal 9",
        rw.path().display(),
        pids[0]
    );
    assert!(stderr.contains(&expected), "{stderr}");
    assert!(stderr.contains(r#""reason":"virtiofsd-gone""#), "{stderr}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("never"));
    assert_eq!(virtiofsd_for(rw.path()), Vec::<String>::new());
}

#[test]
fn what_cannot_work_is_refused_before_booting() {
    let dir = tempfile::tempdir().unwrap();
    // `--rootfs host --accel kvm` is no longer here: the KVM backend has virtio-fs too
    // (proven in the nested bench, tests/nested_kvm.rs).
    let cases: [(&[&str], &str); 2] = [
        (
            &["--rootfs", "busybox", "--rodir", "/tmp"],
            "--rodir: only with --rootfs host",
        ),
        (
            &["--rwdir", "/nonexistent/dir"],
            "--rwdir /nonexistent/dir: no such folder",
        ),
    ];
    for (args, message) in cases {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_domboot"));
        cmd.arg("run")
            .arg("--kernel")
            .arg(kit::debian_kernel("cloud").vmlinuz)
            .args(args)
            .args(["--exec", "true"])
            .current_dir(dir.path());
        let out = run(cmd, b"");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
}

/// `--user` runs the command through setpriv's --reuid/--regid in the guest; busybox's
/// setpriv has neither, so with it first on PATH the run failed only after the whole boot,
/// with busybox's usage text (as it did in the nested bench's outer guest, whose /bin is
/// busybox). It is refused before booting, naming the setpriv found.
#[test]
fn user_with_busybox_setpriv_is_refused_before_booting() {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    std::os::unix::fs::symlink(kit::busybox(), bin.join("setpriv")).unwrap();
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs = vec![bin.clone()];
    dirs.extend(std::env::split_paths(&path));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_domboot"));
    cmd.arg("run")
        .arg("--kernel")
        .arg(kit::debian_kernel("cloud").vmlinuz)
        .args([
            "--accel",
            "tcg",
            "--timeout",
            "60",
            "--rootfs",
            "host",
            "--user",
        ])
        .args(["--exec", "echo booted"])
        .env("PATH", std::env::join_paths(dirs).unwrap())
        .current_dir(dir.path());
    let out = run(cmd, b"");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stdout}\n{stderr}");
    let want = format!(
        "{} (busybox's), the first setpriv on PATH, has no --reuid",
        bin.join("setpriv").display()
    );
    assert!(stderr.contains(&want), "{stderr}");
    assert!(!stdout.contains("booted"), "{stdout}");
}

/// `--user` as a caller that is not root (the other tests run as root here, where the
/// guest's root and the caller's uid are the same): domboot itself runs as nobody, with the
/// kernel, the few modules and virtiofsd copied where nobody can read them.
#[test]
fn user_as_a_caller_that_is_not_root() {
    use std::os::unix::fs::PermissionsExt;
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: becoming another user needs root");
        return;
    }
    const NOBODY: u32 = 65534;
    let top = tempfile::tempdir().unwrap();
    let dir = top.path();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let kernel = kit::debian_kernel("cloud").vmlinuz;
    let tree = kernel.parent().unwrap().join("modules");
    let mods = dir.join("modules");
    std::fs::create_dir(&mods).unwrap();
    for m in [
        "drivers/virtio/virtio.ko",
        "drivers/virtio/virtio_ring.ko",
        "drivers/virtio/virtio_pci.ko",
        "drivers/virtio/virtio_pci_modern_dev.ko",
        "drivers/virtio/virtio_pci_legacy_dev.ko",
        "fs/fuse/fuse.ko",
        "fs/fuse/virtiofs.ko",
        "fs/overlayfs/overlay.ko",
    ] {
        let from = tree.join("kernel").join(m);
        std::fs::copy(&from, mods.join(from.file_name().unwrap())).unwrap();
    }
    std::fs::copy(&kernel, dir.join("vmlinuz")).unwrap();
    let virtiofsd = kit::cache_dir().join("virtiofsd/bin/virtiofsd");
    std::fs::copy(&virtiofsd, dir.join("virtiofsd"))
        .unwrap_or_else(|e| panic!("{}: {e} (scripts/setup.sh builds it)", virtiofsd.display()));
    let (cache, rw) = (dir.join("cache"), dir.join("rw"));
    for d in [&cache, &rw] {
        std::fs::create_dir(d).unwrap();
        std::os::unix::fs::chown(d, Some(NOBODY), Some(NOBODY)).unwrap();
    }
    let mut cmd = Command::new("setpriv");
    cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_domboot"))
        .arg("run")
        .arg("--kernel")
        .arg(dir.join("vmlinuz"))
        .arg("--modules")
        .arg(&mods)
        .args(["--accel", "tcg", "--timeout", "180", "--user", "--rwdir"])
        .arg(&rw)
        .args([
            "--exec",
            "echo \"ID $(id -u):$(id -g) HOME $HOME\"; echo hi > out; \
                          touch /etc/domboot-as-nobody 2>/dev/null; echo \"ETC $?\"",
        ])
        .current_dir(&rw)
        .env("HOME", "/nonexistent")
        .env("DOMBOOT_CACHE", &cache)
        .env("DOMBOOT_VIRTIOFSD", dir.join("virtiofsd"));
    for f in ["vmlinuz", "virtiofsd"] {
        std::fs::set_permissions(dir.join(f), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let out = run(cmd, b"");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert_eq!(
        field(&stdout, "ID"),
        Some("65534:65534 HOME /nonexistent"),
        "{stdout}"
    );
    assert_ne!(
        field(&stdout, "ETC"),
        Some("0"),
        "nobody cannot write /etc: {stdout}"
    );
    let out_file = rw.join("out");
    assert_eq!(std::fs::read_to_string(&out_file).unwrap(), "hi\n");
    use std::os::unix::fs::MetadataExt;
    assert_eq!(std::fs::metadata(&out_file).unwrap().uid(), NOBODY);
}
