//! The durable workflow engine: cases, approval gates, the outbox of
//! approved external writes, and the kill switches. Every step and gate is a
//! row; every human decision is audited in the same transaction.

pub mod cases;
pub mod gates;
pub mod kill;
pub mod metrics;
pub mod outbox;
pub mod state;
pub mod steps;

use serde_json::Value;

pub use crate::canonical::{canonical_json, hash_json};

/// Differences between two JSON values as `{pointer, before, after}` rows
/// (RFC 6901 pointers); what an edit-then-approve keeps.
pub fn json_diff(before: &Value, after: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    diff_at("", before, after, &mut out);
    out
}

fn escape(k: &str) -> String {
    k.replace('~', "~0").replace('/', "~1")
}

fn diff_at(path: &str, a: &Value, b: &Value, out: &mut Vec<Value>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let p = format!("{path}/{}", escape(k));
                match (x.get(k), y.get(k)) {
                    (Some(va), Some(vb)) => diff_at(&p, va, vb, out),
                    (va, vb) => out.push(serde_json::json!({"pointer": p, "before": va, "after": vb})),
                }
            }
        }
        _ if a != b => out.push(serde_json::json!({"pointer": path, "before": a, "after": b})),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn canonical_form_sorts_keys() {
        let a = json!({"b": 1, "a": {"y": [1, {"k": "v", "j": null}], "x": "é\"q"}});
        assert_eq!(
            canonical_json(&a),
            r#"{"a":{"x":"é\"q","y":[1,{"j":null,"k":"v"}]},"b":1}"#
        );
        let b: Value =
            serde_json::from_str(r#"{ "a": {"y": [1, {"j": null, "k": "v"}], "x": "é\"q"}, "b": 1 }"#)
                .unwrap();
        assert_eq!(hash_json(&a), hash_json(&b));
        assert_ne!(hash_json(&a), hash_json(&json!({"b": 2})));
    }

    #[test]
    fn diffs_name_what_changed() {
        let d = json_diff(
            &json!({"summary": "a", "fields": {"p": 1, "q": 2}}),
            &json!({"summary": "b", "fields": {"p": 1}, "new": true}),
        );
        assert_eq!(
            d,
            vec![
                json!({"pointer": "/fields/q", "before": 2, "after": null}),
                json!({"pointer": "/new", "before": null, "after": true}),
                json!({"pointer": "/summary", "before": "a", "after": "b"}),
            ]
        );
        assert!(json_diff(&json!({"a": 1}), &json!({"a": 1})).is_empty());
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i32>().prop_map(Value::from),
            ".{0,8}".prop_map(Value::from)
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                proptest::collection::btree_map(".{0,6}", inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// The canonical text parses back to the same value, and a value
        /// differs from another exactly when their hashes do.
        #[test]
        fn canonical_round_trips(v in arb_json(), w in arb_json()) {
            let back: Value = serde_json::from_str(&canonical_json(&v)).unwrap();
            prop_assert_eq!(&back, &v);
            prop_assert_eq!(hash_json(&v) == hash_json(&w), v == w);
            prop_assert_eq!(json_diff(&v, &w).is_empty(), v == w);
        }
    }
}
