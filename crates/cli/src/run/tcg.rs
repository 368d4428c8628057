//! Running a plan under QEMU's TCG: export the plan as a PVH ELF into a temporary folder and
//! run `qemu-system-x86_64 -accel tcg` on it, with the guest's COM1 wired through domboot
//! and QEMU's exit status mapped back to domboot's (see [`Outcome`]).

use super::{Outcome, RunConfig, SerialSink};
use anyhow::{Context, bail};
use domboot_builder::BootPlan;
use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::Instant;

/// The guest's disks, interfaces, rng, virtio-fs and vsock as QEMU's virtio-pci devices
/// (the KVM backend's are virtio-mmio; the guest's drivers see the same disks, vda first,
/// with the same IDs, and the same MACs). `vsock` is the vhost-user socket on which
/// domboot serves the run's vsock.
fn add_devices(
    cmd: &mut Command,
    devices: &super::Devices,
    dir: &std::path::Path,
    vsock: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    for (i, disk) in devices.disks.iter().enumerate() {
        // QEMU reports a missing file in its own words after starting; say it first.
        std::fs::OpenOptions::new()
            .read(true)
            .write(!disk.read_only)
            .open(&disk.path)
            .with_context(|| format!("disk {}", disk.path.display()))?;
        // In QEMU's option syntax a comma in a value is written twice.
        let path = disk.path.to_string_lossy().replace(',', ",,");
        let ro = if disk.read_only { ",readonly=on" } else { "" };
        let id: String = disk
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
            .chars()
            .filter(|c| c.is_ascii_graphic() && *c != ',')
            .take(20)
            .collect();
        cmd.arg("-drive")
            .arg(format!("file={path},format=raw,if=none,id=disk{i}{ro}"))
            .arg("-device")
            .arg(format!("virtio-blk-pci,drive=disk{i},serial={id}"));
    }
    for (i, n) in devices.nets.iter().enumerate() {
        let netdev = match &n.backend {
            // QEMU creates a missing tap but leaves it down; the KVM backend brings it up
            // (and onto its bridge), so a script does that here. QEMU's own bridge support
            // needs its setuid helper and an ACL; a script adding the tap to the bridge is
            // what xl's vif-bridge does.
            domboot_vmm::NetBackendConfig::Tap { name, bridge } => format!(
                "tap,id=net{i},ifname={name},downscript=no,script={}",
                ifup_script(dir, bridge.as_deref())?.display()
            ),
            // QEMU's own user network (slirp) stands in for passt under TCG.
            domboot_vmm::NetBackendConfig::User => format!("user,id=net{i}"),
        };
        cmd.arg("-netdev").arg(netdev).arg("-device").arg(format!(
            "virtio-net-pci,netdev=net{i},mac={},romfile=",
            n.mac_text()
        ));
    }
    if devices.rng {
        cmd.args(["-device", "virtio-rng-pci"]);
    }
    for (i, (tag, socket)) in devices.virtiofs.iter().enumerate() {
        let socket = socket.to_string_lossy().replace(',', ",,");
        cmd.arg("-chardev")
            .arg(format!("socket,id=fs{i},path={socket}"))
            .arg("-device")
            .arg(format!("vhost-user-fs-pci,chardev=fs{i},tag={tag}"));
    }
    if let Some(socket) = vsock {
        // The hybrid vsock: domboot's own device, served from this process (see
        // [`super::tcg_vsock`]).
        let socket = socket.to_string_lossy().replace(',', ",,");
        cmd.arg("-chardev")
            .arg(format!("socket,id=vsock0,path={socket}"))
            .args(["-device", "vhost-user-vsock-pci,chardev=vsock0"]);
    }
    Ok(())
}

/// A `script=` for QEMU's tap netdev that brings the tap up and, with a `bridge`, adds it
/// to the bridge (QEMU runs it with the tap's name), in the run's temporary folder `dir`.
fn ifup_script(dir: &std::path::Path, bridge: Option<&str>) -> anyhow::Result<std::path::PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let (path, master) = match bridge {
        Some(bridge) => {
            if !domboot_vmm::devices::virtio::net::tap::valid_name(bridge) {
                bail!("bridge name {bridge:?}: not a valid interface name");
            }
            (
                dir.join(format!("ifup-{bridge}")),
                format!(" && ip link set \"$1\" master {bridge}"),
            )
        }
        None => (dir.join("ifup"), String::new()),
    };
    std::fs::write(&path, format!("#!/bin/sh\nip link set \"$1\" up{master}\n"))
        .with_context(|| format!("cannot write {}", path.display()))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700))?;
    Ok(path)
}

