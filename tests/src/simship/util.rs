//! Small pieces the simulated ship needs and the workspace has no crate for: Docker's
//! time formats, query strings, its `filters` parameter, ids, globs and a one-file tar.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

/// Nanoseconds since the Unix epoch.
pub fn now_nanos() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128)
}

/// `2024-05-01T10:00:00.123456789Z`, as Docker writes its times (RFC 3339, UTC, with the
/// fraction's trailing zeros dropped); Go's zero time for 0 (never).
pub fn rfc3339(nanos: i128) -> String {
    if nanos == 0 {
        return "0001-01-01T00:00:00Z".to_owned();
    }
    let seconds = nanos.div_euclid(1_000_000_000) as i64;
    let fraction = nanos.rem_euclid(1_000_000_000) as u32;
    let days = seconds.div_euclid(86_400);
    let of_day = seconds.rem_euclid(86_400);
    // Civil date of a day count (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let mut text = format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60
    );
    if fraction != 0 {
        let digits = format!("{fraction:09}");
        text.push('.');
        text.push_str(digits.trim_end_matches('0'));
    }
    text.push('Z');
    text
}

/// A time the events API accepts for `since` and `until`: Unix seconds with an optional
/// fraction (`1714557600.123456789`), as nanoseconds.
pub fn parse_unix_time(text: &str) -> Option<i128> {
    let (seconds, fraction) = text.split_once('.').unwrap_or((text, ""));
    let seconds: i128 = seconds.parse().ok()?;
    if fraction.len() > 9 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let nanos: i128 = if fraction.is_empty() {
        0
    } else {
        format!("{fraction:0<9}").parse().ok()?
    };
    Some(seconds * 1_000_000_000 + if seconds < 0 { -nanos } else { nanos })
}

/// Docker's words for a duration (go-units' `HumanDuration`): "Less than a second",
/// "3 seconds", "About a minute"...
pub fn human_duration(nanos: i128) -> String {
    let seconds = (nanos / 1_000_000_000).max(0) as i64;
    let minutes = seconds / 60;
    let hours = ((nanos as f64 / 3.6e12) + 0.5) as i64;
    match () {
        _ if seconds < 1 => "Less than a second".to_owned(),
        _ if seconds == 1 => "1 second".to_owned(),
        _ if seconds < 60 => format!("{seconds} seconds"),
        _ if minutes == 1 => "About a minute".to_owned(),
        _ if minutes < 60 => format!("{minutes} minutes"),
        _ if hours == 1 => "About an hour".to_owned(),
        _ if hours < 48 => format!("{hours} hours"),
        _ if hours < 24 * 7 * 2 => format!("{} days", hours / 24),
        _ if hours < 24 * 30 * 2 => format!("{} weeks", hours / 24 / 7),
        _ if hours < 24 * 365 * 2 => format!("{} months", hours / 24 / 30),
        _ => format!("{} years", seconds / 3600 / 24 / 365),
    }
}

/// The parameters of a query string, percent-decoded (`+` is a space).
pub fn query(text: Option<&str>) -> BTreeMap<String, String> {
    text.unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k, true), decode(v, true))
        })
        .collect()
}

/// Percent-decoding (of a path segment when `plus` is false).
pub fn decode(text: &str, plus: bool) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' if plus => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Docker's `filters` parameter: `{"key": ["value", ...]}`, or the older
/// `{"key": {"value": true}}`. `Err` with Docker's message when it is not JSON of either
/// shape.
pub fn filters(text: Option<&String>) -> Result<BTreeMap<String, Vec<String>>, String> {
    let Some(text) = text.filter(|t| !t.is_empty()) else {
        return Ok(BTreeMap::new());
    };
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("invalid filter: {e}"))?;
    let object = value
        .as_object()
        .ok_or_else(|| "invalid filter: not a JSON object".to_owned())?;
    let mut out = BTreeMap::new();
    for (key, values) in object {
        let list: Vec<String> = match values {
            serde_json::Value::Array(items) => items
                .iter()
                .map(|v| v.as_str().map(str::to_owned))
                .collect::<Option<_>>()
                .ok_or_else(|| format!("invalid filter: values of '{key}' are not strings"))?,
            serde_json::Value::Object(map) => map
                .iter()
                .filter(|(_, on)| on.as_bool() == Some(true))
                .map(|(k, _)| k.clone())
                .collect(),
            _ => return Err(format!("invalid filter: '{key}' has no list of values")),
        };
        out.insert(key.clone(), list);
    }
    Ok(out)
}

