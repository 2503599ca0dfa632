//! The controller benchmark behind `examples/bench.rs` (feature `testkit`): the in-memory API server
//! seeded with namespaces, opted-in sources and unrelated objects, the real `kubemirror` binary as a
//! child process (so its memory is its own), and the figures BENCHMARKS.md records: convergence
//! time, API requests by verb at startup, per source change and in a steady state, peak and final
//! RSS, and the exit code after SIGTERM.
//!
//! Every wait polls a condition against the server's direct API with a deadline; the only timed
//! windows are measurements (the steady state, and a short quiet period that makes sure trailing
//! requests of one phase are not counted in the next).

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::keys;
use crate::testkit::{ApiServer, ServerOptions, StatsSnapshot};

/// Where the sources live; never a target.
pub const SOURCE_NAMESPACE: &str = "bench-src";
/// The source whose content changes in the change phase (a Secret).
pub const CHANGED_SOURCE: &str = "src-0000";
/// Poll period while converging (a listing of every Secret and ConfigMap per check).
const POLL: Duration = Duration::from_millis(100);
/// Poll period for cheap checks (a few GETs), so latencies are measured to ~10 ms.
const POLL_FAST: Duration = Duration::from_millis(10);
/// No request for this long ends a phase (catches trailing status patches or events).
const QUIET: Duration = Duration::from_secs(1);
/// A graceful stop drains for up to 30 s (controller::run); give it a little more.
const STOP_DEADLINE: Duration = Duration::from_secs(40);
const WRITE_VERBS: [&str; 5] = ["create", "update", "patch", "delete", "deletecollection"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Targets {
    /// K namespaces per source, as a comma list.
    Count(usize),
    /// The `all` keyword.
    All,
}

impl std::str::FromStr for Targets {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "all" => Ok(Targets::All),
            n => n
                .parse()
                .map(Targets::Count)
                .map_err(|_| format!("--targets-per-source: {s:?} is neither a number nor `all`")),
        }
    }
}

impl std::fmt::Display for Targets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Targets::Count(k) => write!(f, "{k}"),
            Targets::All => f.write_str("all"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    /// Opted-in sources, alternately Secrets (even index) and ConfigMaps (odd index).
    pub sources: usize,
    /// Target namespaces `bench-0000`.. (besides `bench-src` and the server's defaults).
    pub namespaces: usize,
    pub targets: Targets,
    /// Secrets and ConfigMaps that are not opted in (half carry the annotations but not the label).
    pub objects_other: usize,
    pub steady: Duration,
    pub binary: PathBuf,
    /// Convergence (and each later wait) must happen within this.
    pub deadline: Duration,
    /// Appended to the controller's command line.
    pub controller_args: Vec<String>,
    pub seed: u64,
    /// The child's stdout and stderr; None: a file in the temporary directory.
    pub log_path: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            sources: 100,
            namespaces: 50,
            targets: Targets::Count(50),
            objects_other: 1000,
            steady: Duration::from_secs(60),
            binary: PathBuf::from("target/release/kubemirror"),
            deadline: Duration::from_secs(900),
            controller_args: Vec::new(),
            seed: 1,
            log_path: None,
        }
    }
}

impl Config {
    pub fn validate(&self) -> Result<(), String> {
        if self.sources == 0 || self.namespaces == 0 {
            return Err("--sources and --namespaces must be at least 1".into());
        }
        if let Targets::Count(k) = self.targets
            && (k == 0 || k > self.namespaces)
        {
            return Err(format!("--targets-per-source must be between 1 and --namespaces ({})", self.namespaces));
        }
        Ok(())
    }

    /// The arguments the harness itself was given, to print a reproducible command.
    pub fn command_line(&self) -> String {
        let mut s = format!(
            "cargo run --release --features testkit --example bench -- --sources {} --namespaces {} \
             --targets-per-source {} --objects-other {} --steady-secs {} --binary {}",
            self.sources,
            self.namespaces,
            self.targets,
            self.objects_other,
            self.steady.as_secs(),
            self.binary.display()
        );
        for a in &self.controller_args {
            let _ = write!(s, " --controller-arg={a}");
        }
        s
    }
}

