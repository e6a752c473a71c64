//! Field-level diff of a desired spec against an observed value, with paths such as
//! `services[443].health_check.interval`, keyed and unordered lists, unknowns, ignored
//! fields, and the schema facts (replace, restart, sensitive, computed) attached to each
//! change.
//!
//! Semantics: a desired `null` means "not managed" (no diff). Object keys the observed
//! value has but the desired spec lacks are removals, unless the schema marks them computed.

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::resource::Schema;
use crate::spec::Key;
use crate::value::{REF_KEY, RawRef};

/// One changed field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldChange {
    /// Path of the field, e.g. `services[443].health_check.interval`.
    pub path: String,
    /// The observed value (absent when the field or item is added).
    pub before: Option<Value>,
    /// The desired value (absent when the field or item is removed; a `$ref` marker while unknown).
    pub after: Option<Value>,
    /// The desired value is known only after apply.
    #[serde(default)]
    pub unknown: bool,
    /// Changing this field forces a replace.
    #[serde(default)]
    pub forces_replace: bool,
    /// The change takes effect only at the next restart.
    #[serde(default)]
    pub needs_restart: bool,
    /// The values are sensitive (already redacted in `before`/`after` of rendered plans).
    #[serde(default)]
    pub sensitive: bool,
}

/// Turns a concrete path into its schema pattern: `services[443].port` → `services[*].port`.
pub fn pattern_of(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut depth = 0;
    for c in path.chars() {
        match c {
            '[' => {
                depth += 1;
                if depth == 1 {
                    out.push_str("[*");
                }
            }
            ']' => {
                depth -= 1;
                if depth == 0 {
                    out.push(']');
                }
            }
            _ if depth > 0 => {}
            _ => out.push(c),
        }
    }
    out
}

/// Whether a concrete path lies at or below a schema pattern.
/// Bracketed parts (`[443]`, `[*]`) match each other whatever they hold. Allocation-free:
/// it runs for every field against every schema pattern.
pub fn path_matches(path: &str, pattern: &str) -> bool {
    let (a, b) = (path.as_bytes(), pattern.as_bytes());
    let (mut i, mut j) = (0, 0);
    loop {
        if j == b.len() {
            return i == a.len() || a[i] == b'.' || a[i] == b'[';
        }
        if i == a.len() {
            return false;
        }
        if a[i] == b'[' && b[j] == b'[' {
            i = skip_brackets(a, i);
            j = skip_brackets(b, j);
            continue;
        }
        if a[i] != b[j] {
            return false;
        }
        i += 1;
        j += 1;
    }
}

/// The index just past the `]` that closes the `[` at `start` (nesting-aware).
fn skip_brackets(s: &[u8], start: usize) -> usize {
    let mut depth = 0;
    for (k, &c) in s.iter().enumerate().skip(start) {
        match c {
            b'[' => depth += 1,
            b']' => {
                depth -= 1;
                if depth == 0 {
                    return k + 1;
                }
            }
            _ => {}
        }
    }
    s.len()
}

fn any_match(path: &str, patterns: &[&str]) -> bool {
    patterns.iter().any(|p| path_matches(path, p))
}

/// Diffs one resource. `ignore` holds user `ignore_changes` patterns.
pub fn diff(
    desired: &Value,
    observed: &Value,
    schema: &Schema,
    ignore: &[String],
) -> Vec<FieldChange> {
    diff_resolving(desired, observed, schema, ignore, &|_| None)
}

/// Like [`diff`], but references in `desired` are first looked up with `resolve`, on the fly,
/// so the spec need not be copied to substitute them.
pub fn diff_resolving(
    desired: &Value,
    observed: &Value,
    schema: &Schema,
    ignore: &[String],
    resolve: &dyn Fn(&RawRef) -> Option<Value>,
) -> Vec<FieldChange> {
    let mut out = Vec::new();
    let ctx = Ctx {
        schema,
        ignore,
        resolve,
    };
    ctx.walk(String::new(), desired, Some(observed), &mut out);
    out
}

