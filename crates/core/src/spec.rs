//! A declared spec held once, as compact JSON text (references as `$ref` markers), with its
//! digest (sensitive paths left out) and references found in one streaming pass when it is
//! declared. The engine reads
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