pub fn namespace_name(i: usize) -> String {
    format!("bench-{i:04}")
}

pub fn source_name(i: usize) -> String {
    format!("src-{i:04}")
}

pub fn source_kind(i: usize) -> &'static str {
    if i % 2 == 0 { "Secret" } else { "ConfigMap" }
}

/// The K namespaces source `i` names: consecutive from `i mod M`, wrapping, so every namespace
/// receives about the same number of mirrors.
pub fn targets_of(i: usize, k: usize, m: usize) -> Vec<String> {
    (0..k.min(m)).map(|j| namespace_name((i + j) % m)).collect()
}

fn content(kind: &str, version: u32) -> Value {
    let text = format!("bench-content-version-{version}-{}", "x".repeat(32));
    if kind == "Secret" {
        json!({"password": crate::util::base64::encode(text.as_bytes())})
    } else {
        json!({"config": text})
    }
}

fn source_object(i: usize, targets: &str, version: u32) -> Value {
    let kind = source_kind(i);
    let mut o = json!({"apiVersion": "v1", "kind": kind, "metadata": {
        "name": source_name(i), "namespace": SOURCE_NAMESPACE,
        "labels": {keys::LABEL_ENABLED: "true"},
        "annotations": {keys::ANN_SYNC: "true", keys::ANN_TARGET_NAMESPACES: targets}}});
    o["data"] = content(kind, version);
    o
}

/// Not a source: no label (every other one still carries the annotations, which alone do not opt in).
fn other_object(i: usize, m: usize) -> Value {
    let kind = if i % 2 == 0 { "Secret" } else { "ConfigMap" };
    let mut o = json!({"apiVersion": "v1", "kind": kind, "metadata": {
        "name": format!("other-{i:05}"), "namespace": namespace_name(i % m)}});
    if i % 4 < 2 {
        o["metadata"]["annotations"] = json!({keys::ANN_SYNC: "true", keys::ANN_TARGET_NAMESPACES: "all"});
    }
    o["data"] = content(kind, 0);
    o
}

/// (kind, namespace, name) of a mirror.
pub type MirrorKey = (String, String, String);

/// What one run measured.
#[derive(Debug, Clone)]
pub struct Report {
    pub config: Config,
    pub expected_mirrors: usize,
    /// Controller start until every expected mirror exists.
    pub convergence: Duration,
    /// Until every source also reports all its targets synced and requests stopped.
    pub settled: Duration,
    pub startup: StatsSnapshot,
    pub change_targets: usize,
    /// Source changed until every one of its mirrors carries the new content.
    pub change_latency: Duration,
    pub change: StatsSnapshot,
    pub steady: StatsSnapshot,
    pub steady_window: Duration,
    pub open_watches: i64,
    pub peak_rss_kib: Option<u64>,
    pub end_rss_kib: Option<u64>,
    pub exit_code: Option<i32>,
    pub stop_time: Duration,
    pub log_path: PathBuf,
    /// Anything that misses a goal (writes or GETs in steady state, more than K writes per change...).
    pub findings: Vec<String>,
}

/// Reads `VmHWM`/`VmRSS`-style lines (kB) from a /proc/<pid>/status text.
pub fn proc_status_kib(status: &str, field: &str) -> Option<u64> {
    status.lines().find_map(|l| {
        let rest = l.strip_prefix(field)?.strip_prefix(':')?;
        rest.trim().strip_suffix("kB")?.trim().parse().ok()
    })
}

fn rss(pid: u32) -> (Option<u64>, Option<u64>) {
    match std::fs::read_to_string(format!("/proc/{pid}/status")) {
        Ok(s) => (proc_status_kib(&s, "VmHWM"), proc_status_kib(&s, "VmRSS")),
        Err(_) => (None, None),
    }
}

/// Requests by verb over every resource and user.
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

