//! Target resolution: which namespaces a source is mirrored into (BEHAVIOR.md §C, with its W-3, W-9,
//! W-12 and W-15 fixes).
//!
//! # Precedence of the targeting rules
//!
//! A namespace `N` receives a mirror of a source living in namespace `S` iff every step passes, in
//! this order (the first failing step decides, and is what gets reported):
//!
//! 1. **Selection** — `N` is selected by the `target-namespaces` list **or** by the
//!    `target-namespace-selector` annotation (union). List entries, any mix, comma separated
//!    (whitespace, duplicates and empty items ignored):
//!    - `all`: every existing namespace except those labelled `allow-mirrors=false` (opt-out);
//!    - `all-labeled`: every namespace labelled `allow-mirrors=true` (opt-in);
//!    - a glob (`*` any run, `?` one character, `[a-z]` / `[^0-9]` classes): every existing match;
//!    - a literal name: that namespace, if it exists (a missing one is reported, not an error, and is
//!      picked up when it is created).
//!
//!    The `allow-mirrors=false` opt-out only limits `all`: naming a namespace, matching it with a
//!    glob or with the selector is explicit. Invalid entries and an unparsable selector are reported
//!    and select nothing; the valid rest still applies, but while one is invalid no existing mirror
//!    is removed for not being targeted (a typo must not wipe mirrors in use).
//! 2. **Never the source's own namespace** `S`.
//! 3. **Namespace filter** (controller flags): `kube-system`, `kube-public`, `kube-node-lease` and
//!    every `--excluded-namespaces` glob are never targets; if `--included-namespaces` is set, `N`
//!    must match one of its globs. Excluded wins over included.
//! 4. **Terminating** namespaces are skipped (reported, never counted as failures).
//! 5. **Consent**: `N` must carry `allow-mirrors=true`, or its `allow-mirrors-from` annotation (comma
//!    list of globs) must match `S`; `allow-mirrors=false` refuses even when `allow-mirrors-from`
//!    matches: an explicit "no" wins. Asked of every namespace with `--require-target-consent`, and
//!    always for the kinds that run code in the target namespace (`--consent-required-kinds`, by
//!    default everything carrying a pod template or creating pods: see [`CONSENT_REQUIRED_KINDS`]).
//!    Without it, whoever may edit one Deployment could run pods with that namespace's service
//!    accounts in every other tenant's namespace, written with the controller's privileges.
//! 6. **Limit**: the survivors are sorted by name and the first `--max-targets` (default 100, 0 = no
//!    limit) are kept, so the same namespaces win on every pass (no create/delete flapping); the
//!    truncation is reported on the source.

use std::collections::BTreeSet;

use crate::keys;
use crate::kinds::KindList;
use crate::model::{NamespaceRecord, SourceObject, Str};

/// `--consent-required-kinds` by default: the built-in kinds that carry a pod template or create
/// pods. Bare kinds, so a custom resource of the same name in another group needs consent too.
pub const CONSENT_REQUIRED_KINDS: [&str; 8] =
    ["Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job", "CronJob", "ReplicationController", "PodTemplate"];
use crate::selector::LabelSelector;

/// A namespace-name glob. Plain names are kept literal so matching them is a string compare.
#[derive(Debug, Clone)]
pub struct Glob {
    text: String,
    re: Option<regex_lite::Regex>,
}

impl Glob {
    /// Accepts what a namespace name can contain (`a-z`, `0-9`, `-`) plus `*`, `?` and `[...]`
    /// classes; anything else cannot match a namespace and is rejected so the user hears about it.
    pub fn parse(text: &str) -> Result<Glob, String> {
        if text.is_empty() {
            return Err("empty pattern".into());
        }
        if !text.contains(['*', '?', '[']) {
            validate_name(text)?;
            return Ok(Glob { text: text.to_string(), re: None });
        }
        let mut re = String::from("^");
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '*' => re.push_str(".*"),
                '?' => re.push('.'),
                '[' => {
                    re.push('[');
                    if chars.peek() == Some(&'^') {
                        chars.next();
                        re.push('^');
                    }
                    let mut members = 0;
                    loop {
                        match chars.next() {
                            Some(']') if members > 0 => break,
                            Some(lo) if is_name_char(lo) && lo != '-' => {
                                if chars.peek() == Some(&'-') {
                                    chars.next();
                                    let hi = chars.next().filter(|h| is_name_char(*h) && *h != '-' && *h >= lo);
                                    let hi = hi.ok_or_else(|| format!("bad range in character class of {text:?}"))?;
                                    re.push_str(&format!("{lo}-{hi}"));
                                } else {
                                    re.push(lo);
                                }
                                members += 1;
                            }
                            _ => return Err(format!("bad character class in {text:?}")),
                        }
                    }
                    re.push(']');
                }
                c if is_name_char(c) => re.push(c),
                c => return Err(format!("{c:?} cannot appear in a namespace name")),
            }
        }
        re.push('$');
        let re = regex_lite::Regex::new(&re).map_err(|e| format!("pattern {text:?}: {e}"))?;
        Ok(Glob { text: text.to_string(), re: Some(re) })
    }

    pub fn is_literal(&self) -> bool {
        self.re.is_none()
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn matches(&self, name: &str) -> bool {
        match &self.re {
            Some(re) => re.is_match(name),
            None => self.text == name,
        }
    }
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'
}

