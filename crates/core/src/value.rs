//! Typed field values: a field holds a known value or a typed reference to another
//! resource's attribute, which is unknown until that resource exists.
//!
//! A spec is serialised to JSON for diffing. A reference serialises as
//! `{"$ref": {"address": "kind.name", "attr": "path"}}`; the engine finds those markers to
//! derive graph edges and replaces them with real values once they are known.

use std::fmt;
use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::resource::{Handle, NodeRef};

/// The JSON key that marks a reference inside a serialised spec.
pub const REF_KEY: &str = "$ref";

/// The address of a node in a stack: `kind.name`, e.g. `hetzner_server.k3s-mgr`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Address(pub String);

impl Address {
    /// Builds the address of a resource of `kind` named `name`.
    pub fn new(kind: &str, name: &str) -> Self {
        Address(format!("{kind}.{name}"))
    }

    /// The kind part of the address (everything before the first dot).
    pub fn kind(&self) -> &str {
        self.0.split_once('.').map_or(&self.0, |(k, _)| k)
    }

    /// The name part of the address (everything after the first dot).
    pub fn name(&self) -> &str {
        self.0.split_once('.').map_or("", |(_, n)| n)
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An untyped reference: which node, which attribute path of its observed value.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RawRef {
    /// The referenced resource.
    pub address: Address,
    /// A dotted path into the referenced resource's observed value, e.g. `ipv4` or `public_net.ipv4`.
    pub attr: String,
}

impl RawRef {
    /// Reads a reference marker out of a JSON value, if the value is one.
    pub fn from_marker(v: &Value) -> Option<RawRef> {
        let obj = v.as_object()?;
        if obj.len() != 1 {
            return None;
        }
        RawRef::deserialize(obj.get(REF_KEY)?).ok()
    }

    /// The JSON marker that stands for this reference inside a serialised spec.
    pub fn to_marker(&self) -> Value {
        serde_json::json!({ REF_KEY: { "address": self.address.0, "attr": self.attr } })
    }
}

impl fmt::Display for RawRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.address, self.attr)
    }
}

/// A typed reference to an attribute of type `T` of another resource, e.g. the IPv4 of a
/// load balancer. Only fields of type `Field<T>` accept it, so an address cannot be put
/// where a port goes.
pub struct AttrRef<T> {
    raw: RawRef,
    _t: PhantomData<fn() -> T>,
}

impl<T> AttrRef<T> {
    /// Makes a typed reference; provider crates call this from accessor methods on handles.
    pub fn new(address: Address, attr: impl Into<String>) -> Self {
        AttrRef {
            raw: RawRef {
                address,
                attr: attr.into(),
            },
            _t: PhantomData,
        }
    }

    /// The untyped reference.
    pub fn raw(&self) -> &RawRef {
        &self.raw
    }
}

impl<T> Clone for AttrRef<T> {
    fn clone(&self) -> Self {
        AttrRef {
            raw: self.raw.clone(),
            _t: PhantomData,
        }
    }
}

impl<T> fmt::Debug for AttrRef<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AttrRef({})", self.raw)
    }
}

impl<T> PartialEq for AttrRef<T> {
    fn eq(&self, other: &Self) -> bool {
        self.raw == other.raw
    }
}

/// A spec field: a known value, or a reference resolved during plan or apply.
#[derive(Clone, Debug, PartialEq)]
pub enum Field<T> {
    /// A value written in the stack.
    Known(T),
    /// A value read from another resource once it exists.
    Ref(AttrRef<T>),
}

impl<T> Field<T> {
    /// The known value, if this field is not a reference.
    pub fn known(&self) -> Option<&T> {
        match self {
            Field::Known(v) => Some(v),
            Field::Ref(_) => None,
        }
    }

    /// The reference, if this field is one.
    pub fn reference(&self) -> Option<&RawRef> {
        match self {
            Field::Known(_) => None,
            Field::Ref(r) => Some(r.raw()),
        }
    }
}

