//! The simulator's object model: which REST v2 paths exist, which collection each one
//! serves, and the package's validation rules (required fields, choices, uniqueness).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// A pfSense subsystem with its own dirty flag and apply endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Subsystem {
    /// HAProxy (`/services/haproxy/apply`).
    Haproxy,
    /// Virtual IPs (`/firewall/virtual_ip/apply`).
    VirtualIp,
    /// DNS Resolver (`/services/dns_resolver/apply`).
    DnsResolver,
    /// Firewall aliases and rules (`/firewall/apply`).
    Firewall,
}

/// The top-level collections of the simulated `config.xml`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Collection {
    /// `virtualip/vip`.
    VirtualIps,
    /// `installedpackages/haproxy/ha_pools/item`.
    Backends,
    /// `installedpackages/haproxy/ha_backends/item` (pfSense calls frontends backends).
    Frontends,
    /// `unbound/hosts`.
    HostOverrides,
    /// `aliases/alias`.
    Aliases,
}

/// One REST model: a singular path (GET/POST/PATCH/DELETE by `id`) and its plural form.
#[derive(Debug)]
pub struct Model {
    /// The singular path below `/api/v2`, e.g. `/services/haproxy/backend`.
    pub singular: &'static str,
    /// The plural path below `/api/v2`, e.g. `/services/haproxy/backends`.
    pub plural: &'static str,
    /// The collection holding the objects (the parent's collection for nested models).
    pub collection: Collection,
    /// For nested models: the field of the parent object holding the items.
    pub nested_in: Option<&'static str>,
    /// The subsystem a write marks dirty.
    pub subsystem: Subsystem,
    /// Fields required on create.
    pub required: &'static [&'static str],
    /// Fields whose values must be unique within the collection (or the parent).
    pub unique: &'static [&'static str],
    /// Fields with a fixed set of choices.
    pub choices: &'static [(&'static str, &'static [&'static str])],
    /// Fields stored as strings even when sent as numbers (ports).
    pub stringly: &'static [&'static str],
    /// The values a new object starts with.
    pub defaults: fn() -> Value,
}

const CHECK_TYPES: &[&str] = &[
    "none",
    "Basic",
    "HTTP",
    "LDAP",
    "MySQL",
    "PostgreSQL",
    "Redis",
    "SMTP",
    "ESMTP",
    "SSL",
];
const HTTP_METHODS: &[&str] = &["OPTIONS", "HEAD", "GET", "POST", "PUT", "DELETE", "TRACE"];

