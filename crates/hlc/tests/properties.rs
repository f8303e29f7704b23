//! Property tests for timestamps and the clock.

use hlc::{Clock, DEFAULT_MAX_OFFSET, ManualClock, Timestamp};
use proptest::prelude::*;
use std::sync::Arc;

fn any_ts() -> impl Strategy<Value = Timestamp> {
    (any::<u64>(), any::<u32>()).prop_map(|(w, l)| Timestamp::new(w, l))
}

proptest! {
    // Goal: the order of timestamps is the order of (wall, logical) pairs, and it is total.
    #[test]
    fn order_is_lexicographic(a in any_ts(), b in any_ts()) {
        let pair_order = (a.wall_time_ns, a.logical).cmp(&(b.wall_time_ns, b.logical));
        prop_assert_eq!(a.cmp(&b), pair_order);
        prop_assert_eq!(a == b, pair_order.is_eq());
    }

    // Goal: the decimal text form reads back to the same timestamp and always has ten
    // logical digits.
    #[test]
    fn decimal_round_trip(a in any_ts()) {
        let text = a.to_string();
        prop_assert_eq!(text.parse::<Timestamp>(), Ok(a));
        let frac = text.split_once('.').map(|(_, f)| f.len());
        prop_assert_eq!(frac, Some(10));
    }

    // Goal: TIMESTAMPTZ text reads back to the same wall time at microsecond precision.
    #[test]
    fn timestamptz_round_trip(wall in 0u64..=u64::MAX, logical in any::<u32>()) {
        let ts = Timestamp::new(wall, logical);
        let back = Timestamp::parse_timestamptz(&ts.to_timestamptz_string()).expect("parses");
        prop_assert_eq!(back, Timestamp::new(wall / 1_000 * 1_000, 0));
    }

    // Goal: next() is the immediate successor: greater, and nothing lies between.
    #[test]
    fn next_is_successor(a in any_ts()) {
        prop_assume!(a != Timestamp::MAX);
        let n = a.next();
        prop_assert!(n > a);
        prop_assert_eq!(n.prev(), a);
    }

    // Goal: under any sequence of physical clock moves (forward or back) and remote updates,
    // now() is strictly increasing and above every accepted remote timestamp.
    #[test]
    fn clock_is_monotonic(ops in proptest::collection::vec((0u8..3, 0u64..2_000_000_000, any::<u32>()), 1..200)) {
        let physical = Arc::new(ManualClock::new(1_000_000_000));
        let clock = Clock::new(physical.clone(), DEFAULT_MAX_OFFSET);
        let mut last = Timestamp::ZERO;
        for (op, wall, logical) in ops {
            match op {
                0 => physical.set(wall),
                1 => {
                    let remote = Timestamp::new(wall, logical);
                    if clock.update(remote).is_ok() {
                        last = last.max(remote);
                    }
                }
                _ => {
                    let now = clock.now();
                    prop_assert!(now > last, "now {} not above {}", now, last);
                    last = now;
                }
            }
        }
        prop_assert!(clock.now() > last);
    }
}
