//! A token bucket, pure: the caller gives the time, so it is tested without a clock.

/// Nanoseconds per second.
const NANOS: f64 = 1e9;

/// `burst` tokens at most, refilled at `per_second`; each admitted event takes one. Time is
/// nanoseconds on any clock the caller keeps; a clock that goes backwards refills nothing and
/// restarts the refill from the earlier time (a step back never blocks for the size of the
/// step).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct TokenBucket {
    per_second: f64,
    burst: f64,
    tokens: f64,
    /// When `tokens` was last brought up to date (`None`: never; the bucket starts full).
    last: Option<u64>,
}

impl TokenBucket {
    /// A full bucket.
    pub(crate) fn new(per_second: f64, burst: u32) -> Self {
        let burst = f64::from(burst);
        TokenBucket {
            per_second: per_second.max(0.0),
            burst,
            tokens: burst,
            last: None,
        }
    }

    /// Takes one token at `now` if there is one.
    pub(crate) fn admit(&mut self, now: u64) -> bool {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    fn refill(&mut self, now: u64) {
        if let Some(last) = self.last {
            if now > last {
                let added = (now - last) as f64 / NANOS * self.per_second;
                self.tokens = (self.tokens + added).min(self.burst);
            }
        }
        self.last = Some(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    fn admitted(b: &mut TokenBucket, now: u64, n: usize) -> usize {
        (0..n).filter(|_| b.admit(now)).count()
    }

    #[test]
    fn a_full_bucket_admits_its_burst_then_nothing() {
        let mut b = TokenBucket::new(10.0, 100);
        assert_eq!(admitted(&mut b, 5 * S, 1000), 100);
        assert!(!b.admit(5 * S));
    }

    #[test]
    fn tokens_come_back_at_the_rate_and_never_above_the_burst() {
        let mut b = TokenBucket::new(10.0, 100);
        assert_eq!(admitted(&mut b, 0, 1000), 100);
        // 0.5 s: five tokens.
        assert_eq!(admitted(&mut b, S / 2, 1000), 5);
        // 0.05 s later: half a token, nothing yet; another 0.05 s: one.
        assert_eq!(admitted(&mut b, S / 2 + S / 20, 10), 0);
        assert_eq!(admitted(&mut b, S / 2 + S / 10, 10), 1);
        // An hour idle: back to the burst, not more.
        assert_eq!(admitted(&mut b, 3600 * S, 1000), 100);
    }

    #[test]
    fn a_steady_rate_below_the_limit_is_never_limited() {
        let mut b = TokenBucket::new(10.0, 100);
        // 5 per second for ten minutes, evenly spaced.
        for i in 0..3000u64 {
            assert!(b.admit(i * S / 5), "event {i} was limited");
        }
    }

    #[test]
    fn a_clock_going_backwards_refills_nothing_and_does_not_stall() {
        let mut b = TokenBucket::new(10.0, 100);
        assert_eq!(admitted(&mut b, 5000 * S, 1000), 100);
        // The clock steps back an hour: no refill for the step back.
        assert_eq!(admitted(&mut b, 1400 * S, 10), 0);
        // The refill restarts from the earlier time: one second later, ten tokens.
        assert_eq!(admitted(&mut b, 1401 * S, 1000), 10);
    }

    #[test]
    fn a_rate_of_zero_admits_the_burst_once_and_a_burst_of_zero_admits_nothing() {
        let mut b = TokenBucket::new(0.0, 3);
        assert_eq!(admitted(&mut b, 0, 10), 3);
        assert_eq!(admitted(&mut b, 1_000_000 * S, 10), 0);
        let mut b = TokenBucket::new(1000.0, 0);
        assert_eq!(admitted(&mut b, 0, 10), 0);
        assert_eq!(admitted(&mut b, 10 * S, 10), 0);
    }

    #[test]
    fn a_rate_of_one_admits_one_per_second_after_the_burst() {
        let mut b = TokenBucket::new(1.0, 1);
        assert!(b.admit(0));
        assert!(!b.admit(S / 2));
        assert!(b.admit(S));
        assert!(!b.admit(S));
    }
}
