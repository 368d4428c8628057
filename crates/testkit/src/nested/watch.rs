//! What the host watches while an outer guest runs: the results stream (which check is
//! running, since when) and the outer /init's heartbeat (is the outer guest alive at all).

use std::time::{Duration, Instant};

/// Follows the results stream: which check is running since when, and progress lines.
#[derive(Default)]
pub(super) struct Progress {
    pub running: Option<(String, Instant)>,
    pub done: usize,
}

impl Progress {
    pub fn update(&mut self, text: &str, print: bool) {
        let mut last_start = None;
        let mut done = Vec::new();
        for l in text.lines().map(|l| l.trim_end_matches('\r')) {
            if let Some(n) = l.strip_prefix("@@START ") {
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
#[derive(Default)]
pub(super) struct Heartbeat {
    /// Bytes of the heartbeat file seen so far, and when that number last grew.
    seen: Option<(u64, Instant)>,
}

impl Heartbeat {
    /// Silence after which the outer guest counts as frozen: many periods, because the
    /// host may be loaded (2 cores running two TCG guests) and the outer guest's own vCPUs
    /// busy with inner guests.
    pub const FROZEN_AFTER: Duration = Duration::from_secs(45);

    /// Takes the heartbeat file's current length. Before the first beat (the outer kernel
    /// still booting) there is nothing to miss.
    pub fn update(&mut self, len: u64, now: Instant) {
        match self.seen {
            Some((old, _)) if old == len => {}
            _ if len == 0 => {}
            _ => self.seen = Some((len, now)),
        }
    }

    /// How long the outer guest has been silent, once that is longer than
    /// [`Heartbeat::FROZEN_AFTER`].
    pub fn frozen_for(&self, now: Instant) -> Option<Duration> {
        let (_, at) = self.seen?;
        let silent = now.saturating_duration_since(at);
        (silent > Self::FROZEN_AFTER).then_some(silent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_follows_the_running_check() {
        let mut p = Progress::default();
        p.update("@@BENCH-KVM ok\n@@START a\n", false);
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
    fn a_heartbeat_that_stops_is_a_frozen_guest() {
        let t0 = Instant::now();
        let mut h = Heartbeat::default();
        // The outer kernel boots for a long time before /init's first beat.
        h.update(0, t0);
        assert_eq!(h.frozen_for(t0 + Duration::from_secs(600)), None);
        h.update(20, t0);
        let late = Heartbeat::FROZEN_AFTER + Duration::from_secs(1);
        // Beats keep coming: alive however long it runs.
        h.update(40, t0 + late);
        assert_eq!(h.frozen_for(t0 + late), None);
        // The same length for longer than FROZEN_AFTER: frozen, and for how long.
        assert_eq!(h.frozen_for(t0 + late + late), Some(late));
        assert_eq!(h.frozen_for(t0 + late + Duration::from_secs(5)), None);
    }
}