fn mib(kib: Option<u64>) -> String {
    match kib {
        Some(k) => format!("{:.1} MiB", k as f64 / 1024.0),
        None => "n/a".into(),
    }
}

fn thousands(n: usize) -> String {
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

/// What misses the goals of issues 4 and 5, in plain words.
pub fn findings(r: &Report) -> Vec<String> {
    let mut f = Vec::new();
    let (w, g) = (writes(&r.change), r.change.verb("get"));
    if w != r.change_targets as u64 {
        f.push(format!(
            "a source change with {} targets cost {w} writes (goal: exactly {}): {}",
            r.change_targets,
            r.change_targets,
            detail_line(&r.change)
        ));
    }
    if g > 0 {
        f.push(format!("a source change caused {g} GETs (goal: none)"));
    }
    let non_watch = r.steady.total() - r.steady.verb("watch");
    if non_watch > 0 {
        f.push(format!(
            "{non_watch} requests other than watches in the {} s steady state: {}",
            r.steady_window.as_secs(),
            detail_line(&r.steady)
        ));
    }
    if r.exit_code != Some(0) {
        f.push(format!("after SIGTERM the controller exited with {:?} (expected 0)", r.exit_code));
    }
    f
}

/// The two tables for BENCHMARKS.md plus the per-resource breakdown.
pub fn markdown(r: &Report, date: &str) -> String {
    let c = &r.config;
    let mut s = String::new();
    let _ = writeln!(s, "Command: `{}`\n", c.command_line());
    let _ = writeln!(
        s,
        "| date | sources × namespaces (targets each) | mirrors | unrelated objects | convergence | settled | startup requests | one source change ({} targets) | steady state ({} s) |",
        r.change_targets,
        r.steady_window.as_secs()
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|");
    let _ = writeln!(
        s,
        "| {date} | {} × {} ({}) | {} | {} | {} | {} | {} ({}) | {} writes, {} GETs, {} ({}) | {} non-watch ({}) |",
        c.sources,
        c.namespaces,
        c.targets,
        thousands(r.expected_mirrors),
        thousands(c.objects_other),
        secs(r.convergence),
        secs(r.settled),
        r.startup.total(),
        verbs_line(&r.startup),
        writes(&r.change),
        r.change.verb("get"),
        millis(r.change_latency),
        verbs_line(&r.change),
        r.steady.total() - r.steady.verb("watch"),
        verbs_line(&r.steady),
    );
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "| date | sources × namespaces (targets each) | mirrors | peak RSS (VmHWM) | RSS at end | SIGTERM |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|");
    let exit = match r.exit_code {
        Some(code) => format!("exit {code} in {}", secs(r.stop_time)),
        None => "did not exit (killed)".into(),
    };
    let _ = writeln!(
        s,
        "| {date} | {} × {} ({}) | {} | {} | {} | {exit} |",
        c.sources,
        c.namespaces,
        c.targets,
        thousands(r.expected_mirrors),
        mib(r.peak_rss_kib),
        mib(r.end_rss_kib),
    );
    let _ = writeln!(s);
    let _ = writeln!(s, "Requests by verb and resource:\n");
    let _ = writeln!(s, "- startup + convergence: {}", detail_line(&r.startup));
    let _ = writeln!(s, "- one source change: {}", detail_line(&r.change));
    let _ = writeln!(
        s,
        "- steady state: {} ({} watches open, {} watch frames sent)",
        detail_line(&r.steady),
        r.open_watches,
        r.steady.watch_events
    );
    if r.findings.is_empty() {
        let _ = writeln!(s, "\nFindings: none (every goal met).");
    } else {
        let _ = writeln!(s, "\nFindings (goals missed):\n");
        for f in &r.findings {
            let _ = writeln!(s, "- {f}");
        }
    }
    s
}

/// The running controller; killed if dropped before a clean stop.
struct Controller {
    child: Child,
    log: PathBuf,
}

impl Controller {
    fn spawn(cfg: &Config, kubeconfig: &Path, log: PathBuf) -> Result<Controller, String> {
        let out = File::create(&log).map_err(|e| format!("creating {}: {e}", log.display()))?;
        let err = out.try_clone().map_err(|e| format!("duplicating {}: {e}", log.display()))?;
        let child = Command::new(&cfg.binary)
            .arg(format!("--kubeconfig={}", kubeconfig.display()))
            .args(controller_args())
            .args(&cfg.controller_args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| {
                format!("starting {}: {e} (build it: cargo build --release --bin kubemirror)", cfg.binary.display())
            })?;
        Ok(Controller { child, log })
    }

    /// Err when the child has exited: its code and the end of its log.
    fn check_alive(&mut self, during: &str) -> Result<(), String> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(format!(
                "the controller exited ({status}) during {during}; last lines of {}:\n{}",
                self.log.display(),
                log_tail(&self.log, 15)
            )),
            Err(e) => Err(format!("checking the controller process: {e}")),
        }
    }

    /// SIGTERM, then waits; (exit code, time to exit). None: killed after the deadline.
    async fn terminate(&mut self) -> Result<(Option<i32>, Duration), String> {
        let start = Instant::now();
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().map_err(|e| format!("running kill: {e}"))?;
        if !sent.success() {
            return Err(format!("kill -TERM {pid} failed: {sent}"));
        }
        while start.elapsed() < STOP_DEADLINE {
            if let Some(status) = self.child.try_wait().map_err(|e| format!("waiting for the controller: {e}"))? {
                return Ok((status.code(), start.elapsed()));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        Ok((None, start.elapsed()))
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The controller's flags besides `--kubeconfig`: one instance, no admin ports, the two kinds, and
/// no cap on targets so `all` means every namespace.
pub fn controller_args() -> Vec<String> {
    [
        "--leader-elect=false",
        "--metrics-bind-address=0",
        "--health-probe-bind-address=0",
        "--resource-types=Secret.v1,ConfigMap.v1",
        "--max-targets=0",
    ]
    .map(String::from)
    .to_vec()
}

fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn is_mirror(o: &Value) -> bool {
    o.pointer("/metadata/labels")
        .and_then(|l| l.get(keys::LABEL_MIRROR))
        .and_then(Value::as_str)
        .is_some_and(|v| v == "true")
}

fn str_at<'a>(o: &'a Value, ptr: &str) -> &'a str {
    o.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

/// Every mirror on the server, by (kind, namespace, name).
fn mirrors_present(server: &ApiServer) -> HashSet<MirrorKey> {
    let mut out = HashSet::new();
    for kind in ["Secret", "ConfigMap"] {
        for o in server.list_objects("v1", kind, None) {
            if is_mirror(&o) {
                out.insert((
                    kind.to_string(),
                    str_at(&o, "/metadata/namespace").to_string(),
                    str_at(&o, "/metadata/name").to_string(),
                ));
            }
        }
    }
    out
}

fn status_of(server: &ApiServer, i: usize) -> String {
    server
        .get_object("v1", source_kind(i), Some(SOURCE_NAMESPACE), &source_name(i))
        .and_then(|o| o.pointer("/metadata/annotations").and_then(|a| a.get(keys::ANN_SYNC_STATUS)).cloned())
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default()
}

fn non_watch_requests(server: &ApiServer) -> u64 {
    let s = server.stats();
    s.total() - s.verb("watch")
}

/// Polls `cond` until true; Err names `what` once the deadline passes or the controller dies.
async fn wait_for(
    ctl: &mut Controller,
    what: &str,
    deadline: Instant,
    poll: Duration,
    mut cond: impl FnMut() -> Result<bool, String>,
) -> Result<(), String> {
    loop {
        if cond()? {
            return Ok(());
        }
        ctl.check_alive(what)?;
        if Instant::now() >= deadline {
            return Err(format!("timed out waiting for {what}"));
        }
        tokio::time::sleep(poll).await;
    }
}

/// Waits until the controller has sent no request (watches aside) for [`QUIET`].
async fn wait_quiet(ctl: &mut Controller, server: &ApiServer, what: &str, deadline: Instant) -> Result<(), String> {
    let mut last = non_watch_requests(server);
    let mut since = Instant::now();
    wait_for(ctl, what, deadline, POLL_FAST, || {
        let now = non_watch_requests(server);
        if now != last {
            last = now;
            since = Instant::now();
        }
        Ok(since.elapsed() >= QUIET)
    })
    .await
}

/// Seeds the server, runs the controller through every phase and returns the figures.
pub async fn run(cfg: Config) -> Result<Report, String> {
    cfg.validate()?;
    let mut namespaces: Vec<String> = ServerOptions::default().namespaces;
    namespaces.push(SOURCE_NAMESPACE.to_string());
    namespaces.extend((0..cfg.namespaces).map(namespace_name));
    let server = ApiServer::start(ServerOptions {
        namespaces,
        bookmark_interval: Duration::from_secs(1),
        seed: Some(cfg.seed),
        ..ServerOptions::default()
    })
    .await?;

    // Who receives what, from the server's own namespace list for `all`.
    let all_targets: Vec<String> = server
        .list_objects("v1", "Namespace", None)
        .iter()
        .map(|n| str_at(n, "/metadata/name").to_string())
        .filter(|n| n != SOURCE_NAMESPACE && !keys::ALWAYS_EXCLUDED_NAMESPACES.contains(&n.as_str()))
        .collect();
    let mut expected: HashSet<MirrorKey> = HashSet::new();
    let mut target_counts = Vec::with_capacity(cfg.sources);
    for i in 0..cfg.sources {
        let (annotation, targets) = match cfg.targets {
            Targets::All => ("all".to_string(), all_targets.clone()),
            Targets::Count(k) => {
                let t = targets_of(i, k, cfg.namespaces);
                (t.join(","), t)
            }
        };
        server
            .create_object(source_object(i, &annotation, 1))
            .map_err(|e| format!("seeding source {}: {}", source_name(i), e.message()))?;
        target_counts.push(targets.len());
        for ns in targets {
            expected.insert((source_kind(i).to_string(), ns, source_name(i)));
        }
    }
    for i in 0..cfg.objects_other {
        server
            .create_object(other_object(i, cfg.namespaces))
            .map_err(|e| format!("seeding unrelated object {i}: {}", e.message()))?;
    }
    let seeded = server.object_count();
    log::info!(
        "bench: seeded {} namespaces, {} sources, {} unrelated objects; expecting {} mirrors",
        cfg.namespaces,
        cfg.sources,
        cfg.objects_other,
        expected.len()
    );

    let log_path = cfg.log_path.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("kubemirror-bench-{}-{}.log", std::process::id(), server.addr().port()))
    });
    server.reset_stats();
    let start = Instant::now();
    let mut ctl = Controller::spawn(&cfg, &server.kubeconfig_path("admin"), log_path.clone())?;
    let pid = ctl.child.id();

    // Convergence: the object count is a cheap necessary condition; the listing confirms.
    let deadline = start + cfg.deadline;
    let mut unexpected = 0;
    wait_for(&mut ctl, &format!("{} mirrors to exist (convergence)", expected.len()), deadline, POLL, || {
        if server.object_count() < seeded + expected.len() {
            return Ok(false);
        }
        let present = mirrors_present(&server);
        unexpected = present.difference(&expected).count();
        Ok(expected.is_subset(&present))
    })
    .await
    .map_err(|e| with_progress(e, &server, &expected, &log_path))?;
    let convergence = start.elapsed();
    log::info!("bench: converged in {}", secs(convergence));

    let status_deadline = Instant::now() + cfg.deadline;
    wait_for(&mut ctl, "every source to report its targets synced", status_deadline, POLL, || {
        Ok((0..cfg.sources).all(|i| status_of(&server, i).starts_with(&format!("synced:{},", target_counts[i]))))
    })
    .await
    .map_err(|e| format!("{e}; status of {}: {:?}", source_name(0), status_of(&server, 0)))?;
    wait_quiet(&mut ctl, &server, "the startup requests to stop", status_deadline).await?;
    let settled = start.elapsed() - QUIET;
    let startup = server.stats();

    // One source change: exactly K writes and no reads expected.
    server.reset_stats();
    let changed = server
        .get_object("v1", "Secret", Some(SOURCE_NAMESPACE), CHANGED_SOURCE)
        .ok_or_else(|| format!("source {CHANGED_SOURCE} disappeared"))?;
    let mut new = changed.clone();
    new["data"] = content("Secret", 2);
    let change_start = Instant::now();
    server.update_object(new).map_err(|e| format!("changing {CHANGED_SOURCE}: {}", e.message()))?;
    let change_targets: Vec<String> =
        expected.iter().filter(|(k, _, n)| k == "Secret" && n == CHANGED_SOURCE).map(|(_, ns, _)| ns.clone()).collect();
    let want = content("Secret", 2);
    wait_for(
        &mut ctl,
        "the changed source's mirrors to carry the new content",
        Instant::now() + cfg.deadline,
        POLL_FAST,
        || {
            Ok(change_targets.iter().all(|ns| {
                server.get_object("v1", "Secret", Some(ns), CHANGED_SOURCE).is_some_and(|m| m["data"] == want)
            }))
        },
    )
    .await?;
    let change_latency = change_start.elapsed();
    wait_quiet(&mut ctl, &server, "the change's requests to stop", Instant::now() + cfg.deadline).await?;
    let change = server.stats();

    // Steady state: a measurement window, nothing to wait for.
    server.reset_stats();
    let steady_start = Instant::now();
    while steady_start.elapsed() < cfg.steady {
        ctl.check_alive("the steady state")?;
        tokio::time::sleep(POLL.min(cfg.steady)).await;
    }
    let steady_window = steady_start.elapsed();
    let steady = server.stats();
    let open_watches = server.open_watches();

    let (peak_rss_kib, end_rss_kib) = rss(pid);
    let (exit_code, stop_time) = ctl.terminate().await?;

    let mut report = Report {
        config: cfg,
        expected_mirrors: expected.len(),
        convergence,
        settled,
        startup,
        change_targets: change_targets.len(),
        change_latency,
        change,
        steady,
        steady_window,
        open_watches,
        peak_rss_kib,
        end_rss_kib,
        exit_code,
        stop_time,
        log_path,
        findings: Vec::new(),
    };
    report.findings = findings(&report);
    if unexpected > 0 {
        report.findings.push(format!("{unexpected} mirrors exist that no source asked for"));
    }
    Ok(report)
}