/// RFC 1123 label, what a namespace name must be.
fn validate_name(name: &str) -> Result<(), String> {
    let ok = name.len() <= 63 && name.chars().all(is_name_char) && !name.starts_with('-') && !name.ends_with('-');
    if ok { Ok(()) } else { Err(format!("{name:?} is not a valid namespace name")) }
}

/// Comma list, trimmed, empty items dropped, duplicates dropped (first occurrence kept).
pub fn split_list(value: &str) -> Vec<&str> {
    let mut seen = BTreeSet::new();
    value.split(',').map(str::trim).filter(|s| !s.is_empty() && seen.insert(*s)).collect()
}

/// Whether a `target-namespaces` list names `namespace` itself (a literal entry). Text only, no
/// parse: an item equal to a namespace's name is a valid literal, and no glob or keyword equals
/// one (namespace names have no `*`, `?` or upper case; `all` and `all-labeled` are checked
/// separately as patterns).
pub fn lists_name(list: &str, namespace: &str) -> bool {
    namespace != keys::KEYWORD_ALL
        && namespace != keys::KEYWORD_ALL_LABELED
        && list.split(',').any(|item| item.trim() == namespace)
}

#[derive(Debug, Clone)]
enum Entry {
    All,
    AllLabeled,
    Name(Glob),
}

/// Something the source asked for that could not be honoured; reported on the source, never a
/// reconcile failure.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum TargetProblem {
    InvalidEntry {
        entry: String,
        reason: String,
    },
    InvalidSelector {
        selector: String,
        reason: String,
    },
    /// A literal name with no such namespace (yet).
    Missing(Str),
    /// Named literally, but the source's own namespace or excluded by the namespace filter.
    Excluded(Str),
    Terminating(Str),
    ConsentRefused(Str),
    /// The source's kind runs code in the target namespace, which has not consented.
    RunsCodeWithoutConsent {
        namespace: Str,
        kind: Str,
    },
    Truncated {
        matched: usize,
        kept: usize,
    },
}

impl std::fmt::Display for TargetProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TargetProblem::InvalidEntry { entry, reason } => write!(f, "invalid target entry {entry:?}: {reason}"),
            TargetProblem::InvalidSelector { selector, reason } => {
                write!(f, "invalid target-namespace-selector {selector:?}: {reason}")
            }
            TargetProblem::Missing(ns) => write!(f, "target namespace {ns} does not exist"),
            TargetProblem::Excluded(ns) => write!(f, "target namespace {ns} is excluded"),
            TargetProblem::Terminating(ns) => write!(f, "target namespace {ns} is terminating"),
            TargetProblem::ConsentRefused(ns) => write!(f, "target namespace {ns} does not accept mirrors from here"),
            TargetProblem::RunsCodeWithoutConsent { namespace, kind } => write!(
                f,
                "target namespace {namespace} has not consented to {kind} mirrors (kinds that run pods need the \
                 namespace's allow-mirrors label or allow-mirrors-from annotation)"
            ),
            TargetProblem::Truncated { matched, kept } => {
                write!(f, "{matched} target namespaces matched, only the first {kept} (by name) are mirrored")
            }
        }
    }
}

impl TargetProblem {
    /// For a namespace that was skipped (not a failure), the metric label of why.
    pub fn skip_reason(&self) -> Option<&'static str> {
        match self {
            TargetProblem::Missing(_) => Some("missing"),
            TargetProblem::Excluded(_) => Some("excluded"),
            TargetProblem::Terminating(_) => Some("terminating"),
            TargetProblem::ConsentRefused(_) => Some("no_consent"),
            TargetProblem::RunsCodeWithoutConsent { .. } => Some("runs_code_no_consent"),
            TargetProblem::InvalidEntry { .. }
            | TargetProblem::InvalidSelector { .. }
            | TargetProblem::Truncated { .. } => None,
        }
    }
}

/// A source's parsed targeting annotations. Parse once per source change, resolve per pass.
#[derive(Debug, Clone, Default)]
pub struct TargetSpec {
    entries: Vec<Entry>,
    selector: Option<LabelSelector>,
    problems: Vec<TargetProblem>,
}

