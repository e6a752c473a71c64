//! The one dialer every data-plane connection goes through (gates, probes). In simulator
//! mode it maps configured address ranges into 127.0.0.0/8 (10.0.20.99 → 127.0.20.99) and
//! refuses anything that is not loopback, before any packet is sent. A port map moves single
//! declared `address:port` pairs to where a simulator really listens (a simulated host's
//! `10.0.20.110:22` → its sshd on `127.0.20.110:40123`).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::str::FromStr;

use tokio::net::TcpStream;

/// Environment variable holding the address map, e.g. `10.0.0.0/8=127.0.0.0/8`.
pub const ADDR_MAP_ENV: &str = "CAIRN_ADDR_MAP";
/// Environment variable holding the port map, e.g. `10.0.20.110:22=127.0.20.110:40123`.
pub const PORT_MAP_ENV: &str = "CAIRN_PORT_MAP";
/// Environment variable that, when `1`, makes the dialer refuse every non-loopback address.
pub const LOOPBACK_ONLY_ENV: &str = "CAIRN_LOOPBACK_ONLY";

/// One mapping of an IPv4 network onto another of the same prefix length; host bits kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetMapping {
    from: Ipv4Addr,
    to: Ipv4Addr,
    prefix: u8,
}

impl NetMapping {
    fn mask(&self) -> u32 {
        if self.prefix == 0 {
            0
        } else {
            u32::MAX << (32 - self.prefix)
        }
    }

    fn apply(&self, ip: Ipv4Addr) -> Option<Ipv4Addr> {
        let m = self.mask();
        (u32::from(ip) & m == u32::from(self.from) & m)
            .then(|| Ipv4Addr::from((u32::from(self.to) & m) | (u32::from(ip) & !m)))
    }
}

/// Address ranges mapped into loopback: the first mapping that contains an address wins.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddrMap(Vec<NetMapping>);

/// A malformed address map.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid address map entry {entry:?}: {reason}")]
pub struct AddrMapError {
    entry: String,
    reason: &'static str,
}

impl FromStr for AddrMap {
    type Err = AddrMapError;

    /// Parses `FROM/LEN=TO/LEN[,…]`, e.g. `10.0.0.0/8=127.0.0.0/8`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = Vec::new();
        for entry in s.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let err = |reason| AddrMapError {
                entry: entry.to_string(),
                reason,
            };
            let (from, to) = entry
                .split_once('=')
                .ok_or(err("expected FROM/LEN=TO/LEN"))?;
            let (from, from_len) = parse_cidr(from).ok_or(err("FROM is not an IPv4 CIDR"))?;
            let (to, to_len) = parse_cidr(to).ok_or(err("TO is not an IPv4 CIDR"))?;
            if from_len != to_len {
                return Err(err("FROM and TO must have the same prefix length"));
            }
            if !to.is_loopback() || to_len < 8 {
                return Err(err("TO must lie inside 127.0.0.0/8"));
            }
            out.push(NetMapping {
                from,
                to,
                prefix: from_len,
            });
        }
        Ok(AddrMap(out))
    }
}

impl fmt::Display for AddrMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<_> = self
            .0
            .iter()
            .map(|m| format!("{}/{}={}/{}", m.from, m.prefix, m.to, m.prefix))
            .collect();
        f.write_str(&parts.join(","))
    }
}

fn parse_cidr(s: &str) -> Option<(Ipv4Addr, u8)> {
    let (ip, len) = s.trim().split_once('/')?;
    let len: u8 = len.parse().ok()?;
    (len <= 32).then_some(())?;
    Some((ip.parse().ok()?, len))
}

impl AddrMap {
    /// Maps an address; addresses outside every range are returned unchanged.
    pub fn map(&self, ip: IpAddr) -> IpAddr {
        match ip {
            IpAddr::V4(v4) => self
                .0
                .iter()
                .find_map(|m| m.apply(v4))
                .map_or(ip, IpAddr::V4),
            IpAddr::V6(_) => ip,
        }
    }
}

/// Declared `IPv4:port` pairs reached at another address: a simulator that cannot listen on
/// the declared port (an sshd for `10.0.20.110:22` on a free port of 127.0.20.110) lists its
/// endpoints here. Applied before the address map; targets must be loopback.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortMap(Vec<(std::net::SocketAddrV4, SocketAddr)>);