fn with_progress(e: String, server: &ApiServer, expected: &HashSet<MirrorKey>, log: &Path) -> String {
    let present = mirrors_present(server);
    let have = expected.intersection(&present).count();
    let mut msg = format!("no convergence ({have} of {} expected mirrors exist): {e}", expected.len());
    if !msg.contains("last lines of") {
        let _ = write!(msg, "; last lines of {}:\n{}", log.display(), log_tail(log, 15));
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_spread_and_wrap() {
        assert_eq!(targets_of(0, 2, 3), vec!["bench-0000", "bench-0001"]);
        assert_eq!(targets_of(2, 2, 3), vec!["bench-0002", "bench-0000"]);
        assert_eq!(targets_of(1, 5, 3).len(), 3);
        assert_eq!("all".parse::<Targets>(), Ok(Targets::All));
        assert_eq!(" 7 ".parse::<Targets>(), Ok(Targets::Count(7)));
        assert!("some".parse::<Targets>().unwrap_err().contains("--targets-per-source"));
    }

    #[test]
    fn config_is_checked() {
        let bad = Config { targets: Targets::Count(60), namespaces: 50, ..Config::default() };
        assert!(bad.validate().unwrap_err().contains("between 1 and"));
        assert!(Config { sources: 0, ..Config::default() }.validate().is_err());
        assert!(Config { targets: Targets::All, ..Config::default() }.validate().is_ok());
    }

    #[test]
    fn proc_status_fields() {
        let s = "Name:\tkubemirror\nVmPeak:\t  100 kB\nVmHWM:\t    8124 kB\nVmRSS:\t    7000 kB\n";
        assert_eq!(proc_status_kib(s, "VmHWM"), Some(8124));
        assert_eq!(proc_status_kib(s, "VmRSS"), Some(7000));
        assert_eq!(proc_status_kib(s, "VmSwap"), None);
    }

    #[test]
    fn sources_alternate_kinds_and_opt_in() {
        let s = source_object(0, "a,b", 1);
        assert_eq!(s["kind"], "Secret");
        assert_eq!(s["metadata"]["labels"][keys::LABEL_ENABLED], "true");
        assert_eq!(s["metadata"]["annotations"][keys::ANN_TARGET_NAMESPACES], "a,b");
        assert_eq!(source_object(1, "a", 1)["kind"], "ConfigMap");
        assert_ne!(content("Secret", 1), content("Secret", 2));
        let o = other_object(0, 3);
        assert!(o["metadata"].get("labels").is_none(), "unrelated objects never carry the opt-in label");
    }

    fn snapshot(entries: &[(&str, &str, u64)]) -> StatsSnapshot {
        let mut s = StatsSnapshot::default();
        for (v, r, n) in entries {
            s.requests.insert((v.to_string(), r.to_string(), "admin".into()), *n);
        }
        s
    }

    fn report(change: StatsSnapshot, steady: StatsSnapshot, exit: Option<i32>) -> Report {
        Report {
            config: Config { sources: 2, namespaces: 3, targets: Targets::Count(2), ..Config::default() },
            expected_mirrors: 4,
            convergence: Duration::from_millis(1500),
            settled: Duration::from_secs(2),
            startup: snapshot(&[("list", "secrets", 2), ("watch", "secrets", 2), ("create", "secrets", 2)]),
            change_targets: 2,
            change_latency: Duration::from_millis(30),
            change,
            steady,
            steady_window: Duration::from_secs(60),
            open_watches: 5,
            peak_rss_kib: Some(10240),
            end_rss_kib: Some(9216),
            exit_code: exit,
            stop_time: Duration::from_millis(200),
            log_path: PathBuf::from("/tmp/x.log"),
            findings: Vec::new(),
        }
    }

    #[test]
    fn goals_met_means_no_findings() {
        let r = report(snapshot(&[("update", "secrets", 2)]), snapshot(&[("watch", "secrets", 1)]), Some(0));
        assert!(findings(&r).is_empty(), "{:?}", findings(&r));
        let md = markdown(&r, "2026-11-24");
        assert!(
            md.contains("| 2026-11-24 | 2 × 3 (2) | 4 | 1,000 | 1.5 s | 2.0 s | 6 (create 2, list 2, watch 2) |"),
            "{md}"
        );
        assert!(md.contains("2 writes, 0 GETs, 30 ms (update 2)"), "{md}");
        assert!(md.contains("| 10.0 MiB | 9.0 MiB | exit 0 in 0.2 s |"), "{md}");
        assert!(md.contains("Findings: none"), "{md}");
    }

    #[test]
    fn missed_goals_are_reported() {
        let change = snapshot(&[("update", "secrets", 2), ("get", "secrets", 2), ("patch", "secrets", 1)]);
        let steady = snapshot(&[("watch", "secrets", 1), ("patch", "secrets", 3)]);
        let r = report(change, steady, Some(1));
        let f = findings(&r);
        assert_eq!(f.len(), 4, "{f:?}");
        assert!(f[0].contains("3 writes (goal: exactly 2)"), "{f:?}");
        assert!(f[1].contains("2 GETs"), "{f:?}");
        assert!(f[2].contains("3 requests other than watches"), "{f:?}");
        assert!(f[3].contains("Some(1)"), "{f:?}");
    }

    #[test]
    fn numbers_read_well() {
        assert_eq!(thousands(20000), "20,000");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(mib(None), "n/a");
    }
}
