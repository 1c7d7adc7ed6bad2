//! Formatting `Debug` / `Display` values into a string that stops growing at a bound.

use std::fmt::{self, Write};

/// A `fmt::Write` that keeps at most `max` bytes (on a character boundary) and then stops
/// the formatter, so a huge `Debug` value costs at most `max` bytes of copying.
struct Bounded {
    buf: String,
    max: usize,
    cut: bool,
}

impl Write for Bounded {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = self.max - self.buf.len();
        if s.len() <= room {
            self.buf.push_str(s);
            return Ok(());
        }
        self.buf.push_str(crate::truncate::keep_head(s, room));
        self.cut = true;
        Err(fmt::Error)
    }
}

/// Formats `value` with `{:?}`, keeping at most `max` bytes. Returns the text and whether it
/// was cut.
pub(crate) fn debug_string(value: &dyn fmt::Debug, max: usize) -> (String, bool) {
    let mut w = Bounded {
        buf: String::new(),
        max,
        cut: false,
    };
    // An error here is either our own stop signal or a broken `Debug` impl; both leave a
    // valid prefix in the buffer, which is what we keep.
    let _ = write!(w, "{value:?}");
    (w.buf, w.cut)
}

/// A `fmt::Write` that keeps the **last** `max` bytes (on a character boundary) in a buffer that
/// never grows past about three times `max`: the formatter runs to its end (a tail is the end
/// of the text), but a huge value costs at most that much memory.
struct BoundedTail {
    buf: String,
    max: usize,
    cut: bool,
}

impl BoundedTail {
    /// Drops the front of the buffer so that at most `max` bytes remain.
    fn keep_last(&mut self) {
        if self.buf.len() > self.max {
            let start = self.buf.len() - crate::truncate::keep_tail(&self.buf, self.max).len();
            self.buf.drain(..start);
            self.cut = true;
        }
    }
}

impl Write for BoundedTail {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if s.len() >= self.max {
            self.cut |= !self.buf.is_empty() || s.len() > self.max;
            self.buf.clear();
            self.buf.push_str(crate::truncate::keep_tail(s, self.max));
            return Ok(());
        }
        self.buf.push_str(s);
        if self.buf.len() > 2 * self.max {
            self.keep_last();
        }
        Ok(())
    }
}

/// Formats `value` with `{:?}`, keeping at most the last `max` bytes, in memory bounded by
/// about `3 * max` whatever the size of the value. Returns the text and whether it was cut.
pub(crate) fn debug_tail_string(value: &dyn fmt::Debug, max: usize) -> (String, bool) {
    let mut w = BoundedTail {
        buf: String::new(),
        max,
        cut: false,
    };
    // An error here comes from a broken `Debug` impl: keep what it wrote.
    let _ = write!(w, "{value:?}");
    w.keep_last();
    (w.buf, w.cut)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tail_keeps_the_end_in_bounded_memory() {
        struct Chunks(usize);
        impl fmt::Debug for Chunks {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                for i in 0..self.0 {
                    write!(f, "{:07}é", i)?;
                }
                f.write_str("END")
            }
        }
        let (s, cut) = debug_tail_string(&Chunks(100_000), 101);
        assert!(cut && s.len() <= 101 && s.len() >= 98, "{}", s.len());
        assert!(s.ends_with("0099999éEND"), "{s}");
        let (s, cut) = debug_tail_string(&format_args!("{}", "x".repeat(500)), 101);
        assert!(cut && s.len() == 101);
        let (s, cut) = debug_tail_string(&format_args!("short"), 101);
        assert_eq!((s.as_str(), cut), ("short", false));
    }

    #[test]
    fn stops_at_the_bound_on_a_char_boundary() {
        let big = "é".repeat(10_000);
        let (s, cut) = debug_string(&format_args!("{big}"), 101);
        assert!(cut);
        assert_eq!(s.len(), 100);
        let (s, cut) = debug_string(&42, 101);
        assert_eq!((s.as_str(), cut), ("42", false));
    }
}
