//! Lists of kinds as an operator writes them in a flag, matched by group *and* kind: kinds like
//! `Policy`, `Plan` or `Deployment` exist in several groups, so an entry can name one group or all.
//! One syntax for every such flag (`--deny-resource-types`, `--consent-required-kinds`), so an
//! operator learns it once:
//! - `Kind`: that kind in every group;
//! - `Kind.group`: that kind in the group or any subdomain of it (`Policy.kyverno.io` also covers
//!   `policies.kyverno.io`);
//! - `*.group`: every kind of the group (and its subdomains);
//! - the `--resource-types` forms `Kind.version` (core group) and `Kind.version.group` (the version
//!   is ignored).
//!
//! A bare `*` is refused: "every kind" is never what a kind list means.

use std::fmt;

/// `v1`, `v2`, `v1beta1`, `v1alpha2`.
pub fn looks_like_version(s: &str) -> bool {
    let Some(rest) = s.strip_prefix('v') else { return false };
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return false;
    }
    let tail = &rest[digits..];
    tail.is_empty()
        || ["alpha", "beta"]
            .iter()
            .any(|p| tail.strip_prefix(p).is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())))
}

/// An entry that is none of the accepted forms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KindListError {
    pub entry: String,
}

impl fmt::Display for KindListError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "entry {:?}: expected Kind, Kind.group, *.group or Kind.version[.group] (Kind in UpperCamelCase)",
            self.entry
        )
    }
}

impl std::error::Error for KindListError {}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    /// "*": every kind of the group.
    kind: String,
    /// None: any group; else the group or any subdomain of it ("" only the core group).
    group: Option<String>,
}

impl Rule {
    fn matches(&self, group: &str, kind: &str) -> bool {
        (self.kind == kind || self.kind == "*")
            && self.group.as_deref().is_none_or(|g| {
                group == g || (!g.is_empty() && group.strip_suffix(g).is_some_and(|p| p.ends_with('.')))
            })
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KindList {
    rules: Vec<Rule>,
}

impl KindList {
    pub fn empty() -> Self {
        KindList::default()
    }

    /// Comma-separated entries (see the module docs); whitespace and empty entries are ignored, so
    /// an empty string is an empty list.
    pub fn parse(list: &str) -> Result<Self, KindListError> {
        let mut l = KindList::empty();
        l.extend(list)?;
        Ok(l)
    }

    /// Kinds by group, each matching that group (and its subdomains) only.
    pub fn of_groups(groups: &[(&str, &[&str])]) -> Self {
        let rules = groups
            .iter()
            .flat_map(|(group, kinds)| {
                kinds.iter().map(|k| Rule { kind: (*k).to_string(), group: Some((*group).to_string()) })
            })
            .collect();
        KindList { rules }
    }

    /// Bare kinds, each matching in every group.
    pub fn of_kinds(kinds: &[&str]) -> Self {
        KindList { rules: kinds.iter().map(|k| Rule { kind: (*k).to_string(), group: None }).collect() }
    }

    pub fn extend(&mut self, list: &str) -> Result<(), KindListError> {
        for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (kind, rest) = match entry.split_once('.') {
                Some((k, r)) => (k, Some(r)),
                None => (entry, None),
            };
            // A Kind is UpperCamelCase (matching is case-sensitive: `deployment` would never match);
            // a group is a DNS subdomain.
            let kind_ok = kind == "*"
                || (kind.starts_with(|c: char| c.is_ascii_uppercase())
                    && kind.chars().all(|c| c.is_ascii_alphanumeric()));
            let group_ok = |r: &str| {
                !r.is_empty() && r.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
            };
            if !kind_ok || rest.is_some_and(|r| !group_ok(r)) || (kind == "*" && rest.is_none()) {
                return Err(KindListError { entry: entry.to_string() });
            }
            let group = rest.map(|r| match r.split_once('.') {
                Some((v, g)) if looks_like_version(v) => g.to_string(),
                None if looks_like_version(r) => String::new(),
                _ => r.to_string(),
            });
            self.rules.push(Rule { kind: kind.to_string(), group });
        }
        Ok(())
    }

    pub fn matches(&self, group: &str, kind: &str) -> bool {
        self.rules.iter().any(|r| r.matches(group, kind))
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_recognised() {
        for ok in ["v1", "v2", "v10", "v1beta1", "v1alpha2", "v2beta10"] {
            assert!(looks_like_version(ok), "{ok}");
        }
        for bad in ["", "v", "1", "vbeta1", "v1beta", "v1gamma1", "networking"] {
            assert!(!looks_like_version(bad), "{bad}");
        }
    }

    #[test]
    fn entries_match_by_group_and_kind() {
        let l = KindList::parse("Widget, Policy.example.com,Thing.v1beta1.acme.io, Event.v1,Deployment.apps").unwrap();
        #[rustfmt::skip]
        let cases = [
            ("anything.io", "Widget", true), ("", "Widget", true),
            ("example.com", "Policy", true), ("sub.example.com", "Policy", true), ("kyverno.io", "Policy", false),
            ("notexample.com", "Policy", false),
            ("acme.io", "Thing", true), ("other.io", "Thing", false),
            ("", "Event", true), ("events.k8s.io", "Event", false),
            ("apps", "Deployment", true), ("serving.knative.dev", "Deployment", false), ("", "Secret", false),
        ];
        for (group, kind, want) in cases {
            assert_eq!(l.matches(group, kind), want, "{kind}.{group}");
        }
        let istio = KindList::parse("*.istio.io").unwrap();
        assert!(istio.matches("networking.istio.io", "VirtualService") && istio.matches("istio.io", "Anything"));
        assert!(!istio.matches("", "Secret"));
        let of = KindList::of_groups(&[("", &["Pod"]), ("apps", &["ReplicaSet"])]);
        assert!(of.matches("", "Pod") && !of.matches("x.io", "Pod") && of.matches("apps", "ReplicaSet"));
    }

    #[test]
    fn empty_lists_and_bad_entries() {
        assert!(KindList::parse("").unwrap().is_empty());
        assert!(KindList::parse(" , ,").unwrap().is_empty());
        for bad in [".x", "Kind.", "*", "deployment", "Deploy ment", "Job.Apps", "Job.a/b", "*.", "Kind.v1.Bad"] {
            let e = KindList::parse(bad).unwrap_err();
            assert_eq!(e.entry, bad);
            assert!(e.to_string().contains("expected Kind, Kind.group"), "{e}");
        }
    }
}
