//! The stopwatch of `scripts/bench/startup.sh`: runs one command several times and prints,
//! per run and as medians, the time from process start to the first byte on its standard
//! output, the time from process start to its exit, and its peak RSS.
//!
//! Usage: `startup_probe [--runs N] [--warmup N] [--timeout SECS] [--status CODE]
//! [--expect TEXT] [--label LABEL] -- COMMAND [ARGS...]`
//!
//! Output (standard output): `#`-comment lines with each run, then one tab-separated line
//! `LABEL RUNS FIRST_MED FIRST_MIN FIRST_MAX EXIT_MED EXIT_MIN EXIT_MAX RSS_MED RSS_MIN
//! RSS_MAX HWM1 ANON1 FILE1` (milliseconds, KiB; the last three are the medians of VmHWM,
//! RssAnon and RssFile read from /proc/PID/status right after the first byte, `-` when the
//! command had exited by then in some run). A run that times out, exits with another status than
//! `--status` (default 0), prints nothing, or whose output lacks `--expect`, fails the probe
//! (exit status 1, the run's output and standard error on standard error).
//!
//! How it measures: the clock starts just before the spawn (posix_spawn, so the time
//! includes exec and the dynamic loader); the first byte is a blocking 1-byte read on the
//! pipe that is the child's standard output; the exit is `waitid(WEXITED | WNOWAIT)`
//! returning; the peak RSS is `ru_maxrss` of that one child from `wait4`. Linux records
//! the spawning process's RSS high-water mark into the child's `ru_maxrss` when the child
//! execs (posix_spawn shares this process's memory until then), so the value is
//! max(this probe's peak RSS, the command's); measure a trivial command (`/bin/echo`) to
//! see that floor. VmHWM read at the first byte is the command's own high-water mark (no
//! floor) up to that moment, a lower bound of its peak.

use std::io::Read;
use std::process::{Command, ExitCode, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

struct Opts {
    runs: usize,
    warmup: usize,
    timeout: Duration,
    status: i32,
    expect: Option<String>,
    label: String,
    command: Vec<String>,
}

struct Sample {
    first_ms: f64,
    exit_ms: f64,
    maxrss_kib: i64,
    /// VmHWM, RssAnon and RssFile of the command right after its first byte (KiB), if it
    /// was still running then.
    at_first: Option<[i64; 3]>,
}

/// VmHWM, RssAnon and RssFile of a running process, from /proc/PID/status (KiB).
fn memory_now(pid: libc::pid_t) -> Option<[i64; 3]> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<i64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        line[name.len()..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()
    };
    Some([field("VmHWM:")?, field("RssAnon:")?, field("RssFile:")?])
}

fn usage() -> ! {
    eprintln!(
        "usage: startup_probe [--runs N] [--warmup N] [--timeout SECS] [--status CODE] \
         [--expect TEXT] [--label LABEL] -- COMMAND [ARGS...]"
    );
    std::process::exit(2)
}

fn parse() -> Opts {
    let mut o = Opts {
        runs: 10,
        warmup: 1,
        timeout: Duration::from_secs(60),
        status: 0,
        expect: None,
        label: String::new(),
        command: Vec::new(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--" {
            o.command = args.collect();
            break;
        }
        if a == "-h" || a == "--help" {
            usage();
        }
        let v = args.next().unwrap_or_else(|| usage());
        match a.as_str() {
            "--runs" => o.runs = v.parse().unwrap_or_else(|_| usage()),
            "--warmup" => o.warmup = v.parse().unwrap_or_else(|_| usage()),
            "--timeout" => {
                o.timeout = Duration::from_secs_f64(v.parse().unwrap_or_else(|_| usage()))
            }
            "--status" => o.status = v.parse().unwrap_or_else(|_| usage()),
            "--expect" => o.expect = Some(v),
            "--label" => o.label = v,
            _ => usage(),
        }
    }
    if o.command.is_empty() || o.runs == 0 {
        usage();
    }
    if o.label.is_empty() {
        o.label = o.command[0].clone();
    }
    o
}

