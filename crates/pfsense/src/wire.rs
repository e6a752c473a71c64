//! Wire helpers shared by the kinds' API types: numbers the package sends as strings (or
//! empty strings), lists it sends as separated text, and typed lookups of one object by its
//! key (IDs are array indexes that shift when objects are deleted, so every write looks its
//! object up first).

use std::str::FromStr;

use serde::de::{DeserializeOwned, Deserializer};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::client::{ClientError, PfSenseClient, Subsystem};

/// A number as the package may send it: a JSON number, a numeric string, or `""`/`null` for
/// "not set".
#[derive(Deserialize)]
#[serde(untagged)]
enum Lenient {
    Num(serde_json::Number),
    Text(String),
    Bool(bool),
}

/// Deserialises an optional number sent as a number, a numeric string, `""` or `null`;
/// anything unparseable reads as `None`.
pub(crate) fn opt_num<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr,
{
    Ok(match Option::<Lenient>::deserialize(d)? {
        Some(Lenient::Num(n)) => n.to_string().parse().ok(),
        Some(Lenient::Text(s)) => s.trim().parse().ok(),
        Some(Lenient::Bool(_)) | None => None,
    })
}

/// Deserialises a boolean sent as `true`/`false`, or anything else as `false`.
pub(crate) fn flag<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(matches!(
        Option::<Lenient>::deserialize(d)?,
        Some(Lenient::Bool(true))
    ))
}

/// A list sent as a JSON array or as text separated by `sep` (whitespace when `None`).
#[derive(Deserialize)]
#[serde(untagged)]
enum ListOrText {
    List(Vec<String>),
    Text(String),
}

fn split_list<'de, D: Deserializer<'de>>(d: D, sep: Option<char>) -> Result<Vec<String>, D::Error> {
    Ok(match Option::<ListOrText>::deserialize(d)? {
        Some(ListOrText::List(l)) => l,
        Some(ListOrText::Text(s)) => match sep {
            Some(c) => s
                .split(c)
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(str::to_string)
                .collect(),
            None => s.split_whitespace().map(str::to_string).collect(),
        },
        None => Vec::new(),
    })
}

/// A list sent as an array or whitespace-separated text.
pub(crate) fn words<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    split_list(d, None)
}

/// A list sent as an array or comma-separated text.
pub(crate) fn commas<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    split_list(d, Some(','))
}

/// Decodes the API objects of a list answer into `T`, skipping (and logging) objects that do
/// not have the shape a kind can manage.
pub(crate) fn decode_all<T: DeserializeOwned>(what: &str, items: Vec<Value>) -> Vec<T> {
    items
        .into_iter()
        .filter_map(|v| match serde_json::from_value(v) {
            Ok(t) => Some(t),
            Err(e) => {
                tracing::warn!(what, %e, "skipping an object this provider cannot read");
                None
            }
        })
        .collect()
}

/// Something listed with its array index.
pub(crate) trait Indexed {
    /// The object's `id` (its index in the collection).
    fn id(&self) -> Option<usize>;
    /// Its natural key.
    fn key(&self) -> String;
}

/// Lists `plural` with `filter` and returns the object whose key is `key`, with its id.
pub(crate) async fn find<T: DeserializeOwned + Indexed>(
    client: &PfSenseClient,
    plural: &str,
    filter: &[(&str, String)],
    key: &str,
) -> Result<Option<(usize, T)>, ClientError> {
    let items = client.list(plural, filter).await?;
    Ok(decode_all::<T>(plural, items)
        .into_iter()
        .find_map(|o| Some((o.id()?, o)).filter(|(_, o)| o.key() == key)))
}

/// Deletes the object of type `T` with `key` (found by `filter`, then by key: ids are array
/// indexes that shift, so the id is looked up right before the delete) and applies
/// `subsystem`. An object that is gone already is done.
pub(crate) async fn delete_by_key<T: DeserializeOwned + Indexed>(
    client: &PfSenseClient,
    (plural, singular): (&str, &str),
    filter: &[(&str, String)],
    key: &str,
    subsystem: Subsystem,
) -> Result<(), ClientError> {
    if let Some((id, _)) = find::<T>(client, plural, filter, key).await? {
        client.delete(singular, &[("id", id.to_string())]).await?;
        client.apply(subsystem).await?;
    }
    Ok(())
}

/// Serialises a request body (infallible for the plain structs used as bodies).
pub(crate) fn body<T: Serialize>(b: &T) -> Value {
    serde_json::to_value(b).unwrap_or(Value::Null)
}

/// A body plus the `id` (and for nested objects `parent_id`) a PATCH needs.
#[derive(Serialize)]
pub(crate) struct WithId<'a, T: Serialize> {
    /// The object's index.
    pub id: usize,
    /// The parent's index (nested objects only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<usize>,
    /// The object's fields.
    #[serde(flatten)]
    pub body: &'a T,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct N {
        #[serde(default, deserialize_with = "opt_num")]
        n: Option<u32>,
        #[serde(default, deserialize_with = "words")]
        w: Vec<String>,
    }

    #[test]
    fn numbers_and_lists_are_read_in_every_spelling_the_package_uses() {
        let n = |v: serde_json::Value| serde_json::from_value::<N>(v).unwrap().n;
        assert_eq!(n(serde_json::json!({"n": 5})), Some(5));
        assert_eq!(n(serde_json::json!({"n": "5"})), Some(5));
        assert_eq!(n(serde_json::json!({"n": ""})), None);
        assert_eq!(n(serde_json::json!({"n": null})), None);
        assert_eq!(n(serde_json::json!({})), None);
        let w: N = serde_json::from_value(serde_json::json!({"w": "a b"})).unwrap();
        assert_eq!(w.w, ["a", "b"]);
    }
}
