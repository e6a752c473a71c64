//! A declared spec held once, as compact JSON text (references as `$ref` markers), with its
//! digest (sensitive paths left out) and references found while it is serialised, in one
//! pass (the `writer` module), when it is declared. The engine reads
//! the text as a stream when diffing ([`crate::diff::diff_json`]) and materialises a
//! [`Value`] only where one must exist (a changing resource's desired value, provider
//! validation), so a large stack costs a few hundred bytes per resource, not kilobytes.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

use crate::value::{REF_KEY, RawRef};

mod writer;

/// A serialised spec: compact JSON text plus the digest of its value with the kind's
/// sensitive paths left out.
#[derive(Clone, PartialEq, Eq)]
pub struct Spec {
    json: Box<str>,
    digest: [u8; 8],
}

impl Spec {
    /// Serialises `spec` and returns it with every reference inside and the JSON path where
    /// it sits. `sensitive` are the kind's sensitive paths (`Schema::sensitive`), left out of
    /// the digest.
    pub fn new<T: Serialize + ?Sized>(
        spec: &T,
        sensitive: &[&str],
    ) -> (Spec, Vec<(String, RawRef)>) {
        with_buffers(|b| {
            write(spec, sensitive, b).unwrap_or_else(|| serialise_and_scan(spec, sensitive, b))
        })
    }

    /// Takes JSON text that is already serialised (e.g. from `serde_json::to_string`).
    pub fn from_json(json: String, sensitive: &[&str]) -> (Spec, Vec<(String, RawRef)>) {
        let (digest, refs) = with_buffers(|b| scan(&json, sensitive, &mut b.scan));
        let spec = Spec {
            json: json.into_boxed_str(),
            digest,
        };
        (spec, refs)
    }

    /// The compact JSON text.
    pub fn json(&self) -> &str {
        &self.json
    }

    /// The spec as a JSON value (a fresh copy; references still as markers).
    pub fn to_value(&self) -> Value {
        serde_json::from_str(&self.json).expect("serialised specs are valid JSON")
    }

    /// The digest of the spec, equal to [`crate::plan::spec_digest`] of its value and the
    /// sensitive paths it was made with (computed once, when it was declared).
    pub fn digest(&self) -> String {
        hex::encode(self.digest)
    }
}

/// Buffers one thread reuses for every spec it declares (a stack of 100,000 resources
/// would otherwise allocate and grow them 100,000 times).
#[derive(Default)]
struct Buffers {
    text: Vec<u8>,
    scan: ScanBuffers,
    /// The writer's stacks of object keys and entries.
    keys: Vec<u8>,
    entries: Vec<writer::Entry>,
}

/// Serialises `spec` with serde_json, then scans the text for its digest and references:
/// what [`write`] gives, for what the writer leaves to serde_json.
fn serialise_and_scan<T: Serialize + ?Sized>(
    spec: &T,
    sensitive: &[&str],
    b: &mut Buffers,
) -> (Spec, Vec<(String, RawRef)>) {
    b.text.clear();
    serde_json::to_writer(&mut b.text, spec).expect("resource specs serialise to JSON");
    let text = std::str::from_utf8(&b.text).expect("serde_json writes UTF-8");
    let (digest, refs) = scan(text, sensitive, &mut b.scan);
    (
        Spec {
            json: text.into(),
            digest,
        },
        refs,
    )
}

/// Writes `spec` as JSON text while feeding its digest and collecting its references, in
/// one pass ([`writer`]); `None` where the writer leaves it to serialise-and-scan.
fn write<T: Serialize + ?Sized>(
    spec: &T,
    sensitive: &[&str],
    b: &mut Buffers,
) -> Option<(Spec, Vec<(String, RawRef)>)> {
    b.text.clear();
    b.keys.clear();
    b.entries.clear();
    let s = &mut b.scan;
    s.feed.clear();
    s.scratch.clear();
    s.path.clear();
    let mut scan = Scan {
        feed: std::mem::take(&mut s.feed),
        scratch: std::mem::take(&mut s.scratch),
        path: std::mem::take(&mut s.path),
        refs: Vec::new(),
        sensitive,
        muted: false,
    };
    let written = spec.serialize(&mut writer::Writer {
        text: &mut b.text,
        scan: &mut scan,
        keys: &mut b.keys,
        entries: &mut b.entries,
    });
    let digest = written.is_ok().then(|| Sha256::digest(&scan.feed));
    s.feed = scan.feed;
    s.scratch = scan.scratch;
    s.path = scan.path;
    let digest = digest?;
    let text = std::str::from_utf8(&b.text).expect("the writer writes UTF-8");
    Some((
        Spec {
            json: text.into(),
            digest: digest[..8].try_into().expect("8 bytes"),
        },
        scan.refs,
    ))
}

