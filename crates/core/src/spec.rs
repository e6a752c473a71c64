//! A declared spec held once, as compact JSON text (references as `$ref` markers), with its
//! digest and references found in one streaming pass when it is declared. The engine reads
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

/// A serialised spec: compact JSON text plus the digest of its value.
#[derive(Clone, PartialEq, Eq)]
pub struct Spec {
    json: Box<str>,
    digest: [u8; 8],
}

impl Spec {
    /// Serialises `spec` and returns it with every reference inside and the JSON path where
    /// it sits.
    pub fn new<T: Serialize + ?Sized>(spec: &T) -> (Spec, Vec<(String, RawRef)>) {
        let json = serde_json::to_string(spec).expect("resource specs serialise to JSON");
        Spec::from_json(json)
    }

    /// Takes JSON text that is already serialised (e.g. from `serde_json::to_string`).
    pub fn from_json(json: String) -> (Spec, Vec<(String, RawRef)>) {
        let mut scan = Scan {
            feed: Vec::with_capacity(json.len() + 64),
            scratch: Vec::new(),
            path: String::new(),
            refs: Vec::new(),
        };
        let mut de = serde_json::Deserializer::from_str(&json);
        ScanSeed(&mut scan)
            .deserialize(&mut de)
            .expect("serialised specs are valid JSON");
        let digest = Sha256::digest(&scan.feed);
        let spec = Spec {
            json: json.into_boxed_str(),
            digest: digest[..8].try_into().expect("8 bytes"),
        };
        (spec, scan.refs)
    }

    /// The compact JSON text.
    pub fn json(&self) -> &str {
        &self.json
    }

    /// The spec as a JSON value (a fresh copy; references still as markers).
    pub fn to_value(&self) -> Value {
        serde_json::from_str(&self.json).expect("serialised specs are valid JSON")
    }

    /// The digest of the spec, equal to [`crate::plan::digest`] of its value.
    pub fn digest(&self) -> String {
        hex::encode(self.digest)
    }
}

impl fmt::Debug for Spec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Specs may hold secrets: show only the digest.
        write!(f, "Spec({})", self.digest())
    }
}

/// The state of one scan: the digest feed (the byte stream [`crate::plan::digest`] hashes,
/// object keys sorted), the current path and the references found.
struct Scan {
    feed: Vec<u8>,
    scratch: Vec<u8>,
    path: String,
    refs: Vec<(String, RawRef)>,
}

struct ScanSeed<'a>(&'a mut Scan);

impl<'de> DeserializeSeed<'de> for ScanSeed<'_> {
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

impl<'de> Visitor<'de> for ScanSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.0.feed.push(b'n');
        Ok(())
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.0.feed.push(if v { b't' } else { b'f' });
        Ok(())
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        feed_number(&mut self.0.feed, v.into());
        Ok(())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        feed_number(&mut self.0.feed, v.into());
        Ok(())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        match serde_json::Number::from_f64(v) {
            Some(n) => feed_number(&mut self.0.feed, n),
            None => self.0.feed.push(b'n'),
        }
        Ok(())
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        feed_str(&mut self.0.feed, v);
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let scan = self.0;
        scan.feed.push(b'[');
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
        scan.feed.push(b']');
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let scan = self.0;
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
        let (spec, refs) = Spec::new(&v);
        assert_eq!(spec.digest(), crate::plan::digest(&v));
        assert_eq!(spec.to_value(), v);
        assert_eq!(refs, crate::value::collect_refs(&v));
        assert_eq!(refs.len(), 2);
    }
}
