//! Process-lifetime strings for the values every record carries (`computeTargetId`,
//! `releaseVersion`): a record can then hold them as `&'static str`, with no reference count
//! touched on the app thread and released on a worker thread for every event.

use std::collections::HashSet;
use std::sync::Mutex;

/// How many distinct values are kept; past that, values are shared but not interned.
const MAX_INTERNED: usize = 64;

static INTERNED: Mutex<Option<HashSet<&'static str>>> = Mutex::new(None);

/// A `'static` copy of `value`, made once per distinct value (at most [`MAX_INTERNED`] values
/// per process, a few bytes each; layers are built once per app). `None` once the table is
/// full, so a caller that builds layers in a loop cannot grow memory without bound.
pub(crate) fn intern(value: &str) -> Option<&'static str> {
    let mut table = INTERNED.lock().unwrap_or_else(|p| p.into_inner());
    let table = table.get_or_insert_with(HashSet::new);
    if let Some(found) = table.get(value) {
        return Some(found);
    }
    if table.len() >= MAX_INTERNED {
        return None;
    }
    let leaked: &'static str = Box::leak(value.to_owned().into_boxed_str());
    table.insert(leaked);
    Some(leaked)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_value_same_pointer() {
        let a = intern("ct-intern-test").unwrap();
        let b = intern(&String::from("ct-intern-test")).unwrap();
        assert!(std::ptr::eq(a, b));
    }
}
