//! Log set-up: one line per event on stderr, as text or as one JSON object per line for log
//! collectors (written with serde_json, so messages are always escaped correctly).
//!
//! The level, first match wins: `--log-level` / `--zap-log-level` (or their variables), then
//! `RUST_LOG` (env_logger's full syntax, e.g. `info,kubemirror::controller=debug`), then `LOG_LEVEL`
//! (the Go version's README's variable: a level name), then `info`. The explicit flag wins because
//! it is what an operator edits on purpose; `RUST_LOG` before `LOG_LEVEL` because it is the more
//! precise of the two.
//!
//! What is logged is the callers' business; the rule they follow: one line per event naming the
//! kind and namespace/name, and never a Secret's value, a request or response body, or an exec
//! credential plugin's output (sizes and Status reasons only).

use std::io::Write;
use std::time::SystemTime;

use crate::options::{LogFormat, UsageError};
use crate::util::time::format_rfc3339_micros;

/// The env_logger filter to use; `Err` for a `LOG_LEVEL` that is not a level.
pub fn filter(
    flag: Option<log::LevelFilter>,
    rust_log: Option<&str>,
    log_level: Option<&str>,
) -> Result<String, UsageError> {
    if let Some(level) = flag {
        return Ok(level.to_string().to_lowercase());
    }
    if let Some(spec) = rust_log.map(str::trim).filter(|s| !s.is_empty()) {
        return Ok(spec.to_string());
    }
    if let Some(v) = log_level.map(str::trim).filter(|s| !s.is_empty()) {
        let level = match v.to_ascii_lowercase().as_str() {
            "warning" => "warn".to_string(),
            l @ ("trace" | "debug" | "info" | "warn" | "error" | "off") => l.to_string(),
            _ => {
                return Err(UsageError(format!(
                    "LOG_LEVEL: {v:?} is not a level (trace, debug, info, warn, error, off)"
                )));
            }
        };
        return Ok(level);
    }
    Ok("info".into())
}

/// The `<Kind> <namespace>/<name>: ` prefix event lines start with, as (kind, "namespace/name").
fn subject(msg: &str) -> Option<(&str, &str)> {
    let (head, _) = msg.split_once(": ")?;
    let (kind, object) = head.split_once(' ')?;
    let (ns, name) = object.split_once('/')?;
    let word = |s: &str| !s.is_empty() && !s.contains(' ');
    (kind.starts_with(|c: char| c.is_ascii_alphabetic()) && word(ns) && word(name)).then_some((kind, object))
}

/// One log line in the JSON format; an event line's kind and object are also fields of their own.
pub fn json_line(ts: &str, level: log::Level, target: &str, msg: &str) -> String {
    let mut line = serde_json::json!({"ts": ts, "level": level.as_str(), "target": target, "msg": msg});
    if let Some((kind, object)) = subject(msg) {
        line["kind"] = kind.into();
        line["object"] = object.into();
    }
    line.to_string()
}

/// One log line in the text format: one event stays one line whatever a message carries (names and
/// annotation text from the cluster may hold newlines, escape sequences or other control characters).
pub fn text_line(ts: &str, level: log::Level, target: &str, msg: &str) -> String {
    let msg: String = msg.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    format!("{ts} {level:<5} {target}: {msg}")
}

/// Installs the logger (once per process; later calls do nothing).
pub fn init(filter: &str, format: LogFormat) {
    let line = match format {
        LogFormat::Text => text_line,
        LogFormat::Json => json_line,
    };
    let _ = env_logger::Builder::new()
        .parse_filters(filter)
        .format(move |buf, rec| {
            let ts = format_rfc3339_micros(SystemTime::now());
            writeln!(buf, "{}", line(&ts, rec.level(), rec.target(), &rec.args().to_string()))
        })
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;
    use log::LevelFilter;

    #[test]
    fn precedence_flag_then_rust_log_then_log_level() {
        assert_eq!(filter(Some(LevelFilter::Debug), Some("warn"), Some("error")).unwrap(), "debug");
        assert_eq!(filter(None, Some("info,kubemirror=trace"), Some("error")).unwrap(), "info,kubemirror=trace");
        assert_eq!(filter(None, Some(" "), Some("DEBUG")).unwrap(), "debug");
        assert_eq!(filter(None, None, Some("warning")).unwrap(), "warn");
        assert_eq!(filter(None, None, None).unwrap(), "info");
        assert_eq!(filter(None, None, Some("loud")).unwrap_err().0.split(':').next(), Some("LOG_LEVEL"));
    }

    #[test]
    fn json_lines_are_one_escaped_object() {
        let l = json_line("2025-01-01T00:00:00Z", log::Level::Warn, "kubemirror::x", "a \"quoted\"\nline");
        assert!(!l.contains('\n'));
        let v: serde_json::Value = serde_json::from_str(&l).unwrap();
        assert_eq!(v["level"], "WARN");
        assert_eq!(v["msg"], "a \"quoted\"\nline");
        assert_eq!(v["target"], "kubemirror::x");
        assert_eq!(text_line("t", log::Level::Info, "k", "a\nb"), "t INFO  k: a b");
        assert_eq!(text_line("t", log::Level::Info, "k", "x\u{1b}[2Jy\r\tz"), "t INFO  k: x [2Jy  z");
        assert!(v.get("kind").is_none());
        let l = json_line("t", log::Level::Info, "k", "Secret app1/db: mirror created");
        let v: serde_json::Value = serde_json::from_str(&l).unwrap();
        assert_eq!((v["kind"].as_str(), v["object"].as_str()), (Some("Secret"), Some("app1/db")));
        assert_eq!(subject("watch Secret.v1 sources: list failed: x"), None);
        assert_eq!(
            subject("lease default/kubemirror-controller-leader: acquired by a"),
            Some(("lease", "default/kubemirror-controller-leader"))
        );
    }
}