/// The scan's working buffers: the digest feed, the scratch space for sorting object keys,
/// the current path.
#[derive(Default)]
struct ScanBuffers {
    feed: Vec<u8>,
    scratch: Vec<u8>,
    path: String,
}

/// Runs `f` with this thread's buffers (fresh ones if they are in use already).
fn with_buffers<R>(f: impl FnOnce(&mut Buffers) -> R) -> R {
    thread_local! {
        static BUFFERS: std::cell::RefCell<Buffers> = std::cell::RefCell::default();
    }
    BUFFERS.with(|cell| match cell.try_borrow_mut() {
        Ok(mut b) => f(&mut b),
        Err(_) => f(&mut Buffers::default()),
    })
}

/// Scans `json` once: its digest (sensitive paths left out) and its references.
fn scan(
    json: &str,
    sensitive: &[&str],
    bufs: &mut ScanBuffers,
) -> ([u8; 8], Vec<(String, RawRef)>) {
    bufs.feed.clear();
    bufs.scratch.clear();
    bufs.path.clear();
    let mut scan = Scan {
        feed: std::mem::take(&mut bufs.feed),
        scratch: std::mem::take(&mut bufs.scratch),
        path: std::mem::take(&mut bufs.path),
        refs: Vec::new(),
        sensitive,
        muted: false,
    };
    let mut de = serde_json::Deserializer::from_str(json);
    ScanSeed(&mut scan)
        .deserialize(&mut de)
        .expect("serialised specs are valid JSON");
    let digest = Sha256::digest(&scan.feed);
    bufs.feed = scan.feed;
    bufs.scratch = scan.scratch;
    bufs.path = scan.path;
    (digest[..8].try_into().expect("8 bytes"), scan.refs)
}

impl fmt::Debug for Spec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Specs may hold secrets: show only the digest.
        write!(f, "Spec({})", self.digest())
    }
}

/// The state of one scan: the digest feed (the byte stream [`crate::plan::digest`] hashes,
/// object keys sorted, sensitive values as [`crate::plan::redact`] leaves them), the current
/// path and the references found.
struct Scan<'s> {
    feed: Vec<u8>,
    scratch: Vec<u8>,
    path: String,
    refs: Vec<(String, RawRef)>,
    sensitive: &'s [&'s str],
    /// Inside a redacted value: nothing is fed.
    muted: bool,
}

impl Scan<'_> {
    /// Called as a non-null value at the current path begins. At a sensitive path (below
    /// the root, outside a value already redacted) the value is fed as the string
    /// `(sensitive)` and what it holds is not fed at all, as [`crate::plan::redact`] does;
    /// returns whether this value began such a stretch (the caller ends it).
    fn redacts_here(&mut self) -> bool {
        if self.muted
            || self.path.is_empty()
            || !self
                .sensitive
                .iter()
                .any(|p| crate::diff::path_matches(&self.path, p))
        {
            return false;
        }
        feed_str(&mut self.feed, "(sensitive)");
        self.muted = true;
        true
    }

    /// Feeds a scalar, unless it is redacted or inside a redacted value.
    fn scalar(&mut self, f: impl FnOnce(&mut Vec<u8>)) {
        if self.redacts_here() {
            self.muted = false;
        } else if !self.muted {
            f(&mut self.feed);
        }
    }
}

struct ScanSeed<'a, 's>(&'a mut Scan<'s>);

impl<'de> DeserializeSeed<'de> for ScanSeed<'_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

/// An object key, borrowed from the text when it has no escapes.
pub(crate) struct Key<'de>(pub(crate) std::borrow::Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(std::borrow::Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(std::borrow::Cow::Owned(v.to_string())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key(std::borrow::Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

fn feed_number(out: &mut Vec<u8>, n: serde_json::Number) {
    crate::plan::feed_bytes(out, &Value::Number(n));
}

