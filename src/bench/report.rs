//! What one benchmark run measured, the goals it checks, and the Markdown BENCHMARKS.md records.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use crate::bench::Config;
use crate::bench::measure::{Memory, Peaks};
use crate::testkit::StatsSnapshot;

const WRITE_VERBS: [&str; 5] = ["create", "update", "patch", "delete", "deletecollection"];

/// A process's memory and CPU over the run.
#[derive(Debug, Clone, Default)]
pub struct ProcFigures {
    /// Read at the end of the steady window: VmHWM (the run's peak) and the resident set then.
    pub end: Memory,
    /// The largest anonymous and file-backed sizes sampled over the run.
    pub peaks: Peaks,
    /// User + system CPU from start until the controller had settled.
    pub cpu_converged: Duration,
    /// ... until the end of the steady window.
    pub cpu_end: Duration,
}

/// One phase's requests and received bytes, for the controller and (if run) the baseline.
#[derive(Debug, Clone, Default)]
pub struct Phase {
    pub controller: StatsSnapshot,
    pub baseline: Option<StatsSnapshot>,
}

#[derive(Debug, Clone)]
pub struct Report {
    pub config: Config,
    pub expected_mirrors: usize,
    /// Controller start until every expected mirror exists.
    pub convergence: Duration,
    /// Until every source also reports all its targets synced and requests stopped.
    pub settled: Duration,
    /// How long the client rate limit alone makes the startup requests take (None: no limit).
    pub qps_floor: Option<Duration>,
    pub startup: Phase,
    pub change_targets: usize,
    /// Source changed until every one of its mirrors carries the new content.
    pub change_latency: Duration,
    pub change: Phase,
    /// Sources selecting the namespace created in the new-namespace phase.
    pub new_namespace_sources: usize,
    pub new_namespace_latency: Duration,
    pub new_namespace: Phase,
    pub steady: Phase,
    pub steady_window: Duration,
    pub open_watches: i64,
    pub controller: ProcFigures,
    pub baseline: Option<ProcFigures>,
    pub exit_code: Option<i32>,
    pub stop_time: Duration,
    /// 1-minute load average at the start and the end of the run.
    pub load: (Option<f64>, Option<f64>),
    pub log_path: PathBuf,
    /// Anything that misses a goal (writes or GETs in steady state, more than K writes per change...).
    pub findings: Vec<String>,
}

/// Requests by verb over every resource.
pub fn by_verb(s: &StatsSnapshot) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for ((verb, _, _), n) in &s.requests {
        *out.entry(verb.clone()).or_default() += n;
    }
    out
}

/// `create 5000, list 6, watch 3`; `none` when empty.
pub fn verbs_line(s: &StatsSnapshot) -> String {
    let v = by_verb(s);
    if v.is_empty() {
        return "none".into();
    }
    v.iter().map(|(verb, n)| format!("{verb} {n}")).collect::<Vec<_>>().join(", ")
}

/// `create secrets 2500, ...`, every (verb, resource) pair.
pub fn detail_line(s: &StatsSnapshot) -> String {
    let mut m: BTreeMap<(String, String), u64> = BTreeMap::new();
    for ((verb, res, _), n) in &s.requests {
        let res = if res.is_empty() { "(discovery)".to_string() } else { res.clone() };
        *m.entry((verb.clone(), res)).or_default() += n;
    }
    if m.is_empty() {
        return "none".into();
    }
    m.iter().map(|((v, r), n)| format!("{v} {r} {n}")).collect::<Vec<_>>().join(", ")
}