/// Every model the simulator serves.
pub static MODELS: &[Model] = &[
    Model {
        singular: "/firewall/virtual_ip",
        plural: "/firewall/virtual_ips",
        collection: Collection::VirtualIps,
        nested_in: None,
        subsystem: Subsystem::VirtualIp,
        required: &["mode", "interface", "subnet", "subnet_bits"],
        unique: &["subnet"],
        choices: &[
            ("mode", &["ipalias", "proxyarp", "carp", "other"]),
            ("type", &["single", "network"]),
        ],
        stringly: &[],
        defaults: || json!({"type": "single", "descr": "", "noexpand": false}),
    },
    Model {
        singular: "/services/haproxy/backend",
        plural: "/services/haproxy/backends",
        collection: Collection::Backends,
        nested_in: None,
        subsystem: Subsystem::Haproxy,
        required: &["name"],
        unique: &["name"],
        choices: &[
            (
                "balance",
                &["", "roundrobin", "static-rr", "leastconn", "source", "uri"],
            ),
            ("check_type", CHECK_TYPES),
            ("httpcheck_method", HTTP_METHODS),
        ],
        stringly: &[],
        defaults: || {
            json!({"servers": [], "balance": "", "connection_timeout": 30000,
                   "server_timeout": 30000, "retries": null, "check_type": "none",
                   "checkinter": null, "httpcheck_method": "OPTIONS", "monitor_uri": "/",
                   "monitor_httpversion": "HTTP/1.0", "advanced": "", "advanced_backend": ""})
        },
    },
    Model {
        singular: "/services/haproxy/backend/server",
        plural: "/services/haproxy/backend/servers",
        collection: Collection::Backends,
        nested_in: Some("servers"),
        subsystem: Subsystem::Haproxy,
        required: &["name", "address", "port"],
        unique: &["name"],
        choices: &[("status", &["active", "backup", "disabled", "inactive"])],
        stringly: &["port"],
        defaults: || {
            json!({"status": "active", "weight": 1, "ssl": false, "sslserververify": false,
                   "advanced": ""})
        },
    },
    Model {
        singular: "/services/haproxy/frontend",
        plural: "/services/haproxy/frontends",
        collection: Collection::Frontends,
        nested_in: None,
        subsystem: Subsystem::Haproxy,
        required: &["name", "type"],
        unique: &["name"],
        choices: &[
            ("type", &["http", "https", "tcp"]),
            ("status", &["active", "disabled"]),
        ],
        stringly: &[],
        defaults: || {
            json!({"descr": "", "status": "active", "a_extaddr": [], "backend_serverpool": "",
                   "client_timeout": 30000, "advanced": "", "advanced_bind": ""})
        },
    },
    Model {
        singular: "/services/haproxy/frontend/address",
        plural: "/services/haproxy/frontend/addresses",
        collection: Collection::Frontends,
        nested_in: Some("a_extaddr"),
        subsystem: Subsystem::Haproxy,
        required: &["extaddr", "extaddr_port"],
        unique: &[],
        choices: &[(
            "extaddr",
            &[
                "custom",
                "any_ipv4",
                "any_ipv6",
                "localhost_ipv4",
                "localhost_ipv6",
            ],
        )],
        stringly: &["extaddr_port"],
        defaults: || json!({"extaddr_ssl": false, "exaddr_advanced": ""}),
    },
    Model {
        singular: "/services/dns_resolver/host_override",
        plural: "/services/dns_resolver/host_overrides",
        collection: Collection::HostOverrides,
        nested_in: None,
        subsystem: Subsystem::DnsResolver,
        required: &["host", "domain", "ip"],
        unique: &[],
        choices: &[],
        stringly: &[],
        defaults: || json!({"descr": "", "aliases": []}),
    },
    Model {
        singular: "/firewall/alias",
        plural: "/firewall/aliases",
        collection: Collection::Aliases,
        nested_in: None,
        subsystem: Subsystem::Firewall,
        required: &["name", "type"],
        unique: &["name"],
        choices: &[("type", &["host", "network", "port"])],
        stringly: &[],
        defaults: || json!({"descr": "", "address": [], "detail": []}),
    },
];

/// Finds the model serving `path` (below `/api/v2`); the flag is true for the plural form.
pub fn model_for(path: &str) -> Option<(&'static Model, bool)> {
    MODELS.iter().find_map(|m| {
        if m.singular == path {
            Some((m, false))
        } else if m.plural == path {
            Some((m, true))
        } else {
            None
        }
    })
}

/// A validation failure with the package's response id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// `FIELD_IS_REQUIRED`, `FIELD_INVALID_CHOICE`, `FIELD_MUST_BE_UNIQUE`, …
    pub response_id: &'static str,
    /// The human message.
    pub message: String,
}