fn feed_str(out: &mut Vec<u8>, s: &str) {
    out.push(b's');
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

impl<'de> Visitor<'de> for ScanSeed<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        // A null is never redacted.
        if !self.0.muted {
            self.0.feed.push(b'n');
        }
        Ok(())
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.0.scalar(|f| f.push(if v { b't' } else { b'f' }));
        Ok(())
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.0.scalar(|f| feed_number(f, v.into()));
        Ok(())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.0.scalar(|f| feed_number(f, v.into()));
        Ok(())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        match serde_json::Number::from_f64(v) {
            Some(n) => self.0.scalar(|f| feed_number(f, n)),
            // Serialised as null, so never redacted either.
            None if !self.0.muted => self.0.feed.push(b'n'),
            None => {}
        }
        Ok(())
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.0.scalar(|f| feed_str(f, v));
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let scan = self.0;
        let redacted = scan.redacts_here();
        let quiet = scan.muted;
        if !quiet {
            scan.feed.push(b'[');
        }
        let mut i = 0usize;
        loop {
            let len = scan.path.len();
            {
                use std::fmt::Write;
                let _ = write!(scan.path, "[{i}]");
            }
            let more = seq.next_element_seed(ScanSeed(scan))?.is_some();
            scan.path.truncate(len);
            if !more {
                break;
            }
            i += 1;
        }
        if !quiet {
            scan.feed.push(b']');
        }
        if redacted {
            scan.muted = false;
        }
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let scan = self.0;
        let redacted = scan.redacts_here();
        let quiet = scan.muted;
        // Children are scanned into the shared feed, then moved out in key order.
        let start = scan.feed.len();
        let mut entries: Vec<(Key<'de>, usize, usize)> = Vec::new();
        let refs_before = scan.refs.len();
        let mut marker: Option<&'de RawValue> = None;
        while let Some(key) = map.next_key::<Key<'de>>()? {
            let len = scan.path.len();
            if !scan.path.is_empty() {
                scan.path.push('.');
            }
            scan.path.push_str(&key.0);
            let from = scan.feed.len();
            if entries.is_empty() && key.0 == REF_KEY {
                // Possibly a reference marker: keep its text to read the reference from.
                let raw: &'de RawValue = map.next_value()?;
                let mut de = serde_json::Deserializer::from_str(raw.get());
                ScanSeed(scan)
                    .deserialize(&mut de)
                    .map_err(de::Error::custom)?;
                marker = Some(raw);
            } else {
                map.next_value_seed(ScanSeed(scan))?;
            }
            scan.path.truncate(len);
            entries.push((key, from, scan.feed.len()));
        }
        if let (Some(raw), 1) = (marker, entries.len())
            && let Ok(r) = serde_json::from_str::<RawRef>(raw.get())
        {
            // A marker: the reference itself, not anything inside it.
            scan.refs.truncate(refs_before);
            scan.refs.push((scan.path.clone(), r));
        }
        if quiet {
            // Redacted: the children fed nothing.
            if redacted {
                scan.muted = false;
            }
            return Ok(());
        }
        entries.sort_unstable_by(|a, b| a.0.0.cmp(&b.0.0));
        scan.scratch.clear();
        scan.scratch.extend_from_slice(&scan.feed[start..]);
        scan.feed.truncate(start);
        scan.feed.push(b'{');
        for (k, from, to) in &entries {
            scan.feed
                .extend_from_slice(&(k.0.len() as u64).to_le_bytes());
            scan.feed.extend_from_slice(k.0.as_bytes());
            scan.feed
                .extend_from_slice(&scan.scratch[from - start..to - start]);
        }
        scan.feed.push(b'}');
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A declared spec and its references.
    type Declared = (Spec, Vec<(String, RawRef)>);

    /// Both ways of declaring a spec, and whether the one-pass writer took it.
    fn both_ways<T: Serialize + ?Sized>(
        spec: &T,
        sensitive: &[&str],
    ) -> (Option<Declared>, Declared) {
        let mut b = Buffers::default();
        let written = write(spec, sensitive, &mut b);
        let scanned = serialise_and_scan(spec, sensitive, &mut Buffers::default());
        (written, scanned)
    }

    /// The one-pass writer gives the text, digest and references serialise-and-scan gives.
    fn assert_written_as_scanned<T: Serialize + ?Sized>(spec: &T, sensitive: &[&str]) {
        let (written, scanned) = both_ways(spec, sensitive);
        let written = written.expect("the writer takes it");
        assert_eq!(written.0.json(), scanned.0.json(), "text");
        assert_eq!(
            written.0.digest(),
            scanned.0.digest(),
            "digest of {}",
            scanned.0.json()
        );
        assert_eq!(written.1, scanned.1, "references in {}", scanned.0.json());
    }

    fn json_value() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let marker = |i: u8| {
            RawRef {
                address: crate::value::Address::new("k", &format!("n{i}")),
                attr: "ip".into(),
            }
            .to_marker()
        };
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            Just(json!(2.0)),
            Just(json!(0.1)),
            proptest::sample::select(vec!["a", "", "x\"y\n\u{1}", "é\\/", "(sensitive)"])
                .prop_map(Value::from),
            (0u8..3).prop_map(marker),
            Just(json!({"$ref": "not a reference"})),
        ];
        leaf.prop_recursive(4, 48, 5, |inner| {
            let keys = vec![
                "a", "b", "secret", "list", "$ref", "k\"q", "é", "", "address",
            ];
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::vec((proptest::sample::select(keys), inner), 0..5).prop_map(
                    |kv| {
                        Value::Object(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
                    }
                ),
            ]
        })
    }

    proptest::proptest! {
        #[test]
        fn writing_in_one_pass_gives_what_serialising_and_scanning_gives(
            v in json_value(),
            sensitive in proptest::sample::select(vec![
                &[][..], &["secret"][..], &["a", "list[*].b"][..], &["b.secret", "$ref"][..],
                &["a[*]", "address"][..],
            ]),
        ) {
            assert_written_as_scanned(&v, sensitive);
        }
    }

    #[test]
    fn typed_specs_are_written_in_one_pass_as_serde_json_writes_them() {
        use std::collections::BTreeMap;
        #[derive(Serialize)]
        enum E {
            Unit,
            New(u8),
            Tuple(i32, Option<String>),
            Struct { a: f32, secret: char },
        }
        #[derive(Serialize)]
        struct Unit;
        #[derive(Serialize)]
        struct Pair(i16, u32);
        #[derive(Serialize)]
        struct Spec1 {
            name: String,
            #[serde(skip_serializing_if = "Option::is_none")]
            skipped: Option<u8>,
            none: Option<u8>,
            e: Vec<E>,
            by_port: BTreeMap<u16, String>,
            by_neg: BTreeMap<i64, bool>,
            by_char: BTreeMap<char, E>,
            unit: Unit,
            pair: Pair,
            tuple: (u8, f64, E),
            floats: [f64; 4],
            small: f32,
            input: crate::value::Field<String>,
            secret: Option<E>,
        }
        let r = RawRef {
            address: crate::value::Address::new("k", "x"),
            attr: "id".into(),
        };
        let input: crate::value::Field<String> = serde_json::from_value(r.to_marker()).unwrap();
        let spec = Spec1 {
            name: "a\"b".into(),
            skipped: None,
            none: None,
            e: vec![
                E::Unit,
                E::New(7),
                E::Tuple(-3, Some("x".into())),
                E::Struct {
                    a: 0.1,
                    secret: 'é',
                },
            ],
            by_port: [(443, "https".into()), (80, "http".into())].into(),
            by_neg: [(-5, true), (5, false)].into(),
            by_char: [('z', E::Unit), ('a', E::New(1))].into(),
            unit: Unit,
            pair: Pair(-1, 1),
            tuple: (1, 1e300, E::Tuple(0, None)),
            floats: [f64::NAN, f64::INFINITY, -0.0, 123456789.125],
            small: 3.4028235e38,
            input,
            secret: Some(E::Struct {
                a: 1.5,
                secret: 's',
            }),
        };
        for sensitive in [
            &[][..],
            &["secret"],
            &["e[*].Struct.secret", "by_char.a", "tuple"],
            &["by_port.443", "floats[*]"],
        ] {
            assert_written_as_scanned(&spec, sensitive);
        }
        let (written, _) = both_ways(&spec, &[]);
        assert_eq!(written.unwrap().1.len(), 1, "the reference is found");
    }

    #[test]
    fn what_the_writer_leaves_to_serde_json_is_declared_all_the_same() {
        use std::collections::BTreeMap;
        let wide: BTreeMap<&str, u128> = [("big", u128::MAX)].into();
        let by_bool: BTreeMap<bool, u8> = [(true, 1)].into();
        let raw = serde_json::value::RawValue::from_string(r#"{"b":1,"a":[2]}"#.into()).unwrap();
        let bytes = serde_bytes_like(b"ab");
        let (w, s) = both_ways(&wide, &[]);
        assert!(w.is_none() && s.0.json() == r#"{"big":340282366920938463463374607431768211455}"#);
        let (w, _) = both_ways(&by_bool, &[]);
        assert!(w.is_none());
        let (w, s) = both_ways(&raw, &[]);
        assert!(w.is_none() && s.0.json() == r#"{"b":1,"a":[2]}"#);
        let (w, s) = both_ways(&bytes, &[]);
        assert!(w.is_none() && s.0.json() == "[97,98]");
        // Spec::new falls back to the same result.
        assert_eq!(
            Spec::new(&raw, &[]).0.digest(),
            s_digest(r#"{"b":1,"a":[2]}"#)
        );
    }

    /// Bytes as serde's `serialize_bytes` (what `serde_bytes` does).
    fn serde_bytes_like(b: &'static [u8]) -> impl Serialize {
        struct B(&'static [u8]);
        impl Serialize for B {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_bytes(self.0)
            }
        }
        B(b)
    }

    fn s_digest(text: &str) -> String {
        crate::plan::digest(&serde_json::from_str::<Value>(text).unwrap())
    }

    #[test]
    fn digest_and_references_match_the_value_walk() {
        let v = json!({
            "name": "a", "size": -3, "big": 18446744073709551615u64, "f": 1.5, "whole": 2.0,
            "inputs": [{"$ref": {"address": "k.x", "attr": "id"}}, "lit", null, true],
            "labels": {"z": "1", "a": {"b": [1, 2, {"$ref": {"address": "k.y", "attr": "ip"}}]}},
            "not_a_ref": {"$ref": {"address": "k.z", "attr": "id"}, "other": 1},
            "esc\"aped": "q\"uote"
        });
        let (spec, refs) = Spec::new(&v, &[]);
        assert_eq!(spec.digest(), crate::plan::digest(&v));
        assert_eq!(spec.to_value(), v);
        assert_eq!(refs, crate::value::collect_refs(&v));
        assert_eq!(refs.len(), 2);
    }

    #[test]
    fn digest_leaves_out_sensitive_values_as_the_plan_digest_does() {
        let v = json!({
            "name": "a", "secret": "hunter2", "nothing": null,
            "users": [{"name": "u", "password": "p1", "keys": ["k1", "k2"]},
                      {"name": "v", "password": null, "keys": []}],
            "auth": {"token": {"$ref": {"address": "k.x", "attr": "token"}}, "user": "me"},
            "cert": {"key": {"pem": "-----"}, "chain": [1, 2.5, true]},
            "list": [[1, 2], [3]]
        });
        let cases: &[&[&str]] = &[
            &[],
            &["secret"],
            &["nothing", "users[*].password"],
            &["users[*].keys", "auth"],
            &["cert.key", "list[*]"],
            &["users", "secret", "auth.token"],
            &["missing.path"],
        ];
        for sensitive in cases {
            let (spec, refs) = Spec::new(&v, sensitive);
            assert_eq!(
                spec.digest(),
                crate::plan::spec_digest(&v, sensitive),
                "sensitive {sensitive:?}"
            );
            assert_eq!(
                refs,
                crate::value::collect_refs(&v),
                "refs are found in secrets too"
            );
        }
        assert_ne!(
            Spec::new(&v, &["secret"]).0.digest(),
            Spec::new(&v, &[]).0.digest()
        );
        let other = json!({"name": "a", "secret": "other"});
        let same = json!({"name": "a", "secret": "hunter2"});
        assert_eq!(
            Spec::new(&other, &["secret"]).0.digest(),
            Spec::new(&same, &["secret"]).0.digest(),
            "a secret's value never reaches the digest"
        );
    }
}
