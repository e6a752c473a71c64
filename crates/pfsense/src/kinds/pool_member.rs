//! `pfsense_haproxy_pool_member`: one server of a HAProxy backend pool as a graph node of
//! its own, keyed `<pool>/<server name>`, so a stack can add servers one at a time, each
//! behind its own readiness gate (the opt-in alternative to the backend's inline
//! `servers`). A member has no marker of its own: it belongs to whoever owns its backend.

use std::net::Ipv4Addr;

use cairn_core::{Field, FieldError, Resource, Schema};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::backend::STATUSES;

/// The highest server weight HAProxy accepts.
const MAX_WEIGHT: u32 = 256;

/// One server of a HAProxy backend pool, managed on its own.
///
/// The pool's servers must be managed elsewhere: declare the backend with
/// `servers: None` ([`super::HaproxyBackend::servers_managed_as_members`]). A pool that
/// declares inline servers and also has members is refused at plan time.
///
/// Reference the pool through its handle (`pool.name()`, [`super::HaproxyBackendRefs`])
/// so the member is created after the pool; the backend must then be added to the stack
/// under its pool name (`s.add("apiserver_nodes", HaproxyBackend { name:
/// "apiserver_nodes", … })`), because the member's key is derived from that address.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HaproxyPoolMember {
    /// The pool (backend) name: a reference to the backend's name, or a literal.
    pub pool: Field<String>,
    /// The server's name, unique within the pool.
    pub name: String,
    /// Its address (may reference another resource's IP).
    pub address: Field<Ipv4Addr>,
    /// Its port.
    pub port: u16,
    /// Load-balancing weight (0–256), changed in place.
    #[serde(default = "one")]
    pub weight: u32,
    /// TLS towards the server (not needed for TCP passthrough).
    #[serde(default)]
    pub ssl: bool,
    /// `active` (default) or `backup`; `disabled`/`inactive` take it out of rotation.
    /// Changed in place.
    #[serde(default = "active")]
    pub status: String,
}

fn one() -> u32 {
    1
}
fn active() -> String {
    "active".into()
}

impl HaproxyPoolMember {
    /// An active member with weight 1 of `pool` (`pool_handle.name()` or a literal name).
    pub fn new(
        pool: impl Into<Field<String>>,
        name: &str,
        address: impl Into<Field<Ipv4Addr>>,
        port: u16,
    ) -> Self {
        HaproxyPoolMember {
            pool: pool.into(),
            name: name.into(),
            address: address.into(),
            port,
            weight: 1,
            ssl: false,
            status: "active".into(),
        }
    }

    /// The pool name the key uses: the literal, or the name part of the referenced
    /// backend's stack address.
    pub fn pool_name(&self) -> String {
        match &self.pool {
            Field::Known(p) => p.clone(),
            Field::Ref(r) => r.raw().address.name().to_string(),
        }
    }
}

impl Resource for HaproxyPoolMember {
    const KIND: &'static str = "pfsense_haproxy_pool_member";
    const PROVIDER: &'static str = super::PROVIDER;

    fn key(&self) -> String {
        format!("{}/{}", self.pool_name(), self.name)
    }

    fn schema() -> Schema {
        Schema {
            // A new pool or name is another object (the key changes with them).
            replace: &["pool", "name"],
            ..Schema::default()
        }
    }

    fn validate(&self) -> Vec<FieldError> {
        let mut errs = Vec::new();
        if self.name.is_empty() || self.name.contains(|c: char| c.is_whitespace() || c == '/') {
            errs.push(FieldError::new(
                "name",
                "must be a non-empty server name without spaces or `/`",
            ));
        }
        if let Field::Known(p) = &self.pool
            && (p.is_empty() || p.contains(|c: char| c.is_whitespace() || c == '/'))
        {
            errs.push(FieldError::new(
                "pool",
                "must be a non-empty pool name without spaces or `/`",
            ));
        }
        if self.port == 0 {
            errs.push(FieldError::new(
                "port",
                format!("server {:?}: port must be between 1 and 65535", self.name),
            ));
        }
        if self.weight > MAX_WEIGHT {
            errs.push(FieldError::new(
                "weight",
                format!("must be between 0 and {MAX_WEIGHT}"),
            ));
        }
        if !STATUSES.contains(&self.status.as_str()) {
            errs.push(FieldError::new(
                "status",
                format!(
                    "unknown status {:?}: expected active, backup, disabled or inactive",
                    self.status
                ),
            ));
        }
        errs
    }
}

/// One observed server (spec shape of the backend's `servers` items) → member value.
pub(crate) fn from_server(pool: &str, server: &Value) -> (String, Value) {
    let name = server["name"].as_str().unwrap_or("");
    (
        format!("{pool}/{name}"),
        json!({
            "pool": pool, "name": name, "address": server["address"], "port": server["port"],
            "weight": server["weight"], "ssl": server["ssl"], "status": server["status"],
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_core::{Address, AttrRef};

    #[test]
    fn key_comes_from_the_literal_or_the_referenced_pool_and_validation_names_fields() {
        let m = HaproxyPoolMember::new("apiserver_nodes", "k8s-master", Ipv4Addr::LOCALHOST, 6443);
        assert_eq!(m.key(), "apiserver_nodes/k8s-master");
        let r: AttrRef<String> =
            AttrRef::new(Address::new("pfsense_haproxy_backend", "pool"), "name");
        let mut bad = HaproxyPoolMember::new(r, "", Ipv4Addr::LOCALHOST, 0);
        assert_eq!(bad.key(), "pool/");
        bad.status = "sideways".into();
        let fields: Vec<String> = bad.validate().into_iter().map(|e| e.field).collect();
        assert_eq!(fields, ["name", "port", "status"]);
    }
}
