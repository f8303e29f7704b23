//! Property tests of the versioned key encoding: round trips, and byte order of encodings
//! equal to (key ascending, timestamp descending).

use proptest::prelude::*;
use storage::Timestamp;
use storage::encoding::{
    decode_value, decode_versioned_key, encode_value, encode_versioned_key, key_prefix,
    key_prefix_end,
};

/// Keys biased towards the bytes the escaping treats specially.
fn any_key() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(
        prop_oneof![Just(0u8), Just(1u8), Just(0xffu8), any::<u8>()],
        0..12,
    )
}

fn any_ts() -> impl Strategy<Value = Timestamp> {
    prop_oneof![
        (0u64..4, 0u32..4).prop_map(|(w, l)| Timestamp::new(w, l)),
        (any::<u64>(), any::<u32>()).prop_map(|(w, l)| Timestamp::new(w, l)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    // Goal: every (key, ts) decodes back to itself.
    #[test]
    fn versioned_key_round_trip(key in any_key(), ts in any_ts()) {
        let raw = encode_versioned_key(&key, ts);
        prop_assert_eq!(decode_versioned_key(&raw).expect("decodes"), (key, ts));
    }

    // Goal: byte order of encodings is key order, then newest version first.
    #[test]
    fn encoding_preserves_order(a in any_key(), ta in any_ts(), b in any_key(), tb in any_ts()) {
        let expected = a.cmp(&b).then(tb.cmp(&ta));
        let got = encode_versioned_key(&a, ta).cmp(&encode_versioned_key(&b, tb));
        prop_assert_eq!(got, expected);
    }

    // Goal: a key's versions lie within [prefix(key), prefix_end(key)) and no other key's do.
    #[test]
    fn prefix_bounds_hold_exactly_one_key(a in any_key(), b in any_key(), ts in any_ts()) {
        let raw = encode_versioned_key(&b, ts);
        let inside = raw >= key_prefix(&a) && raw < key_prefix_end(&a);
        prop_assert_eq!(inside, a == b);
    }

    // Goal: values and tombstones round trip.
    #[test]
    fn value_round_trip(value in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..64))) {
        let raw = encode_value(value.as_deref());
        prop_assert_eq!(decode_value(b"k", &raw[..]).expect("decodes"), value);
    }
}