/// splitmix64: a good enough mix for ids and digests.
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// 64 hex digits from a seed, shaped like Docker's ids and sha256 digests.
pub fn hex64(seed: u64) -> String {
    let mut out = String::with_capacity(64);
    let mut x = seed;
    for _ in 0..4 {
        x = mix(x);
        out.push_str(&format!("{x:016x}"));
    }
    out
}

/// FNV-1a of a text: the seed of an image's id, so that the same image has the same id
/// on every simulated ship.
pub fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Whether `text` matches `pattern`, where `*` stands for any run of characters.
pub fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    if !text.ends_with(last) {
        return false;
    }
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(at) => rest = &rest[at + middle.len()..],
            None => return false,
        }
    }
    true
}

/// A repository name as Docker compares them: `busybox`, `library/busybox` and
/// `docker.io/library/busybox` are one.
pub fn normalized_repository(repository: &str) -> String {
    let (first, rest) = repository.split_once('/').unwrap_or(("", repository));
    let is_registry = first.contains(['.', ':']) || first == "localhost";
    let (registry, path) = if is_registry {
        (first, rest)
    } else {
        ("docker.io", repository)
    };
    let registry = match registry {
        "index.docker.io" | "registry-1.docker.io" => "docker.io",
        other => other,
    };
    if registry == "docker.io" && !path.contains('/') {
        format!("docker.io/library/{path}")
    } else {
        format!("{registry}/{path}")
    }
}

/// An image reference split into its normalised repository and its tag or digest
/// (`latest` when it names neither): `("docker.io/library/busybox", ":latest")`,
/// `("registry:5000/app", "@sha256:…")`.
pub fn reference(name: &str) -> (String, String) {
    if let Some((repository, digest)) = name.split_once('@') {
        return (normalized_repository(repository), format!("@{digest}"));
    }
    let (repository, tag) = match name.rsplit_once(':') {
        Some((_, after)) if after.contains('/') => (name, "latest"),
        Some((repository, tag)) => (repository, tag),
        None => (name, "latest"),
    };
    (normalized_repository(repository), format!(":{tag}"))
}

/// The files of a tar archive (regular files only), by name without a leading `./`.
pub fn untar(mut tar: &[u8]) -> Vec<(String, Vec<u8>)> {
    const BLOCK: usize = 512;
    let mut files = Vec::new();
    while tar.len() >= BLOCK && tar[..BLOCK].iter().any(|&b| b != 0) {
        let header = &tar[..BLOCK];
        let field = |range: std::ops::Range<usize>| {
            let raw = &header[range];
            let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
            String::from_utf8_lossy(&raw[..end]).into_owned()
        };
        let size = usize::from_str_radix(field(124..136).trim(), 8).unwrap_or(0);
        let prefix = field(345..500);
        let name = field(0..100);
        let name = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        let kind = header[156];
        let Some(content) = tar.get(BLOCK..BLOCK + size) else {
            break;
        };
        if kind == b'0' || kind == 0 {
            files.push((name.trim_start_matches("./").to_owned(), content.to_vec()));
        }
        let next = BLOCK + size.div_ceil(BLOCK) * BLOCK;
        tar = tar.get(next..).unwrap_or_default();
    }
    files
}

