//! Sampling by event id, pure: the same id and rate always give the same answer, so an event
//! retried with its id is kept or dropped the same way every time.

use uuid::Uuid;

/// Whether the event `id` is kept at `rate` (0 keeps nothing, 1 or more keeps everything).
/// The decision hashes all 128 bits of the id (its random part included, so ids from the
/// same millisecond do not decide alike) and keeps the event when the hash falls in the lowest
/// `rate` fraction of the 64-bit range.
pub(crate) fn keeps(id: Uuid, rate: f64) -> bool {
    if rate.is_nan() || rate <= 0.0 {
        return false;
    }
    if rate >= 1.0 {
        return true;
    }
    let (hi, lo) = id.as_u64_pair();
    let h = mix(hi ^ mix(lo));
    // rate < 1 here, so the threshold is below 2^64.
    (h as f64) < rate * 18_446_744_073_709_551_616.0
}

/// SplitMix64's finalizer: every input bit moves every output bit.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_of_zero_and_one_keep_nothing_and_everything() {
        for _ in 0..1000 {
            let id = Uuid::now_v7();
            assert!(!keeps(id, 0.0));
            assert!(!keeps(id, -1.0));
            assert!(!keeps(id, f64::NAN));
            assert!(keeps(id, 1.0));
            assert!(keeps(id, 2.0));
        }
    }

    #[test]
    fn the_same_id_decides_the_same_way_every_time() {
        for _ in 0..1000 {
            let id = Uuid::now_v7();
            let first = keeps(id, 0.3);
            for _ in 0..5 {
                assert_eq!(keeps(id, 0.3), first);
            }
        }
    }

    #[test]
    fn the_kept_fraction_is_close_to_the_rate() {
        // UUIDv7 ids made back to back (most share their millisecond).
        let n = 100_000;
        for rate in [0.01, 0.1, 0.5, 0.9] {
            let kept = (0..n).filter(|_| keeps(Uuid::now_v7(), rate)).count();
            let fraction = kept as f64 / n as f64;
            assert!(
                (fraction - rate).abs() < 0.01,
                "rate {rate}: kept {fraction}"
            );
        }
    }

    #[test]
    fn a_lower_rate_keeps_a_subset_of_a_higher_one() {
        for _ in 0..10_000 {
            let id = Uuid::now_v7();
            if keeps(id, 0.1) {
                assert!(keeps(id, 0.5));
            }
        }
    }
}
