//! The live catalog a plan checks declared resources against: server types, images,
//! locations, datacenters (which server types are in stock) and load balancer types
//! (`GET /server_types`, `/images`, `/locations`, `/datacenters`, `/load_balancer_types`), plus the names and ids of existing objects a declaration may
//! refer to without declaring them (zones, SSH keys, networks, firewalls). Read at most once
//! per plan, and only the lists that plan needs ([`Needs`]); every list is paged.

use std::collections::BTreeSet;

use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::client::{ApiError, Client};

/// When and how a catalog entry is deprecated (`deprecation` in the API).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Deprecation {
    /// When the deprecation was announced (RFC 3339).
    #[serde(default)]
    pub announced: Option<String>,
    /// After this point in time (RFC 3339) nothing new can be made from the entry.
    #[serde(default)]
    pub unavailable_after: Option<String>,
}

/// One location a server type is offered in (`server_type.locations[]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TypeLocation {
    /// The location's name, e.g. `fsn1`.
    pub name: String,
    /// Set when the type is deprecated in this location.
    #[serde(default)]
    pub deprecation: Option<Deprecation>,
}

/// A server type (`GET /server_types`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ServerType {
    /// Its id.
    pub id: u64,
    /// Its name, e.g. `cax11`.
    pub name: String,
    /// `x86` or `arm`.
    pub architecture: String,
    /// The type-wide deprecation (superseded by the per-location one; read as a fallback).
    #[serde(default)]
    pub deprecation: Option<Deprecation>,
    /// The locations it is offered in; it is offered nowhere else.
    #[serde(default)]
    pub locations: Vec<TypeLocation>,
}

/// An image (`GET /images`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Image {
    /// Its id.
    pub id: u64,
    /// Its name (only system and app images have one).
    #[serde(default)]
    pub name: Option<String>,
    /// `system`, `app`, `snapshot` or `backup`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `x86` or `arm` (null: no restriction).
    #[serde(default)]
    pub architecture: Option<String>,
    /// `available`, `creating` or `unavailable`.
    pub status: String,
    /// When it is (or was) deprecated (RFC 3339).
    #[serde(default)]
    pub deprecated: Option<String>,
}

/// A location (`GET /locations`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Location {
    /// Its name, e.g. `nbg1`.
    pub name: String,
    /// Its network zone, e.g. `eu-central`.
    pub network_zone: String,
}

/// A datacenter (`GET /datacenters`): which server types can be ordered there now.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Datacenter {
    /// Its name, e.g. `fsn1-dc14`.
    pub name: String,
    /// Its location.
    pub location: Location,
    /// The server types it supports and has available.
    pub server_types: DatacenterTypes,
}

/// Server type ids of a datacenter.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct DatacenterTypes {
    /// Generally offered there (may be out of stock).
    #[serde(default)]
    pub supported: Vec<u64>,
    /// Can be ordered there now.
    #[serde(default)]
    pub available: Vec<u64>,
}

/// A price of a product in one location: the product is offered there.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Price {
    /// The location's name.
    pub location: String,
}

/// A load balancer type (`GET /load_balancer_types`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct LbType {
    /// Its name, e.g. `lb11`.
    pub name: String,
    /// When it is (or was) deprecated (RFC 3339).
    #[serde(default)]
    pub deprecated: Option<String>,
    /// Its price per location.
    #[serde(default)]
    pub prices: Vec<Price>,
}

/// An existing object that declarations may refer to by name or id.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Existing {
    /// Its id.
    pub id: u64,
    /// Its name.
    pub name: String,
}

/// Which lists a plan needs read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Needs {
    /// `GET /server_types`.
    pub server_types: bool,
    /// `GET /images?type=system&type=app`.
    pub images: bool,
    /// Images named by id that are not system or app images (snapshots, backups):
    /// `GET /images/{id}` each.
    pub image_ids: BTreeSet<u64>,
    /// `GET /locations`.
    pub locations: bool,
    /// `GET /datacenters`.
    pub datacenters: bool,
    /// `GET /load_balancer_types`.
    pub lb_types: bool,
    /// `GET /zones`.
    pub zones: bool,
    /// `GET /ssh_keys`.
    pub ssh_keys: bool,
    /// `GET /networks`.
    pub networks: bool,
    /// `GET /firewalls`.
    pub firewalls: bool,
}

