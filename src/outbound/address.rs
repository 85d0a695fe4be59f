//! Which IP addresses a delivery may not reach unless allowlisted: everything that is not a
//! public unicast address, and the cloud metadata endpoints. IPv6 forms that carry an IPv4
//! address (mapped, compatible, NAT64, 6to4) are judged by the address they carry, since that
//! is where the packets end up.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why an address is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressClass {
    Loopback,
    Private,
    LinkLocal,
    Unspecified,
    Broadcast,
    Documentation,
    Shared,
    Multicast,
    Reserved,
    CloudMetadata,
}

impl fmt::Display for AddressClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Loopback => "loopback",
            Self::Private => "private",
            Self::LinkLocal => "link-local",
            Self::Unspecified => "unspecified",
            Self::Broadcast => "broadcast",
            Self::Documentation => "documentation",
            Self::Shared => "shared (carrier-grade NAT)",
            Self::Multicast => "multicast",
            Self::Reserved => "reserved",
            Self::CloudMetadata => "cloud metadata",
        })
    }
}

/// `None` for a public unicast address; otherwise why it is refused.
pub fn classify(ip: IpAddr) -> Option<AddressClass> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> Option<AddressClass> {
    use AddressClass::*;
    let [a, b, c, _] = ip.octets();
    let class = match (a, b, c) {
        _ if ip == Ipv4Addr::new(169, 254, 169, 254) => CloudMetadata,
        _ if ip.is_broadcast() => Broadcast,
        _ if ip.is_unspecified() => Unspecified,
        (0, ..) => Reserved,
        (127, ..) => Loopback,
        (10, ..) | (172, 16..=31, _) | (192, 168, _) => Private,
        (169, 254, _) => LinkLocal,
        (100, 64..=127, _) => Shared,
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => Documentation,
        // IETF protocol assignments, benchmarking.
        (192, 0, 0) | (198, 18..=19, _) => Reserved,
        (224..=239, ..) => Multicast,
        (240..=255, ..) => Reserved,
        _ => return None,
    };
    Some(class)
}

fn classify_v6(ip: Ipv6Addr) -> Option<AddressClass> {
    use AddressClass::*;
    if let Some(v4) = embedded_v4(ip) {
        return classify_v4(v4);
    }
    let s = ip.segments();
    let class = match s {
        _ if ip == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) => CloudMetadata,
        _ if ip.is_unspecified() => Unspecified,
        _ if ip.is_loopback() => Loopback,
        [0x2001, 0xdb8, ..] => Documentation,
        [s0, ..] if s0 & 0xfff0 == 0x3ff0 => Documentation,
        [s0, ..] if s0 & 0xfe00 == 0xfc00 => Private,
        [s0, ..] if s0 & 0xffc0 == 0xfe80 => LinkLocal,
        // Deprecated site-local, still routed inside some networks.
        [s0, ..] if s0 & 0xffc0 == 0xfec0 => Private,
        [s0, ..] if s0 & 0xff00 == 0xff00 => Multicast,
        // Local-use NAT64 (RFC 8215): translated by a gateway inside the network.
        [0x64, 0xff9b, 1, ..] => Private,
        // Discard-only, Teredo, benchmarking, the rest of ::/96 and IPv4-translated forms.
        [0x100, 0, 0, 0, ..] | [0x2001, 0, ..] | [0x2001, 2, 0, ..] => Reserved,
        [0, 0, 0, 0, ..] => Reserved,
        _ => return None,
    };
    Some(class)
}

/// The IPv4 address an IPv6 address delivers to, for the forms that carry one: mapped
/// (`::ffff:a.b.c.d`), compatible (`::a.b.c.d`), NAT64 well-known prefix (`64:ff9b::/96`) and
/// 6to4 (`2002:aabb:ccdd::/48`).
pub fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let tail = || Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    match s {
        [0, 0, 0, 0, 0, 0xffff, ..] => Some(tail()),
        // `::` and `::1` are IPv6's own unspecified and loopback addresses, not IPv4 ones.
        [0, 0, 0, 0, 0, 0, hi, lo] if hi != 0 || lo > 1 => Some(tail()),
        [0x64, 0xff9b, 0, 0, 0, 0, ..] => Some(tail()),
        [0x2002, hi, lo, ..] => Some(Ipv4Addr::new(
            (hi >> 8) as u8,
            hi as u8,
            (lo >> 8) as u8,
            lo as u8,
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::AddressClass::*;
    use super::*;

    fn class(text: &str) -> Option<AddressClass> {
        text.parse::<IpAddr>().ok().and_then(classify)
    }

    #[test]
    fn every_class_is_recognised_in_both_families() {
        let cases = [
            ("127.0.0.1", Some(Loopback)),
            ("127.255.1.2", Some(Loopback)),
            ("::1", Some(Loopback)),
            ("10.1.2.3", Some(Private)),
            ("172.16.0.1", Some(Private)),
            ("172.31.255.255", Some(Private)),
            ("192.168.1.1", Some(Private)),
            ("fc00::1", Some(Private)),
            ("fd12:3456::1", Some(Private)),
            ("169.254.1.1", Some(LinkLocal)),
            ("fe80::1", Some(LinkLocal)),
            ("0.0.0.0", Some(Unspecified)),
            ("::", Some(Unspecified)),
            ("255.255.255.255", Some(Broadcast)),
            ("192.0.2.7", Some(Documentation)),
            ("198.51.100.7", Some(Documentation)),
            ("203.0.113.7", Some(Documentation)),
            ("2001:db8::1", Some(Documentation)),
            ("100.64.0.1", Some(Shared)),
            ("100.127.255.254", Some(Shared)),
            ("224.0.0.1", Some(Multicast)),
            ("ff02::1", Some(Multicast)),
            ("169.254.169.254", Some(CloudMetadata)),
            ("fd00:ec2::254", Some(CloudMetadata)),
            ("240.0.0.1", Some(Reserved)),
            ("198.18.0.1", Some(Reserved)),
            ("0.1.2.3", Some(Reserved)),
        ];
        for (text, want) in cases {
            assert_eq!(class(text), want, "{text}");
        }
    }

    #[test]
    fn ipv6_forms_carrying_ipv4_are_judged_by_the_ipv4_address() {
        assert_eq!(class("::ffff:127.0.0.1"), Some(Loopback));
        assert_eq!(class("::ffff:169.254.169.254"), Some(CloudMetadata));
        assert_eq!(class("::10.0.0.1"), Some(Private));
        assert_eq!(class("64:ff9b::192.168.0.1"), Some(Private));
        assert_eq!(class("64:ff9b::7f00:1"), Some(Loopback));
        assert_eq!(class("2002:a00:1::1"), Some(Private));
        assert_eq!(class("::ffff:8.8.8.8"), None);
        assert_eq!(class("64:ff9b::8.8.8.8"), None);
    }

    #[test]
    fn public_addresses_pass() {
        for text in [
            "8.8.8.8",
            "1.1.1.1",
            "172.32.0.1",
            "100.128.0.1",
            "169.255.0.1",
            "2606:4700:4700::1111",
            "2a00:1450:4001::1",
        ] {
            assert_eq!(class(text), None, "{text}");
        }
    }
}
