//! IPv4 ranges as the simulator checks them: its own code, written apart from the provider's
//! validation so a parsing bug on one side shows up as a disagreement in tests.
//!
//! A range is kept as its first address and its length and reasoned about as an interval
//! `[first, last]`, not with netmasks.

use std::net::Ipv4Addr;

/// An IPv4 range `a.b.c.d/len` whose first address is aligned to its size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr4 {
    /// The first address, as a number.
    pub base: u32,
    /// The prefix length, 0..=32.
    pub prefix: u8,
}

impl Cidr4 {
    /// Reads `10.0.0.0/16` (a bare address is a /32). With `strict`, the address must be the
    /// first of its range (`10.0.0.1/16` is refused); otherwise it is rounded down.
    pub fn parse(text: &str, strict: bool) -> Option<Cidr4> {
        let (addr, len) = match text.split_once('/') {
            None => (text, 32u8),
            Some((a, l)) => {
                if l.is_empty() || l.len() > 2 || !l.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                (a, l.parse().ok()?)
            }
        };
        if len > 32 {
            return None;
        }
        let ip = u32::from(addr.parse::<Ipv4Addr>().ok()?);
        let size = 1u64 << (32 - u32::from(len));
        let first = (u64::from(ip) / size * size) as u32;
        if strict && first != ip {
            return None;
        }
        Some(Cidr4 {
            base: first,
            prefix: len,
        })
    }

    /// How many addresses the range holds.
    pub fn size(&self) -> u64 {
        1u64 << (32 - u32::from(self.prefix))
    }

    /// The last address, as a number.
    fn last(&self) -> u32 {
        (u64::from(self.base) + self.size() - 1) as u32
    }

    /// Whether `ip` is in the range.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        (self.base..=self.last()).contains(&u32::from(ip))
    }

    /// Whether all of `other` is in the range.
    pub fn covers(&self, other: &Cidr4) -> bool {
        self.base <= other.base && other.last() <= self.last()
    }

    /// Whether the two ranges have an address in common.
    pub fn overlaps(&self, other: &Cidr4) -> bool {
        self.base <= other.last() && other.base <= self.last()
    }

    /// The address `i` places after the first.
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

    fn c(s: &str) -> Cidr4 {
        Cidr4::parse(s, true).unwrap()
    }

    #[test]
    fn ranges_parse_strictly_or_round_down() {
        assert_eq!(c("10.0.0.0/16").to_string(), "10.0.0.0/16");
        assert_eq!(c("10.0.0.7").size(), 1);
        assert_eq!(c("0.0.0.0/0").size(), 1 << 32);
        assert!(Cidr4::parse("10.0.0.1/16", true).is_none());
        assert_eq!(
            Cidr4::parse("10.0.0.1/16", false).unwrap().to_string(),
            "10.0.0.0/16"
        );
        for bad in ["10.0.0.0/33", "10.0.0.0/", "10.0.0.0/+8", "10.0.0/8", "x/8"] {
            assert!(Cidr4::parse(bad, false).is_none(), "{bad}");
        }
    }

    #[test]
    fn containment_and_overlap_are_interval_checks() {
        let (a, b, d) = (c("10.0.0.0/16"), c("10.0.1.0/24"), c("10.1.0.0/24"));
        assert!(a.covers(&b) && !b.covers(&a));
        assert!(a.overlaps(&b) && b.overlaps(&a));
        assert!(!a.overlaps(&d) && !d.overlaps(&a));
        assert!(a.contains("10.0.255.255".parse().unwrap()));
        assert!(!a.contains("10.1.0.0".parse().unwrap()));
        assert!(c("255.255.255.0/24").contains("255.255.255.255".parse().unwrap()));
        assert_eq!(b.nth(2).to_string(), "10.0.1.2");
    }
}
