//! The controller benchmark behind `examples/bench.rs` (feature `testkit`): the in-memory API server
//! seeded with namespaces, opted-in sources and unrelated objects ([`workload`]), the real
//! `kubemirror` binary as a child process (so its memory is its own), optionally the watch-all
//! [`baseline`] as a second child on the same data, and the figures BENCHMARKS.md records
//! ([`report`]): convergence time against the client rate limit, CPU time, requests and received
//! bytes per phase (cold start, one source change, one new namespace, a steady window), peak and
//! steady memory split into anonymous and file-backed ([`measure`]), and the exit after SIGTERM.
//!
//! Every wait polls a condition against the server's direct API with a deadline; the only timed
//! windows are measurements (the steady state, and a short quiet period that makes sure trailing
//! requests of one phase are not counted in the next).

pub mod baseline;
pub mod measure;
pub mod report;
pub mod workload;

use std::collections::HashSet;
use std::fmt::Write as _;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::keys;
use crate::testkit::{ApiServer, Rule, ServerOptions, StatsSnapshot, User};
use measure::{Memory, Peaks};
pub use report::{Phase, ProcFigures, Report, detail_line, verbs_line, writes};
pub use workload::{CHANGED_SOURCE, Kind, NEW_NAMESPACE, SOURCE_NAMESPACE, Shape, namespace_name, source_name};

/// Poll period while converging (a listing of every mirrored kind per check).
const POLL: Duration = Duration::from_millis(100);
/// Poll period for cheap checks (a few GETs), so latencies are measured to ~10 ms.
const POLL_FAST: Duration = Duration::from_millis(10);
/// Memory sampling period.
const SAMPLE: Duration = Duration::from_millis(50);
/// No request for this long ends a phase (catches trailing status patches or events).
const QUIET: Duration = Duration::from_secs(1);
/// A graceful stop drains for up to 30 s (controller::run); give it a little more.
const STOP_DEADLINE: Duration = Duration::from_secs(40);
/// The controller's user on the server.
const CONTROLLER_USER: &str = "admin";

#[derive(Debug, Clone)]
pub struct Config {
    pub shape: Shape,
    pub steady: Duration,
    pub binary: PathBuf,
    /// The watch-all baseline's binary (`kubemirror-bench-baseline`); None: no baseline.
    pub baseline: Option<PathBuf>,
    /// Convergence (and each later wait) must happen within this.
    pub deadline: Duration,
    /// Appended to the controller's command line.
    pub controller_args: Vec<String>,
    /// Extra environment for the controller (e.g. allocator settings to compare).
    pub controller_env: Vec<(String, String)>,
    /// The child's stdout and stderr; None: a file in the temporary directory.
    pub log_path: Option<PathBuf>,
    /// The preset the figures were asked for, repeated in the command line.
    pub scenario: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            shape: Shape {
                sources: 50,
                namespaces: 200,
                targets_per_source: Some(20),
                source_bytes: (1024, 4096),
                objects_other: 0,
                other_bytes: 2048,
                crd: false,
                transform_share: 0.0,
                seed: 1,
            },
            steady: Duration::from_secs(60),
            binary: PathBuf::from("target/release/kubemirror"),
            baseline: None,
            deadline: Duration::from_secs(1800),
            controller_args: Vec::new(),
            controller_env: Vec::new(),
            log_path: None,
            scenario: None,
        }
    }
}

impl Config {
    /// The issue's scenarios. `s1`: 50 sources × 20 targets = 1,000 mirrors over 200 namespaces,
    /// Secrets and ConfigMaps of 1–4 KiB; `s1-unrelated`: the same among 10,000 unrelated 2 KiB
    /// objects; `s2`: 500 × 40 = 20,000 mirrors over 2,000 namespaces, with a custom resource and
    /// rules on a quarter of the sources.
    pub fn scenario(name: &str) -> Result<Config, String> {
        let mut c = Config { scenario: Some(name.to_string()), ..Config::default() };
        match name {
            "s1" => {}
            "s1-unrelated" => c.shape.objects_other = 10_000,
            "s2" => {
                c.shape.sources = 500;
                c.shape.namespaces = 2000;
                c.shape.targets_per_source = Some(40);
                c.shape.crd = true;
                c.shape.transform_share = 0.25;
            }
            other => return Err(format!("unknown scenario {other:?} (s1, s1-unrelated, s2)")),
        }
        Ok(c)
    }