/// The lists read for one plan; `None` where the plan did not need the list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Catalog {
    /// Every server type.
    pub server_types: Option<Vec<ServerType>>,
    /// The system and app images, plus images asked for by id.
    pub images: Option<Vec<Image>>,
    /// Every location.
    pub locations: Option<Vec<Location>>,
    /// Every datacenter.
    pub datacenters: Option<Vec<Datacenter>>,
    /// Every load balancer type.
    pub lb_types: Option<Vec<LbType>>,
    /// Every zone.
    pub zones: Option<Vec<Existing>>,
    /// Every SSH key.
    pub ssh_keys: Option<Vec<Existing>>,
    /// Every network.
    pub networks: Option<Vec<Existing>>,
    /// Every firewall.
    pub firewalls: Option<Vec<Existing>>,
}

impl Catalog {
    /// Reads the lists in `needs`, concurrently, each with all its pages.
    pub async fn read(client: &Client, needs: &Needs) -> Result<Catalog, ApiError> {
        let system = [
            ("type".to_string(), "system".to_string()),
            ("type".to_string(), "app".to_string()),
        ];
        let (server_types, images, locations, lb_types) = futures::try_join!(
            list::<ServerType>(client, needs.server_types, "server_types", &[]),
            images(client, needs, &system),
            list::<Location>(client, needs.locations, "locations", &[]),
            list::<LbType>(client, needs.lb_types, "load_balancer_types", &[]),
        )?;
        let (datacenters, zones, ssh_keys, networks, firewalls) = futures::try_join!(
            list::<Datacenter>(client, needs.datacenters, "datacenters", &[]),
            list::<Existing>(client, needs.zones, "zones", &[]),
            list::<Existing>(client, needs.ssh_keys, "ssh_keys", &[]),
            list::<Existing>(client, needs.networks, "networks", &[]),
            list::<Existing>(client, needs.firewalls, "firewalls", &[]),
        )?;
        Ok(Catalog {
            server_types,
            images,
            locations,
            datacenters,
            lb_types,
            zones,
            ssh_keys,
            networks,
            firewalls,
        })
    }
}

/// The system and app images, plus each image asked for by id that is not among them.
async fn images(
    client: &Client,
    needs: &Needs,
    query: &[(String, String)],
) -> Result<Option<Vec<Image>>, ApiError> {
    let Some(mut all) = list::<Image>(client, needs.images, "images", query).await? else {
        return Ok(None);
    };
    let missing: Vec<u64> = needs
        .image_ids
        .iter()
        .copied()
        .filter(|id| !all.iter().any(|i| i.id == *id))
        .collect();
    let found = futures::future::try_join_all(missing.iter().map(|id| async move {
        match client.get(&format!("/images/{id}"), &[]).await {
            Ok(mut v) => serde_json::from_value::<Image>(v["image"].take())
                .map(Some)
                .map_err(|e| ApiError::Transport(format!("unexpected image in the response: {e}"))),
            Err(e) if e.not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }))
    .await?;
    all.extend(found.into_iter().flatten());
    Ok(Some(all))
}

/// Every object of `/{collection}` (all pages), typed; `None` without a request when the
/// plan does not need the list.
async fn list<T: DeserializeOwned>(
    client: &Client,
    needed: bool,
    collection: &str,
    query: &[(String, String)],
) -> Result<Option<Vec<T>>, ApiError> {
    if !needed {
        return Ok(None);
    }
    client
        .list_all(&format!("/{collection}"), collection, query)
        .await?
        .into_iter()
        .map(|v| {
            serde_json::from_value(v).map_err(|e| {
                ApiError::Transport(format!("unexpected object in /{collection}: {e}"))
            })
        })
        .collect::<Result<Vec<T>, _>>()
        .map(Some)
}

/// Seconds since the Unix epoch of an RFC 3339 time (`2026-01-01T00:00:00Z`,
/// `…+01:00`, fractions ignored); `None` if it does not parse.
pub fn unix_time(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> { s.get(r)?.parse().ok() };
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        rest = frac.trim_start_matches(|c: char| c.is_ascii_digit());
    }
    let offset = match rest {
        "Z" | "z" | "" => 0,
        o if o.len() == 6 && (o.starts_with('+') || o.starts_with('-')) => {
            let sign = if o.starts_with('-') { -1 } else { 1 };
            sign * (o.get(1..3)?.parse::<i64>().ok()? * 3600
                + o.get(4..6)?.parse::<i64>().ok()? * 60)
        }
        _ => return None,
    };
    Some(days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + se - offset)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_times_read_as_unix_seconds_with_their_offset() {
        assert_eq!(unix_time("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(unix_time("2023-09-01T00:00:00+00:00"), Some(1_693_526_400));
        assert_eq!(
            unix_time("2023-09-01T02:00:00.123+02:00"),
            Some(1_693_526_400)
        );
        assert_eq!(unix_time("2024-02-29T12:00:00Z"), Some(1_709_208_000));
        assert_eq!(unix_time("yesterday"), None);
    }
}