/// QEMU's isa-debug-exit: a guest write of `v` to this port ends QEMU with `(v << 1) | 1`.
pub const DEBUG_EXIT_PORT: u16 = 0xf4;
const QEMU: &str = "qemu-system-x86_64";
/// The console escape key (Ctrl-A), followed by `x` to stop the VM.
const CTRL_A: u8 = 0x01;

/// The firmware for `-M pc`: qboot, where QEMU ships it. SeaBIOS (pc's default) writes
/// into RAM the ELF's segments already fill while it starts (QEMU copies them in at reset),
/// which corrupted initrds of 15 MB and more in some spots a few MiB below the top of RAM;
/// qboot only reads fw_cfg, builds the e820 map and QEMU's ACPI tables, and jumps to the
/// PVH entry, and it starts faster.
const QBOOT: &str = "/usr/share/qemu/qboot.rom";

fn firmware() -> Option<&'static str> {
    std::path::Path::new(QBOOT).is_file().then_some(QBOOT)
}

pub fn run(plan: &BootPlan, cfg: &RunConfig) -> anyhow::Result<Outcome> {
    let dir = tempfile::Builder::new()
        .prefix("domboot-tcg-")
        .tempdir()
        .context("cannot create a temporary folder for the image")?;
    let image = dir.path().join("image.elf");
    let elf = domboot_export::pvh_elf(plan).context("cannot export the plan for QEMU")?;
    // A plain write, not crate::atomic's: the folder is this run's own and goes with it, so
    // neither a sync nor a rename buys anything, and a sync costs milliseconds per run.
    std::fs::File::create(&image)
        .and_then(|f| {
            let mut w = std::io::BufWriter::with_capacity(1 << 20, f);
            elf.write_to(&mut w)?;
            w.flush()
        })
        .with_context(|| format!("cannot write {}", image.display()))?;

    // Stopped (and the hybrid socket removed) when this goes, after QEMU.
    let mut vsock = match &cfg.devices.vsock {
        Some(v) => Some(super::tcg_vsock::TcgVsock::start(v, dir.path())?),
        None => None,
    };
    let mut cmd = Command::new(QEMU);
    super::child::dies_with_domboot(&mut cmd);
    let memory = format!("{}M", plan.memory_size.div_ceil(1 << 20));
    // A vhost-user device's backend (virtiofsd, domboot's vsock server) reads and writes
    // guest memory itself: it must be a shared memfd, of exactly -m's size.
    let machine = if cfg.devices.virtiofs.is_empty() && vsock.is_none() {
        "pc"
    } else {
        cmd.arg("-object").arg(format!(
            "memory-backend-memfd,id=mem,size={memory},share=on"
        ));
        "pc,memory-backend=mem"
    };
    cmd.args(["-accel", "tcg", "-M", machine, "-no-reboot"]);
    match firmware() {
        Some(bios) => {
            cmd.arg("-bios").arg(bios);
        }
        None => eprintln!(
            "domboot: warning: {QBOOT} not found (Debian's qemu-system-data has it): QEMU's \
             default firmware, SeaBIOS, is known to overwrite parts of initrds of 12 MiB and more"
        ),
    }
    cmd.args(["-display", "none", "-nodefaults", "-monitor", "none"])
        .args(["-m", &memory])
        .args(["-smp", &cfg.cpus.to_string()])
        .args([
            "-device",
            &format!("isa-debug-exit,iobase={DEBUG_EXIT_PORT:#x},iosize=0x04"),
        ])
        .arg("-kernel")
        .arg(&image)
        .stderr(Stdio::piped());
    add_devices(
        &mut cmd,
        &cfg.devices,
        dir.path(),
        vsock.as_ref().map(|v| v.vhost_socket()),
    )?;
    // The console's backend: COM1 directly, or (--console virtio) a virtconsole, with
    // COM1 then discarded (hvc0 replays the kernel's log when it registers).
    let console = match &cfg.serial {
        SerialSink::Stdout | SerialSink::Filter(_) => {
            cmd.stdin(Stdio::piped()).stdout(Stdio::piped());
            "stdio".to_string()
        }
        SerialSink::File(path) => {
            cmd.stdin(Stdio::null()).stdout(Stdio::null());
            format!("file:{}", path.display())
        }
        SerialSink::None => {
            cmd.stdin(Stdio::null()).stdout(Stdio::null());
            "null".to_string()
        }
    };
    if cfg.devices.virtio_console {
        let chardev = match &cfg.serial {
            SerialSink::File(path) => format!("file,id=con0,path={}", path.display()),
            SerialSink::None => "null,id=con0".into(),
            _ => "stdio,id=con0".into(),
        };
        cmd.args(["-serial", "null", "-chardev", &chardev]).args([
            "-device",
            "virtio-serial-pci",
            "-device",
            "virtconsole,chardev=con0",
        ]);
    } else {
        cmd.args(["-serial", &console]);
    }
    for (i, path) in cfg.extra_serials.iter().enumerate() {
        cmd.arg("-chardev")
            .arg(format!("socket,id=port{i},path={}", path.display()))
            .args(["-serial", &format!("chardev:port{i}")]);
    }
    if cfg.verbose {
        eprintln!("domboot: running {cmd:?}");
    }
    let started = Instant::now();
    let mut child = cmd.spawn().map_err(|e| {
        anyhow::anyhow!(
            "cannot start {QEMU}: {e}; install it with `apt-get install qemu-system-x86` (scripts/setup.sh does)"
        )
    })?;
    let stderr = drain(child.stderr.take());
    let forward_out = child.stdout.take().map(|mut out| {
        let mut sink = cfg.serial.clone();
        let watch = cfg.watch.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            loop {
                match out.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        watch.feed(&buf[..n]);
                        sink.write(&buf[..n]);
                    }
                }
            }
            sink.finish();
        })
    });
    if let Some(mut input) = child.stdin.take()
        && cfg.forward_stdin
    {
        // Keystrokes to the guest's console; on a raw terminal Ctrl-A x stops the VM (as
        // on KVM and in QEMU), since Ctrl-C belongs to the guest. The thread ends with the
        // process; a blocked read on our stdin cannot be interrupted portably.
        let stop = cfg.signal.clone();
        let escape = std::io::IsTerminal::is_terminal(&std::io::stdin());
        std::thread::spawn(move || {
            let mut buf = [0u8; 1024];
            let mut stdin = std::io::stdin();
            let mut after_ctrl_a = false;
            while let Ok(n) = stdin.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let mut out = Vec::with_capacity(n);
                for &b in &buf[..n] {
                    match (escape, after_ctrl_a, b) {
                        (true, false, CTRL_A) => after_ctrl_a = true,
                        (true, true, b'x') => {
                            stop.store(super::QUIT, Ordering::Relaxed);
                            return;
                        }
                        (true, true, _) => {
                            // Ctrl-A Ctrl-A sends one Ctrl-A; anything else goes through.
                            after_ctrl_a = false;
                            if b != CTRL_A {
                                out.push(CTRL_A);
                            }
                            out.push(b);
                        }
                        _ => out.push(b),
                    }
                }
                if input.write_all(&out).and_then(|()| input.flush()).is_err() {
                    break;
                }
            }
        });
    }

    let outcome = wait(&mut child, cfg, started, vsock.as_mut())?;
    if let Some(t) = forward_out {
        let _ = t.join();
    }
    let stderr = stderr.join().unwrap_or_default();
    let stderr = String::from_utf8_lossy(&stderr);
    if let Some(text) = cfg.watch.panic_text()
        && matches!(outcome, Waited::Exited(Some(0)) | Waited::Panicked)
    {
        // panic=N reboots, which -no-reboot turns into an ordinary exit: the console
        // tells the two apart.
        return Ok(Outcome::Panic(text));
    }
    match outcome {
        Waited::Exited(code) => map_exit(code, &stderr),
        // The limit the user gave (as the KVM backend reports it), not the moment the
        // supervisor noticed it on a loaded host ("20.1 s" for --timeout 20).
        Waited::TimedOut => Ok(Outcome::Timeout(
            cfg.timeout.unwrap_or_else(|| started.elapsed()),
        )),
        Waited::Interrupted(super::QUIT) => Ok(Outcome::Quit),
        Waited::Interrupted(sig) => Ok(Outcome::Interrupted(sig)),
        Waited::Panicked => Ok(Outcome::Panic(String::from("the guest kernel panicked"))),
        Waited::BackendGone(why) => Ok(Outcome::BackendGone(why)),
    }
}