    pub fn validate(&self) -> Result<(), String> {
        let s = &self.shape;
        if s.sources == 0 || s.namespaces == 0 {
            return Err("--sources and --namespaces must be at least 1".into());
        }
        if let Some(k) = s.targets_per_source
            && (k == 0 || k > s.namespaces)
        {
            return Err(format!("--targets-per-source must be between 1 and --namespaces ({})", s.namespaces));
        }
        if s.source_bytes.0 > s.source_bytes.1 || s.source_bytes.1 > 512 * 1024 {
            return Err("--source-bytes MIN-MAX: MIN <= MAX <= 524288".into());
        }
        if !(0.0..=1.0).contains(&s.transform_share) {
            return Err("--transform-share must be between 0 and 1".into());
        }
        Ok(())
    }

    /// The arguments the harness itself was given, to print a reproducible command.
    pub fn command_line(&self) -> String {
        let s = &self.shape;
        let mut line = String::from("cargo run --release --features testkit --example bench --");
        if let Some(name) = &self.scenario {
            let _ = write!(line, " --scenario {name}");
        }
        let targets = s.targets_per_source.map_or_else(|| "all".to_string(), |k| k.to_string());
        let _ = write!(
            line,
            " --sources {} --namespaces {} --targets-per-source {targets} --source-bytes {}-{} --objects-other {} \
             --other-bytes {}",
            s.sources, s.namespaces, s.source_bytes.0, s.source_bytes.1, s.objects_other, s.other_bytes
        );
        if s.crd {
            line.push_str(" --crd");
        }
        if s.transform_share > 0.0 {
            let _ = write!(line, " --transform-share {}", s.transform_share);
        }
        let _ = write!(line, " --steady-secs {} --binary {}", self.steady.as_secs(), self.binary.display());
        if let Some(b) = &self.baseline {
            let _ = write!(line, " --baseline watch-all --baseline-binary {}", b.display());
        }
        if s.seed != 1 {
            let _ = write!(line, " --seed {}", s.seed);
        }
        for a in &self.controller_args {
            let _ = write!(line, " --controller-arg={a}");
        }
        for (k, v) in &self.controller_env {
            let _ = write!(line, " --controller-env={k}={v}");
        }
        line
    }

    /// The controller's flags besides `--kubeconfig`: one instance, no admin ports, the benchmark's
    /// kinds, and no cap on targets so `all` means every namespace.
    pub fn controller_flags(&self) -> Vec<String> {
        let types: Vec<&str> = self.shape.kinds().iter().map(|k| k.type_name()).collect();
        vec![
            "--leader-elect=false".into(),
            "--metrics-bind-address=0".into(),
            "--health-probe-bind-address=0".into(),
            format!("--resource-types={}", types.join(",")),
            "--max-targets=0".into(),
        ]
    }

    /// The client limit the controller runs with (its defaults unless the extra arguments say).
    fn rate_limit(&self) -> (f64, u64) {
        let flag = |name: &str| {
            self.controller_args.iter().rev().find_map(|a| a.strip_prefix(name)?.strip_prefix('=')?.parse::<f64>().ok())
        };
        (flag("--rate-limit-qps").unwrap_or(50.0), flag("--rate-limit-burst").unwrap_or(100.0) as u64)
    }
}

/// How long `requests` take when only the client's token bucket (`qps`, `burst`) limits them.
pub fn qps_floor(requests: u64, qps: f64, burst: u64) -> Option<Duration> {
    (qps > 0.0).then(|| Duration::from_secs_f64(requests.saturating_sub(burst) as f64 / qps))
}

/// (kind, namespace, name) of a mirror.
pub type MirrorKey = (Kind, String, String);

/// A child process (controller or baseline); killed if dropped before a clean stop.
struct Process {
    child: Child,
    log: PathBuf,
}