impl<T: Default> Default for Field<T> {
    fn default() -> Self {
        Field::Known(T::default())
    }
}

impl<T> From<T> for Field<T> {
    fn from(v: T) -> Self {
        Field::Known(v)
    }
}

impl<T> From<AttrRef<T>> for Field<T> {
    fn from(r: AttrRef<T>) -> Self {
        Field::Ref(r)
    }
}

impl<T> From<&AttrRef<T>> for Field<T> {
    fn from(r: &AttrRef<T>) -> Self {
        Field::Ref(r.clone())
    }
}

impl From<&str> for Field<String> {
    fn from(v: &str) -> Self {
        Field::Known(v.to_string())
    }
}

impl<T: Serialize> Serialize for Field<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Field::Known(v) => v.serialize(s),
            Field::Ref(r) => Marker(&r.raw).serialize(s),
        }
    }
}

/// Serialises a reference as its `$ref` marker without building a JSON value first.
struct Marker<'a>(&'a RawRef);

impl Serialize for Marker<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(1))?;
        m.serialize_entry(REF_KEY, self.0)?;
        m.end()
    }
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Field<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        if let Some(raw) = RawRef::from_marker(&v) {
            return Ok(Field::Ref(AttrRef {
                raw,
                _t: PhantomData,
            }));
        }
        T::deserialize(v)
            .map(Field::Known)
            .map_err(serde::de::Error::custom)
    }
}

/// A reference to another resource by its key (a DNS record's zone, a server's SSH key):
/// the value is known when the stack is declared, and, made from a [`Handle`], it carries
/// the dependency too, so the referring resource is ordered after the named one without a
/// hand-written `depends_on`. Made from a plain name it names an object the stack does not
/// declare (one that exists already). It serialises as the key alone, so specs, plans and
/// digests are the same either way; equality compares keys.
///
/// A kind that holds `KeyRef` fields lists them in [`Resource::key_refs`](crate::Resource::key_refs).
pub struct KeyRef<R> {
    key: String,
    address: Option<Address>,
    _r: PhantomData<fn() -> R>,
}

impl<R> KeyRef<R> {
    /// A reference by name to an object this stack does not declare.
    pub fn named(key: impl Into<String>) -> Self {
        KeyRef {
            key: key.into(),
            address: None,
            _r: PhantomData,
        }
    }

    /// The key (the name the provider knows the object by).
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The declared resource it names, when made from a handle.
    pub fn address(&self) -> Option<&Address> {
        self.address.as_ref()
    }
}

impl<R> From<&Handle<R>> for KeyRef<R> {
    fn from(h: &Handle<R>) -> Self {
        KeyRef {
            key: h.key().to_string(),
            address: Some(h.address().clone()),
            _r: PhantomData,
        }
    }
}

impl<R> From<&str> for KeyRef<R> {
    fn from(key: &str) -> Self {
        KeyRef::named(key)
    }
}

impl<R> From<String> for KeyRef<R> {
    fn from(key: String) -> Self {
        KeyRef::named(key)
    }
}

impl<R> Clone for KeyRef<R> {
    fn clone(&self) -> Self {
        KeyRef {
            key: self.key.clone(),
            address: self.address.clone(),
            _r: PhantomData,
        }
    }
}

impl<R> PartialEq for KeyRef<R> {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}

impl<R> fmt::Debug for KeyRef<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.address {
            Some(a) => write!(f, "KeyRef({:?} of {a})", self.key),
            None => write!(f, "KeyRef({:?})", self.key),
        }
    }
}

impl<R> fmt::Display for KeyRef<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.key)
    }
}

impl<R> Serialize for KeyRef<R> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.key)
    }
}

impl<'de, R> Deserialize<'de> for KeyRef<R> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(KeyRef::named)
    }
}