/// One run; `Err` describes what went wrong.
fn run_once(o: &Opts) -> Result<Sample, String> {
    let t0 = Instant::now();
    let mut child = Command::new(&o.command[0])
        .args(&o.command[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("spawning {}: {e}", o.command[0]))?;
    let pid = child.id() as libc::pid_t;
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let err_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stderr.read_to_end(&mut v);
        v
    });
    // The watchdog kills the child if it outlives the timeout, but never after it was
    // reaped (its pid could be reused): `reaped` is set under the lock before reaping.
    let reaped = Arc::new(Mutex::new(false));
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let watchdog = {
        let reaped = Arc::clone(&reaped);
        let timeout = o.timeout;
        std::thread::spawn(move || {
            if done_rx.recv_timeout(timeout).is_err() {
                let r = reaped.lock().unwrap();
                if !*r {
                    // SAFETY: kill(2) on our own unreaped child.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                    return true;
                }
            }
            false
        })
    };

    let mut out = Vec::new();
    let mut first = [0u8; 1];
    let first_ms = loop {
        match stdout.read(&mut first) {
            Ok(0) => break None,
            Ok(_) => {
                out.push(first[0]);
                break Some(t0.elapsed().as_secs_f64() * 1e3);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("reading the output: {e}")),
        }
    };
    let at_first = first_ms.and_then(|_| memory_now(pid));
    let _ = stdout.read_to_end(&mut out);

    // Wait for the exit without reaping, stop the clock, then reap with the rusage.
    // SAFETY: plain syscalls on our own child; the structs are zero-initialisable.
    let exit_ms = unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        loop {
            let r = libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOWAIT,
            );
            if r == 0 {
                break;
            }
            if std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
                return Err(format!("waitid: {}", std::io::Error::last_os_error()));
            }
        }
        t0.elapsed().as_secs_f64() * 1e3
    };
    let (status, maxrss_kib) = {
        let mut r = reaped.lock().unwrap();
        let mut status = 0;
        // SAFETY: as above.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        let p = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
        if p != pid {
            return Err(format!("wait4: {}", std::io::Error::last_os_error()));
        }
        *r = true;
        (status, ru.ru_maxrss)
    };
    let _ = done_tx.send(());
    let killed = watchdog.join().unwrap_or(false);
    let err = err_reader.join().unwrap_or_default();
    drop(child); // already reaped above; dropping a Child neither waits nor kills

    let text = String::from_utf8_lossy(&out);
    let describe = |why: String| {
        format!(
            "{why}\n--- output ---\n{text}\n--- stderr ---\n{}",
            String::from_utf8_lossy(&err)
        )
    };
    if killed {
        return Err(describe(format!("timed out after {:?}", o.timeout)));
    }
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        128 + libc::WTERMSIG(status)
    };
    if code != o.status {
        return Err(describe(format!(
            "exit status {code}, expected {}",
            o.status
        )));
    }
    let Some(first_ms) = first_ms else {
        return Err(describe("no output at all".into()));
    };
    if let Some(want) = &o.expect {
        if !text.contains(want.as_str()) {
            return Err(describe(format!("the output lacks {want:?}")));
        }
    }
    Ok(Sample {
        first_ms,
        exit_ms,
        maxrss_kib,
        at_first,
    })
}

fn median(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let med = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    (med, v[0], v[n - 1])
}

fn main() -> ExitCode {
    let o = parse();
    let mut samples = Vec::with_capacity(o.runs);
    for i in 0..o.warmup + o.runs {
        match run_once(&o) {
            Ok(s) => {
                let kind = if i < o.warmup { "warm-up" } else { "run" };
                let at_first = match s.at_first {
                    Some([hwm, anon, file]) => {
                        format!(" (at the first byte: VmHWM {hwm}, RssAnon {anon}, RssFile {file})")
                    }
                    None => " (exited before /proc was read)".into(),
                };
                println!(
                    "# {} {kind} {}: first byte {:.2} ms, exit {:.2} ms, peak RSS {} KiB{at_first}",
                    o.label,
                    i + 1,
                    s.first_ms,
                    s.exit_ms,
                    s.maxrss_kib
                );
                if i >= o.warmup {
                    samples.push(s);
                }
            }
            Err(e) => {
                eprintln!("startup_probe: {}: run {}: {e}", o.label, i + 1);
                return ExitCode::from(1);
            }
        }
    }
    let first = median(samples.iter().map(|s| s.first_ms).collect());
    let exit = median(samples.iter().map(|s| s.exit_ms).collect());
    let rss = median(samples.iter().map(|s| s.maxrss_kib as f64).collect());
    let at_first: Vec<[i64; 3]> = samples.iter().filter_map(|s| s.at_first).collect();
    let at_first = if at_first.len() == samples.len() {
        (0..3)
            .map(|k| {
                format!(
                    "{:.0}",
                    median(at_first.iter().map(|m| m[k] as f64).collect()).0
                )
            })
            .collect::<Vec<_>>()
            .join("\t")
    } else {
        "-\t-\t-".into()
    };
    println!(
        "{}\t{}\t{:.2}\t{:.2}\t{:.2}\t{:.2}\t{:.2}\t{:.2}\t{:.0}\t{:.0}\t{:.0}\t{at_first}",
        o.label,
        samples.len(),
        first.0,
        first.1,
        first.2,
        exit.0,
        exit.1,
        exit.2,
        rss.0,
        rss.1,
        rss.2
    );
    ExitCode::SUCCESS
}
