//! What the host watches while an outer guest runs: the results stream (which check is
//! running, since when) and the outer /init's heartbeat (is the outer guest alive at all).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

/// Follows the results stream: which check is running since when, and progress lines.
#[derive(Default)]
pub(super) struct Progress {
    pub running: Option<(String, Instant)>,
    pub done: usize,
    /// The outer /init finished its own set-up (modules, the held VM) and starts checks.
    pub ready: bool,
}

impl Progress {
    pub fn update(&mut self, text: &str, print: bool) {
        let mut last_start = None;
        let mut done = Vec::new();
        for l in text.lines().map(|l| l.trim_end_matches('\r')) {
            if l == "@@BENCH-READY" {
                self.ready = true;
            } else if let Some(n) = l.strip_prefix("@@START ") {
                last_start = Some(n);
            } else if let Some(n) = l.strip_prefix("@@END ") {
                done.push(n);
                if last_start == Some(n) {
                    last_start = None;
                }
            }
        }
        if print {
            for name in done.iter().skip(self.done) {
                eprintln!("[nested] done: {name}");
            }
        }
        self.done = done.len();
        match (last_start, &self.running) {
            (Some(n), Some((r, _))) if r == n => {}
            (Some(n), _) => self.running = Some((n.to_string(), Instant::now())),
            (None, _) => self.running = None,
        }
    }
}

/// The outer /init writes a line to its third serial port every 2 s (its `sleep 2`) from
/// its start to its power-off (`outer_init.sh`). When the lines stop while QEMU still runs,
/// the outer guest is frozen: not one of its vCPUs gets to run a user process. That tells a
/// frozen outer guest (nothing to wait for) from a check that merely runs long (whose
/// limit is its own timeout), and ends a frozen boot in [`Heartbeat::FROZEN_AFTER`]
/// instead of the check's timeout plus the hang grace.
pub(super) struct Heartbeat {
    /// Bytes of the heartbeat file seen so far, and when that number last grew.
    seen: Option<(u64, Instant)>,
    /// When QEMU started: an outer guest that never beats froze while booting.
    booted: Instant,
}

impl Heartbeat {
    /// Silence after which the outer guest counts as frozen: many periods, because the
    /// host may be loaded (2 cores running two TCG guests) and the outer guest's own vCPUs
    /// busy with inner guests.
    pub const FROZEN_AFTER: Duration = Duration::from_secs(45);
    /// The longest an outer boot may take to its /init's first beat. Boots take seconds
    /// to a minute (a large initramfs unpacks slowly under TCG); CI once saw one freeze
    /// before printing anything, its TCG vCPUs spinning, which only the bench's own
    /// timeout (30 minutes) ended.
    pub const FIRST_BEAT_WITHIN: Duration = Duration::from_secs(300);

    pub fn new(booted: Instant) -> Heartbeat {
        Heartbeat { seen: None, booted }
    }

    /// Takes the heartbeat file's current length; true when a beat came. Before the first
    /// beat (the outer kernel still booting) there is nothing to miss.
    pub fn update(&mut self, len: u64, now: Instant) -> bool {
        match self.seen {
            Some((old, _)) if old == len => false,
            _ if len == 0 => false,
            _ => {
                self.seen = Some((len, now));
                true
            }
        }
    }

    /// How long the outer guest has been silent, once that is longer than
    /// [`Heartbeat::FROZEN_AFTER`] (or, before its first beat, than
    /// [`Heartbeat::FIRST_BEAT_WITHIN`]).
    pub fn frozen_for(&self, now: Instant) -> Option<Duration> {
        let Some((_, at)) = self.seen else {
            let waited = now.saturating_duration_since(self.booted);
            return (waited > Self::FIRST_BEAT_WITHIN).then_some(waited);
        };
        let silent = now.saturating_duration_since(at);
        (silent > Self::FROZEN_AFTER).then_some(silent)
    }
}

/// QEMU's own CPU time and threads, for the note on a frozen outer guest: whether QEMU
/// spun through the silence (its TCG threads stuck in emulation) or slept (waiting on a
/// lock or on I/O) is the first thing to know about the freeze's cause.
pub(super) struct QemuCpu {
    pid: u32,
    /// QEMU's CPU time at the last heartbeat.
    at_beat: Option<Duration>,
}

impl QemuCpu {
    pub fn new(pid: u32) -> QemuCpu {
        QemuCpu { pid, at_beat: None }
    }