/// Like [`diff_resolving`], reading the desired spec from its JSON text in one streaming
/// pass: equal fields cost no copy, and only changed parts are materialised as values.
/// Gives exactly what [`diff_resolving`] gives on the parsed text.
pub fn diff_json(
    desired: &str,
    observed: &Value,
    schema: &Schema,
    ignore: &[String],
    resolve: &dyn Fn(&RawRef) -> Option<Value>,
) -> Vec<FieldChange> {
    let mut out = Vec::new();
    let ctx = Ctx {
        schema,
        ignore,
        resolve,
    };
    let mut path = String::new();
    let mut de = serde_json::Deserializer::from_str(desired);
    DiffSeed {
        ctx: &ctx,
        path: &mut path,
        observed: Some(observed),
        out: &mut out,
        in_list: false,
    }
    .deserialize(&mut de)
    .expect("serialised specs are valid JSON");
    out
}

/// One step of the streaming diff: the desired value at `path` arrives from the parser and
/// is compared with `observed`.
struct DiffSeed<'a, 'b> {
    ctx: &'a Ctx<'b>,
    path: &'a mut String,
    observed: Option<&'a Value>,
    out: &'a mut Vec<FieldChange>,
    /// Inside a list item: the value walk resolves references in list items before it
    /// compares them, so what this step materialises gets its references resolved too.
    in_list: bool,
}

impl DiffSeed<'_, '_> {
    /// Hands a materialised part of the spec to the value walk.
    fn walk(self, mut d: Value) {
        if self.in_list {
            crate::value::substitute_refs(&mut d, self.ctx.resolve);
        }
        self.ctx
            .walk(self.path.clone(), &d, self.observed, self.out);
    }

    /// A scalar: equal values cost nothing; anything else takes the value walk.
    fn scalar(self, d: Value) {
        if self.observed.is_some_and(|o| scalar_eq(&d, o)) {
            return;
        }
        self.ctx
            .walk(self.path.clone(), &d, self.observed, self.out);
    }

    /// Whether a list at this path is compared item by item (neither keyed nor a set).
    fn positional(&self) -> bool {
        if any_match(self.path, self.ctx.schema.unordered) {
            return false;
        }
        if self.ctx.schema.keyed.is_empty() {
            return true;
        }
        let pat = pattern_of(self.path);
        !self
            .ctx
            .schema
            .keyed
            .iter()
            .any(|k| pattern_of(k.path) == pat)
    }
}