impl Process {
    fn spawn(cmd: &mut Command, log: PathBuf, hint: &str) -> Result<Process, String> {
        let out = File::create(&log).map_err(|e| format!("creating {}: {e}", log.display()))?;
        let err = out.try_clone().map_err(|e| format!("duplicating {}: {e}", log.display()))?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("starting {:?}: {e} ({hint})", cmd.get_program()))?;
        Ok(Process { child, log })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Err when the child has exited: its code and the end of its log.
    fn check_alive(&mut self, during: &str) -> Result<(), String> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(format!(
                "{:?} exited ({status}) during {during}; last lines of {}:\n{}",
                self.child.id(),
                self.log.display(),
                log_tail(&self.log, 15)
            )),
            Err(e) => Err(format!("checking a child process: {e}")),
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
            if let Some(status) = self.child.try_wait().map_err(|e| format!("waiting for a child: {e}"))? {
                return Ok((status.code(), start.elapsed()));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        Ok((None, start.elapsed()))
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn str_at<'a>(o: &'a Value, ptr: &str) -> &'a str {
    o.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

fn is_mirror(o: &Value) -> bool {
    o.pointer("/metadata/labels").and_then(|l| l.get(keys::LABEL_MIRROR)).and_then(Value::as_str) == Some("true")
}

/// Every mirror on the server, by (kind, namespace, name).
fn mirrors_present(server: &ApiServer, kinds: &[Kind]) -> HashSet<MirrorKey> {
    let mut out = HashSet::new();
    for kind in kinds {
        for o in server.list_objects(kind.api_version(), kind.kind(), None) {
            if is_mirror(&o) {
                out.insert((*kind, str_at(&o, "/metadata/namespace").into(), str_at(&o, "/metadata/name").into()));
            }
        }
    }
    out
}

fn status_of(server: &ApiServer, shape: &Shape, i: usize) -> String {
    let kind = shape.kind_of(i);
    server
        .get_object(kind.api_version(), kind.kind(), Some(SOURCE_NAMESPACE), &source_name(i))
        .map(|o| str_at(&o, &format!("/metadata/annotations/{}", keys::ANN_SYNC_STATUS.replace('/', "~1"))).into())
        .unwrap_or_default()
}

fn controller_stats(server: &ApiServer) -> StatsSnapshot {
    server.stats().for_user(CONTROLLER_USER)
}

fn phase(server: &ApiServer, with_baseline: bool) -> Phase {
    let all = server.stats();
    Phase { controller: all.for_user(CONTROLLER_USER), baseline: with_baseline.then(|| all.for_user(baseline::USER)) }
}

fn non_watch_requests(server: &ApiServer) -> u64 {
    let s = controller_stats(server);
    s.total() - s.verb("watch")
}

/// Polls `cond` until true; Err names `what` once the deadline passes or a child dies.
async fn wait_for(
    children: &mut [&mut Process],
    what: &str,
    deadline: Instant,
    poll: Duration,
    mut cond: impl FnMut() -> Result<bool, String>,
) -> Result<(), String> {
    loop {
        if cond()? {
            return Ok(());
        }
        for c in children.iter_mut() {
            c.check_alive(what)?;
        }
        if Instant::now() >= deadline {
            return Err(format!("timed out waiting for {what}"));
        }
        tokio::time::sleep(poll).await;
    }
}

/// Waits until the controller has sent no request (watches aside) for [`QUIET`].
async fn wait_quiet(
    children: &mut [&mut Process],
    server: &ApiServer,
    what: &str,
    deadline: Instant,
) -> Result<(), String> {
    let mut last = non_watch_requests(server);
    let mut since = Instant::now();
    wait_for(children, what, deadline, POLL_FAST, || {
        let now = non_watch_requests(server);
        if now != last {
            last = now;
            since = Instant::now();
        }
        Ok(since.elapsed() >= QUIET)
    })
    .await
}

/// Samples the children's memory in the background for the peaks of anonymous and file-backed
/// memory (VmHWM gives the exact peak of their sum).
fn sample(pids: Vec<u32>) -> (Arc<Mutex<Vec<Peaks>>>, tokio::task::JoinHandle<()>) {
    let peaks = Arc::new(Mutex::new(vec![Peaks::default(); pids.len()]));
    let out = peaks.clone();
    let task = tokio::spawn(async move {
        loop {
            for (i, pid) in pids.iter().enumerate() {
                if let Some(m) = Memory::of(*pid) {
                    out.lock().unwrap_or_else(|p| p.into_inner())[i].observe(&m);
                }
            }
            tokio::time::sleep(SAMPLE).await;
        }
    });
    (peaks, task)
}

async fn start_server(cfg: &Config) -> Result<ApiServer, String> {
    let sh = &cfg.shape;
    let mut namespaces: Vec<String> = ServerOptions::default().namespaces;
    namespaces.push(SOURCE_NAMESPACE.to_string());
    namespaces.extend((0..sh.namespaces).map(namespace_name));
    let baseline_user = User { name: baseline::USER.into(), token: "baseline-token".into(), rules: vec![Rule::all()] };
    let server = ApiServer::start(ServerOptions {
        namespaces,
        users: vec![User::admin(), baseline_user],
        bookmark_interval: Duration::from_secs(1),
        seed: Some(sh.seed),
        ..ServerOptions::default()
    })
    .await?;
    if sh.crd {
        server.create_object(Shape::crd()).map_err(|e| format!("creating the CRD: {}", e.message()))?;
    }
    Ok(server)
}

/// Seeds sources and unrelated objects; the expected mirrors and each source's target count.
fn seed(server: &ApiServer, sh: &Shape) -> Result<(HashSet<MirrorKey>, Vec<usize>), String> {
    // Who receives what, from the server's own namespace list for `all`.
    let all_targets: Vec<String> = server
        .list_objects("v1", "Namespace", None)
        .iter()
        .map(|n| str_at(n, "/metadata/name").to_string())
        .filter(|n| n != SOURCE_NAMESPACE && !keys::ALWAYS_EXCLUDED_NAMESPACES.contains(&n.as_str()))
        .collect();
    let mut expected = HashSet::new();
    let mut counts = Vec::with_capacity(sh.sources);
    for i in 0..sh.sources {
        let targets = if sh.targets_per_source.is_none() { all_targets.clone() } else { sh.targets_of(i) };
        server.create_object(sh.source(i, 1)).map_err(|e| format!("seeding source {i}: {}", e.message()))?;
        counts.push(targets.len());
        expected.extend(targets.into_iter().map(|ns| (sh.kind_of(i), ns, source_name(i))));
    }
    for i in 0..sh.objects_other {
        server
            .create_object(sh.other_object(i))
            .map_err(|e| format!("seeding unrelated object {i}: {}", e.message()))?;
    }
    Ok((expected, counts))
}

fn with_progress(e: String, server: &ApiServer, kinds: &[Kind], expected: &HashSet<MirrorKey>, log: &Path) -> String {
    let present = mirrors_present(server, kinds);
    let have = expected.intersection(&present).count();
    let mut msg = format!("no convergence ({have} of {} expected mirrors exist): {e}", expected.len());
    if !msg.contains("last lines of") {
        let _ = write!(msg, "; last lines of {}:\n{}", log.display(), log_tail(log, 15));
    }
    msg
}

/// Seeds the server, runs the controller (and the baseline) through every phase and returns the
/// figures.
pub async fn run(cfg: Config) -> Result<Report, String> {
    cfg.validate()?;
    let sh = cfg.shape.clone();
    let kinds = sh.kinds();
    let server = start_server(&cfg).await?;
    let (expected, target_counts) = seed(&server, &sh)?;
    let seeded = server.object_count();
    log::info!(
        "bench: seeded {} namespaces, {} sources, {} unrelated objects; expecting {} mirrors",
        sh.namespaces,
        sh.sources,
        sh.objects_other,
        expected.len()
    );
    let tmp = std::env::temp_dir();
    let tag = format!("{}-{}", std::process::id(), server.addr().port());
    let log_path = cfg.log_path.clone().unwrap_or_else(|| tmp.join(format!("kubemirror-bench-{tag}.log")));
    let load_start = measure::load_average();
    server.reset_stats();
    let start = Instant::now();
    let mut cmd = Command::new(&cfg.binary);
    cmd.arg(format!("--kubeconfig={}", server.kubeconfig_path(CONTROLLER_USER).display()))
        .args(cfg.controller_flags())
        .args(&cfg.controller_args)
        .envs(cfg.controller_env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let mut ctl = Process::spawn(&mut cmd, log_path.clone(), "build it: cargo build --release --bin kubemirror")?;
    let mut base = match &cfg.baseline {
        Some(bin) => {
            let mut cmd = Command::new(bin);
            cmd.arg(server.kubeconfig_path(baseline::USER)).args(kinds.iter().map(|k| k.type_name()));
            let hint = "build it: cargo build --release --features testkit --bin kubemirror-bench-baseline";
            Some(Process::spawn(&mut cmd, tmp.join(format!("kubemirror-bench-baseline-{tag}.log")), hint)?)
        }
        None => None,
    };
    let with_baseline = base.is_some();
    let pids: Vec<u32> = std::iter::once(ctl.pid()).chain(base.as_ref().map(Process::pid)).collect();
    let (peaks, sampler) = sample(pids.clone());
    let mut children: Vec<&mut Process> = std::iter::once(&mut ctl).chain(base.as_mut()).collect();

    // Convergence: the object count is a cheap necessary condition; the listing confirms.
    let deadline = start + cfg.deadline;
    let mut unexpected = 0;
    let what = format!("{} mirrors to exist (convergence)", expected.len());
    wait_for(&mut children, &what, deadline, POLL, || {
        if server.object_count() < seeded + expected.len() {
            return Ok(false);
        }
        let present = mirrors_present(&server, &kinds);
        unexpected = present.difference(&expected).count();
        Ok(expected.is_subset(&present))
    })
    .await
    .map_err(|e| with_progress(e, &server, &kinds, &expected, &log_path))?;
    let convergence = start.elapsed();
    log::info!("bench: converged in {:.1} s", convergence.as_secs_f64());

    let status_deadline = Instant::now() + cfg.deadline;
    wait_for(&mut children, "every source to report its targets synced", status_deadline, POLL, || {
        Ok((0..sh.sources).all(|i| status_of(&server, &sh, i).starts_with(&format!("synced:{},", target_counts[i]))))
    })
    .await
    .map_err(|e| format!("{e}; status of {}: {:?}", source_name(0), status_of(&server, &sh, 0)))?;
    wait_quiet(&mut children, &server, "the startup requests to stop", status_deadline).await?;
    let settled = start.elapsed() - QUIET;
    let cpu_converged: Vec<Duration> = pids.iter().map(|p| measure::cpu_of(*p).unwrap_or_default()).collect();
    let startup = phase(&server, with_baseline);
    let (qps, burst) = cfg.rate_limit();
    let limited = startup.controller.total() - startup.controller.verb("watch");
    let qps_floor = qps_floor(limited, qps, burst);

    // One source change: exactly K writes and no reads expected.
    server.reset_stats();
    let changed = server
        .get_object("v1", "Secret", Some(SOURCE_NAMESPACE), CHANGED_SOURCE)
        .ok_or_else(|| format!("source {CHANGED_SOURCE} disappeared"))?;
    let want = sh.source(0, 2)["data"].clone();
    let mut new = changed;
    new["data"] = want.clone();
    let change_start = Instant::now();
    server.update_object(new).map_err(|e| format!("changing {CHANGED_SOURCE}: {}", e.message()))?;
    let change_targets: Vec<String> = expected
        .iter()
        .filter(|(k, _, n)| *k == Kind::Secret && n == CHANGED_SOURCE)
        .map(|(_, ns, _)| ns.clone())
        .collect();
    let what = "the changed source's mirrors to carry the new content";
    wait_for(&mut children, what, Instant::now() + cfg.deadline, POLL_FAST, || {
        Ok(change_targets
            .iter()
            .all(|ns| server.get_object("v1", "Secret", Some(ns), CHANGED_SOURCE).is_some_and(|m| m["data"] == want)))
    })
    .await?;
    let change_latency = change_start.elapsed();
    wait_quiet(&mut children, &server, "the change's requests to stop", Instant::now() + cfg.deadline).await?;
    let change = phase(&server, with_baseline);

    // One new namespace: one mirror per source that selects it.
    server.reset_stats();
    let selecting: Vec<usize> = (0..sh.sources).filter(|i| sh.targets_new_namespace(*i)).collect();
    let ns_start = Instant::now();
    server
        .create_object(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NEW_NAMESPACE}}))
        .map_err(|e| format!("creating {NEW_NAMESPACE}: {}", e.message()))?;
    let what = "every selecting source's mirror in the new namespace";
    wait_for(&mut children, what, Instant::now() + cfg.deadline, POLL_FAST, || {
        Ok(selecting.iter().all(|i| {
            let kind = sh.kind_of(*i);
            server.get_object(kind.api_version(), kind.kind(), Some(NEW_NAMESPACE), &source_name(*i)).is_some()
        }))
    })
    .await?;
    let new_namespace_latency = ns_start.elapsed();
    wait_quiet(&mut children, &server, "the new namespace's requests to stop", Instant::now() + cfg.deadline).await?;
    let new_namespace = phase(&server, with_baseline);

    // Steady state: a measurement window, nothing to wait for.
    server.reset_stats();
    let steady_start = Instant::now();
    while steady_start.elapsed() < cfg.steady {
        for c in children.iter_mut() {
            c.check_alive("the steady state")?;
        }
        tokio::time::sleep(POLL.min(cfg.steady)).await;
    }
    let steady_window = steady_start.elapsed();
    let steady = phase(&server, with_baseline);
    let open_watches = server.open_watches();

    sampler.abort();
    let peaks = peaks.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let figures = |i: usize| ProcFigures {
        end: Memory::of(pids[i]).unwrap_or_default(),
        peaks: peaks[i],
        cpu_converged: cpu_converged[i],
        cpu_end: measure::cpu_of(pids[i]).unwrap_or_default(),
    };
    let (controller, baseline) = (figures(0), with_baseline.then(|| figures(1)));
    drop(children);
    let (exit_code, stop_time) = ctl.terminate().await?;
    if let Some(mut b) = base {
        b.terminate().await?;
    }
    let mut report = Report {
        config: cfg,
        expected_mirrors: expected.len(),
        convergence,
        settled,
        qps_floor,
        startup,
        change_targets: change_targets.len(),
        change_latency,
        change,
        new_namespace_sources: selecting.len(),
        new_namespace_latency,
        new_namespace,
        steady,
        steady_window,
        open_watches,
        controller,
        baseline,
        exit_code,
        stop_time,
        load: (load_start, measure::load_average()),
        log_path,
        findings: Vec::new(),
    };
    report.findings = report::findings(&report);
    if unexpected > 0 {
        report.findings.push(format!("{unexpected} mirrors exist that no source asked for"));
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_is_checked_and_scenarios_are_the_issues() {
        let mut bad = Config::default();
        bad.shape.targets_per_source = Some(300);
        assert!(bad.validate().unwrap_err().contains("between 1 and"));
        let mut none = Config::default();
        none.shape.sources = 0;
        assert!(none.validate().is_err());
        let s1 = Config::scenario("s1").unwrap();
        assert_eq!((s1.shape.sources, s1.shape.namespaces, s1.shape.targets_per_source), (50, 200, Some(20)));
        assert_eq!(Config::scenario("s1-unrelated").unwrap().shape.objects_other, 10_000);
        let s2 = Config::scenario("s2").unwrap();
        assert_eq!((s2.shape.sources * s2.shape.targets_per_source.unwrap_or(0), s2.shape.namespaces), (20_000, 2000));
        assert!(s2.shape.crd && s2.shape.transform_share == 0.25);
        assert!(
            s2.controller_flags()
                .contains(&"--resource-types=Secret.v1,ConfigMap.v1,Widget.v1.bench.kubemirror.io".into())
        );
        assert!(s2.command_line().contains("--scenario s2 --sources 500") && s2.command_line().contains("--crd"));
        assert!(Config::scenario("s3").is_err());
    }

    #[test]
    fn the_rate_limit_floor() {
        let mut c = Config::default();
        assert_eq!(c.rate_limit(), (50.0, 100));
        assert_eq!(qps_floor(1100, 50.0, 100), Some(Duration::from_secs(20)));
        assert_eq!(qps_floor(50, 50.0, 100), Some(Duration::ZERO));
        c.controller_args.push("--rate-limit-qps=0".into());
        assert_eq!(qps_floor(1100, c.rate_limit().0, c.rate_limit().1), None);
    }
}