impl TargetSpec {
    pub fn from_source(source: &SourceObject) -> Self {
        Self::parse(
            source.annotation(keys::ANN_TARGET_NAMESPACES),
            source.annotation(keys::ANN_TARGET_NAMESPACE_SELECTOR),
        )
    }

    /// An empty or whitespace-only selector selects nothing: an empty Kubernetes selector means
    /// "everything", which is never what a half-edited annotation intends.
    pub fn parse(list: Option<&str>, selector: Option<&str>) -> Self {
        let mut spec = TargetSpec::default();
        for item in split_list(list.unwrap_or("")) {
            let entry = match item {
                keys::KEYWORD_ALL => Ok(Entry::All),
                keys::KEYWORD_ALL_LABELED => Ok(Entry::AllLabeled),
                other => Glob::parse(other).map(Entry::Name),
            };
            match entry {
                Ok(e) => spec.entries.push(e),
                Err(reason) => spec.problems.push(TargetProblem::InvalidEntry { entry: item.to_string(), reason }),
            }
        }
        if let Some(sel) = selector.map(str::trim).filter(|s| !s.is_empty()) {
            match LabelSelector::parse(sel) {
                Ok(s) => spec.selector = Some(s),
                Err(e) => spec
                    .problems
                    .push(TargetProblem::InvalidSelector { selector: sel.to_string(), reason: e.to_string() }),
            }
        }
        spec
    }

    /// Selects nothing at all (the sweep of existing mirrors still runs on such a source).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.selector.is_none()
    }

    /// Step 1 only: whether the list or the selector picks this namespace. The namespace reconciler
    /// uses it to find the sources a new or relabelled namespace concerns (plus the sources owning a
    /// mirror there, for a namespace that stops matching).
    pub fn selects(&self, ns: &NamespaceRecord) -> bool {
        let allow = ns.label(keys::LABEL_ALLOW_MIRRORS);
        self.entries.iter().any(|e| match e {
            Entry::All => allow != Some("false"),
            Entry::AllLabeled => allow == Some("true"),
            Entry::Name(g) => g.matches(&ns.name),
        }) || self.selector.as_ref().is_some_and(|s| s.matches_with(|k| ns.label(k)))
    }

    /// Whether the list contains the `all` keyword (whose opt-out label explains a non-selection).
    pub fn uses_all(&self) -> bool {
        self.entries.iter().any(|e| matches!(e, Entry::All))
    }

    /// Whether the list contains the `all-labeled` keyword.
    pub fn uses_all_labeled(&self) -> bool {
        self.entries.iter().any(|e| matches!(e, Entry::AllLabeled))
    }

    /// Whether anything but literal names can select a namespace (a glob, a keyword, a selector):
    /// such a source must be asked about every namespace; a literal-only one only about its names.
    pub fn has_patterns(&self) -> bool {
        self.selector.is_some() || self.entries.iter().any(|e| !matches!(e, Entry::Name(g) if g.is_literal()))
    }

    /// The spec without its literal names and problems: what [`selects`](Self::selects) needs
    /// besides a text check of the list ([`lists_name`]), kept small for a source with a long list.
    pub fn patterns_only(mut self) -> Self {
        self.entries.retain(|e| !matches!(e, Entry::Name(g) if g.is_literal()));
        self.entries.shrink_to_fit();
        self.problems = Vec::new();
        self
    }

    fn literals(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().filter_map(|e| match e {
            Entry::Name(g) if g.is_literal() => Some(g.as_str()),
            _ => None,
        })
    }
}

/// Controller-wide targeting settings (flags).
#[derive(Debug, Clone)]
pub struct TargetConfig {
    pub filter: NamespaceFilter,
    /// `--require-target-consent`: every namespace must consent.
    pub require_consent: bool,
    /// `--consent-required-kinds`: kinds that need consent whatever `require_consent` says.
    pub consent_kinds: KindList,
    /// 0 = unlimited.
    pub max_targets: usize,
}

impl Default for TargetConfig {
    fn default() -> Self {
        TargetConfig {
            filter: NamespaceFilter::default(),
            require_consent: false,
            consent_kinds: KindList::of_kinds(&CONSENT_REQUIRED_KINDS),
            max_targets: 100,
        }
    }
}

/// Whether (and why) a target namespace must consent before it receives a source's mirror.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsentRule {
    NotRequired,
    /// `--require-target-consent`.
    Required,
    /// The source's kind (named here) runs code in the target namespace.
    RunsCode(Str),
}

