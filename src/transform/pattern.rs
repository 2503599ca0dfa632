//! `namespacePattern` (BEHAVIOR.md §I.5): `*` matches any run of bytes (also none), `?` exactly one
//! byte, everything else itself; the whole name must match, case-sensitively. No classes, no
//! escapes. An empty pattern matches every namespace. (Target-namespace globs are a different,
//! stricter matcher; this one is kept as the Go original's.)

/// Greedy `*` with one backtrack point: at worst len(pattern) × len(name) steps, so a long pattern of
/// stars cannot make matching exponential.
pub fn matches(pattern: &str, name: &str) -> bool {
    if pattern.is_empty() {
        return true;
    }
    let (p, n) = (pattern.as_bytes(), name.as_bytes());
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && (p[pi] == b'?' || (p[pi] != b'*' && p[pi] == n[ni])) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ni));
            pi += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn table() {
        let cases = [
            ("", "anything", true),
            ("prod-*", "prod-eu", true),
            ("prod-*", "prod-", true),
            ("prod-*", "preprod-eu", false),
            ("preprod-*", "preprod-eu", true),
            ("*-staging", "eu-staging", true),
            ("*-staging", "eu-staging-2", false),
            ("app-?", "app-1", true),
            ("app-?", "app-12", false),
            ("*", "", true),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "axxbyy", false),
            ("Prod-*", "prod-x", false),
            ("[a]", "a", false),
            ("[a]", "[a]", true),
            ("a\\*", "a\\xyz", true),
            ("??", "é", true), // bytes, not characters
        ];
        for (p, n, want) in cases {
            assert_eq!(matches(p, n), want, "{p} ~ {n}");
        }
    }

    #[test]
    fn pathological_patterns_stay_fast() {
        let p = "*a".repeat(5000) + "b";
        let n = "a".repeat(10_000);
        let started = std::time::Instant::now();
        assert!(!matches(&p, &n));
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
    }
}
