//! External tools the packaging and kubectl tests drive: helm and kubectl. Looked up in `$HELM` /
//! `$KUBECTL`, then on PATH, then where `.ci/run` (tests/tools/install) puts them
//! (`~/.cache/kubemirror-tools/bin`). A test that needs a missing tool skips with a message — except
//! under `CI=true`, where it fails: CI installs its tools, so a missing one must never turn into a
//! green run. Included with `#[path = "common/tools.rs"] mod tools;`.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;

fn works(path: &PathBuf, version_args: &[&str]) -> bool {
    Command::new(path).args(version_args).output().is_ok_and(|o| o.status.success())
}

fn cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("kubemirror-tools").join("bin"))
}

fn find(env: &str, name: &str, version_args: &[&str]) -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(p) = std::env::var_os(env) {
        candidates.push(PathBuf::from(p));
    }
    candidates.push(PathBuf::from(name));
    if let Some(dir) = cache_dir() {
        candidates.push(dir.join(name));
    }
    candidates.into_iter().find(|c| works(c, version_args))
}

/// The tool, or `None` after printing why the calling test skips; panics under `CI=true`.
fn require(tool: &str, found: Option<PathBuf>) -> Option<PathBuf> {
    if found.is_none() {
        let msg = format!(
            "{tool} is not installed (looked at ${}, PATH and ~/.cache/kubemirror-tools/bin); \
             tests/tools/install puts it there",
            tool.to_uppercase()
        );
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("CI=true: {msg}");
        }
        eprintln!("SKIPPED: {msg}");
    }
    found
}

pub fn helm() -> Option<PathBuf> {
    require("helm", find("HELM", "helm", &["version", "--short"]))
}

pub fn kubectl() -> Option<PathBuf> {
    require("kubectl", find("KUBECTL", "kubectl", &["version", "--client"]))
}

/// Runs a tool; panics with its output unless it succeeds. Returns stdout.
pub fn run(tool: &PathBuf, args: &[&str], env: &[(&str, &str)]) -> String {
    let out = Command::new(tool)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap_or_else(|e| panic!("{} {args:?}: {e}", tool.display()));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{} {args:?} failed:\n{stdout}\n{}",
        tool.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Runs a tool expecting failure; returns stderr.
pub fn run_failing(tool: &PathBuf, args: &[&str]) -> String {
    let out = Command::new(tool).args(args).output().unwrap_or_else(|e| panic!("{} {args:?}: {e}", tool.display()));
    assert!(!out.status.success(), "{} {args:?} unexpectedly succeeded", tool.display());
    String::from_utf8_lossy(&out.stderr).into_owned()
}
