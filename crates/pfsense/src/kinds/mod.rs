//! The pfSense resource kinds, one file each (spec, observed form, API types, and the
//! [`cairn_core::kit::Kind`] handler), their typed [`values`], and the ownership marker
//! kept in `descr` (or, for HAProxy backends, which have no description, as a comment line
//! in `advanced_backend`).

pub(crate) mod single;
pub mod values;

pub use values::{
    AliasType, Balance, CheckType, FrontendMode, FrontendStatus, HttpMethod, LiveStatus,
    ServerStatus, VipMode,
};

cairn_core::kinds! {
    context: PfCtx;
    pub mod vip::VirtualIps => { VirtualIp, VirtualIpObserved, VirtualIpRefs, VirtualIps };
    pub mod backend::HaproxyBackends => {
        BackendServer, HaproxyBackend, HaproxyBackendObserved, HaproxyBackendRefs, HaproxyBackends,
    };
    pub mod frontend::HaproxyFrontends => {
        FrontendAddress, HaproxyFrontend, HaproxyFrontendObserved, HaproxyFrontendRefs,
        HaproxyFrontends,
    };
    pub mod host_override::DnsHostOverrides => {
        DnsHostOverride, DnsHostOverrideObserved, DnsHostOverrides,
    };
    pub mod alias::FirewallAliases => { FirewallAlias, FirewallAliases };
    pub mod pool_member::HaproxyPoolMembers => {
        HaproxyPoolMember, HaproxyPoolMemberObserved, HaproxyPoolMembers,
    };
}

use cairn_core::kit::{Found, Query};
use cairn_core::{Marker, Origin};

use crate::context::{PfCtx, PfError};

/// The objects a query asks for: declared keys, and everything carrying the stack's marker.
pub(crate) fn wanted<O>(found: Vec<Found<O>>, q: Query<'_>) -> Vec<Found<O>> {
    found
        .into_iter()
        .filter(|f| {
            q.keys.contains(&f.key) || f.marker.as_ref().is_some_and(|m| m.stack == q.stack)
        })
        .collect()
}

/// The object with `key` out of a list made right after writing it.
pub(crate) fn written<O>(found: Vec<Found<O>>, kind: &str, key: &str) -> Result<O, PfError> {
    found
        .into_iter()
        .find(|f| f.key == key)
        .map(|f| f.value)
        .ok_or_else(|| PfError::failed(format!("{kind} {key} not found after the write")))
}

/// The provider name of every kind here.
pub const PROVIDER: &str = "pfsense";

const OPEN: &str = "[cairn stack=";

/// Appends the marker to a description: `web VIP [cairn stack=homelab fp=1a2b origin=created]`.
pub fn descr_with_marker(descr: &str, marker: &Marker) -> String {
    let tag = format!(
        "{OPEN}{}{} origin={}]",
        marker.stack,
        marker
            .fingerprint
            .as_deref()
            .map(|f| format!(" fp={f}"))
            .unwrap_or_default(),
        marker.origin.as_str()
    );
    if descr.is_empty() {
        tag
    } else {
        format!("{descr} {tag}")
    }
}

/// Splits a description into the user's text and the marker, if there is one.
pub fn split_marker(descr: &str) -> (String, Option<Marker>) {
    let Some(start) = descr.rfind(OPEN) else {
        return (descr.to_string(), None);
    };
    let Some(inner) = descr[start + OPEN.len()..].strip_suffix(']') else {
        return (descr.to_string(), None);
    };
    let mut parts = inner.split_whitespace();
    let stack = parts.next().unwrap_or("").to_string();
    let rest: Vec<&str> = parts.collect();
    let field = |name: &str| rest.iter().find_map(|p| p.strip_prefix(name));
    let mut marker = Marker::adopted(stack, field("fp=").map(str::to_string));
    // A marker without `origin=` predates it: adopted, so at worst released, never deleted.
    marker.origin = field("origin=").map_or(Origin::Adopted, Origin::parse);
    (descr[..start].trim_end().to_string(), Some(marker))
}

/// The comment line in `advanced_backend` saying the pool's servers are managed as
/// `pfsense_haproxy_pool_member` resources (written while the backend's `servers` is
/// `None`): only such pools report their undeclared servers as owned members.
pub const MEMBERS_COMMENT: &str = "# cairn: servers are managed as pool members";

/// The comment line in `advanced_backend` naming the servers cairn added or adopted as pool
/// members. Only those are owned: a server added by hand to a members-mode pool (during an
/// incident, say) is never drained or deleted by cairn.
pub const OWNED_MEMBERS_PREFIX: &str = "# cairn: members owned:";

/// The servers of a pool that cairn owns as members, read from `advanced_backend`.
pub fn owned_members(advanced: &str) -> Vec<String> {
    advanced
        .lines()
        .find_map(|l| l.trim().strip_prefix(OWNED_MEMBERS_PREFIX))
        .map(|names| names.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default()
}

/// `advanced_backend` with the owned-members line set to `names` (removed when empty).
pub fn with_owned_members(advanced: &str, names: &[String]) -> String {
    let mut lines: Vec<&str> = advanced
        .lines()
        .filter(|l| !l.trim().starts_with(OWNED_MEMBERS_PREFIX))
        .collect();
    let line = format!("{OWNED_MEMBERS_PREFIX} {}", names.join(" "));
    if !names.is_empty() {
        lines.push(&line);
    }
    lines.join("\n")
}

/// The marker as a comment line for `advanced_backend`.
pub fn marker_comment(marker: &Marker) -> String {
    format!("# {}", descr_with_marker("", marker))
}

/// Reads the marker out of `advanced_backend` and returns the remaining lines (without the
/// marker, the [`MEMBERS_COMMENT`] and the owned-members line).
pub fn split_marker_comment(advanced: &str) -> (String, Option<Marker>) {
    let mut marker = None;
    let mut rest = Vec::new();
    for line in advanced.lines() {
        if line.trim() == MEMBERS_COMMENT || line.trim().starts_with(OWNED_MEMBERS_PREFIX) {
            continue;
        }
        match line.trim().strip_prefix("# ").map(split_marker) {
            Some((text, Some(m))) if text.is_empty() => marker = Some(m),
            _ => rest.push(line),
        }
    }
    (rest.join("\n"), marker)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owned_members_round_trip_and_stay_out_of_the_user_text() {
        let adv = "option tcplog\n# [cairn stack=s origin=created]";
        let with = with_owned_members(adv, &["a".into(), "b".into()]);
        assert_eq!(owned_members(&with), ["a", "b"]);
        assert_eq!(split_marker_comment(&with).0, "option tcplog");
        assert_eq!(with_owned_members(&with, &[]), adv);
    }

    #[test]
    fn marker_round_trips_through_descr_and_comment() {
        let m = Marker::created("homelab-ha", Some("ab12".into()));
        let d = descr_with_marker("k8s VIP", &m);
        assert_eq!(d, "k8s VIP [cairn stack=homelab-ha fp=ab12 origin=created]");
        assert_eq!(split_marker(&d), ("k8s VIP".to_string(), Some(m.clone())));
        assert_eq!(split_marker("hand made"), ("hand made".to_string(), None));
        let adv = format!("option tcplog\n{}", marker_comment(&m));
        assert_eq!(
            split_marker_comment(&adv),
            ("option tcplog".to_string(), Some(m))
        );
    }
}