    /// Notes QEMU's CPU time as a heartbeat arrives.
    pub fn beat(&mut self) {
        self.at_beat = cpu_time(&format!("/proc/{}/stat", self.pid));
    }

    /// CPU time since the last heartbeat, and each thread's name and state.
    pub fn describe(&self) -> String {
        let used = match (self.at_beat, cpu_time(&format!("/proc/{}/stat", self.pid))) {
            (Some(a), Some(b)) => format!("{:.1} s", b.saturating_sub(a).as_secs_f64()),
            _ => "an unknown amount".to_string(),
        };
        let mut threads: Vec<String> = std::fs::read_dir(format!("/proc/{}/task", self.pid))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|t| {
                let stat = std::fs::read_to_string(t.path().join("stat")).ok()?;
                let (name, state) = name_and_state(&stat)?;
                Some(format!("{name} {state}"))
            })
            .collect();
        threads.sort();
        format!(
            "QEMU used {used} of CPU since the last heartbeat; its threads (R running, S \
             sleeping, D in I/O): {}",
            threads.join(", ")
        )
    }
}

/// Where the frozen outer guest's vCPUs are, asked of QEMU's human monitor (HMP) on its
/// Unix socket: `info cpus` (halted or not), each vCPU's RIP twice a second apart (moving,
/// or stuck on one instruction?), then every vCPU's registers and the instructions at its
/// RIP. Under TCG a vCPU running an inner guest shows that guest's state, so this tells
/// the outer kernel's code from an inner guest's. This is how the freezes' cause was found
/// (kvm_pin.c); a monitor that does not answer says so instead.
pub(super) fn monitor_dump(socket: &Path) -> String {
    match ask_monitor(socket) {
        Ok(text) => text,
        Err(e) => format!(
            "(QEMU's monitor at {} did not answer: {e})",
            socket.display()
        ),
    }
}

fn ask_monitor(socket: &Path) -> std::io::Result<String> {
    let mut mon = UnixStream::connect(socket)?;
    mon.set_read_timeout(Some(Duration::from_secs(10)))?;
    read_to_prompt(&mut mon)?;
    let mut ask = |cmd: &str| -> std::io::Result<String> {
        mon.write_all(format!("{cmd}\n").as_bytes())?;
        Ok(hmp_reply(&read_to_prompt(&mut mon)?, cmd))
    };
    let mut out = format!("(qemu) info cpus\n{}\n", ask("info cpus")?);
    for sample in 1..=2 {
        if sample > 1 {
            std::thread::sleep(Duration::from_secs(1));
        }
        let rips: Vec<String> = ask("info registers -a")?
            .lines()
            .filter_map(|l| l.split_whitespace().find(|w| w.starts_with("RIP=")))
            .map(str::to_string)
            .collect();
        out.push_str(&format!("RIP, sample {sample}: {}\n", rips.join(" ")));
    }
    out.push_str(&format!(
        "(qemu) info registers -a\n{}\n",
        ask("info registers -a")?
    ));
    for cpu in 0..2 {
        ask(&format!("cpu {cpu}"))?;
        out.push_str(&format!(
            "(qemu) cpu {cpu}; x/6i $pc\n{}\n",
            ask("x/6i $pc")?
        ));
    }
    Ok(out)
}

/// Reads until the monitor's `(qemu) ` prompt (or 256 KiB, against a runaway reply).
fn read_to_prompt(mon: &mut UnixStream) -> std::io::Result<String> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.ends_with(b"(qemu) ") && got.len() < 256 << 10 {
        let n = mon.read(&mut buf)?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the monitor closed the connection",
            ));
        }
        got.extend_from_slice(&buf[..n]);
    }
    Ok(String::from_utf8_lossy(&got).into_owned())
}

/// A monitor reply without the echo of the command (HMP echoes what it reads), terminal
/// escapes (`ESC [ ... letter`), the prompt, carriage returns, and the vector registers
/// `info registers -a` adds (long, and no help in telling where a vCPU is).
fn hmp_reply(reply: &str, cmd: &str) -> String {
    let body = reply
        .strip_suffix("(qemu) ")
        .unwrap_or(reply)
        .replace('\r', "");
    let mut clean = String::with_capacity(body.len());
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: '[', parameters, then one final letter.
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            clean.push(c);
        }
    }
    let mut lines: Vec<&str> = clean
        .lines()
        .filter(|l| !(l.starts_with("YMM") || l.starts_with("XMM")))
        .collect();
    // The echo: the command, or its readline redraw ("iininfinfo... info cpus").
    if lines.first().is_some_and(|l| l.trim_end().ends_with(cmd)) {
        lines.remove(0);
    }
    lines.join("\n").trim_end().to_string()
}

