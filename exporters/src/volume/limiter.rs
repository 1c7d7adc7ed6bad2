//! The pipeline's rate limiter: one token bucket per event name and destination, consulted at
//! the queue's door under the queue's lock (so it costs no lock of its own), and the counts of
//! what it refused: in total (the destinations' `rate_limited` counters and their breakdown by
//! name) and not yet reported (what the next `telemetry.rate_limited` report carries).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::time::{Duration, Instant};

use super::bucket::TokenBucket;
use super::{VolumeOptions, REPORT_EVENT};

/// How often, at most, a report is made while events are being limited.
pub(crate) const REPORT_INTERVAL: Duration = Duration::from_secs(60);
/// The most distinct names with buckets of their own; further names share one bucket per
/// destination, counted under [`OTHER_NAMES`].
pub(crate) const MAX_NAMES: usize = 1024;
/// The name the limiter counts names past [`MAX_NAMES`] under.
pub(crate) const OTHER_NAMES: &str = "(other names)";

/// What one report says: since when, and per destination (by index) each name's count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LimitReport {
    /// From the first event limited after the previous report to the report.
    pub(crate) window: Duration,
    /// Per destination: (name, events limited), by name; empty when it limited nothing.
    pub(crate) per_destination: Vec<Vec<(String, u64)>>,
}

/// One name's buckets and counts, one of each per destination.
struct Slot {
    name: Box<str>,
    buckets: Vec<Option<TokenBucket>>,
    total: Vec<u64>,
    unreported: Vec<u64>,
}

/// The limiter of one pipeline (see the module's doc).
pub(crate) struct Limiter {
    rules: Vec<VolumeOptions>,
    /// No destination limits anything: the door skips the limiter.
    off: bool,
    index: HashMap<Box<str>, usize, BuildHasherDefault<FxHasher>>,
    slots: Vec<Slot>,
    /// When the first event not yet reported was limited.
    window_start: Option<Instant>,
    /// How often, at most, a report is made ([`REPORT_INTERVAL`], or less under the test-only
    /// clock divisor).
    interval: Duration,
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiter")
            .field("off", &self.off)
            .field("names", &self.slots.len())
            .finish_non_exhaustive()
    }
}

impl Limiter {
    /// A limiter for destinations with these settings, by index, reporting every `interval` at
    /// most.
    pub(crate) fn new(rules: Vec<VolumeOptions>, interval: Duration) -> Self {
        let off = rules
            .iter()
            .all(|r| r.default.is_none() && r.per_name.values().all(Option::is_none));
        Limiter {
            rules,
            off,
            index: HashMap::default(),
            slots: Vec::new(),
            window_start: None,
            interval,
        }
    }

    /// Whether no destination limits anything.
    pub(crate) fn is_off(&self) -> bool {
        self.off
    }

    /// Asks the buckets of `name` on each destination in `mask` for a token at `now_ns`
    /// (nanoseconds on the event clock); returns the destinations that refused it, each
    /// counted there. `limited_first` is set when this opened a new report window.
    pub(crate) fn admit(&mut self, name: &str, mask: u8, now_ns: u64) -> Admission {
        if self.off || mask == 0 {
            return Admission::default();
        }
        let slot = self.slot(name);
        let s = &mut self.slots[slot];
        let mut limited = 0u8;
        let mut m = mask;
        while m != 0 {
            let d = m.trailing_zeros() as usize;
            m &= m - 1;
            if let Some(Some(b)) = s.buckets.get_mut(d) {
                if !b.admit(now_ns) {
                    limited |= 1 << d;
                    s.total[d] += 1;
                    s.unreported[d] += 1;
                }
            }
        }
        let mut opened = false;
        if limited != 0 && self.window_start.is_none() {
            self.window_start = Some(Instant::now());
            opened = true;
        }
        Admission { limited, opened }
    }

    fn slot(&mut self, name: &str) -> usize {
        if let Some(&i) = self.index.get(name) {
            return i;
        }
        let name = if self.slots.len() >= MAX_NAMES {
            OTHER_NAMES
        } else {
            name
        };
        if let Some(&i) = self.index.get(name) {
            return i;
        }
        let n = self.rules.len();
        let buckets = self
            .rules
            .iter()
            .map(|r| match name {
                // The report is never limited.
                REPORT_EVENT => None,
                _ => r
                    .rate_limit(name)
                    .map(|l| TokenBucket::new(l.per_second(), l.burst())),
            })
            .collect();
        self.slots.push(Slot {
            name: name.into(),
            buckets,
            total: vec![0; n],
            unreported: vec![0; n],
        });
        let i = self.slots.len() - 1;
        self.index.insert(name.into(), i);
        i
    }

    /// Events limited on destination `d` in all, and by name (names with none left out).
    pub(crate) fn limited(&self, d: usize) -> (u64, Vec<(String, u64)>) {
        let mut total = 0;
        let mut by_name = Vec::new();
        for s in &self.slots {
            let n = s.total.get(d).copied().unwrap_or(0);
            if n > 0 {
                total += n;
                by_name.push((s.name.to_string(), n));
            }
        }
        by_name.sort();
        (total, by_name)
    }

    /// Events limited on destination `d` in all.
    pub(crate) fn limited_total(&self, d: usize) -> u64 {
        self.slots
            .iter()
            .map(|s| s.total.get(d).copied().unwrap_or(0))
            .sum()
    }

