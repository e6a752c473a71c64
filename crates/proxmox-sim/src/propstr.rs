//! Proxmox encodings as the simulator reads them (a copy of the provider's for now): property strings
//! (`virtio=BC:24:11:…,bridge=vmbr1,tag=20`), tag lists, `sshkeys` percent-encoding and
//! disk sizes (`32G`, `3584M`, `+10G`).

/// Parses a property string into ordered `(key, value)` pairs. A part without `=` is
/// assigned to `default_key` (e.g. `32768` for `memory`, `current`).
pub fn parse(s: &str, default_key: Option<&str>) -> Vec<(String, String)> {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|part| match part.split_once('=') {
            Some((k, v)) => (k.trim().to_string(), v.trim().to_string()),
            None => (
                default_key.unwrap_or(part).to_string(),
                if default_key.is_some() {
                    part.to_string()
                } else {
                    String::new()
                },
            ),
        })
        .collect()
}

/// Looks a key up in parsed pairs.
pub fn get<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// Joins pairs back into a property string.
pub fn format(pairs: &[(String, String)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Whether a tag is valid for Proxmox (`pve-tag`): `[a-z0-9_][a-z0-9_\-+.]*`, case-insensitive.
pub fn valid_tag(t: &str) -> bool {
    let mut chars = t.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphanumeric() || c == '_' => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_alphanumeric() || "_-+.".contains(c))
}

/// Normalises a tag list the way Proxmox stores it: split on `;`, `,` or spaces,
/// lowercased, deduplicated, sorted, joined by `;`.
pub fn normalize_tags(s: &str) -> String {
    let mut tags: Vec<String> = split_tags(s);
    tags.sort();
    tags.dedup();
    tags.join(";")
}

/// Splits a tag list into lowercased tags (no sorting).
pub fn split_tags(s: &str) -> Vec<String> {
    s.split([';', ',', ' '])
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_ascii_lowercase)
        .collect()
}

/// Decodes a percent-encoded `sshkeys` value; `None` if it is not valid percent-encoding.
pub fn decode_sshkeys(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Whether a string is acceptable as Proxmox's `urlencoded` format (no raw spaces, `+` or newlines).
pub fn is_urlencoded(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_.!~*'()%".contains(&b))
        && decode_sshkeys(s).is_some()
}

/// Parses a disk size (`32G`, `3584M`, `1T`, `512K`, plain bytes) into bytes.
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, mult) = match s.chars().last()? {
        'K' | 'k' => (&s[..s.len() - 1], 1u64 << 10),
        'M' | 'm' => (&s[..s.len() - 1], 1 << 20),
        'G' | 'g' => (&s[..s.len() - 1], 1 << 30),
        'T' | 't' => (&s[..s.len() - 1], 1 << 40),
        _ => (s, 1),
    };
    if let Ok(n) = num.parse::<u64>() {
        return n.checked_mul(mult);
    }
    let f: f64 = num.parse().ok()?;
    (f >= 0.0).then_some((f * mult as f64) as u64)
}

/// Formats bytes the way Proxmox writes disk sizes: the largest unit that divides evenly.
pub fn format_size(bytes: u64) -> String {
    for (unit, mult) in [
        ('T', 1u64 << 40),
        ('G', 1 << 30),
        ('M', 1 << 20),
        ('K', 1 << 10),
    ] {
        if bytes >= mult && bytes.is_multiple_of(mult) {
            return format!("{}{unit}", bytes / mult);
        }
    }
    bytes.to_string()
}

/// Whether a config key names a disk slot (`scsi0`, `virtio1`, `sata0`, `ide2`, `efidisk0`, `tpmstate0`).
pub fn is_disk_key(k: &str) -> bool {
    ["scsi", "virtio", "sata", "ide", "efidisk", "tpmstate"]
        .iter()
        .any(|p| k.strip_prefix(p).is_some_and(|n| n.parse::<u32>().is_ok()))
}

/// Memory in MiB from the `memory` property (`[current=]<int>`, number or string), default 512.
pub fn memory_mib(v: Option<&str>) -> u64 {
    v.and_then(|s| {
        let p = parse(s, Some("current"));
        get(&p, "current").and_then(|m| m.parse().ok())
    })
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
}
