//! The policy for event names outside the catalogue: not forwarded by default, one warning per
//! distinct name, and a bounded memory of which names were warned about.

use std::collections::HashSet;
use std::sync::Mutex;

/// How many distinct unknown names are remembered (and warned about individually).
pub const MAX_WARNED_NAMES: usize = 256;

/// The longest unknown name kept in memory, in bytes.
const MAX_NAME_BYTES: usize = 128;

/// Remembers which unknown names were warned about, up to [`MAX_WARNED_NAMES`].
#[derive(Debug, Default)]
pub(crate) struct UnknownNames {
    warned: Mutex<HashSet<String>>,
}

/// What to do about one sighting of an unknown name.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Sighting {
    /// First time: warn about this name.
    First,
    /// Seen before, or the set is full and the overflow was already announced.
    Known,
    /// The set just became full: warn once that further names are only counted.
    Overflow,
}

impl UnknownNames {
    pub(crate) fn sight(&self, name: &str) -> Sighting {
        let name = crate::truncate::keep_head(name, MAX_NAME_BYTES);
        let mut warned = self.warned.lock().unwrap_or_else(|p| p.into_inner());
        if warned.contains(name) {
            return Sighting::Known;
        }
        match warned.len() {
            n if n < MAX_WARNED_NAMES => {
                warned.insert(name.to_string());
                Sighting::First
            }
            n if n == MAX_WARNED_NAMES => {
                // One sentinel entry past the cap marks that the overflow was announced.
                warned.insert(String::new());
                Sighting::Overflow
            }
            _ => Sighting::Known,
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.warned.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warns_once_per_name_and_stays_bounded() {
        let u = UnknownNames::default();
        assert_eq!(u.sight("a.b"), Sighting::First);
        assert_eq!(u.sight("a.b"), Sighting::Known);
        for i in 1..MAX_WARNED_NAMES {
            assert_eq!(u.sight(&format!("n.{i}")), Sighting::First);
        }
        assert_eq!(u.sight("one.more"), Sighting::Overflow);
        for i in 0..10_000 {
            assert_eq!(u.sight(&format!("x.{i}")), Sighting::Known);
        }
        assert_eq!(u.len(), MAX_WARNED_NAMES + 1);
    }
}
