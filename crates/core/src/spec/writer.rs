//! Declaring a spec in one pass: a serde [`Serializer`] that writes the compact JSON text
//! exactly as `serde_json::to_writer` does and, as it goes, feeds the digest stream and
//! collects references, so the text is never parsed back. What it does not write itself
//! (128-bit integers, bytes, non-string map keys other than integers, serde_json's private
//! tokens, a `Serialize` impl that fails) it refuses with [`Unsupported`], and
//! [`super::Spec::new`] then takes the serialise-and-scan path, which gives the same result.

use std::fmt;

use serde::Serialize;
use serde::ser::{self, Impossible};

use super::{Scan, feed_str};
use crate::value::{REF_KEY, RawRef};

/// The writer met something only the serialise-and-scan path handles.
#[derive(Debug)]
pub(super) struct Unsupported;

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not written in one pass")
    }
}

impl std::error::Error for Unsupported {}

impl ser::Error for Unsupported {
    fn custom<T: fmt::Display>(_: T) -> Self {
        Unsupported
    }
}

/// One object's entry as the digest feed needs it: its key (a range of the key buffer)
/// and the range of the feed its value took.
#[derive(Clone, Copy)]
pub(super) struct Entry {
    key: (usize, usize),
    from: usize,
    to: usize,
}

/// The state of one spec being written: the text, the scan (digest feed, path, references,
/// redaction) and the stacks shared by nested objects (their keys and entries).
pub(super) struct Writer<'a, 's> {
    pub(super) text: &'a mut Vec<u8>,
    pub(super) scan: &'a mut Scan<'s>,
    pub(super) keys: &'a mut Vec<u8>,
    pub(super) entries: &'a mut Vec<Entry>,
}

impl Writer<'_, '_> {
    /// A null: never redacted, fed unless inside a redacted value.
    fn null(&mut self) {
        self.text.extend_from_slice(b"null");
        if !self.scan.muted {
            self.scan.feed.push(b'n');
        }
    }

    /// An integer, written and fed as `plan::feed` feeds the number parsed from the text.
    fn int(&mut self, negative: bool, abs: u64) {
        let mut buf = [0u8; 20];
        let digits = digits(abs, &mut buf);
        if negative {
            self.text.push(b'-');
        }
        self.text.extend_from_slice(digits);
        self.scan.scalar(|f| {
            f.push(b'#');
            if negative {
                f.push(b'-');
            }
            f.extend_from_slice(digits);
            f.push(b';');
        });
    }

    /// A float: written by serde_json and fed as the number parsed back from that text (the
    /// parser's rounding decides the digest, as it did when specs were scanned from text).
    fn float<F: Serialize>(&mut self, v: F) -> Result<(), Unsupported> {
        let from = self.text.len();
        serde_json::to_writer(&mut *self.text, &v).map_err(|_| Unsupported)?;
        match serde_json::from_slice(&self.text[from..]).map_err(|_| Unsupported)? {
            serde_json::Value::Number(n) => {
                self.scan
                    .scalar(|f| crate::plan::feed_bytes(f, &serde_json::Value::Number(n)));
            }
            // Not finite: written as null.
            _ if !self.scan.muted => self.scan.feed.push(b'n'),
            _ => {}
        }
        Ok(())
    }

    fn string(&mut self, v: &str) -> Result<(), Unsupported> {
        quoted(self.text, v)?;
        self.scan.scalar(|f| feed_str(f, v));
        Ok(())
    }

    fn begin_seq(&mut self) -> SeqFrame {
        let redacted = self.scan.redacts_here();
        let quiet = self.scan.muted;
        if !quiet {
            self.scan.feed.push(b'[');
        }
        self.text.push(b'[');
        SeqFrame {
            redacted,
            quiet,
            n: 0,
        }
    }

    fn seq_element<T: Serialize + ?Sized>(
        &mut self,
        f: &mut SeqFrame,
        v: &T,
    ) -> Result<(), Unsupported> {
        if f.n > 0 {
            self.text.push(b',');
        }
        let len = self.scan.path.len();
        {
            use std::fmt::Write;
            let _ = write!(self.scan.path, "[{}]", f.n);
        }
        v.serialize(&mut *self)?;
        self.scan.path.truncate(len);
        f.n += 1;
        Ok(())
    }

    fn end_seq(&mut self, f: SeqFrame) {
        self.text.push(b']');
        if !f.quiet {
            self.scan.feed.push(b']');
        }
        if f.redacted {
            self.scan.muted = false;
        }
    }

