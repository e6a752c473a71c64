//! IPv4 CIDR arithmetic of the simulator (a copy of the provider's for now).

use std::net::Ipv4Addr;

/// An IPv4 network `addr/prefix` with the host bits cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr4 {
    /// The network address as a number.
    pub base: u32,
    /// Prefix length, 0..=32.
    pub prefix: u8,
}

impl Cidr4 {
    /// Parses `10.0.0.0/16`; a bare address is a /32. Host bits must be zero when `strict`.
    pub fn parse(s: &str, strict: bool) -> Option<Cidr4> {
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, p.parse::<u8>().ok()?),
            None => (s, 32),
        };
        if p > 32 {
            return None;
        }
        let ip: Ipv4Addr = a.parse().ok()?;
        let n = u32::from(ip);
        let base = n & Self::mask_of(p);
        if strict && base != n {
            return None;
        }
        Some(Cidr4 { base, prefix: p })
    }

    fn mask_of(p: u8) -> u32 {
        if p == 0 { 0 } else { u32::MAX << (32 - p) }
    }

    /// The netmask.
    pub fn mask(&self) -> u32 {
        Self::mask_of(self.prefix)
    }

    /// Number of addresses.
    pub fn size(&self) -> u64 {
        1u64 << (32 - self.prefix as u32)
    }

    /// Whether `ip` lies inside.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == self.base
    }

    /// Whether `other` lies entirely inside.
    pub fn covers(&self, other: &Cidr4) -> bool {
        other.prefix >= self.prefix && other.base & self.mask() == self.base
    }

    /// Whether the two ranges share any address.
    pub fn overlaps(&self, other: &Cidr4) -> bool {
        self.covers(other) || other.covers(self)
    }

    /// The `i`-th address of the range.
    pub fn nth(&self, i: u32) -> Ipv4Addr {
        Ipv4Addr::from(self.base.wrapping_add(i))
    }
}

impl std::fmt::Display for Cidr4 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.base), self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlap_and_containment() {
        let a = Cidr4::parse("10.0.0.0/16", true).unwrap();
        let b = Cidr4::parse("10.0.1.0/24", true).unwrap();
        let c = Cidr4::parse("10.1.0.0/24", true).unwrap();
        assert!(a.overlaps(&b) && b.overlaps(&a));
        assert!(!a.overlaps(&c));
        assert!(a.contains("10.0.255.7".parse().unwrap()));
        assert!(Cidr4::parse("10.0.0.1/16", true).is_none());
        assert!(Cidr4::parse("10.0.0.0/33", false).is_none());
        assert_eq!(b.nth(2).to_string(), "10.0.1.2");
    }
}