/// A malformed port map.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid port map entry {entry:?}: expected DECLARED_IPV4:PORT=LOOPBACK_IPV4:PORT")]
pub struct PortMapError {
    entry: String,
}

impl PortMap {
    /// Adds (or replaces) the target of `declared`.
    pub fn insert(&mut self, declared: std::net::SocketAddrV4, target: SocketAddr) {
        self.0.retain(|(d, _)| *d != declared);
        self.0.push((declared, target));
    }

    /// Where `declared` is really reached, if it was moved.
    pub fn get(&self, declared: std::net::SocketAddrV4) -> Option<SocketAddr> {
        self.0.iter().find(|(d, _)| *d == declared).map(|(_, t)| *t)
    }

    /// Whether no port is moved.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl FromStr for PortMap {
    type Err = PortMapError;

    /// Parses `DECLARED:PORT=TARGET:PORT[,…]`; every target must be loopback.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = PortMap::default();
        for entry in s.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let err = || PortMapError {
                entry: entry.to_string(),
            };
            let (from, to) = entry.split_once('=').ok_or_else(err)?;
            let from: std::net::SocketAddrV4 = from.trim().parse().map_err(|_| err())?;
            let to: SocketAddr = to.trim().parse().map_err(|_| err())?;
            if !to.ip().is_loopback() {
                return Err(err());
            }
            out.insert(from, to);
        }
        Ok(out)
    }
}

impl fmt::Display for PortMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(|(d, t)| format!("{d}={t}")).collect();
        f.write_str(&parts.join(","))
    }
}

/// Why a connection was not made.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    /// The (mapped) address is outside loopback and loopback-only mode is on.
    #[error(
        "refused to connect to {target}: not a loopback address (simulator mode allows only 127.0.0.0/8; map the range with {ADDR_MAP_ENV})"
    )]
    NotLoopback {
        /// What was asked for.
        target: String,
    },
    /// A host name other than `localhost` in loopback-only mode (resolving it would send packets).
    #[error("refused to resolve host name {0:?} in loopback-only mode")]
    HostName(String),
    /// The connection failed.
    #[error("connect to {target}: {source}")]
    Io {
        /// Where to.
        target: String,
        /// The OS error.
        source: std::io::Error,
    },
}

/// The dialer: maps addresses and enforces loopback-only mode.
#[derive(Debug, Clone, Default)]
pub struct Dialer {
    map: AddrMap,
    ports: PortMap,
    loopback_only: bool,
}

impl Dialer {
    /// A dialer with an explicit map and mode.
    pub fn new(map: AddrMap, loopback_only: bool) -> Self {
        Dialer {
            map,
            ports: PortMap::default(),
            loopback_only,
        }
    }

    /// The same dialer with `ports` moved (see [`PortMap`]).
    pub fn with_ports(mut self, ports: PortMap) -> Self {
        self.ports = ports;
        self
    }

    /// The port map.
    pub fn ports(&self) -> &PortMap {
        &self.ports
    }

    /// A dialer configured from `CAIRN_ADDR_MAP` and `CAIRN_LOOPBACK_ONLY`.
    pub fn from_env() -> Result<Self, AddrMapError> {
        let map = std::env::var(ADDR_MAP_ENV)
            .ok()
            .map(|s| s.parse())
            .transpose()?
            .unwrap_or_default();
        let loopback_only = std::env::var(LOOPBACK_ONLY_ENV).is_ok_and(|v| v == "1");
        let ports = match std::env::var(PORT_MAP_ENV) {
            Ok(s) => s.parse().map_err(|_| AddrMapError {
                entry: s,
                reason: "CAIRN_PORT_MAP entries are DECLARED_IPV4:PORT=LOOPBACK_IPV4:PORT",
            })?,
            Err(_) => PortMap::default(),
        };
        Ok(Dialer {
            map,
            ports,
            loopback_only,
        })
    }

    /// Whether non-loopback addresses are refused.
    pub fn loopback_only(&self) -> bool {
        self.loopback_only
    }