    fn begin_map(&mut self) -> MapFrame {
        let redacted = self.scan.redacts_here();
        self.text.push(b'{');
        MapFrame {
            redacted,
            quiet: self.scan.muted,
            feed_start: self.scan.feed.len(),
            entries_base: self.entries.len(),
            keys_base: self.keys.len(),
            refs_before: self.scan.refs.len(),
            marker: None,
            n: 0,
            key: (0, 0),
            path_len: 0,
            from: 0,
        }
    }

    /// Starts an entry whose key was just put at the end of the key buffer from `start`.
    fn map_key(&mut self, f: &mut MapFrame, start: usize) -> Result<(), Unsupported> {
        let keys = std::mem::take(self.keys);
        let key = std::str::from_utf8(&keys[start..]).expect("keys are captured from strings");
        let begun = self.begin_entry(f, key);
        *self.keys = keys;
        f.key = (start, self.keys.len());
        begun
    }

    /// Writes `key` and starts its entry (the caller keeps the key in the key buffer).
    fn begin_entry(&mut self, f: &mut MapFrame, key: &str) -> Result<(), Unsupported> {
        if f.n > 0 {
            self.text.push(b',');
        }
        quoted(self.text, key)?;
        self.text.push(b':');
        f.path_len = self.scan.path.len();
        if !self.scan.path.is_empty() {
            self.scan.path.push('.');
        }
        self.scan.path.push_str(key);
        if f.n == 0 && key == REF_KEY {
            // Possibly a reference marker: its text is read back if it is the only entry.
            f.marker = Some((self.text.len(), 0));
        }
        f.from = self.scan.feed.len();
        Ok(())
    }

    fn map_value<T: Serialize + ?Sized>(
        &mut self,
        f: &mut MapFrame,
        v: &T,
    ) -> Result<(), Unsupported> {
        v.serialize(&mut *self)?;
        if f.n == 0
            && let Some((_, to)) = f.marker.as_mut()
        {
            *to = self.text.len();
        }
        self.scan.path.truncate(f.path_len);
        self.entries.push(Entry {
            key: f.key,
            from: f.from,
            to: self.scan.feed.len(),
        });
        f.n += 1;
        Ok(())
    }

    fn static_key(&mut self, f: &mut MapFrame, key: &str) -> Result<(), Unsupported> {
        let start = self.keys.len();
        self.keys.extend_from_slice(key.as_bytes());
        f.key = (start, self.keys.len());
        self.begin_entry(f, key)
    }

    /// Ends an object: a lone `$ref` entry that reads as a reference is one (and the
    /// references inside it are not); the entries' feed is put in key order.
    fn end_map(&mut self, f: MapFrame) {
        self.text.push(b'}');
        if let (Some((from, to)), 1) = (f.marker, f.n)
            && let Ok(r) = serde_json::from_slice::<RawRef>(&self.text[from..to])
        {
            self.scan.refs.truncate(f.refs_before);
            self.scan.refs.push((self.scan.path.clone(), r));
        }
        let entries = &mut self.entries[f.entries_base..];
        if f.quiet {
            // Redacted: the children fed nothing.
            if f.redacted {
                self.scan.muted = false;
            }
        } else {
            let keys = &self.keys[..];
            entries.sort_unstable_by(|a, b| keys[a.key.0..a.key.1].cmp(&keys[b.key.0..b.key.1]));
            let scan = &mut *self.scan;
            let start = f.feed_start;
            scan.scratch.clear();
            scan.scratch.extend_from_slice(&scan.feed[start..]);
            scan.feed.truncate(start);
            scan.feed.push(b'{');
            for e in entries.iter() {
                let key = &keys[e.key.0..e.key.1];
                scan.feed
                    .extend_from_slice(&(key.len() as u64).to_le_bytes());
                scan.feed.extend_from_slice(key);
                scan.feed
                    .extend_from_slice(&scan.scratch[e.from - start..e.to - start]);
            }
            scan.feed.push(b'}');
        }
        self.entries.truncate(f.entries_base);
        self.keys.truncate(f.keys_base);
    }
}

/// Writes `v` as a JSON string as serde_json does: only `"`, `\\` and control characters
/// are escaped, so text without them is copied as it is.
fn quoted(text: &mut Vec<u8>, v: &str) -> Result<(), Unsupported> {
    if v.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\') {
        return serde_json::to_writer(text, v).map_err(|_| Unsupported);
    }
    text.reserve(v.len() + 2);
    text.push(b'"');
    text.extend_from_slice(v.as_bytes());
    text.push(b'"');
    Ok(())
}

/// Decimal digits of `n`, without allocating.
fn digits(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &buf[i..]
}