enum Waited {
    Exited(Option<i32>),
    TimedOut,
    Interrupted(i32),
    /// A kernel that panics without `panic=N` spins forever: stopped once its report is
    /// complete, or a moment after the panic line if the report never ends.
    Panicked,
    /// A virtiofsd ended while QEMU still ran: why (see [`RunConfig::backends`]).
    BackendGone(String),
}

/// How long QEMU gets to exit by itself once a virtiofsd (or the vsock's server) has
/// ended: when the guest powers off, QEMU closes the sockets and each backend ends by
/// itself, sometimes noticed before QEMU's own exit.
const BACKEND_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

/// How long a panicked guest may go on printing its report before it is stopped.
const PANIC_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

fn wait(
    child: &mut Child,
    cfg: &RunConfig,
    started: Instant,
    mut vsock: Option<&mut super::tcg_vsock::TcgVsock>,
) -> anyhow::Result<Waited> {
    loop {
        if let Some(status) = child.try_wait().context("cannot wait for QEMU")? {
            return Ok(Waited::Exited(status.code()));
        }
        if let Some(why) = vsock.as_deref_mut().and_then(|d| d.gone()) {
            // The guest goes on without its vsock (its other devices still work), as it
            // would on KVM with no vsock; unless QEMU is ending anyway.
            if let Some(status) = exits_within(child, BACKEND_GRACE)? {
                return Ok(Waited::Exited(status.code()));
            }
            eprintln!("domboot: warning: {why}");
        }
        let signal = cfg.signal.load(Ordering::Relaxed);
        if signal != 0 {
            stop(child);
            return Ok(Waited::Interrupted(signal));
        }
        if cfg.timeout.is_some_and(|t| started.elapsed() >= t) {
            stop(child);
            return Ok(Waited::TimedOut);
        }
        if let Some(why) = cfg.backends.as_ref().and_then(|b| b.gone()) {
            if let Some(status) = exits_within(child, BACKEND_GRACE)? {
                return Ok(Waited::Exited(status.code()));
            }
            stop(child);
            return Ok(Waited::BackendGone(why));
        }
        if let Some((report, at)) = cfg.watch.panic()
            && (report.complete || at.elapsed() >= PANIC_GRACE)
        {
            // Let the report's last lines reach the console reader before QEMU goes.
            std::thread::sleep(std::time::Duration::from_millis(100));
            stop(child);
            return Ok(Waited::Panicked);
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// QEMU's exit status if it exits by itself within `patience`.
fn exits_within(
    child: &mut Child,
    patience: std::time::Duration,
) -> anyhow::Result<Option<std::process::ExitStatus>> {
    let until = Instant::now() + patience;
    loop {
        if let Some(status) = child.try_wait().context("cannot wait for QEMU")? {
            return Ok(Some(status));
        }
        if Instant::now() >= until {
            return Ok(None);
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

fn stop(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// QEMU exits 0 when the guest powers off or resets (-no-reboot), `(v << 1) | 1` after a
/// debug-exit write of `v`, and 1 with a message on stderr when QEMU itself fails.
fn map_exit(code: Option<i32>, stderr: &str) -> anyhow::Result<Outcome> {
    let qemu_error = stderr
        .lines()
        .filter(|l| l.starts_with("qemu-system"))
        .collect::<Vec<_>>()
        .join("\n");
    match code {
        Some(0) => Ok(Outcome::Ended),
        Some(c) if c % 2 == 1 && qemu_error.is_empty() => {
            Ok(Outcome::DebugExit(((c - 1) / 2) as u8))
        }
        Some(c) => bail!(
            "QEMU failed (exit status {c}){}",
            if qemu_error.is_empty() {
                String::new()
            } else {
                format!(": {qemu_error}")
            }
        ),
        None => bail!("QEMU was killed by a signal"),
    }
}

fn drain(pipe: Option<std::process::ChildStderr>) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut p) = pipe {
            let _ = p.read_to_end(&mut bytes);
        }
        bytes
    })
}
