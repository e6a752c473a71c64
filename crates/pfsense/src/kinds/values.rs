//! Typed values of the pfSense API where the package knows a closed set of choices (check
//! types, balance algorithms, server and frontend statuses, VIP modes, alias types), each
//! serialised with the API's own spelling so specs, observed values and plans read as before.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Declares a unit-only enum with the API's spelling of every variant (for serde, `Display`
/// and [`ALL`](CheckType::ALL)).
macro_rules! api_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $v:ident = $s:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vm])* #[serde(rename = $s)] $v),+
        }

        impl $name {
            /// Every value, in the API's order.
            pub const ALL: &'static [$name] = &[$($name::$v),+];

            /// The API's spelling.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$v => $s),+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

api_enum! {
    /// A backend's health check (`check_type`).
    CheckType {
        /// No check: servers take traffic as soon as they are in the config.
        None = "none",
        /// TCP connect.
        Basic = "Basic",
        /// HTTP request (`httpcheck_method` + `monitor_uri`); with `check-ssl` in `advanced`
        /// it runs over TLS.
        Http = "HTTP",
        /// LDAP bind.
        Ldap = "LDAP",
        /// MySQL handshake.
        MySql = "MySQL",
        /// PostgreSQL handshake.
        PostgreSql = "PostgreSQL",
        /// Redis `PING`.
        Redis = "Redis",
        /// SMTP `HELO`.
        Smtp = "SMTP",
        /// ESMTP `EHLO`.
        Esmtp = "ESMTP",
        /// TLS hello.
        Ssl = "SSL",
    }
}

impl CheckType {
    /// Whether servers are health-checked (so additions can be gated on their check).
    pub fn checks(self) -> bool {
        self != CheckType::None
    }
}

api_enum! {
    /// A backend's load-balancing algorithm (`balance`).
    Balance {
        /// HAProxy's default (the package writes no `balance` line).
        Default = "",
        /// Round robin, weighted.
        RoundRobin = "roundrobin",
        /// Static round robin.
        StaticRr = "static-rr",
        /// Fewest connections.
        LeastConn = "leastconn",
        /// Source address hash.
        Source = "source",
        /// URI hash.
        Uri = "uri",
    }
}

api_enum! {
    /// The method of an HTTP health check (`httpcheck_method`).
    HttpMethod {
        /// `OPTIONS` (the package's default).
        Options = "OPTIONS",
        /// `HEAD`.
        Head = "HEAD",
        /// `GET`.
        Get = "GET",
        /// `POST`.
        Post = "POST",
        /// `PUT`.
        Put = "PUT",
        /// `DELETE`.
        Delete = "DELETE",
        /// `TRACE`.
        Trace = "TRACE",
    }
}

api_enum! {
    /// A pool server's configured status (`status`).
    ServerStatus {
        /// Takes traffic.
        Active = "active",
        /// Takes traffic only when no active server is up.
        Backup = "backup",
        /// In the config, in maintenance (health checks do not run).
        Disabled = "disabled",
        /// In the package's config but not rendered into HAProxy's.
        Inactive = "inactive",
    }
}

impl ServerStatus {
    /// Whether a server with this status takes traffic.
    pub fn serving(self) -> bool {
        matches!(self, ServerStatus::Active | ServerStatus::Backup)
    }
}

api_enum! {
    /// A pool server's status as observed: the configured status, or the running HAProxy's
    /// `drain`/`maint` for a server that is active in the config but taken out of traffic at
    /// runtime (e.g. by an interrupted apply), so the diff shows it.
    LiveStatus {
        /// Active in the config and in the running HAProxy.
        Active = "active",
        /// Backup.
        Backup = "backup",
        /// Disabled in the config.
        Disabled = "disabled",
        /// Inactive in the config.
        Inactive = "inactive",
        /// Active in the config, drained at runtime (no new connections; checks run).
        Drain = "drain",
        /// Active in the config, in maintenance at runtime.
        Maint = "maint",
    }
}

impl LiveStatus {
    /// Whether the server takes traffic now.
    pub fn serving(self) -> bool {
        matches!(self, LiveStatus::Active | LiveStatus::Backup)
    }

    /// The status the config holds (`drain`/`maint` are runtime states of an active server).
    pub fn configured(self) -> ServerStatus {
        match self {
            LiveStatus::Active | LiveStatus::Drain | LiveStatus::Maint => ServerStatus::Active,
            LiveStatus::Backup => ServerStatus::Backup,
            LiveStatus::Disabled => ServerStatus::Disabled,
            LiveStatus::Inactive => ServerStatus::Inactive,
        }
    }
}

impl From<ServerStatus> for LiveStatus {
    fn from(s: ServerStatus) -> Self {
        match s {
            ServerStatus::Active => LiveStatus::Active,
            ServerStatus::Backup => LiveStatus::Backup,
            ServerStatus::Disabled => LiveStatus::Disabled,
            ServerStatus::Inactive => LiveStatus::Inactive,
        }
    }
}

api_enum! {
    /// A frontend's status.
    FrontendStatus {
        /// Listening.
        Active = "active",
        /// Not rendered.
        Disabled = "disabled",
    }
}

api_enum! {
    /// A frontend's mode (`type`).
    FrontendMode {
        /// TCP passthrough.
        Tcp = "tcp",
        /// HTTP.
        Http = "http",
        /// HTTPS with TLS offloading.
        Https = "https",
    }
}

api_enum! {
    /// A virtual IP's mode.
    VipMode {
        /// An IP alias on the interface.
        IpAlias = "ipalias",
        /// A CARP address (needs `vhid` and `password`).
        Carp = "carp",
        /// Proxy ARP.
        ProxyArp = "proxyarp",
        /// Routed to the firewall without ARP.
        Other = "other",
    }
}

api_enum! {
    /// A firewall alias's type.
    AliasType {
        /// IP addresses or FQDNs.
        Host = "host",
        /// CIDR networks.
        Network = "network",
        /// Ports or port ranges (`a:b`).
        Port = "port",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_serialise_with_the_api_spelling() {
        let spelled = |v: serde_json::Value| v.as_str().unwrap().to_string();
        for c in CheckType::ALL {
            assert_eq!(spelled(serde_json::to_value(c).unwrap()), c.as_str());
        }
        assert_eq!(spelled(serde_json::json!(Balance::Default)), "");
        assert_eq!(spelled(serde_json::json!(Balance::StaticRr)), "static-rr");
        assert_eq!(spelled(serde_json::json!(VipMode::IpAlias)), "ipalias");
        assert_eq!(spelled(serde_json::json!(LiveStatus::Maint)), "maint");
        let back: CheckType = serde_json::from_str("\"HTTP\"").unwrap();
        assert_eq!(back, CheckType::Http);
        assert!(serde_json::from_str::<CheckType>("\"Telepathy\"").is_err());
    }
}