/// An array being written.
pub(super) struct SeqFrame {
    redacted: bool,
    quiet: bool,
    n: usize,
}

/// An object being written.
pub(super) struct MapFrame {
    /// This object began a redacted stretch (it ends it).
    redacted: bool,
    /// Inside a redacted value: nothing is fed.
    quiet: bool,
    feed_start: usize,
    entries_base: usize,
    keys_base: usize,
    refs_before: usize,
    /// The text range of a first entry keyed `$ref`.
    marker: Option<(usize, usize)>,
    n: usize,
    /// The current entry: its key, the path length before it, where its feed begins.
    key: (usize, usize),
    path_len: usize,
    from: usize,
}

/// An array, an object, or a variant wrapping one (`{"Variant":[...]}`, `{"Variant":{...}}`).
pub(super) struct Compound<'w, 'a, 's> {
    w: &'w mut Writer<'a, 's>,
    variant: Option<MapFrame>,
    seq: Option<SeqFrame>,
    map: Option<MapFrame>,
}

impl<'w, 'a, 's> Compound<'w, 'a, 's> {
    /// Opens the `{"variant":` wrapper.
    fn variant(w: &'w mut Writer<'a, 's>, variant: &str) -> Result<Self, Unsupported> {
        let mut outer = w.begin_map();
        w.static_key(&mut outer, variant)?;
        Ok(Compound {
            w,
            variant: Some(outer),
            seq: None,
            map: None,
        })
    }

    fn end(self) -> Result<(), Unsupported> {
        let Compound {
            w,
            variant,
            seq,
            map,
        } = self;
        if let Some(s) = seq {
            w.end_seq(s);
        }
        if let Some(m) = map {
            w.end_map(m);
        }
        if let Some(mut outer) = variant {
            // The wrapper's one entry is the array or object just ended.
            w.scan.path.truncate(outer.path_len);
            w.entries.push(Entry {
                key: outer.key,
                from: outer.from,
                to: w.scan.feed.len(),
            });
            outer.n += 1;
            w.end_map(outer);
        }
        Ok(())
    }

    fn element<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), Unsupported> {
        let f = self.seq.as_mut().expect("an array");
        self.w.seq_element(f, v)
    }

    fn field<T: Serialize + ?Sized>(&mut self, key: &str, v: &T) -> Result<(), Unsupported> {
        let f = self.map.as_mut().expect("an object");
        self.w.static_key(f, key)?;
        self.w.map_value(f, v)
    }
}

impl<'w, 'a, 's> ser::Serializer for &'w mut Writer<'a, 's> {
    type Ok = ();
    type Error = Unsupported;
    type SerializeSeq = Compound<'w, 'a, 's>;
    type SerializeTuple = Compound<'w, 'a, 's>;
    type SerializeTupleStruct = Compound<'w, 'a, 's>;
    type SerializeTupleVariant = Compound<'w, 'a, 's>;
    type SerializeMap = Compound<'w, 'a, 's>;
    type SerializeStruct = Compound<'w, 'a, 's>;
    type SerializeStructVariant = Compound<'w, 'a, 's>;

    fn serialize_bool(self, v: bool) -> Result<(), Unsupported> {
        self.text
            .extend_from_slice(if v { b"true" } else { b"false" });
        self.scan.scalar(|f| f.push(if v { b't' } else { b'f' }));
        Ok(())
    }

    fn serialize_i8(self, v: i8) -> Result<(), Unsupported> {
        self.serialize_i64(v.into())
    }

    fn serialize_i16(self, v: i16) -> Result<(), Unsupported> {
        self.serialize_i64(v.into())
    }

    fn serialize_i32(self, v: i32) -> Result<(), Unsupported> {
        self.serialize_i64(v.into())
    }

    fn serialize_i64(self, v: i64) -> Result<(), Unsupported> {
        self.int(v < 0, v.unsigned_abs());
        Ok(())
    }

    fn serialize_i128(self, _: i128) -> Result<(), Unsupported> {
        Err(Unsupported)
    }

    fn serialize_u8(self, v: u8) -> Result<(), Unsupported> {
        self.serialize_u64(v.into())
    }

    fn serialize_u16(self, v: u16) -> Result<(), Unsupported> {
        self.serialize_u64(v.into())
    }

    fn serialize_u32(self, v: u32) -> Result<(), Unsupported> {
        self.serialize_u64(v.into())
    }

    fn serialize_u64(self, v: u64) -> Result<(), Unsupported> {
        self.int(false, v);
        Ok(())
    }

    fn serialize_u128(self, _: u128) -> Result<(), Unsupported> {
        Err(Unsupported)
    }