impl Model {
    /// Builds a new object from defaults plus the request body and validates it against
    /// its siblings.
    pub fn create(&self, body: &Map<String, Value>, siblings: &[Value]) -> Result<Value, Invalid> {
        let mut obj = match (self.defaults)() {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        for field in self.required {
            if body.get(*field).is_none_or(is_blank) {
                return Err(Invalid {
                    response_id: "FIELD_IS_REQUIRED",
                    message: format!("Field `{field}` is required."),
                });
            }
        }
        self.merge(&mut obj, body);
        self.check(&obj, siblings, None)?;
        Ok(Value::Object(obj))
    }

    /// Applies a PATCH body to an existing object and validates the result.
    pub fn update(
        &self,
        current: &Value,
        body: &Map<String, Value>,
        siblings: &[Value],
        own_index: usize,
    ) -> Result<Value, Invalid> {
        let mut obj = current.as_object().cloned().unwrap_or_default();
        self.merge(&mut obj, body);
        for field in self.required {
            if obj.get(*field).is_none_or(is_blank) {
                return Err(Invalid {
                    response_id: "FIELD_IS_REQUIRED",
                    message: format!("Field `{field}` is required."),
                });
            }
        }
        self.check(&obj, siblings, Some(own_index))?;
        Ok(Value::Object(obj))
    }

    fn merge(&self, obj: &mut Map<String, Value>, body: &Map<String, Value>) {
        for (k, v) in body {
            if k == "id" || k == "parent_id" || k == "apply" {
                continue;
            }
            let v = match v {
                Value::Number(n) if self.stringly.contains(&k.as_str()) => {
                    Value::String(n.to_string())
                }
                other => other.clone(),
            };
            obj.insert(k.clone(), v);
        }
    }

    fn check(
        &self,
        obj: &Map<String, Value>,
        siblings: &[Value],
        own_index: Option<usize>,
    ) -> Result<(), Invalid> {
        for (field, allowed) in self.choices {
            if let Some(v) = obj.get(*field).filter(|v| !v.is_null()) {
                let s = v.as_str().unwrap_or("");
                if !allowed.contains(&s) {
                    return Err(Invalid {
                        response_id: "FIELD_INVALID_CHOICE",
                        message: format!(
                            "Field `{field}` must be one of [{}], received `{v}`.",
                            allowed.join(", ")
                        ),
                    });
                }
            }
        }
        for field in self.stringly {
            if let Some(v) = obj.get(*field) {
                let ok = v
                    .as_str()
                    .and_then(|s| s.parse::<u16>().ok())
                    .is_some_and(|p| p > 0);
                if !ok {
                    return Err(Invalid {
                        response_id: "PORT_FIELD_INVALID",
                        message: format!(
                            "Field `{field}` must be a valid TCP/UDP port, received `{v}`."
                        ),
                    });
                }
            }
        }
        for field in self.unique {
            let mine = obj.get(*field);
            let clash = siblings
                .iter()
                .enumerate()
                .any(|(i, s)| Some(i) != own_index && s.get(*field) == mine);
            if clash {
                return Err(Invalid {
                    response_id: "FIELD_MUST_BE_UNIQUE",
                    message: format!(
                        "Field `{field}` must be unique, `{}` is already in use.",
                        mine.unwrap_or(&Value::Null)
                    ),
                });
            }
        }
        Ok(())
    }
}

fn is_blank(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn backend_create_requires_name_and_rejects_unknown_check_type() {
        let (m, plural) = model_for("/services/haproxy/backend").unwrap();
        assert!(!plural);
        let e = m.create(&body(json!({})), &[]).unwrap_err();
        assert_eq!(e.response_id, "FIELD_IS_REQUIRED");
        let e = m
            .create(&body(json!({"name": "p", "check_type": "Bogus"})), &[])
            .unwrap_err();
        assert_eq!(e.response_id, "FIELD_INVALID_CHOICE");
    }

    #[test]
    fn duplicate_server_names_are_refused_but_an_object_may_keep_its_own_name() {
        let (m, _) = model_for("/services/haproxy/backend/server").unwrap();
        let a = m
            .create(
                &body(json!({"name": "a", "address": "10.0.0.1", "port": 80})),
                &[],
            )
            .unwrap();
        assert_eq!(a["port"], "80");
        let e = m
            .create(
                &body(json!({"name": "a", "address": "10.0.0.2", "port": "80"})),
                std::slice::from_ref(&a),
            )
            .unwrap_err();
        assert_eq!(e.response_id, "FIELD_MUST_BE_UNIQUE");
        assert!(
            m.update(&a, &body(json!({"weight": 2})), std::slice::from_ref(&a), 0)
                .is_ok()
        );
        let e = m
            .update(&a, &body(json!({"port": "0"})), std::slice::from_ref(&a), 0)
            .unwrap_err();
        assert_eq!(e.response_id, "PORT_FIELD_INVALID");
    }
}