pub fn writes(s: &StatsSnapshot) -> u64 {
    WRITE_VERBS.iter().map(|v| s.verb(v)).sum()
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

fn millis(d: Duration) -> String {
    format!("{} ms", d.as_millis())
}

pub fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

pub fn bytes(n: u64) -> String {
    match n {
        n if n >= 10 << 20 => format!("{:.0} MiB", n as f64 / 1048576.0),
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / 1048576.0),
        n if n >= 10 << 10 => format!("{:.0} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}

pub fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn ratio(base: f64, ours: f64) -> String {
    if ours <= 0.0 {
        return if base <= 0.0 { "=".into() } else { "∞".into() };
    }
    format!("{:.1}×", base / ours)
}

/// What misses the goals of issues 4, 5 and 12, in plain words.
pub fn findings(r: &Report) -> Vec<String> {
    let mut f = Vec::new();
    let change = &r.change.controller;
    let (w, g) = (writes(change), change.verb("get"));
    if w != r.change_targets as u64 {
        f.push(format!(
            "a source change with {} targets cost {w} writes (goal: exactly {}): {}",
            r.change_targets,
            r.change_targets,
            detail_line(change)
        ));
    }
    if g > 0 {
        f.push(format!("a source change caused {g} GETs (goal: none)"));
    }
    let ns = &r.new_namespace.controller;
    if ns.verb("create") != r.new_namespace_sources as u64 || ns.verb("get") > 0 || ns.verb("list") > 0 {
        f.push(format!(
            "a new namespace selected by {} sources cost {} (goal: one create per source, no reads)",
            r.new_namespace_sources,
            detail_line(ns)
        ));
    }
    let steady = &r.steady.controller;
    let non_watch = steady.total() - steady.verb("watch");
    if non_watch > 0 {
        f.push(format!(
            "{non_watch} requests other than watches in the {} s steady state: {}",
            r.steady_window.as_secs(),
            detail_line(steady)
        ));
    }
    if r.exit_code != Some(0) {
        f.push(format!("after SIGTERM the controller exited with {:?} (expected 0)", r.exit_code));
    }
    f
}

fn load(l: Option<f64>) -> String {
    l.map_or_else(|| "n/a".into(), |l| format!("{l:.2}"))
}

/// One row of the comparison table: the controller's figure, the baseline's, their ratio.
fn row(s: &mut String, what: &str, ours: String, base: Option<(String, String)>) {
    let (b, x) = base.unwrap_or_else(|| ("–".into(), "–".into()));
    let _ = writeln!(s, "| {what} | {ours} | {b} | {x} |");
}

fn phase_rows(s: &mut String, what: &str, p: &Phase) {
    let c = &p.controller;
    let base = |f: &dyn Fn(&StatsSnapshot) -> (String, f64), ours: f64| {
        p.baseline.as_ref().map(|b| {
            let (text, v) = f(b);
            (text, ratio(v, ours))
        })
    };
    let req = |s: &StatsSnapshot| (format!("{} ({})", s.total(), verbs_line(s)), s.total() as f64);
    let got = |s: &StatsSnapshot| (bytes(s.read_bytes()), s.read_bytes() as f64);
    row(s, &format!("{what}: requests"), req(c).0, base(&req, c.total() as f64));
    row(s, &format!("{what}: bytes read (list, watch, get)"), got(c).0, base(&got, c.read_bytes() as f64));
    let answers = c.bytes_sent - c.read_bytes();
    if answers > 0 {
        row(s, &format!("{what}: bytes of write responses"), bytes(answers), None);
    }
}

/// The run as Markdown: the command, timings with the machine's load, then a table of the
/// controller's figures beside the watch-all baseline's (when run) and their ratio.
pub fn markdown(r: &Report, date: &str) -> String {
    let c = &r.config;
    let sh = &c.shape;
    let mut s = String::new();
    let _ = writeln!(s, "Command: `{}`\n", c.command_line());
    let targets = sh.targets_per_source.map_or_else(|| "all".to_string(), |k| k.to_string());
    let _ = writeln!(
        s,
        "{date}: {} sources × {} targets over {} namespaces = {} mirrors; sources {}–{} B ({}), {} with rules; \
         {} unrelated objects of {} B; load average {} → {}.\n",
        sh.sources,
        targets,
        sh.namespaces,
        thousands(r.expected_mirrors),
        sh.source_bytes.0,
        sh.source_bytes.1,
        sh.kinds().iter().map(|k| k.kind()).collect::<Vec<_>>().join(", "),
        (0..sh.sources).filter(|i| sh.transform_of(*i).is_some()).count(),
        thousands(sh.objects_other),
        sh.other_bytes,
        load(r.load.0),
        load(r.load.1),
    );
    let floor = match r.qps_floor {
        Some(f) if f > Duration::ZERO => {
            format!(
                "; the client rate limit alone allows {} ({:.2}× that)",
                secs(f),
                r.convergence.as_secs_f64() / f.as_secs_f64()
            )
        }
        _ => "; no client rate limit".into(),
    };
    let _ = writeln!(s, "Convergence {}, settled {}{floor}.\n", secs(r.convergence), secs(r.settled));
    let _ = writeln!(s, "| figure | controller | watch-all baseline | baseline ÷ controller |");
    let _ = writeln!(s, "|---|---|---|---|");
    let (ours, base) = (&r.controller, r.baseline.as_ref());
    let mem = |f: &dyn Fn(&ProcFigures) -> u64| base.map(|b| (mib(f(b)), ratio(f(b) as f64, f(ours) as f64)));
    row(&mut s, "peak RSS (VmHWM)", mib(ours.end.peak), mem(&|p| p.end.peak));
    row(&mut s, "peak anonymous (sampled)", mib(ours.peaks.anon), mem(&|p| p.peaks.anon));
    row(&mut s, "peak file-backed (sampled)", mib(ours.peaks.file), mem(&|p| p.peaks.file));
    row(&mut s, "steady RSS (end)", mib(ours.end.rss), mem(&|p| p.end.rss));
    row(
        &mut s,
        "steady anonymous / file-backed",
        format!("{} / {}", mib(ours.end.anon), mib(ours.end.file)),
        base.map(|b| {
            (format!("{} / {}", mib(b.end.anon), mib(b.end.file)), ratio(b.end.anon as f64, ours.end.anon as f64))
        }),
    );
    let cpu = |d: Duration| format!("{:.2} s", d.as_secs_f64());
    row(
        &mut s,
        "CPU to converge (user+sys)",
        cpu(ours.cpu_converged),
        base.map(|b| (cpu(b.cpu_converged), ratio(b.cpu_converged.as_secs_f64(), ours.cpu_converged.as_secs_f64()))),
    );
    row(
        &mut s,
        "CPU, whole run",
        cpu(ours.cpu_end),
        base.map(|b| (cpu(b.cpu_end), ratio(b.cpu_end.as_secs_f64(), ours.cpu_end.as_secs_f64()))),
    );
    phase_rows(&mut s, "cold start", &r.startup);
    phase_rows(&mut s, &format!("one change ({} targets, {})", r.change_targets, millis(r.change_latency)), &r.change);
    phase_rows(
        &mut s,
        &format!("new namespace ({} sources, {})", r.new_namespace_sources, millis(r.new_namespace_latency)),
        &r.new_namespace,
    );
    phase_rows(&mut s, &format!("steady ({} s)", r.steady_window.as_secs()), &r.steady);
    let _ = writeln!(s);
    let _ = writeln!(s, "Controller requests by verb and resource:\n");
    let _ = writeln!(s, "- cold start: {}", detail_line(&r.startup.controller));
    let _ = writeln!(s, "- one source change: {}", detail_line(&r.change.controller));
    let _ = writeln!(s, "- new namespace: {}", detail_line(&r.new_namespace.controller));
    let _ = writeln!(
        s,
        "- steady state: {} ({} watches open over the server, {} watch frames sent)",
        detail_line(&r.steady.controller),
        r.open_watches,
        r.steady.controller.watch_events
    );
    let exit = match r.exit_code {
        Some(code) => format!("exit {code} in {}", secs(r.stop_time)),
        None => "did not exit (killed)".into(),
    };
    let _ = writeln!(s, "- SIGTERM: {exit}");
    if r.findings.is_empty() {
        let _ = writeln!(s, "\nFindings: none (every request goal met).");
    } else {
        let _ = writeln!(s, "\nFindings (goals missed):\n");
        for f in &r.findings {
            let _ = writeln!(s, "- {f}");
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::Config;

    fn snapshot(entries: &[(&str, &str, u64)], bytes: u64) -> StatsSnapshot {
        let mut s = StatsSnapshot::default();
        for (v, r, n) in entries {
            s.requests.insert((v.to_string(), r.to_string(), "admin".into()), *n);
        }
        s.bytes_sent = bytes;
        s.bytes_by_user.insert(("admin".into(), "watch".into()), bytes);
        s
    }

    fn phase(c: StatsSnapshot) -> Phase {
        Phase { controller: c, baseline: None }
    }

    pub(crate) fn report(change: StatsSnapshot, steady: StatsSnapshot, exit: Option<i32>) -> Report {
        let mut config = Config::default();
        config.shape.sources = 2;
        config.shape.namespaces = 3;
        config.shape.targets_per_source = Some(2);
        Report {
            config,
            expected_mirrors: 4,
            convergence: Duration::from_millis(1500),
            settled: Duration::from_secs(2),
            qps_floor: Some(Duration::from_secs(1)),
            startup: phase(snapshot(
                &[("list", "secrets", 2), ("watch", "secrets", 2), ("create", "secrets", 2)],
                2048,
            )),
            change_targets: 2,
            change_latency: Duration::from_millis(30),
            change: phase(change),
            new_namespace_sources: 1,
            new_namespace_latency: Duration::from_millis(20),
            new_namespace: phase(snapshot(&[("create", "secrets", 1), ("patch", "secrets", 1)], 100)),
            steady: phase(steady),
            steady_window: Duration::from_secs(60),
            open_watches: 5,
            controller: ProcFigures {
                end: Memory { peak: 10240, rss: 9216, anon: 2048, file: 7168 },
                peaks: Peaks { anon: 3072, file: 7168 },
                cpu_converged: Duration::from_millis(500),
                cpu_end: Duration::from_millis(600),
            },
            baseline: None,
            exit_code: exit,
            stop_time: Duration::from_millis(200),
            load: (Some(1.5), None),
            log_path: PathBuf::from("/tmp/x.log"),
            findings: Vec::new(),
        }
    }

    #[test]
    fn goals_met_means_no_findings() {
        let mut r = report(snapshot(&[("update", "secrets", 2)], 10), snapshot(&[("watch", "secrets", 1)], 5), Some(0));
        assert!(findings(&r).is_empty(), "{:?}", findings(&r));
        let md = markdown(&r, "2026-11-24");
        assert!(md.contains("2 sources × 2 targets over 3 namespaces = 4 mirrors"), "{md}");
        assert!(md.contains("load average 1.50 → n/a"), "{md}");
        assert!(
            md.contains("Convergence 1.5 s, settled 2.0 s; the client rate limit alone allows 1.0 s (1.50× that)"),
            "{md}"
        );
        assert!(md.contains("| peak RSS (VmHWM) | 10.0 MiB | – | – |"), "{md}");
        assert!(md.contains("| steady anonymous / file-backed | 2.0 MiB / 7.0 MiB |"), "{md}");
        assert!(md.contains("| cold start: requests | 6 (create 2, list 2, watch 2) |"), "{md}");
        assert!(md.contains("| cold start: bytes read (list, watch, get) | 2048 B |"), "{md}");
        assert!(md.contains("exit 0 in 0.2 s") && md.contains("Findings: none"), "{md}");
        let mut b = snapshot(&[("list", "secrets", 3), ("watch", "secrets", 2)], 20480);
        b.requests = b.requests.into_iter().map(|((v, r, _), n)| ((v, r, "baseline".into()), n)).collect();
        r.startup.baseline = Some(b);
        r.baseline = Some(ProcFigures { end: Memory { peak: 40960, ..Memory::default() }, ..ProcFigures::default() });
        let md = markdown(&r, "2026-11-24");
        assert!(md.contains("| peak RSS (VmHWM) | 10.0 MiB | 40.0 MiB | 4.0× |"), "{md}");
        assert!(md.contains("| cold start: bytes read (list, watch, get) | 2048 B | 20 KiB | 10.0× |"), "{md}");
    }

    #[test]
    fn missed_goals_are_reported() {
        let change = snapshot(&[("update", "secrets", 2), ("get", "secrets", 2), ("patch", "secrets", 1)], 0);
        let steady = snapshot(&[("watch", "secrets", 1), ("patch", "secrets", 3)], 0);
        let mut r = report(change, steady, Some(1));
        r.new_namespace.controller = snapshot(&[("get", "secrets", 1)], 0);
        let f = findings(&r);
        assert_eq!(f.len(), 5, "{f:?}");
        assert!(f[0].contains("3 writes (goal: exactly 2)"), "{f:?}");
        assert!(f[1].contains("2 GETs"), "{f:?}");
        assert!(f[2].contains("new namespace selected by 1 sources"), "{f:?}");
        assert!(f[3].contains("3 requests other than watches"), "{f:?}");
        assert!(f[4].contains("Some(1)"), "{f:?}");
    }

    #[test]
    fn numbers_read_well() {
        assert_eq!(thousands(20000), "20,000");
        assert_eq!(thousands(999), "999");
        assert_eq!(bytes(5 << 20), "5.0 MiB");
        assert_eq!(bytes(300 << 20), "300 MiB");
        assert_eq!(bytes(50_000), "49 KiB");
        assert_eq!(ratio(10.0, 0.0), "∞");
        assert_eq!(ratio(0.0, 0.0), "=");
    }
}