    fn serialize_f32(self, v: f32) -> Result<(), Unsupported> {
        self.float(v)
    }

    fn serialize_f64(self, v: f64) -> Result<(), Unsupported> {
        self.float(v)
    }

    fn serialize_char(self, v: char) -> Result<(), Unsupported> {
        self.string(v.encode_utf8(&mut [0; 4]))
    }

    fn serialize_str(self, v: &str) -> Result<(), Unsupported> {
        self.string(v)
    }

    fn serialize_bytes(self, _: &[u8]) -> Result<(), Unsupported> {
        Err(Unsupported)
    }

    fn serialize_none(self) -> Result<(), Unsupported> {
        self.null();
        Ok(())
    }

    fn serialize_some<T: Serialize + ?Sized>(self, v: &T) -> Result<(), Unsupported> {
        v.serialize(self)
    }

    fn serialize_unit(self) -> Result<(), Unsupported> {
        self.null();
        Ok(())
    }

    fn serialize_unit_struct(self, _: &'static str) -> Result<(), Unsupported> {
        self.null();
        Ok(())
    }

    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<(), Unsupported> {
        self.string(variant)
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        v: &T,
    ) -> Result<(), Unsupported> {
        private(name)?;
        v.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        v: &T,
    ) -> Result<(), Unsupported> {
        let mut f = self.begin_map();
        self.static_key(&mut f, variant)?;
        self.map_value(&mut f, v)?;
        self.end_map(f);
        Ok(())
    }

    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, Unsupported> {
        let s = self.begin_seq();
        Ok(Compound {
            w: self,
            variant: None,
            seq: Some(s),
            map: None,
        })
    }

    fn serialize_tuple(self, len: usize) -> Result<Self::SerializeTuple, Unsupported> {
        self.serialize_seq(Some(len))
    }

    fn serialize_tuple_struct(
        self,
        name: &'static str,
        len: usize,
    ) -> Result<Self::SerializeTupleStruct, Unsupported> {
        private(name)?;
        self.serialize_seq(Some(len))
    }

    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, Unsupported> {
        let mut c = Compound::variant(self, variant)?;
        c.seq = Some(c.w.begin_seq());
        Ok(c)
    }

    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, Unsupported> {
        let m = self.begin_map();
        Ok(Compound {
            w: self,
            variant: None,
            seq: None,
            map: Some(m),
        })
    }

    fn serialize_struct(
        self,
        name: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStruct, Unsupported> {
        private(name)?;
        self.serialize_map(Some(len))
    }

    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, Unsupported> {
        let mut c = Compound::variant(self, variant)?;
        c.map = Some(c.w.begin_map());
        Ok(c)
    }
}

/// serde_json's own tokens (raw values, arbitrary-precision numbers) are written by
/// serde_json only.
fn private(name: &str) -> Result<(), Unsupported> {
    if name.starts_with("$serde_json::private") {
        Err(Unsupported)
    } else {
        Ok(())
    }
}

impl ser::SerializeSeq for Compound<'_, '_, '_> {
    type Ok = ();
    type Error = Unsupported;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), Unsupported> {
        self.element(v)
    }
    fn end(self) -> Result<(), Unsupported> {
        Compound::end(self)
    }
}

impl ser::SerializeTuple for Compound<'_, '_, '_> {
    type Ok = ();
    type Error = Unsupported;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), Unsupported> {
        self.element(v)
    }
    fn end(self) -> Result<(), Unsupported> {
        Compound::end(self)
    }
}

impl ser::SerializeTupleStruct for Compound<'_, '_, '_> {
    type Ok = ();
    type Error = Unsupported;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), Unsupported> {
        self.element(v)
    }
    fn end(self) -> Result<(), Unsupported> {
        Compound::end(self)
    }
}

impl ser::SerializeTupleVariant for Compound<'_, '_, '_> {
    type Ok = ();
    type Error = Unsupported;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), Unsupported> {
        self.element(v)
    }
    fn end(self) -> Result<(), Unsupported> {
        Compound::end(self)
    }
}

impl ser::SerializeMap for Compound<'_, '_, '_> {
    type Ok = ();
    type Error = Unsupported;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Unsupported> {
        let f = self.map.as_mut().expect("an object");
        let start = self.w.keys.len();
        key.serialize(KeyWriter(&mut *self.w.keys))?;
        self.w.map_key(f, start)
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), Unsupported> {
        let f = self.map.as_mut().expect("an object");
        self.w.map_value(f, v)
    }
    fn end(self) -> Result<(), Unsupported> {
        Compound::end(self)
    }
}

