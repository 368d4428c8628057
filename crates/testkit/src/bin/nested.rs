//! `scripts/nested.sh`'s engine: runs one command inside the nested bench's outer guest
//! (Debian's cloud kernel under QEMU TCG with a real SVM `/dev/kvm`), prints its output
//! and exits with its status. See `domboot_testkit::nested`.

use domboot_testkit::nested::Bench;
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

const USAGE: &str = "\
Usage: nested --domboot BIN [--file PATH]... [--program PATH[:GUEST]]... [--module PATH]... [--timeout SECONDS] [--console] [--qemu] -- COMMAND [ARG]...

Boots the nested bench's outer guest once and runs COMMAND there with busybox's sh
(/bin/domboot is BIN). Arguments of COMMAND that name existing host files are copied
into the outer guest at the same absolute path (and rewritten to it); --file adds more.
Standard input, when it is not a terminal, becomes COMMAND's input.

  --domboot BIN      the domboot binary to carry in (scripts/nested.sh builds one)
  --file PATH        also copy PATH into the outer guest (repeatable)
  --program PATH[:GUEST]
                     copy the executable PATH and the libraries ldd lists for it into the
                     outer guest, at GUEST (default: the same path) (repeatable)
  --module PATH      have the outer guest load this module of the cloud kernel's modules
                     tree (e.g. kernel/drivers/net/tun.ko) after KVM's (repeatable)
  --timeout SECONDS  limit for COMMAND inside the outer guest (default 600)
  --console          print the outer guest's console log afterwards (on stderr)
  --qemu             also carry qemu-system-x86_64 (with libraries and firmware) in
";

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("nested: {e}");
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<ExitCode, String> {
    let mut args = std::env::args().skip(1);
    let (mut domboot, mut files, mut timeout, mut console) = (None, Vec::new(), 600u64, false);
    let mut qemu = false;
    let mut modules = Vec::new();
    let mut programs = Vec::new();
    let mut command = Vec::new();
    while let Some(a) = args.next() {
        match a.as_str() {
            "--domboot" => domboot = args.next().map(PathBuf::from),
            "--file" => files.push(PathBuf::from(args.next().ok_or("--file needs a path")?)),
            "--timeout" => {
                timeout = args
                    .next()
                    .and_then(|s| s.parse().ok())
                    .ok_or("--timeout needs a number of seconds")?
            }
            "--program" => programs.push(args.next().ok_or("--program needs a path")?),
            "--module" => modules.push(args.next().ok_or("--module needs a path")?),
            "--console" => console = true,
            "--qemu" => qemu = true,
            "-h" | "--help" => {
                print!("{USAGE}");
                return Ok(ExitCode::SUCCESS);
            }
            "--" => {
                command.extend(args.by_ref());
            }
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    let domboot = domboot.ok_or(format!("--domboot BIN is required\n{USAGE}"))?;
    if command.is_empty() {
        return Err(format!("no COMMAND given\n{USAGE}"));
    }
    let mut bench = Bench::new(&domboot);
    bench.progress = true;
    for f in &files {
        bench.file(f);
    }
    for p in &programs {
        let (host, guest) = p.split_once(':').unwrap_or((p, p));
        if !guest.starts_with('/') {
            return Err(format!("--program {p}: the guest path must be absolute"));
        }
        bench.program(Path::new(host), guest);
    }
    if qemu {
        bench.qemu();
    }
    for m in &modules {
        bench.module(m);
    }
    let words: Vec<String> = command
        .iter()
        .map(|w| {
            let p = Path::new(w);
            if p.is_file() && !w.starts_with('-') {
                quote(&bench.file(p))
            } else {
                quote(w)
            }
        })
        .collect();
    let check = bench.check("command", &words.join(" "));
    check.timeout = Duration::from_secs(timeout);
    if !std::io::stdin().is_terminal() {
        let mut input = Vec::new();
        std::io::stdin()
            .read_to_end(&mut input)
            .map_err(|e| format!("reading standard input: {e}"))?;
        check.stdin = Some(input);
    }
    eprintln!("[nested] booting the outer guest (QEMU TCG, -cpu max); this takes a while");
    let run = bench.run()?;
    if console {
        eprintln!("--- outer console ---\n{}", run.console);
    }
    let r = run
        .result("command")
        .ok_or("the outer guest reported no result for the command")?;
    let _ = std::io::stdout().write_all(r.stdout.as_bytes());
    let _ = std::io::stderr().write_all(r.stderr.as_bytes());
    eprintln!(
        "[nested] status {} after {:.2} s in the outer guest ({:.1} s in all)",
        r.status.map_or("?".into(), |s| s.to_string()),
        r.elapsed.as_secs_f64(),
        run.elapsed.as_secs_f64()
    );
    Ok(ExitCode::from(
        r.status.map_or(2, |s| s.clamp(0, 255) as u8),
    ))
}

/// Single-quotes `w` for sh unless it is plainly safe.
fn quote(w: &str) -> String {
    if !w.is_empty()
        && w.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c))
    {
        w.to_string()
    } else {
        format!("'{}'", w.replace('\'', r"'\''"))
    }
}