    /// The address map.
    pub fn map(&self) -> &AddrMap {
        &self.map
    }

    /// Resolves `host:port` to the socket address that would be dialled, applying the port
    /// map, the address map and the loopback rule. Never touches the network.
    pub fn resolve(&self, host: &str, port: u16) -> Result<SocketAddr, DialError> {
        if let Ok(ip) = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<Ipv4Addr>()
            && let Some(target) = self.ports.get(std::net::SocketAddrV4::new(ip, port))
        {
            return Ok(target);
        }
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let ip = if host.eq_ignore_ascii_case("localhost") {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        } else {
            match host.parse::<IpAddr>() {
                Ok(ip) => ip,
                Err(_) if self.loopback_only => return Err(DialError::HostName(host.into())),
                Err(_) => {
                    return std::net::ToSocketAddrs::to_socket_addrs(&(host, port))
                        .map_err(|source| DialError::Io {
                            target: format!("{host}:{port}"),
                            source,
                        })?
                        .next()
                        .ok_or_else(|| DialError::Io {
                            target: format!("{host}:{port}"),
                            source: std::io::Error::other("no address"),
                        });
                }
            }
        };
        let mapped = self.map.map(ip);
        if self.loopback_only && !mapped.is_loopback() {
            return Err(DialError::NotLoopback {
                target: format!("{host}:{port}"),
            });
        }
        Ok(SocketAddr::new(mapped, port))
    }

    /// Opens a TCP connection to `host:port` through the map and the loopback rule.
    pub async fn connect(&self, host: &str, port: u16) -> Result<TcpStream, DialError> {
        let addr = self.resolve(host, port)?;
        TcpStream::connect(addr)
            .await
            .map_err(|source| DialError::Io {
                target: format!("{host}:{port} (dialled {addr})"),
                source,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_addresses_map_into_loopback_keeping_host_bits() {
        let map: AddrMap = "10.0.0.0/8=127.0.0.0/8".parse().unwrap();
        assert_eq!(
            map.map("10.0.20.99".parse().unwrap()),
            "127.0.20.99".parse::<IpAddr>().unwrap()
        );
        assert_eq!(map.to_string(), "10.0.0.0/8=127.0.0.0/8");
    }

    #[test]
    fn loopback_only_dialer_refuses_unmapped_addresses_without_connecting() {
        let d = Dialer::new("10.0.0.0/8=127.0.0.0/8".parse().unwrap(), true);
        assert!(matches!(
            d.resolve("192.168.1.1", 443),
            Err(DialError::NotLoopback { .. })
        ));
        assert!(matches!(
            d.resolve("example.com", 443),
            Err(DialError::HostName(_))
        ));
        assert_eq!(
            d.resolve("10.0.20.99", 6443).unwrap(),
            "127.0.20.99:6443".parse().unwrap()
        );
    }

    #[test]
    fn a_moved_port_is_dialled_where_it_really_listens_and_others_are_only_mapped() {
        let ports: PortMap = "10.0.20.110:22=127.0.20.110:40123".parse().unwrap();
        assert_eq!(ports.to_string(), "10.0.20.110:22=127.0.20.110:40123");
        let d = Dialer::new("10.0.0.0/8=127.0.0.0/8".parse().unwrap(), true).with_ports(ports);
        assert_eq!(
            d.resolve("10.0.20.110", 22).unwrap(),
            "127.0.20.110:40123".parse().unwrap()
        );
        assert_eq!(
            d.resolve("10.0.20.110", 6443).unwrap(),
            "127.0.20.110:6443".parse().unwrap()
        );
        assert_eq!(
            d.resolve("10.0.20.111", 22).unwrap(),
            "127.0.20.111:22".parse().unwrap()
        );
        assert!("10.0.20.110:22=192.168.1.1:22".parse::<PortMap>().is_err());
        assert!("10.0.20.110=127.0.0.1:22".parse::<PortMap>().is_err());
    }

    #[test]
    fn maps_outside_loopback_are_rejected() {
        assert!("10.0.0.0/8=192.168.0.0/8".parse::<AddrMap>().is_err());
        assert!("10.0.0.0/8=127.0.0.0/16".parse::<AddrMap>().is_err());
    }
}