impl ser::SerializeStruct for Compound<'_, '_, '_> {
    type Ok = ();
    type Error = Unsupported;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        v: &T,
    ) -> Result<(), Unsupported> {
        self.field(key, v)
    }
    fn end(self) -> Result<(), Unsupported> {
        Compound::end(self)
    }
}

impl ser::SerializeStructVariant for Compound<'_, '_, '_> {
    type Ok = ();
    type Error = Unsupported;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        v: &T,
    ) -> Result<(), Unsupported> {
        self.field(key, v)
    }
    fn end(self) -> Result<(), Unsupported> {
        Compound::end(self)
    }
}

/// Puts a map key, as the string serde_json writes for it, at the end of the key buffer:
/// strings, characters, integers, unit variants. Anything else is left to serde_json.
struct KeyWriter<'a>(&'a mut Vec<u8>);

impl KeyWriter<'_> {
    fn int(self, negative: bool, abs: u64) -> Result<(), Unsupported> {
        if negative {
            self.0.push(b'-');
        }
        self.0.extend_from_slice(digits(abs, &mut [0; 20]));
        Ok(())
    }
}

impl ser::Serializer for KeyWriter<'_> {
    type Ok = ();
    type Error = Unsupported;
    type SerializeSeq = Impossible<(), Unsupported>;
    type SerializeTuple = Impossible<(), Unsupported>;
    type SerializeTupleStruct = Impossible<(), Unsupported>;
    type SerializeTupleVariant = Impossible<(), Unsupported>;
    type SerializeMap = Impossible<(), Unsupported>;
    type SerializeStruct = Impossible<(), Unsupported>;
    type SerializeStructVariant = Impossible<(), Unsupported>;

    fn serialize_str(self, v: &str) -> Result<(), Unsupported> {
        self.0.extend_from_slice(v.as_bytes());
        Ok(())
    }
    fn serialize_char(self, v: char) -> Result<(), Unsupported> {
        self.serialize_str(v.encode_utf8(&mut [0; 4]))
    }
    fn serialize_i8(self, v: i8) -> Result<(), Unsupported> {
        self.serialize_i64(v.into())
    }
    fn serialize_i16(self, v: i16) -> Result<(), Unsupported> {
        self.serialize_i64(v.into())
    }
    fn serialize_i32(self, v: i32) -> Result<(), Unsupported> {
        self.serialize_i64(v.into())
    }
    fn serialize_i64(self, v: i64) -> Result<(), Unsupported> {
        self.int(v < 0, v.unsigned_abs())
    }
    fn serialize_u8(self, v: u8) -> Result<(), Unsupported> {
        self.serialize_u64(v.into())
    }
    fn serialize_u16(self, v: u16) -> Result<(), Unsupported> {
        self.serialize_u64(v.into())
    }
    fn serialize_u32(self, v: u32) -> Result<(), Unsupported> {
        self.serialize_u64(v.into())
    }
    fn serialize_u64(self, v: u64) -> Result<(), Unsupported> {
        self.int(false, v)
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<(), Unsupported> {
        self.serialize_str(variant)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        v: &T,
    ) -> Result<(), Unsupported> {
        private(name)?;
        v.serialize(self)
    }

    fn serialize_bool(self, _: bool) -> Result<(), Unsupported> {
        Err(Unsupported)
    }
    fn serialize_i128(self, _: i128) -> Result<(), Unsupported> {
        Err(Unsupported)
    }
    fn serialize_u128(self, _: u128) -> Result<(), Unsupported> {
        Err(Unsupported)
    }
    fn serialize_f32(self, _: f32) -> Result<(), Unsupported> {
        Err(Unsupported)
    }
    fn serialize_f64(self, _: f64) -> Result<(), Unsupported> {
        Err(Unsupported)
    }
    fn serialize_bytes(self, _: &[u8]) -> Result<(), Unsupported> {
        Err(Unsupported)
    }
    fn serialize_none(self) -> Result<(), Unsupported> {
        Err(Unsupported)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Result<(), Unsupported> {
        Err(Unsupported)
    }
    fn serialize_unit(self) -> Result<(), Unsupported> {
        Err(Unsupported)
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), Unsupported> {
        Err(Unsupported)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<(), Unsupported> {
        Err(Unsupported)
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, Unsupported> {
        Err(Unsupported)
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, Unsupported> {
        Err(Unsupported)
    }
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, Unsupported> {
        Err(Unsupported)
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, Unsupported> {
        Err(Unsupported)
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, Unsupported> {
        Err(Unsupported)
    }
    fn serialize_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStruct, Unsupported> {
        Err(Unsupported)
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, Unsupported> {
        Err(Unsupported)
    }
}
