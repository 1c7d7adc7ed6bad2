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

#[cfg(test)]
mod tests {
    use super::*;

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
