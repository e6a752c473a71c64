//! Proxmox encodings as the simulator reads and writes them: property strings
//! (`virtio=BC:24:11:…,bridge=vmbr1,tag=20`), tag lists, `sshkeys` percent-encoding and disk
//! sizes (`32G`, `3584M`, `+10G`). Written apart from the provider's own parsing, so a bug on
//! one side shows up as a disagreement in tests instead of agreeing with itself.

use std::collections::BTreeSet;

/// Reads a property string into ordered `(key, value)` pairs, keys and values trimmed. A part
/// without `=` belongs to `default_key` (`32768` for `memory` is `current=32768`); with no
/// default key it is a key with an empty value.
pub fn parse(s: &str, default_key: Option<&str>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for part in s.split(',') {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let pair = match (part.find('='), default_key) {
            (Some(eq), _) => (part[..eq].trim(), part[eq + 1..].trim()),
            (None, Some(key)) => (key, part),
            (None, None) => (part, ""),
        };
        out.push((pair.0.to_owned(), pair.1.to_owned()));
    }
    out
}

/// The value of the first `key` in parsed pairs.
pub fn get<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find_map(|(k, v)| (k == key).then_some(v.as_str()))
}

/// Writes pairs as a property string.
pub fn format(pairs: &[(String, String)]) -> String {
    let mut out = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(k);
        out.push('=');
        out.push_str(v);
    }
    out
}

/// Whether `t` is a valid `pve-tag`: first a letter, digit or `_`, then also `-`, `+`, `.`.
pub fn valid_tag(t: &str) -> bool {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    match t.as_bytes() {
        [] => false,
        [first, rest @ ..] => {
            word(*first)
                && rest
                    .iter()
                    .all(|&b| word(b) || matches!(b, b'-' | b'+' | b'.'))
        }
    }
}

/// A tag list as Proxmox stores it: lowercased, deduplicated, sorted, joined by `;`.
pub fn normalize_tags(s: &str) -> String {
    split_tags(s)
        .into_iter()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect::<Vec<_>>()
        .join(";")
}

/// The tags of a list separated by `;`, `,` or spaces, lowercased, in their order.
pub fn split_tags(s: &str) -> Vec<String> {
    s.split([';', ',', ' '])
        .filter_map(|t| {
            let t = t.trim();
            (!t.is_empty()).then(|| t.to_lowercase())
        })
        .collect()
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decodes a percent-encoded value (`sshkeys`); `None` for a broken escape or non-UTF-8.
pub fn decode_sshkeys(s: &str) -> Option<String> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hi = hex_value(bytes.next()?)?;
            let lo = hex_value(bytes.next()?)?;
            out.push(hi << 4 | lo);
        } else {
            out.push(b);
        }
    }
    String::from_utf8(out).ok()
}

/// Whether `s` fits Proxmox's `urlencoded` format: only unreserved characters and valid
/// `%XX` escapes (a raw space, `+`, `/`, `=` or newline is refused).
pub fn is_urlencoded(s: &str) -> bool {
    let allowed = |b: u8| b.is_ascii_alphanumeric() || b"-_.!~*'()%".contains(&b);
    s.bytes().all(allowed) && decode_sshkeys(s).is_some()
}

/// Reads a disk size (`32G`, `3584M`, `1T`, `512K`, `1.5G`, plain bytes) as bytes.
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let shift = match s.bytes().last()?.to_ascii_uppercase() {
        b'K' => 10,
        b'M' => 20,
        b'G' => 30,
        b'T' => 40,
        _ => 0,
    };
    let num = if shift == 0 { s } else { &s[..s.len() - 1] };
    if !num.is_empty() && num.bytes().all(|b| b.is_ascii_digit()) {
        return num.parse::<u64>().ok()?.checked_mul(1u64 << shift);
    }
    let f: f64 = num.parse().ok()?;
    (f >= 0.0).then(|| (f * (1u64 << shift) as f64) as u64)
}

/// Writes a size the way Proxmox does: in the largest of T, G, M, K that divides it.
pub fn format_size(bytes: u64) -> String {
    let unit = [(40, 'T'), (30, 'G'), (20, 'M'), (10, 'K')]
        .into_iter()
        .find(|(shift, _)| bytes != 0 && bytes.is_multiple_of(1u64 << shift));
    match unit {
        Some((shift, u)) => format!("{}{u}", bytes >> shift),
        None => bytes.to_string(),
    }
}

/// Whether a config key is a disk slot: `scsi`, `virtio`, `sata`, `ide`, `efidisk` or
/// `tpmstate` followed by a number.
pub fn is_disk_key(k: &str) -> bool {
    let digits = k.bytes().rev().take_while(u8::is_ascii_digit).count();
    let (bus, n) = k.split_at(k.len() - digits);
    !n.is_empty()
        && matches!(
            bus,
            "scsi" | "virtio" | "sata" | "ide" | "efidisk" | "tpmstate"
        )
}

/// Memory in MiB from the `memory` property (`[current=]<int>`), 512 when absent or unreadable.
pub fn memory_mib(v: Option<&str>) -> u64 {
    let Some(v) = v else { return 512 };
    get(&parse(v, Some("current")), "current")
        .and_then(|m| m.parse().ok())
        .unwrap_or(512)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_lowercased_deduplicated_and_sorted() {
        assert_eq!(normalize_tags("K8s;master,k8s prod"), "k8s;master;prod");
        assert!(valid_tag("cairn.homelab-ha"));
        assert!(!valid_tag("-bad"));
    }

    #[test]
    fn sshkeys_round_trip_through_percent_encoding() {
        let keys = "ssh-ed25519 AAAA+b/c= me@host\nssh-rsa BBB you@x";
        let enc = "ssh-ed25519%20AAAA%2Bb%2Fc%3D%20me%40host%0Assh-rsa%20BBB%20you%40x";
        assert!(is_urlencoded(enc));
        assert_eq!(decode_sshkeys(enc).unwrap(), keys);
        assert!(!is_urlencoded("ssh-ed25519 AAAA"));
    }

    #[test]
    fn property_strings_keep_order_and_default_key() {
        let p = parse(
            "virtio=BC:24:11:00:00:01,bridge=vmbr1,tag=20",
            Some("model"),
        );
        assert_eq!(get(&p, "virtio"), Some("BC:24:11:00:00:01"));
        assert_eq!(get(&p, "tag"), Some("20"));
        assert_eq!(
            get(&parse("32768", Some("current")), "current"),
            Some("32768")
        );
        assert_eq!(
            format(&p),
            "virtio=BC:24:11:00:00:01,bridge=vmbr1,tag=20".to_string()
        );
    }

    #[test]
    fn sizes_parse_and_format_in_proxmox_units() {
        assert_eq!(parse_size("32G"), Some(32 << 30));
        assert_eq!(parse_size("3584M"), Some(3584 << 20));
        assert_eq!(format_size(3584 << 20), "3584M");
        assert_eq!(format_size(64 << 30), "64G");
    }

    #[test]
    fn disk_slots_and_memory_read_like_proxmox() {
        for k in ["scsi0", "virtio15", "efidisk0", "tpmstate0", "ide2"] {
            assert!(is_disk_key(k), "{k}");
        }
        for k in ["scsi", "net0", "scsihw", "sata+1"] {
            assert!(!is_disk_key(k), "{k}");
        }
        assert_eq!(memory_mib(Some("current=4096")), 4096);
        assert_eq!(memory_mib(Some("8192")), 8192);
        assert_eq!(memory_mib(None), 512);
        assert_eq!(parse_size("1.5G"), Some(3 << 29));
        assert_eq!(parse_size("G"), None);
    }
}