    /// When the next report is due (`None`: nothing to report).
    pub(crate) fn report_due(&self) -> Option<Instant> {
        self.window_start
            .map(|t| t.checked_add(self.interval).unwrap_or(t))
    }

    /// The report of everything not yet reported, if it is due at `now` or `force`d (flush,
    /// shutdown); what it carries is never reported again.
    pub(crate) fn take_report(&mut self, now: Instant, force: bool) -> Option<LimitReport> {
        let start = self.window_start?;
        if !force && self.report_due().is_some_and(|due| now < due) {
            return None;
        }
        self.window_start = None;
        let mut per_destination = vec![Vec::new(); self.rules.len()];
        for s in &mut self.slots {
            for (d, n) in s.unreported.iter_mut().enumerate() {
                if *n > 0 {
                    per_destination[d].push((s.name.to_string(), std::mem::take(n)));
                }
            }
        }
        for names in &mut per_destination {
            names.sort();
        }
        Some(LimitReport {
            window: now.saturating_duration_since(start),
            per_destination,
        })
    }
}

/// What [`Limiter::admit`] decided.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Admission {
    /// The destinations that refused the event.
    pub(crate) limited: u8,
    /// This refusal opened a report window (the background must plan a report).
    pub(crate) opened: bool,
}

/// rustc's FxHasher: a multiply-rotate hash over 8 bytes at a time, a few nanoseconds for an
/// event name (the door hashes one per event). Not resistant to chosen collisions, which is
/// fine: names come from the app's own code, and at most [`MAX_NAMES`] are kept.
#[derive(Default, Clone, Copy)]
struct FxHasher {
    hash: u64,
}

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FxHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, mut bytes: &[u8]) {
        while bytes.len() >= 8 {
            let (word, rest) = bytes.split_at(8);
            self.add(u64::from_le_bytes(word.try_into().unwrap_or([0; 8])));
            bytes = rest;
        }
        if !bytes.is_empty() {
            let mut last = [0u8; 8];
            last[..bytes.len()].copy_from_slice(bytes);
            self.add(u64::from_le_bytes(last));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.hash
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::volume::RateLimit;

    const S: u64 = 1_000_000_000;

    fn two(default: Option<RateLimit>) -> Limiter {
        let a = VolumeOptions {
            default,
            ..VolumeOptions::default()
        };
        let mut b = VolumeOptions::default();
        b.per_name.insert("job.completed".into(), None);
        Limiter::new(vec![a, b], REPORT_INTERVAL)
    }

    #[test]
    fn each_destination_and_name_has_its_own_bucket() {
        let mut l = two(Some(RateLimit::new(1.0, 2)));
        let limited: Vec<u8> = (0..4)
            .map(|_| l.admit("job.completed", 0b11, 0).limited)
            .collect();
        // Destination 0 admits its burst of 2; destination 1 never limits job.completed.
        assert_eq!(limited, [0, 0, 0b01, 0b01]);
        // Another name has a full bucket on both (destination 1's default is 10/s, 100).
        assert_eq!(l.admit("job.failed", 0b11, 0).limited, 0);
        assert_eq!(l.limited(0), (2, vec![("job.completed".into(), 2)]));
        assert_eq!(l.limited_total(1), 0);
    }

    #[test]
    fn a_report_carries_each_limited_event_once() {
        let mut l = two(Some(RateLimit::new(0.0, 1)));
        let t0 = Instant::now();
        assert!(l.take_report(t0, true).is_none(), "nothing limited yet");
        assert!(!l.admit("a", 1, 0).opened);
        assert!(l.admit("a", 1, 0).opened);
        assert!(!l.admit("a", 1, 0).opened);
        let due = l.report_due().unwrap();
        assert!(l.take_report(due - Duration::from_secs(1), false).is_none());
        let r = l.take_report(due, false).unwrap();
        assert_eq!(r.per_destination, vec![vec![("a".to_string(), 2)], vec![]]);
        assert!(l.take_report(due, true).is_none(), "reported once");
        l.admit("a", 1, 0);
        let r = l.take_report(Instant::now(), true).unwrap();
        assert_eq!(r.per_destination[0], vec![("a".to_string(), 1)]);
        assert_eq!(l.limited_total(0), 3);
    }

    #[test]
    fn the_report_event_is_never_limited_and_off_limits_nothing() {
        let mut l = two(Some(RateLimit::new(0.0, 0)));
        assert_eq!(l.admit(REPORT_EVENT, 0b11, 0).limited, 0);
        // Destination 1 has the default limit (10/s, burst 100).
        assert_eq!(l.admit("x", 0b11, 0).limited, 0b01);
        let off = VolumeOptions {
            default: None,
            ..VolumeOptions::default()
        };
        let mut l = Limiter::new(vec![off.clone(), off], REPORT_INTERVAL);
        assert!(l.is_off());
        assert_eq!(l.admit("x", 0b11, 0).limited, 0);
    }

    #[test]
    fn names_past_the_bound_share_one_bucket() {
        let mut l = two(Some(RateLimit::new(0.0, 1)));
        for i in 0..MAX_NAMES {
            assert_eq!(l.admit(&format!("n{i}"), 1, 0).limited, 0);
        }
        assert_eq!(l.admit("late.one", 1, 0).limited, 0);
        assert_eq!(l.admit("late.two", 1, 0).limited, 1);
        assert_eq!(l.limited(0).1, vec![(OTHER_NAMES.to_string(), 1)]);
        let _ = S;
    }
}