/// utime + stime of a /proc stat file. They count USER_HZ ticks, which is 100 on x86.
fn cpu_time(path: &str) -> Option<Duration> {
    let stat = std::fs::read_to_string(path).ok()?;
    // The name in parentheses may hold spaces: fields are counted after its ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

/// A thread's name and one-letter state from its /proc stat line.
fn name_and_state(stat: &str) -> Option<(&str, &str)> {
    let name = &stat[stat.find('(')? + 1..stat.rfind(')')?];
    let state = stat[stat.rfind(')')? + 1..].split_whitespace().next()?;
    Some((name, state))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_monitor_reply_loses_its_echo_and_prompt() {
        let reply = "iininf\u{1b}[Kinfo cpus\r\n* CPU #0: thread_id=12 pc=0xffffffff81000000\r\n  CPU #1: thread_id=13 (halted)\r\nYMM00=0000 0000\r\n(qemu) ";
        assert_eq!(
            hmp_reply(reply, "info cpus"),
            "* CPU #0: thread_id=12 pc=0xffffffff81000000\n  CPU #1: thread_id=13 (halted)"
        );
    }

    #[test]
    fn a_monitor_that_is_not_there_is_named() {
        let path = std::env::temp_dir().join(format!("no-monitor-{}.sock", std::process::id()));
        let dump = monitor_dump(&path);
        assert!(dump.contains("did not answer"), "{dump}");
        assert!(dump.contains(&path.display().to_string()), "{dump}");
    }

    #[test]
    fn progress_follows_the_running_check() {
        let mut p = Progress::default();
        p.update("@@BENCH-KVM ok\n", false);
        assert!(!p.ready, "still in its set-up");
        p.update("@@BENCH-KVM ok\n@@BENCH-READY\r\n@@START a\n", false);
        assert!(p.ready);
        let (name, since) = p.running.clone().unwrap();
        assert_eq!(name, "a");
        p.update("@@BENCH-KVM ok\n@@START a\n", false);
        assert_eq!(
            p.running.as_ref().unwrap().1,
            since,
            "the same run keeps its start"
        );
        p.update("@@START a\n@@BEGIN a\n@@END a\n", false);
        assert!(p.running.is_none());
        assert_eq!(p.done, 1);
        p.update("@@START a\n@@END a\n@@START b\n", false);
        assert_eq!(p.running.as_ref().unwrap().0, "b");
    }

    #[test]
    fn qemu_threads_are_read_from_proc() {
        // This process stands in for QEMU: its test thread is running.
        let me = QemuCpu::new(std::process::id());
        let text = me.describe();
        assert!(text.contains(" R"), "{text}");
        assert!(cpu_time("/proc/self/stat").is_some());
        let line = "12 (CPU 0/TCG) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0";
        assert_eq!(name_and_state(line), Some(("CPU 0/TCG", "S")));
        let path = std::env::temp_dir().join(format!("qemu-stat-{}", std::process::id()));
        std::fs::write(&path, line).unwrap();
        assert_eq!(
            cpu_time(path.to_str().unwrap()),
            Some(Duration::from_secs(3))
        );
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn a_heartbeat_that_stops_is_a_frozen_guest() {
        let t0 = Instant::now();
        let mut h = Heartbeat::new(t0);
        // The outer kernel may boot for minutes before /init's first beat, not forever.
        assert!(!h.update(0, t0));
        assert_eq!(h.frozen_for(t0 + Heartbeat::FIRST_BEAT_WITHIN), None);
        let never = Heartbeat::FIRST_BEAT_WITHIN + Duration::from_secs(1);
        assert_eq!(h.frozen_for(t0 + never), Some(never));
        assert!(h.update(20, t0));
        assert!(!h.update(20, t0), "the same length is no beat");
        let late = Heartbeat::FROZEN_AFTER + Duration::from_secs(1);
        // Beats keep coming: alive however long it runs.
        assert!(h.update(40, t0 + late));
        assert_eq!(h.frozen_for(t0 + late), None);
        // The same length for longer than FROZEN_AFTER: frozen, and for how long.
        assert_eq!(h.frozen_for(t0 + late + late), Some(late));
        assert_eq!(h.frozen_for(t0 + late + Duration::from_secs(5)), None);
    }
}
