//! [`RateLimit`]: events per second and a burst, and its text form (`10/s,burst=100`).

use std::fmt;
use std::str::FromStr;

/// A token bucket's settings: at most `burst` events at once, then `per_second` on average.
/// The default, for every event name on every destination, is posthog-js's client-side
/// limit: 10 events/s with a burst of 100.
///
/// Its text form (the `CL_TELEMETRY_RATE_LIMIT` variable) is `<rate>/s` with an optional
/// `,burst=<n>` (the burst defaults to ten times the rate, at least 1); `off` is no limit:
///
/// ```
/// use closedloop_telemetry_exporters::RateLimit;
///
/// assert_eq!(RateLimit::parse("10/s,burst=100").unwrap(), Some(RateLimit::default()));
/// assert_eq!(RateLimit::parse("2.5/s").unwrap(), Some(RateLimit::new(2.5, 25)));
/// assert_eq!(RateLimit::parse("off").unwrap(), None);
/// assert!(RateLimit::parse("10 per second").is_err());
/// assert_eq!(RateLimit::default().to_string(), "10/s,burst=100");
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    per_second: f64,
    burst: u32,
}

// The rate is never NaN (`new` and the parser refuse it), so equality is an equivalence.
impl Eq for RateLimit {}

impl Default for RateLimit {
    fn default() -> Self {
        RateLimit {
            per_second: 10.0,
            burst: 100,
        }
    }
}

impl RateLimit {
    /// `per_second` events per second on average (negative or NaN: 0) with bursts of
    /// `burst`.
    pub fn new(per_second: f64, burst: u32) -> Self {
        let per_second = if per_second.is_nan() || per_second < 0.0 {
            0.0
        } else {
            per_second
        };
        RateLimit { per_second, burst }
    }

    /// The refill rate, events per second.
    pub fn per_second(&self) -> f64 {
        self.per_second
    }

    /// The most events admitted at once.
    pub fn burst(&self) -> u32 {
        self.burst
    }

    /// Parses the text form: `Some(limit)`, or `None` for `off`.
    pub fn parse(text: &str) -> Result<Option<RateLimit>, ParseRateLimitError> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("off") {
            return Ok(None);
        }
        text.parse().map(Some)
    }
}

impl fmt::Display for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/s,burst={}", self.per_second, self.burst)
    }
}

/// Why a rate limit's text form was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid rate limit {text:?}: expected `<rate>/s`, optionally `,burst=<n>`, or `off`")]
pub struct ParseRateLimitError {
    text: String,
}

impl FromStr for RateLimit {
    type Err = ParseRateLimitError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let err = || ParseRateLimitError {
            text: text.to_string(),
        };
        let mut parts = text.split(',').map(str::trim);
        let rate = parts.next().ok_or_else(err)?;
        let rate = rate.strip_suffix("/s").ok_or_else(err)?.trim();
        let per_second: f64 = rate.parse().map_err(|_| err())?;
        if !per_second.is_finite() || per_second < 0.0 {
            return Err(err());
        }
        let mut burst = None;
        for part in parts {
            let (key, value) = part.split_once('=').ok_or_else(err)?;
            match key.trim() {
                "burst" if burst.is_none() => {
                    burst = Some(value.trim().parse::<u32>().map_err(|_| err())?)
                }
                _ => return Err(err()),
            }
        }
        let burst = burst.unwrap_or_else(|| ((per_second * 10.0).ceil() as u32).max(1));
        Ok(RateLimit { per_second, burst })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_form_round_trips_and_refuses_what_it_cannot_read() {
        for ok in [
            "10/s,burst=100",
            "0/s,burst=5",
            "0.5/s,burst=1",
            " 3/s , burst = 7 ",
        ] {
            let l = RateLimit::parse(ok).unwrap().unwrap();
            assert_eq!(RateLimit::parse(&l.to_string()).unwrap(), Some(l), "{ok}");
        }
        assert_eq!(RateLimit::parse("OFF").unwrap(), None);
        assert_eq!(RateLimit::parse("0.05/s").unwrap().unwrap().burst(), 1);
        for bad in [
            "",
            "10",
            "10/m",
            "-1/s",
            "NaN/s",
            "inf/s",
            "10/s,burst=-1",
            "10/s,burst=",
            "10/s,rate=5",
            "10/s,burst=1,burst=2",
            "10/s,burst=99999999999",
        ] {
            assert!(RateLimit::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