/// A ustar archive holding one regular file.
pub fn tar_of(name: &str, content: &[u8], mtime: i64) -> Vec<u8> {
    const BLOCK: usize = 512;
    let mut header = [0u8; BLOCK];
    let mut put = |at: usize, value: &[u8]| header[at..at + value.len()].copy_from_slice(value);
    let octal = |width: usize, value: u64| format!("{value:0w$o}\0", w = width - 1);
    put(0, &name.as_bytes()[..name.len().min(100)]);
    put(100, octal(8, 0o644).as_bytes());
    put(108, octal(8, 0).as_bytes());
    put(116, octal(8, 0).as_bytes());
    put(124, octal(12, content.len() as u64).as_bytes());
    put(136, octal(12, u64::try_from(mtime).unwrap_or(0)).as_bytes());
    put(156, b"0");
    put(257, b"ustar\0");
    put(263, b"00");
    put(148, b"        ");
    let sum: u32 = header.iter().map(|&b| u32::from(b)).sum();
    header[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    let padded = content.len().div_ceil(BLOCK) * BLOCK;
    let mut tar = Vec::with_capacity(BLOCK + padded + 2 * BLOCK);
    tar.extend_from_slice(&header);
    tar.extend_from_slice(content);
    tar.resize(BLOCK + padded + 2 * BLOCK, 0);
    tar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_written_as_docker_writes_them() {
        assert_eq!(rfc3339(0), "0001-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(1_714_557_600_123_456_789),
            "2024-05-01T10:00:00.123456789Z"
        );
        assert_eq!(rfc3339(951_868_799_500_000_000), "2000-02-29T23:59:59.5Z");
        assert_eq!(
            parse_unix_time("1714557600.123456789"),
            Some(1_714_557_600_123_456_789)
        );
        assert_eq!(
            parse_unix_time("1714557600"),
            Some(1_714_557_600_000_000_000)
        );
        assert_eq!(parse_unix_time("soon"), None);
        assert_eq!(human_duration(400_000_000), "Less than a second");
        assert_eq!(human_duration(3_200_000_000), "3 seconds");
        assert_eq!(human_duration(61_000_000_000), "About a minute");
        assert_eq!(human_duration(7_200_000_000_000), "2 hours");
    }

    #[test]
    fn queries_and_filters_are_read_as_docker_reads_them() {
        let q = query(Some(
            "all=1&filters=%7B%22name%22%3A%5B%22%5E%2F%3Fa%24%22%5D%7D&x=a+b",
        ));
        assert_eq!(q["all"], "1");
        assert_eq!(q["x"], "a b");
        let f = filters(q.get("filters")).unwrap();
        assert_eq!(f["name"], ["^/?a$"]);
        let old = filters(Some(&r#"{"label":{"a=b":true}}"#.to_owned())).unwrap();
        assert_eq!(old["label"], ["a=b"]);
        assert!(filters(Some(&"[1]".to_owned())).is_err());
    }

    #[test]
    fn globs_references_and_tars() {
        assert!(glob("registry:5000/team/*", "registry:5000/team/svc-1:1.2"));
        assert!(glob("*", "anything"));
        assert!(glob("a*c*e", "abcde"));
        assert!(!glob("a*c*e", "abcd"));
        assert!(!glob("app:1", "app:2"));
        assert_eq!(
            reference("busybox"),
            ("docker.io/library/busybox".to_owned(), ":latest".to_owned())
        );
        assert_eq!(
            reference("localhost:5000/app@sha256:ab"),
            ("localhost:5000/app".to_owned(), "@sha256:ab".to_owned())
        );
        assert_eq!(
            reference("registry:5000/app"),
            ("registry:5000/app".to_owned(), ":latest".to_owned())
        );
        let tar = tar_of("heartbeat", b"2024\n", 0);
        assert_eq!(untar(&tar), [("heartbeat".to_owned(), b"2024\n".to_vec())]);
    }
}