impl<'de> DeserializeSeed<'de> for DiffSeed<'_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for DiffSeed<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        // A desired null means "not managed".
        Ok(())
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.scalar(Value::Bool(v));
        Ok(())
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.scalar(Value::from(v));
        Ok(())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.scalar(Value::from(v));
        Ok(())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        self.scalar(Value::from(v));
        Ok(())
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        if let Some(Value::String(o)) = self.observed
            && o == v
        {
            return Ok(());
        }
        self.scalar(Value::String(v.to_string()));
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        if self.ctx.skip(self.path) {
            while seq.next_element::<de::IgnoredAny>()?.is_some() {}
            return Ok(());
        }
        let mut items: Vec<&'de RawValue> = Vec::new();
        while let Some(raw) = seq.next_element::<&'de RawValue>()? {
            items.push(raw);
        }
        match self.observed {
            Some(Value::Array(o)) if o.len() == items.len() && self.positional() => {
                for (i, (raw, ov)) in items.iter().zip(o).enumerate() {
                    let len = self.path.len();
                    {
                        use std::fmt::Write;
                        let _ = write!(self.path, "[{i}]");
                    }
                    let mut de = serde_json::Deserializer::from_str(raw.get());
                    DiffSeed {
                        ctx: self.ctx,
                        path: self.path,
                        observed: Some(ov),
                        out: self.out,
                        in_list: true,
                    }
                    .deserialize(&mut de)
                    .map_err(de::Error::custom)?;
                    self.path.truncate(len);
                }
            }
            _ => {
                let d = items
                    .iter()
                    .map(|raw| serde_json::from_str(raw.get()))
                    .collect::<Result<Vec<Value>, _>>()
                    .map_err(de::Error::custom)?;
                self.walk(Value::Array(d));
            }
        }
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let Some(first) = map.next_key::<Key<'de>>()? else {
            self.walk(Value::Object(Map::new()));
            return Ok(());
        };
        if first.0 == REF_KEY {
            // A reference marker (or, rarely, an object that merely starts with `$ref`).
            let inner: &'de RawValue = map.next_value()?;
            let mut rest = Vec::new();
            while let Some(entry) = map.next_entry::<String, Value>()? {
                rest.push(entry);
            }
            let parse = |raw: &RawValue| serde_json::from_str::<Value>(raw.get());
            if rest.is_empty()
                && let Ok(r) = serde_json::from_str::<RawRef>(inner.get())
            {
                if self.ctx.skip(self.path) {
                    return Ok(());
                }
                match (self.ctx.resolve)(&r) {
                    Some(v) => self
                        .ctx
                        .walk(self.path.clone(), &v, self.observed, self.out),
                    None => {
                        let mut m = Map::with_capacity(1);
                        m.insert(
                            REF_KEY.to_string(),
                            parse(inner).map_err(de::Error::custom)?,
                        );
                        let marker = Value::Object(m);
                        let c = self
                            .ctx
                            .change(self.path.clone(), self.observed, Some(&marker));
                        self.out.push(c);
                    }
                }
                return Ok(());
            }
            let mut all = Map::new();
            all.insert(
                REF_KEY.to_string(),
                parse(inner).map_err(de::Error::custom)?,
            );
            all.extend(rest);
            self.walk(Value::Object(all));
            return Ok(());
        }
        if self.ctx.skip(self.path) {
            map.next_value::<de::IgnoredAny>()?;
            while map
                .next_entry::<de::IgnoredAny, de::IgnoredAny>()?
                .is_some()
            {}
            return Ok(());
        }
        let Some(Value::Object(o)) = self.observed else {
            let mut all = Map::new();
            let v: Value = map.next_value()?;
            all.insert(first.0.into_owned(), v);
            while let Some((k, v)) = map.next_entry::<String, Value>()? {
                all.insert(k, v);
            }
            self.walk(Value::Object(all));
            return Ok(());
        };
        // Observed keys usually come in the order the spec declares them: look each one
        // up from where the last was found (small objects), and remember which matched.
        // Objects of up to 16 fields (nearly all) are searched from an array on the stack.
        const SMALL: usize = 16;
        let small = o.len() <= SMALL;
        let mut slots: [Option<(&String, &Value)>; SMALL] = [None; SMALL];
        if small {
            for (slot, kv) in slots.iter_mut().zip(o.iter()) {
                *slot = Some(kv);
            }
        }
        let entries = &slots[..if small { o.len() } else { 0 }];
        let mut matched: u64 = 0;
        let mut next = 0usize;
        let mut seen: Vec<Key<'de>> = Vec::new();
        let mut key = Some(first);
        while let Some(k) = key {
            let ov = if small {
                let n = entries.len();
                let start = next;
                let hit = (0..n)
                    .map(|j| (start + j) % n)
                    .find(|&idx| entries[idx].is_some_and(|(ek, _)| ek.as_str() == k.0));
                hit.and_then(|idx| {
                    matched |= 1 << idx;
                    next = idx + 1;
                    entries[idx].map(|(_, v)| v)
                })
            } else {
                o.get(k.0.as_ref())
            };
            let len = self.path.len();
            if !self.path.is_empty() {
                self.path.push('.');
            }
            self.path.push_str(&k.0);
            map.next_value_seed(DiffSeed {
                ctx: self.ctx,
                path: self.path,
                observed: ov,
                out: self.out,
                in_list: self.in_list,
            })?;
            self.path.truncate(len);
            if !small {
                seen.push(k);
            }
            key = map.next_key::<Key<'de>>()?;
        }
        for (idx, (k, ov)) in o.iter().enumerate() {
            let kept = if small {
                matched & (1 << idx) != 0
            } else {
                seen.iter().any(|s| s.0 == k.as_str())
            };
            if kept || ov.is_null() {
                continue;
            }
            let len = self.path.len();
            if !self.path.is_empty() {
                self.path.push('.');
            }
            self.path.push_str(k);
            if !self.ctx.skip(self.path) {
                let c = self.ctx.change(self.path.clone(), Some(ov), None);
                self.out.push(c);
            }
            self.path.truncate(len);
        }
        Ok(())
    }
}

