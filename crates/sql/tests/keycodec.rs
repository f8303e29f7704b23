//! Property tests of the key encoding: for every type, byte order of encodings equals SQL
//! order (reversed for DESC), values round-trip, and composite keys order lexicographically.

use proptest::prelude::*;
use rust_decimal::Decimal;
use sql::keycodec::{Direction, KeyValue, compare, decode, encode};
use std::cmp::Ordering;

fn any_decimal() -> impl Strategy<Value = Decimal> + Clone {
    prop_oneof![
        (any::<i64>(), 0u32..12).prop_map(|(m, s)| Decimal::new(m, s)),
        (-1000i64..1000, 0u32..4).prop_map(|(m, s)| Decimal::new(m, s)),
        (any::<i128>(), 0u32..28)
            .prop_map(|(m, s)| Decimal::from_i128_with_scale(m % (1i128 << 95), s)),
    ]
}

fn any_float() -> impl Strategy<Value = f64> + Clone {
    prop_oneof![
        any::<f64>(),
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(0.0),
        Just(-0.0),
        (-100i32..100).prop_map(f64::from),
    ]
}

fn any_bytes() -> impl Strategy<Value = Vec<u8>> + Clone {
    proptest::collection::vec(
        prop_oneof![Just(0u8), Just(1u8), Just(0xffu8), any::<u8>()],
        0..10,
    )
}

/// Two values of one (random) type, NULL included.
fn same_type_pair() -> impl Strategy<Value = (KeyValue, KeyValue)> {
    fn pair<S: Strategy<Value = KeyValue> + Clone>(
        s: S,
    ) -> impl Strategy<Value = (KeyValue, KeyValue)> {
        let with_null = prop_oneof![9 => s, 1 => Just(KeyValue::Null)];
        (with_null.clone(), with_null)
    }
    prop_oneof![
        pair(any::<bool>().prop_map(KeyValue::Bool)),
        pair(prop_oneof![any::<i64>(), -3i64..3].prop_map(KeyValue::Int)),
        pair(any_float().prop_map(KeyValue::Float)),
        pair(any_decimal().prop_map(KeyValue::Decimal)),
        pair(any_bytes().prop_map(|b| KeyValue::String(String::from_utf8_lossy(&b).into_owned()))),
        pair(any_bytes().prop_map(KeyValue::Bytes)),
        pair(any::<[u8; 16]>().prop_map(KeyValue::Uuid)),
        pair(any::<i64>().prop_map(KeyValue::Timestamp)),
        pair(any::<i32>().prop_map(KeyValue::Date)),
        pair(
            (-2i32..2, -2i32..2, any::<i64>()).prop_map(|(months, days, micros)| {
                KeyValue::Interval {
                    months,
                    days,
                    micros,
                }
            })
        ),
    ]
}

fn enc(v: &KeyValue, d: Direction) -> Vec<u8> {
    let mut out = Vec::new();
    encode(&mut out, v, d);
    out
}

fn same_value(a: &KeyValue, b: &KeyValue) -> bool {
    compare(a, b) == Ordering::Equal
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    // Goal: byte order of ascending encodings is SQL order; descending reverses it.
    #[test]
    fn order_is_preserved((a, b) in same_type_pair()) {
        let sql = compare(&a, &b);
        prop_assert_eq!(enc(&a, Direction::Asc).cmp(&enc(&b, Direction::Asc)), sql, "{:?} vs {:?}", a, b);
        prop_assert_eq!(enc(&a, Direction::Desc).cmp(&enc(&b, Direction::Desc)), sql.reverse(), "{:?} vs {:?}", a, b);
    }

    // Goal: every value decodes back to an equal value, consuming exactly its encoding.
    #[test]
    fn values_round_trip((a, _) in same_type_pair(), tail in any_bytes()) {
        for d in [Direction::Asc, Direction::Desc] {
            let mut bytes = enc(&a, d);
            bytes.extend_from_slice(&tail);
            let (back, rest) = decode(&bytes, d).expect("decodes");
            prop_assert!(same_value(&back, &a), "{:?} came back as {:?}", a, back);
            prop_assert_eq!(rest, &tail[..]);
        }
    }

    // Goal: a composite key (two columns, mixed directions) orders by the first column, then
    // the second, because each encoding is self-delimiting.
    #[test]
    fn composite_keys_order_lexicographically((a1, a2) in same_type_pair(), (b1, b2) in same_type_pair()) {
        // Column 1 gets a1/a2 (one type), column 2 gets b1/b2 (another), DESC.
        let key = |x: &KeyValue, y: &KeyValue| {
            let mut k = enc(x, Direction::Asc);
            encode(&mut k, y, Direction::Desc);
            k
        };
        let sql = compare(&a1, &a2).then(compare(&b1, &b2).reverse());
        prop_assert_eq!(key(&a1, &b1).cmp(&key(&a2, &b2)), sql);
    }
}

// Goal: fixed decimal examples where scale and trailing zeros differ but values are equal,
// or differ only far down the digits.
#[test]
fn decimal_examples() {
    let d = |s: &str| KeyValue::Decimal(s.parse().expect("decimal"));
    let order = [
        "-100", "-10.5", "-10.25", "-1", "-0.001", "0", "0.001", "0.01", "1", "1.5", "10", "10.25",
        "10.5", "100",
    ];
    for w in order.windows(2) {
        assert!(
            enc(&d(w[0]), Direction::Asc) < enc(&d(w[1]), Direction::Asc),
            "{} < {}",
            w[0],
            w[1]
        );
    }
    assert_eq!(
        enc(&d("1.50"), Direction::Asc),
        enc(&d("1.5"), Direction::Asc)
    );
    assert_eq!(
        enc(&d("-0.00"), Direction::Asc),
        enc(&d("0"), Direction::Asc)
    );
}