/// Collects every reference inside a serialised spec, with the JSON path where it sits.
pub fn collect_refs(v: &Value) -> Vec<(String, RawRef)> {
    let mut out = Vec::new();
    walk_refs(v, &mut String::new(), &mut out);
    out
}

fn walk_refs(v: &Value, path: &mut String, out: &mut Vec<(String, RawRef)>) {
    if let Some(r) = RawRef::from_marker(v) {
        out.push((path.clone(), r));
        return;
    }
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(k);
                walk_refs(child, path, out);
                path.truncate(len);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                walk_refs(child, path, out);
                path.truncate(len);
            }
        }
        _ => {}
    }
}

/// Replaces every reference marker for which `lookup` knows a value; returns whether any
/// reference is left unresolved.
pub fn substitute_refs(v: &mut Value, lookup: &dyn Fn(&RawRef) -> Option<Value>) -> bool {
    if let Some(r) = RawRef::from_marker(v) {
        return match lookup(&r) {
            Some(found) => {
                *v = found;
                false
            }
            None => true,
        };
    }
    match v {
        Value::Object(m) => m
            .values_mut()
            .fold(false, |left, child| substitute_refs(child, lookup) | left),
        Value::Array(items) => items
            .iter_mut()
            .fold(false, |left, child| substitute_refs(child, lookup) | left),
        _ => false,
    }
}

/// Reads a dotted attribute path (`public_net.ipv4`, `ips[0]`) out of an observed value.
pub fn get_path<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    let mut cur = v;
    for seg in path.split('.').filter(|s| !s.is_empty()) {
        let (name, idx) = match seg.find('[') {
            Some(i) => (&seg[..i], Some(&seg[i..])),
            None => (seg, None),
        };
        if !name.is_empty() {
            cur = cur.get(name)?;
        }
        if let Some(idx) = idx {
            for part in idx.split(']').filter(|p| !p.is_empty()) {
                let n: usize = part.trim_start_matches('[').parse().ok()?;
                cur = cur.get(n)?;
            }
        }
    }
    Some(cur)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Rec {
        ip: Field<Ipv4Addr>,
        port: Field<u16>,
    }

    #[test]
    fn reference_round_trips_through_json_and_is_found() {
        let r: AttrRef<Ipv4Addr> = AttrRef::new(Address::new("lb", "k3s"), "ipv4");
        let rec = Rec {
            ip: r.into(),
            port: 443.into(),
        };
        let v = serde_json::to_value(&rec).unwrap();
        let refs = collect_refs(&v);
        assert_eq!(refs.len(), 1);
        assert_eq!(refs[0].0, "ip");
        assert_eq!(refs[0].1.address.0, "lb.k3s");
        let back: Rec = serde_json::from_value(v).unwrap();
        assert_eq!(back, rec);
    }

    #[test]
    fn substitution_resolves_known_and_reports_unknown() {
        let mut v = serde_json::json!({"a": RawRef{address: Address::new("x","y"), attr: "ip".into()}.to_marker(), "b": [1]});
        let left = substitute_refs(&mut v, &|_| None);
        assert!(left);
        let left = substitute_refs(&mut v, &|r| (r.attr == "ip").then(|| "1.2.3.4".into()));
        assert!(!left);
        assert_eq!(v["a"], "1.2.3.4");
        let rec: Result<Rec, _> =
            serde_json::from_value(serde_json::json!({"ip": "1.2.3.4", "port": 1}));
        assert_eq!(rec.unwrap().ip, Field::Known(Ipv4Addr::new(1, 2, 3, 4)));
    }

    #[test]
    fn paths_read_nested_fields_and_indexes() {
        let v = serde_json::json!({"public_net": {"ipv4": {"ip": "1.1.1.1"}}, "ips": ["a", "b"]});
        assert_eq!(get_path(&v, "public_net.ipv4.ip").unwrap(), "1.1.1.1");
        assert_eq!(get_path(&v, "ips[1]").unwrap(), "b");
        assert!(get_path(&v, "nope").is_none());
    }
}
