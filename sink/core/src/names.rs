//! Names the sink stores and alarms on: their length limits and the one sanitiser that turns
//! a host name or agent id into a safe path component, S3 key part or alarm-name part.

/// Longest host name or agent id, in characters, that the sink accepts. [`sanitize`] maps each
/// character to one byte, so every path component stays under the 255-byte file name limit of
/// common file systems (`<agent_id>-<20 digits>.ndjson.zst` is at most 232 bytes).
pub const MAX_NAME_LEN: usize = 200;

/// Longest metric name, in characters: CloudWatch's limit, which alarm rules are held to so
/// that one rules file serves both the local engine and `outpost-sink cloudwatch-alarms`.
pub const MAX_METRIC_NAME_LEN: usize = 255;

/// Map a host name or agent id to a safe path component (also the host part of a CloudWatch
/// alarm name: `outpost-sink cloudwatch-alarms`).
///
/// Keeps ASCII letters, digits, `-`, `_` and `.`; every other character (including `/`, `\`,
/// `=`, NUL, spaces and any non-ASCII character) becomes `_`. A `.` at the start or right
/// after another `.` also becomes `_`, so the result is never hidden, never `..` and never
/// contains `..`. An empty input becomes `_`. The mapping is not injective: `a/b` and `a_b`
/// share a directory, which is why every NDJSON line also carries the raw host and agent id.
pub fn sanitize(name: &str) -> String {
    let mut out = String::with_capacity(name.len().max(1));
    let mut previous = None;
    for c in name.chars() {
        let keep = match c {
            '.' => previous.is_some() && previous != Some('.'),
            c => c.is_ascii_alphanumeric() || c == '-' || c == '_',
        };
        let c = if keep { c } else { '_' };
        out.push(c);
        previous = Some(c);
    }
    if out.is_empty() {
        out.push('_');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn unsafe_names_are_mapped() {
        assert_eq!(sanitize("../etc/passwd"), "_._etc_passwd");
        assert_eq!(sanitize(".."), "_.");
        assert_eq!(sanitize(".hidden"), "_hidden");
        assert_eq!(sanitize("a..b"), "a._b");
        assert_eq!(sanitize("a\0b"), "a_b");
        assert_eq!(sanitize("héte"), "h_te");
        assert_eq!(sanitize("host=x y"), "host_x_y");
        assert_eq!(sanitize(""), "_");
        assert_eq!(sanitize("web-1.example.com"), "web-1.example.com");
    }

    proptest! {
        #[test]
        fn sanitized_names_are_always_safe(name in any::<String>()) {
            let s = sanitize(&name);
            prop_assert!(!s.is_empty());
            prop_assert!(!s.starts_with('.'));
            prop_assert!(!s.contains(".."));
            prop_assert!(s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)));
            prop_assert!(s.len() <= name.len().max(1));
        }
    }
}