impl TargetConfig {
    pub fn consent_rule(&self, group: &str, kind: &str) -> ConsentRule {
        if self.consent_kinds.matches(group, kind) {
            ConsentRule::RunsCode(kind.into())
        } else if self.require_consent {
            ConsentRule::Required
        } else {
            ConsentRule::NotRequired
        }
    }

    /// The rule for a source, by its `apiVersion` and `kind`. An object without a kind (which the
    /// API server never sends) is treated as one that runs code unless no kind needs consent:
    /// refusing a mirror is recoverable, running a workload in a tenant's namespace is not.
    pub fn consent_rule_for(&self, source: &SourceObject) -> ConsentRule {
        let group = source.api_version.split_once('/').map_or("", |(g, _)| g);
        match Some(&*source.kind).filter(|k| !k.is_empty()) {
            Some(kind) => self.consent_rule(group, kind),
            None if !self.consent_kinds.is_empty() => ConsentRule::RunsCode("objects of an unknown kind".into()),
            None => self.consent_rule(group, ""),
        }
    }
}

/// `--included-namespaces` / `--excluded-namespaces`, both glob lists.
#[derive(Debug, Clone, Default)]
pub struct NamespaceFilter {
    included: Vec<Glob>,
    excluded: Vec<Glob>,
}

impl NamespaceFilter {
    /// Flags are operator input: a bad pattern stops start-up with a clear message rather than
    /// silently widening or narrowing what gets mirrored.
    pub fn new(included: &str, excluded: &str) -> Result<Self, String> {
        let parse = |flag: &str, v: &str| -> Result<Vec<Glob>, String> {
            split_list(v).into_iter().map(|g| Glob::parse(g).map_err(|e| format!("--{flag}: {e}"))).collect()
        };
        Ok(NamespaceFilter {
            included: parse("included-namespaces", included)?,
            excluded: parse("excluded-namespaces", excluded)?,
        })
    }

    pub fn allows(&self, ns: &str) -> bool {
        self.check(ns).is_ok()
    }

    /// Step 3 with its reason: system namespaces, then `--excluded-namespaces`, then
    /// `--included-namespaces`.
    pub fn check(&self, ns: &str) -> Result<(), Step> {
        if keys::ALWAYS_EXCLUDED_NAMESPACES.contains(&ns) {
            return Err(Step::AlwaysExcluded);
        }
        if let Some(g) = self.excluded.iter().find(|g| g.matches(ns)) {
            return Err(Step::ExcludedByFlag(g.as_str().to_string()));
        }
        if !self.included.is_empty() && !self.included.iter().any(|g| g.matches(ns)) {
            return Err(Step::NotIncluded);
        }
        Ok(())
    }
}

/// The step of the precedence (module docs) at which a namespace stops being a target candidate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// 1: neither the list nor the selector picks it.
    NotSelected,
    /// 2.
    SourceNamespace,
    /// 3: `kube-system`, `kube-public`, `kube-node-lease`.
    AlwaysExcluded,
    /// 3: matches this `--excluded-namespaces` glob.
    ExcludedByFlag(String),
    /// 3: `--included-namespaces` is set and does not match.
    NotIncluded,
    /// 4.
    Terminating,
    /// 5: `--require-target-consent` and the namespace does not consent.
    NotConsenting,
    /// 5: the source's kind (named) runs code in the namespace, which does not consent.
    RunsCodeWithoutConsent(Str),
}

/// Steps 1 to 5 for one namespace: `None` when it passes them all (step 6, the limit, is applied
/// to the whole set by [`resolve`]).
pub fn step_for(
    spec: &TargetSpec,
    source_ns: &str,
    ns: &NamespaceRecord,
    config: &TargetConfig,
    consent: &ConsentRule,
) -> Option<Step> {
    if !spec.selects(ns) {
        Some(Step::NotSelected)
    } else if *ns.name == *source_ns {
        Some(Step::SourceNamespace)
    } else if let Err(step) = config.filter.check(&ns.name) {
        Some(step)
    } else if ns.terminating {
        Some(Step::Terminating)
    } else if *consent != ConsentRule::NotRequired && !consents(ns, source_ns) {
        Some(match consent {
            ConsentRule::RunsCode(kind) => Step::RunsCodeWithoutConsent(kind.clone()),
            _ => Step::NotConsenting,
        })
    } else {
        None
    }
}

/// Does namespace `ns` accept pushes from `source_ns` (`--require-target-consent`)?
pub fn consents(ns: &NamespaceRecord, source_ns: &str) -> bool {
    match ns.label(keys::LABEL_ALLOW_MIRRORS) {
        Some("true") => true,
        Some("false") => false,
        _ => ns.allow_from.as_deref().is_some_and(|list| {
            split_list(list).into_iter().filter_map(|g| Glob::parse(g).ok()).any(|g| g.matches(source_ns))
        }),
    }
}

