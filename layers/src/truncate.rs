//! UTF-8-safe truncation of oversized strings.

/// The bound on `logTail` / `stderrTail`, in bytes (`docs/ARCHITECTURE.md`, "The envelope").
pub const TAIL_MAX_BYTES: usize = 4096;

/// The bound on any other string field, in bytes. Longer values keep their start.
pub const FIELD_MAX_BYTES: usize = 4096;

/// Keeps at most `max` bytes from the **end** of `s`, cut on a character boundary.
///
/// ```
/// use closedloop_telemetry_layers::__private::truncate::keep_tail;
/// assert_eq!(keep_tail("hello", 3), "llo");
/// assert_eq!(keep_tail("añb", 2), "b"); // never splits the two-byte 'ñ'
/// ```
pub fn keep_tail(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut start = s.len() - max;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

/// Keeps at most `max` bytes from the **start** of `s`, cut on a character boundary.
///
/// ```
/// use closedloop_telemetry_layers::__private::truncate::keep_head;
/// assert_eq!(keep_head("hello", 3), "hel");
/// assert_eq!(keep_head("aña", 2), "a");
/// ```
pub fn keep_head(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn tail_is_a_bounded_valid_suffix(s in any::<String>(), max in 0usize..64) {
            let t = keep_tail(&s, max);
            prop_assert!(t.len() <= max);
            prop_assert!(s.ends_with(t));
            // maximal: adding the previous character would exceed the bound
            if t.len() < s.len() {
                let prev = s[..s.len() - t.len()].chars().last().unwrap();
                prop_assert!(t.len() + prev.len_utf8() > max);
            }
        }

        #[test]
        fn head_is_a_bounded_valid_prefix(s in any::<String>(), max in 0usize..64) {
            let h = keep_head(&s, max);
            prop_assert!(h.len() <= max);
            prop_assert!(s.starts_with(h));
            if h.len() < s.len() {
                let next = s[h.len()..].chars().next().unwrap();
                prop_assert!(h.len() + next.len_utf8() > max);
            }
        }

        #[test]
        fn tail_of_4k_bound(s in "\\PC{0,3000}") {
            let t = keep_tail(&s, TAIL_MAX_BYTES);
            prop_assert!(t.len() <= TAIL_MAX_BYTES);
            prop_assert!(s.ends_with(t));
        }
    }
}