struct Ctx<'a> {
    schema: &'a Schema,
    ignore: &'a [String],
    resolve: &'a dyn Fn(&RawRef) -> Option<Value>,
}

impl Ctx<'_> {
    fn skip(&self, path: &str) -> bool {
        !path.is_empty()
            && (any_match(path, self.schema.computed)
                || self.ignore.iter().any(|p| path_matches(path, p)))
    }

    fn change(&self, path: String, before: Option<&Value>, after: Option<&Value>) -> FieldChange {
        let unknown = after.is_some_and(|a| RawRef::from_marker(a).is_some() || contains_ref(a));
        FieldChange {
            forces_replace: any_match(&path, self.schema.replace),
            needs_restart: any_match(&path, self.schema.restart),
            sensitive: any_match(&path, self.schema.sensitive),
            path,
            before: before.cloned(),
            after: after.cloned(),
            unknown,
        }
    }

    fn walk(
        &self,
        path: String,
        desired: &Value,
        observed: Option<&Value>,
        out: &mut Vec<FieldChange>,
    ) {
        if self.skip(&path) || desired.is_null() {
            return;
        }
        if let Some(r) = RawRef::from_marker(desired) {
            match (self.resolve)(&r) {
                Some(v) => self.walk(path, &v, observed, out),
                None => out.push(self.change(path, observed, Some(desired))),
            }
            return;
        }
        match (desired, observed) {
            (Value::Object(d), Some(Value::Object(o))) => {
                for (k, dv) in d {
                    self.walk(join(&path, k), dv, o.get(k), out);
                }
                for (k, ov) in o
                    .iter()
                    .filter(|(k, ov)| !d.contains_key(*k) && !ov.is_null())
                {
                    let p = join(&path, k);
                    if !self.skip(&p) {
                        out.push(self.change(p, Some(ov), None));
                    }
                }
            }
            (Value::Array(d), Some(Value::Array(o))) => self.walk_array(path, d, o, out),
            (d, Some(o)) if scalar_eq(d, o) => {}
            (d, o) => out.push(self.change(path, o.filter(|v| !v.is_null()), Some(d))),
        }
    }

    fn walk_array(&self, path: String, d: &[Value], o: &[Value], out: &mut Vec<FieldChange>) {
        // Items are matched by key or compared as a set, so references inside them must be
        // resolved first (a reference to a known id or address is that id or address).
        let resolved: Vec<Value>;
        let d = if d.iter().any(contains_ref) {
            resolved = d
                .iter()
                .map(|v| {
                    let mut v = v.clone();
                    crate::value::substitute_refs(&mut v, self.resolve);
                    v
                })
                .collect();
            &resolved[..]
        } else {
            d
        };
        let pat = pattern_of(&path);
        if let Some(keyed) = self.schema.keyed.iter().find(|k| pattern_of(k.path) == pat) {
            let key_of = |v: &Value| item_key(v, keyed.key);
            for dv in d {
                let k = key_of(dv);
                let ov = o.iter().find(|ov| key_of(ov) == k);
                let p = format!("{path}[{k}]");
                match ov {
                    Some(ov) => self.walk(p, dv, Some(ov), out),
                    None if !self.skip(&p) => out.push(self.change(p, None, Some(dv))),
                    None => {}
                }
            }
            for ov in o {
                let k = key_of(ov);
                let p = format!("{path}[{k}]");
                if !d.iter().any(|dv| key_of(dv) == k) && !self.skip(&p) {
                    out.push(self.change(p, Some(ov), None));
                }
            }
            return;
        }
        if any_match(&path, self.schema.unordered) {
            let mut ds: Vec<String> = d.iter().map(|v| v.to_string()).collect();
            let mut os: Vec<String> = o.iter().map(|v| v.to_string()).collect();
            ds.sort();
            os.sort();
            if ds != os {
                out.push(self.change(
                    path,
                    Some(&Value::Array(o.to_vec())),
                    Some(&Value::Array(d.to_vec())),
                ));
            }
            return;
        }
        if d.len() == o.len() {
            for (i, (dv, ov)) in d.iter().zip(o).enumerate() {
                self.walk(format!("{path}[{i}]"), dv, Some(ov), out);
            }
        } else {
            out.push(self.change(
                path,
                Some(&Value::Array(o.to_vec())),
                Some(&Value::Array(d.to_vec())),
            ));
        }
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// The identity of a keyed-list item: its key fields' values joined by `/`, nulls skipped.
pub fn item_key(v: &Value, fields: &[&str]) -> String {
    fields
        .iter()
        .filter_map(|f| crate::value::get_path(v, f))
        .filter(|v| !v.is_null())
        .map(|v| match v {
            Value::String(s) => s.clone(),
            other if RawRef::from_marker(other).is_some() => "?".to_string(),
            other => other.to_string(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

fn contains_ref(v: &Value) -> bool {
    match v {
        Value::Object(m) => RawRef::from_marker(v).is_some() || m.values().any(contains_ref),
        Value::Array(a) => a.iter().any(contains_ref),
        _ => false,
    }
}

fn scalar_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x == y || x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::KeyedList;
    use proptest::prelude::*;
    use serde_json::json;

    const LB: Schema = Schema {
        replace: &["location", "services[*].protocol"],
        computed: &["id", "ipv4"],
        sensitive: &["user_data"],
        keyed: &[KeyedList {
            path: "services",
            key: &["listen_port"],
        }],
        unordered: &["source_ips"],
        restart: &[],
        attributes: &[],
        create_before_destroy: false,
        read_only: false,
    };

    fn paths(c: &[FieldChange]) -> Vec<&str> {
        c.iter().map(|c| c.path.as_str()).collect()
    }

    #[test]
    fn keyed_lists_diff_by_key_with_readable_paths() {
        let d = json!({"services": [{"listen_port": 443, "health_check": {"interval": 15}}, {"listen_port": 80, "health_check": {"interval": 15}}]});
        let o = json!({"id": 7, "services": [{"listen_port": 80, "health_check": {"interval": 15}}, {"listen_port": 443, "health_check": {"interval": 10}}, {"listen_port": 8080, "health_check": {"interval": 1}}]});
        let c = diff(&d, &o, &LB, &[]);
        assert_eq!(
            paths(&c),
            ["services[443].health_check.interval", "services[8080]"]
        );
        assert!(c[1].after.is_none());
    }

    #[test]
    fn replace_paths_unknowns_and_ignores_are_flagged() {
        let d = json!({"location": "fsn1", "name": {"$ref": {"address": "a.b", "attr": "x"}}, "labels": {"a": "1"}});
        let o = json!({"location": "nbg1", "name": "n", "labels": {"a": "2"}});
        let c = diff(&d, &o, &LB, &["labels".into()]);
        assert_eq!(paths(&c), ["location", "name"]);
        assert!(c[0].forces_replace);
        assert!(c[1].unknown && !c[1].forces_replace);
    }

    #[test]
    fn nulls_are_unmanaged_and_removed_map_keys_are_changes() {
        let d = json!({"desc": null, "labels": {"a": "1"}, "source_ips": ["b", "a"]});
        let o = json!({"desc": "x", "labels": {"a": "1", "old": "y"}, "source_ips": ["a", "b"], "ipv4": "1.1.1.1"});
        let c = diff(&d, &o, &LB, &[]);
        assert_eq!(paths(&c), ["labels.old"]);
        assert!(c[0].after.is_none());
    }

    #[test]
    fn references_inside_lists_are_resolved_before_matching() {
        let marker = json!({"$ref": {"address": "vip.v", "attr": "ip"}});
        let d = json!({"source_ips": [marker.clone(), "10.0.0.0/16"], "services": [{"listen_port": marker, "x": 1}]});
        let o = json!({"source_ips": ["10.0.0.0/16", "1.2.3.4"], "services": [{"listen_port": "1.2.3.4", "x": 1}]});
        let resolve = |_: &RawRef| Some(Value::String("1.2.3.4".into()));
        assert!(diff_resolving(&d, &o, &LB, &[], &resolve).is_empty());
        let unresolved = diff(&d, &o, &LB, &[]);
        assert!(
            unresolved[0].path == "source_ips" && unresolved[0].unknown,
            "{unresolved:?}"
        );
        assert!(
            unresolved
                .iter()
                .any(|c| c.path == "services[?]" && c.unknown),
            "{unresolved:?}"
        );
    }

    fn json() -> impl Strategy<Value = Value> {
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
            (-2i64..3).prop_map(Value::from),
            Just(json!(1.5)),
            proptest::sample::select(vec!["a", "b", "1.2.3.4", "x\"y"]).prop_map(Value::from),
            (0u8..3).prop_map(marker),
        ];
        leaf.prop_recursive(3, 32, 4, |inner| {
            let keys = vec![
                "a",
                "b",
                "c",
                "id",
                "services",
                "source_ips",
                "listen_port",
                "$ref",
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

    /// `observed` with some of `other`'s fields laid over it, so the two share structure.
    fn overlay(observed: &Value, other: &Value) -> Value {
        match (observed, other) {
            (Value::Object(a), Value::Object(b)) => {
                let mut m = a.clone();
                for (k, v) in b.iter().take(2) {
                    let merged = m.get(k).map_or_else(|| v.clone(), |old| overlay(old, v));
                    m.insert(k.clone(), merged);
                }
                Value::Object(m)
            }
            _ => other.clone(),
        }
    }

    proptest::proptest! {
        #[test]
        fn streaming_diff_gives_what_the_value_diff_gives(d in json(), o in json(), mix in 0u8..3) {
            let o = match mix {
                0 => o,
                1 => d.clone(),
                _ => overlay(&d, &o),
            };
            let resolve = |r: &RawRef| (r.address.name() != "n0").then(|| Value::from("1.2.3.4"));
            let ignore = vec!["c".to_string()];
            let by_value = diff_resolving(&d, &o, &LB, &ignore, &resolve);
            let streamed = diff_json(&d.to_string(), &o, &LB, &ignore, &resolve);
            proptest::prop_assert_eq!(by_value, streamed);
        }
    }

    #[test]
    fn patterns_match_whole_segments_only() {
        assert!(path_matches(
            "services[443].protocol",
            "services[*].protocol"
        ));
        assert!(path_matches(
            "services[443].health_check.port",
            "services[*].health_check"
        ));
        assert!(!path_matches("services_extra", "services"));
        assert!(path_matches("rules[in/tcp/[6443]].port", "rules[*].port"));
        assert!(!path_matches("rules", "rules[*].port"));
        assert!(path_matches("labels.a", "labels"));
        assert_eq!(pattern_of("a[1/x].b[2]"), "a[*].b[*]");
    }
}