/// The resolved target set: sorted, unique namespace names, plus everything worth reporting.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Targets {
    pub namespaces: Vec<Str>,
    pub problems: Vec<TargetProblem>,
}

impl Targets {
    pub fn contains(&self, ns: &str) -> bool {
        self.namespaces.binary_search_by(|n| (**n).cmp(ns)).is_ok()
    }
}

/// Applies the precedence documented at the top of this module; `consent` is the source's
/// [`TargetConfig::consent_rule_for`].
pub fn resolve<'a>(
    spec: &TargetSpec,
    source_ns: &str,
    namespaces: impl IntoIterator<Item = &'a NamespaceRecord>,
    config: &TargetConfig,
    consent: &ConsentRule,
) -> Targets {
    let mut problems = spec.problems.clone();
    let mut found: BTreeSet<&str> = BTreeSet::new();
    let mut selected: Vec<Str> = Vec::new();
    let literals: BTreeSet<&str> = spec.literals().collect();
    for ns in namespaces {
        let step = step_for(spec, source_ns, ns, config, consent);
        if step == Some(Step::NotSelected) {
            continue;
        }
        let name = &*ns.name;
        let literal = literals.contains(name);
        if literal {
            found.insert(name);
        }
        match step {
            None => selected.push(ns.name.clone()),
            Some(Step::Terminating) => problems.push(TargetProblem::Terminating(ns.name.clone())),
            Some(Step::NotConsenting) => problems.push(TargetProblem::ConsentRefused(ns.name.clone())),
            // Only a literal is worth reporting: a glob or `all` crossing an excluded namespace is normal.
            Some(Step::RunsCodeWithoutConsent(kind)) => {
                problems.push(TargetProblem::RunsCodeWithoutConsent { namespace: ns.name.clone(), kind })
            }
            Some(_) if literal => problems.push(TargetProblem::Excluded(ns.name.clone())),
            Some(_) => {}
        }
    }
    for lit in literals.difference(&found) {
        let problem = if *lit == source_ns || !config.filter.allows(lit) {
            TargetProblem::Excluded((*lit).into())
        } else {
            TargetProblem::Missing((*lit).into())
        };
        problems.push(problem);
    }
    selected.sort();
    selected.dedup();
    if config.max_targets > 0 && selected.len() > config.max_targets {
        problems.push(TargetProblem::Truncated { matched: selected.len(), kept: config.max_targets });
        selected.truncate(config.max_targets);
    }
    problems.sort();
    problems.dedup();
    Targets { namespaces: selected, problems }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Pairs;

    fn ns(name: &str, labels: &[(&str, &str)]) -> NamespaceRecord {
        NamespaceRecord {
            name: name.into(),
            labels: Pairs::from_pairs(labels.iter().map(|(k, v)| (Str::from(*k), Str::from(*v)))),
            name_label: false,
            terminating: false,
            allow_from: None,
        }
    }

    fn cluster() -> Vec<NamespaceRecord> {
        let mut v = vec![
            ns("default", &[]),
            ns("app1", &[]),
            ns("app2", &[("env", "prod"), ("team", "a")]),
            ns("app-x", &[(keys::LABEL_ALLOW_MIRRORS, "true")]),
            ns("prod-1", &[("env", "prod"), ("team", "b")]),
            ns("optout", &[(keys::LABEL_ALLOW_MIRRORS, "false")]),
            ns("labeled", &[(keys::LABEL_ALLOW_MIRRORS, "true")]),
            ns("kube-system", &[(keys::LABEL_ALLOW_MIRRORS, "true")]),
            ns("kube-public", &[]),
            ns("kube-node-lease", &[]),
        ];
        v.push(NamespaceRecord { terminating: true, ..ns("dying", &[]) });
        v.push(NamespaceRecord { allow_from: Some("default, team-*".into()), ..ns("consenting", &[]) });
        v.push(NamespaceRecord {
            allow_from: Some("default".into()),
            ..ns("vetoed", &[(keys::LABEL_ALLOW_MIRRORS, "false")])
        });
        v
    }

    fn names(t: &Targets) -> Vec<&str> {
        t.namespaces.iter().map(|s| &**s).collect()
    }

    /// name, target-namespaces, selector, config, expected targets, expected problems
    type Case<'a> = (&'a str, Option<&'a str>, Option<&'a str>, &'a TargetConfig, Vec<&'a str>, Vec<TargetProblem>);

    #[test]
    fn resolution_table() {
        let plain = TargetConfig::default();
        let consent = TargetConfig { require_consent: true, ..TargetConfig::default() };
        let limited = TargetConfig { max_targets: 2, ..TargetConfig::default() };
        let filtered = TargetConfig {
            filter: NamespaceFilter::new("app*,prod-?,labeled", "app-*").unwrap(),
            ..TargetConfig::default()
        };
        use TargetProblem::*;
        #[rustfmt::skip]
        let cases: Vec<Case> = vec![
            ("README specific", Some("app1,app2,app3"), None, &plain, vec!["app1", "app2"], vec![Missing("app3".into())]),
            ("whitespace, dupes, empties", Some(" app1 ,, app1,\tapp2 ,"), None, &plain, vec!["app1", "app2"], vec![]),
            ("README patterns", Some("app-*,prod-*"), None, &plain, vec!["app-x", "prod-1"], vec![]),
            ("question mark", Some("app?"), None, &plain, vec!["app1", "app2"], vec![]),
            ("class", Some("app[2-9]"), None, &plain, vec!["app2"], vec![]),
            ("negated class", Some("app[^2]"), None, &plain, vec!["app1"], vec![]),
            ("README all: opt-out, system and source excluded, terminating reported", Some("all"), None, &plain,
                vec!["app-x", "app1", "app2", "consenting", "labeled", "prod-1"], vec![Terminating("dying".into())]),
            ("README all-labeled", Some("all-labeled"), None, &plain, vec!["app-x", "labeled"], vec![]),
            ("mix keyword and names", Some("all-labeled, app1"), None, &plain, vec!["app-x", "app1", "labeled"], vec![]),
            ("opt-out only limits all", Some("optout"), None, &plain, vec!["optout"], vec![]),
            ("source namespace named", Some("default,app1"), None, &plain, vec!["app1"], vec![Excluded("default".into())]),
            ("system namespace named", Some("kube-system,kube-*"), None, &plain, vec![], vec![Excluded("kube-system".into())]),
            ("invalid entries reported, rest applies", Some("app-[,App1,a/b,app1,[]"), None, &plain, vec!["app1"], vec![
                InvalidEntry { entry: "App1".into(), reason: "\"App1\" is not a valid namespace name".into() },
                InvalidEntry { entry: "[]".into(), reason: "bad character class in \"[]\"".into() },
                InvalidEntry { entry: "a/b".into(), reason: "\"a/b\" is not a valid namespace name".into() },
                InvalidEntry { entry: "app-[".into(), reason: "bad character class in \"app-[\"".into() },
            ]),
            ("terminating literal", Some("dying"), None, &plain, vec![], vec![Terminating("dying".into())]),
            ("nothing", None, None, &plain, vec![], vec![]),
            ("commas only", Some(" , ,"), None, &plain, vec![], vec![]),
            ("selector alone", None, Some("env=prod,team in (a,b)"), &plain, vec!["app2", "prod-1"], vec![]),
            ("selector union list", Some("app1"), Some("team=b"), &plain, vec!["app1", "prod-1"], vec![]),
            ("empty selector selects nothing", None, Some("  "), &plain, vec![], vec![]),
            ("bad selector reported", Some("app1"), Some("env in ("), &plain, vec!["app1"], vec![InvalidSelector {
                selector: "env in (".into(), reason: String::new() }]),
            ("filter: included globs, excluded wins", Some("all"), None, &filtered, vec!["app1", "app2", "labeled", "prod-1"], vec![]),
            ("filter: excluded literal reported", Some("app-x"), None, &filtered, vec![], vec![Excluded("app-x".into())]),
            ("consent: all", Some("all"), None, &consent, vec!["app-x", "consenting", "labeled"], vec![
                ConsentRefused("app1".into()), ConsentRefused("app2".into()), ConsentRefused("prod-1".into()),
                Terminating("dying".into())]),
            ("consent: explicit no wins over allow list", Some("vetoed,consenting"), None, &consent, vec!["consenting"],
                vec![ConsentRefused("vetoed".into())]),
            ("max targets: sorted, first N, reported", Some("all"), None, &limited, vec!["app-x", "app1"], vec![
                Terminating("dying".into()), Truncated { matched: 6, kept: 2 }]),
        ];
        let cluster = cluster();
        for (name, list, selector, config, want, want_problems) in cases {
            let spec = TargetSpec::parse(list, selector);
            let got = resolve(&spec, "default", &cluster, config, &config.consent_rule("", "Secret"));
            assert_eq!(names(&got), want, "{name}");
            // Selector errors come from selector.rs; compare their shape, not its wording.
            let normalise = |p: &TargetProblem| match p {
                InvalidSelector { selector, .. } => {
                    InvalidSelector { selector: selector.clone(), reason: String::new() }
                }
                p => p.clone(),
            };
            let got_problems: Vec<_> = got.problems.iter().map(normalise).collect();
            let mut want_problems = want_problems;
            want_problems.sort();
            assert_eq!(got_problems, want_problems, "{name}");
        }
    }

    #[test]
    fn truncation_is_stable_whatever_the_input_order() {
        let config = TargetConfig { max_targets: 3, ..TargetConfig::default() };
        let spec = TargetSpec::parse(Some("t-*"), None);
        let mut cluster: Vec<_> = (0..20).map(|i| ns(&format!("t-{i:02}"), &[])).collect();
        let none = ConsentRule::NotRequired;
        let first = resolve(&spec, "src", &cluster, &config, &none);
        cluster.reverse();
        let second = resolve(&spec, "src", &cluster, &config, &none);
        assert_eq!(first, second);
        assert_eq!(names(&first), ["t-00", "t-01", "t-02"]);
        assert!(first.contains("t-01") && !first.contains("t-03"));
        let unlimited = TargetConfig { max_targets: 0, ..TargetConfig::default() };
        assert_eq!(resolve(&spec, "src", &cluster, &unlimited, &none).namespaces.len(), 20);
    }

    #[test]
    fn glob_table() {
        let cases = [
            ("app-*", "app-1", true),
            ("app-*", "app-", true),
            ("app-*", "xapp-1", false),
            ("*", "anything", true),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("[a-c]x", "bx", true),
            ("[a-c]x", "dx", false),
            ("app1", "app1", true),
            ("app1", "app10", false),
        ];
        for (g, name, want) in cases {
            assert_eq!(Glob::parse(g).unwrap().matches(name), want, "{g} ~ {name}");
        }
        for bad in ["", "[", "a[", "[z-a]", "a]", "A*", "a\\", "a b", "-app", "[a-]"] {
            assert!(Glob::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn each_namespace_stops_at_its_first_failing_step() {
        let config = TargetConfig {
            filter: NamespaceFilter::new("", "app-*").unwrap(),
            require_consent: true,
            ..TargetConfig::default()
        };
        let spec = TargetSpec::parse(Some("all"), None);
        let required = ConsentRule::Required;
        let steps: Vec<(String, Option<Step>)> = cluster()
            .iter()
            .map(|ns| (ns.name.to_string(), step_for(&spec, "default", ns, &config, &required)))
            .collect();
        let get = |n: &str| steps.iter().find(|(name, _)| name == n).map(|(_, s)| s.clone()).unwrap();
        assert_eq!(get("optout"), Some(Step::NotSelected));
        assert_eq!(get("default"), Some(Step::SourceNamespace));
        assert_eq!(get("kube-system"), Some(Step::AlwaysExcluded));
        assert_eq!(get("app-x"), Some(Step::ExcludedByFlag("app-*".into())));
        assert_eq!(get("dying"), Some(Step::Terminating));
        assert_eq!(get("app1"), Some(Step::NotConsenting));
        assert_eq!(get("labeled"), None);
        assert_eq!(get("consenting"), None);
        let only = TargetConfig { filter: NamespaceFilter::new("prod-*", "").unwrap(), ..TargetConfig::default() };
        let none = ConsentRule::NotRequired;
        assert_eq!(step_for(&spec, "default", &cluster()[1], &only, &none), Some(Step::NotIncluded));
        let runs = ConsentRule::RunsCode("Deployment".into());
        assert_eq!(step_for(&spec, "default", &cluster()[2], &TargetConfig::default(), &none), None);
        assert_eq!(
            step_for(&spec, "default", &cluster()[2], &TargetConfig::default(), &runs),
            Some(Step::RunsCodeWithoutConsent("Deployment".into()))
        );
        assert!(spec.uses_all() && !spec.uses_all_labeled());
    }

    #[test]
    fn filter_flags() {
        assert!(NamespaceFilter::new("", "team-[").is_err());
        let f = NamespaceFilter::new("", "team-*,sandbox").unwrap();
        assert!(!f.allows("team-a") && !f.allows("sandbox") && !f.allows("kube-public"));
        assert!(f.allows("prod"));
    }

    #[test]
    fn kinds_that_run_code_need_consent_whatever_the_flag() {
        let deployment = |cfg: &TargetConfig| cfg.consent_rule("apps", "Deployment");
        let plain = TargetConfig::default();
        let consent = TargetConfig { require_consent: true, ..TargetConfig::default() };
        let nobody = TargetConfig { consent_kinds: KindList::empty(), ..TargetConfig::default() };
        let widened =
            TargetConfig { consent_kinds: KindList::parse("Secret.v1,*.argoproj.io").unwrap(), ..plain.clone() };
        let runs = |k: &str| ConsentRule::RunsCode(k.into());
        #[rustfmt::skip]
        let rules = [
            ("default list, plain", deployment(&plain), runs("Deployment")),
            ("default list, consent mode: the kind's reason wins", deployment(&consent), runs("Deployment")),
            ("a Secret, plain", plain.consent_rule("", "Secret"), ConsentRule::NotRequired),
            ("a Secret, consent mode", consent.consent_rule("", "Secret"), ConsentRule::Required),
            ("bare kinds cover every group", plain.consent_rule("acme.io", "Job"), runs("Job")),
            ("emptied list", deployment(&nobody), ConsentRule::NotRequired),
            ("emptied list, consent mode", TargetConfig { require_consent: true, ..nobody.clone() }
                .consent_rule("apps", "Deployment"), ConsentRule::Required),
            ("widened: core Secret", widened.consent_rule("", "Secret"), runs("Secret")),
            ("widened: a group", widened.consent_rule("argoproj.io", "Rollout"), runs("Rollout")),
            ("widened replaces the default", deployment(&widened), ConsentRule::NotRequired),
        ];
        for (name, got, want) in rules {
            assert_eq!(got, want, "{name}");
        }
        for kind in CONSENT_REQUIRED_KINDS {
            let group = match kind {
                "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet" => "apps",
                "Job" | "CronJob" => "batch",
                _ => "",
            };
            assert_eq!(plain.consent_rule(group, kind), runs(kind), "{kind}");
        }

        // The rule from the object itself.
        let obj = |api: &str, kind: Option<&str>| {
            let mut o = serde_json::json!({"apiVersion": api, "metadata": {"name": "web", "namespace": "default",
                "uid": "u"}});
            if let Some(k) = kind {
                o["kind"] = k.into();
            }
            SourceObject::from_object(o).unwrap()
        };
        assert_eq!(plain.consent_rule_for(&obj("apps/v1", Some("Deployment"))), runs("Deployment"));
        assert_eq!(plain.consent_rule_for(&obj("v1", Some("PodTemplate"))), runs("PodTemplate"));
        assert_eq!(plain.consent_rule_for(&obj("v1", Some("Secret"))), ConsentRule::NotRequired);
        assert_eq!(widened.consent_rule_for(&obj("v1", Some("Secret"))), runs("Secret"));
        assert_eq!(widened.consent_rule_for(&obj("apps/v1", Some("Secret"))), ConsentRule::NotRequired);
        // No kind at all: fail closed unless the operator emptied the list.
        assert!(matches!(plain.consent_rule_for(&obj("v1", None)), ConsentRule::RunsCode(_)));
        assert_eq!(nobody.consent_rule_for(&obj("v1", None)), ConsentRule::NotRequired);

        // Resolution: only consenting namespaces, each refusal reported with the kind.
        let spec = TargetSpec::parse(Some("all"), None);
        let got = resolve(&spec, "default", &cluster(), &plain, &runs("Deployment"));
        assert_eq!(names(&got), ["app-x", "consenting", "labeled"]);
        let refused =
            |ns: &str| TargetProblem::RunsCodeWithoutConsent { namespace: ns.into(), kind: "Deployment".into() };
        assert_eq!(
            got.problems,
            vec![TargetProblem::Terminating("dying".into()), refused("app1"), refused("app2"), refused("prod-1")]
        );
        assert!(
            got.problems[1].to_string().contains("app1 has not consented to Deployment mirrors"),
            "{}",
            got.problems[1]
        );
        // A literal name is no consent, and an explicit "no" wins over allow-mirrors-from.
        let got = resolve(
            &TargetSpec::parse(Some("app1,vetoed,consenting"), None),
            "default",
            &cluster(),
            &plain,
            &runs("Deployment"),
        );
        assert_eq!(names(&got), ["consenting"]);
        assert_eq!(got.problems, vec![refused("app1"), refused("vetoed")]);
        // Emptied knowingly: everything selected.
        let got = resolve(&spec, "default", &cluster(), &nobody, &nobody.consent_rule("apps", "Deployment"));
        assert_eq!(names(&got).len(), 6);
    }

    #[test]
    fn consent_table() {
        let with = |label: Option<&str>, from: Option<&str>| NamespaceRecord {
            allow_from: from.map(Str::from),
            ..ns("t", &label.map(|l| vec![(keys::LABEL_ALLOW_MIRRORS, l)]).unwrap_or_default())
        };
        let cases = [
            (Some("true"), None, true),
            (Some("false"), Some("src"), false),
            (None, Some("src"), true),
            (None, Some(" other , sr? "), true),
            (None, Some("other,[bad"), false),
            (None, None, false),
            (Some("yes"), None, false),
        ];
        for (label, from, want) in cases {
            assert_eq!(consents(&with(label, from), "src"), want, "{label:?} {from:?}");
        }
    }
}
