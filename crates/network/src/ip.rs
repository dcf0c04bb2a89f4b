//! Addresses and prefixes, IPv4 and IPv6 alike: an address is a `u128` with its version, so
//! the arithmetic IPAM needs (contains, first/last, next) is one piece of code for both.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Addr {
    pub version: u8,
    pub bits: u128,
}

impl Addr {
    pub fn parse(s: &str) -> Option<Addr> {
        match IpAddr::from_str(s.trim()).ok()? {
            IpAddr::V4(a) => Some(Addr { version: 4, bits: u32::from(a) as u128 }),
            IpAddr::V6(a) => Some(Addr { version: 6, bits: u128::from(a) }),
        }
    }
    pub fn width(self) -> u8 {
        if self.version == 4 {
            32
        } else {
            128
        }
    }
    pub fn offset(self, n: i128) -> Option<Addr> {
        let bits = (self.bits as i128).checked_add(n)?;
        let max = if self.version == 4 { u32::MAX as i128 } else { i128::MAX };
        (bits >= 0 && bits <= max).then_some(Addr { bits: bits as u128, ..self })
    }
}

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.version == 4 {
            write!(f, "{}", Ipv4Addr::from(self.bits as u32))
        } else {
            write!(f, "{}", Ipv6Addr::from(self.bits))
        }
    }
}

/// A prefix (`10.0.0.0/24`, `2001:db8::/64`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cidr {
    pub net: Addr,
    pub len: u8,
}

impl Cidr {
    /// Parses `a/len`; host bits must be zero unless `strict` is false (then they are masked).
    pub fn parse(s: &str, strict: bool) -> Option<Cidr> {
        let (a, l) = s.trim().split_once('/')?;
        let addr = Addr::parse(a)?;
        if l.is_empty() || !l.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let len: u8 = l.parse().ok()?;
        if len > addr.width() {
            return None;
        }
        let c = Cidr { net: Addr { bits: addr.bits & mask(addr.version, len), ..addr }, len };
        (!strict || c.net == addr).then_some(c)
    }
    pub fn version(self) -> u8 {
        self.net.version
    }
    pub fn last(self) -> Addr {
        Addr { bits: self.net.bits | !mask(self.net.version, self.len) & full(self.net.version), ..self.net }
    }
    pub fn contains(self, a: Addr) -> bool {
        a.version == self.net.version && a.bits & mask(a.version, self.len) == self.net.bits
    }
    pub fn overlaps(self, o: Cidr) -> bool {
        self.version() == o.version() && (self.contains(o.net) || o.contains(self.net))
    }
    pub fn size(self) -> u128 {
        let host = self.net.width() - self.len;
        if host >= 128 {
            u128::MAX
        } else {
            1u128 << host
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.net, self.len)
    }
}

fn full(version: u8) -> u128 {
    if version == 4 {
        u32::MAX as u128
    } else {
        u128::MAX
    }
}

fn mask(version: u8, len: u8) -> u128 {
    let width = if version == 4 { 32 } else { 128 };
    if len == 0 {
        0
    } else {
        (full(version) >> (width - len) << (width - len)) & full(version)
    }
}

/// The modified EUI-64 address of `mac` in a /64 (SLAAC).
pub fn eui64(prefix: Cidr, mac: &str) -> Option<Addr> {
    let b: Vec<u8> = mac.split(':').map(|p| u8::from_str_radix(p, 16)).collect::<Result<_, _>>().ok()?;
    if b.len() != 6 || prefix.version() != 6 {
        return None;
    }
    let iid = [b[0] ^ 0x02, b[1], b[2], 0xff, 0xfe, b[3], b[4], b[5]];
    let low = iid.iter().fold(0u128, |acc, x| acc << 8 | *x as u128);
    Some(Addr { version: 6, bits: prefix.net.bits | low })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_parse_strictly_and_answer_containment() {
        let c = Cidr::parse("10.1.2.0/24", true).unwrap();
        assert_eq!(c.last().to_string(), "10.1.2.255");
        assert!(c.contains(Addr::parse("10.1.2.77").unwrap()));
        assert!(!c.contains(Addr::parse("10.1.3.1").unwrap()));
        assert!(Cidr::parse("10.1.2.3/24", true).is_none());
        assert_eq!(Cidr::parse("10.1.2.3/24", false).unwrap().to_string(), "10.1.2.0/24");
        assert!(Cidr::parse("10.1.2.0/33", true).is_none());
        assert!(Cidr::parse("10.1.2.0/", true).is_none());
        assert!(Cidr::parse("10.1.2.0", true).is_none());
        let v6 = Cidr::parse("2001:db8::/64", true).unwrap();
        assert_eq!(v6.last().to_string(), "2001:db8::ffff:ffff:ffff:ffff");
        assert!(v6.overlaps(Cidr::parse("2001:db8::/48", true).unwrap()));
        assert!(!v6.overlaps(c));
        assert_eq!(Cidr::parse("0.0.0.0/0", true).unwrap().last().to_string(), "255.255.255.255");
    }

    #[test]
    fn slaac_addresses_follow_modified_eui64() {
        let p = Cidr::parse("2003::/64", true).unwrap();
        assert_eq!(eui64(p, "fa:16:3e:12:34:56").unwrap().to_string(), "2003::f816:3eff:fe12:3456");
    }
}
