//! The checks of flag values, each refusing what cannot work (negative counts, durations that are
//! unparsable or absurd, bad globs, names or addresses) with a [`ValueError`] that the parser
//! prefixes with the flag's name.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use crate::util::duration;

/// Longest duration any flag accepts: beyond it a timer is a mistake (and `Instant + d` would
/// overflow for values such as `1e19s`).
const MAX_DURATION: Duration = Duration::from_secs(7 * 24 * 3600);

/// Why a flag's value was refused. The value is quoted as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValueError {
    NotBoolean(String),
    Negative(String),
    NotWholeNumber(String),
    NotNumber(String),
    /// `value` as shown (a count unquoted, a text quoted).
    OutOfRange {
        value: String,
        min: String,
        max: String,
    },
    /// The duration parser's explanation.
    Duration(String),
    TooShort {
        value: String,
        min: Duration,
    },
    TooLong(String),
    NotAddress(String),
    Empty,
    /// Not `what` (a namespace name, an object name, a Kind, a level...).
    NotA {
        value: String,
        what: &'static str,
    },
    NotOneOf {
        value: String,
        allowed: &'static [&'static str],
    },
    /// Refused by the parser of another module (type lists, deny lists, globs), with its reason.
    Invalid(String),
}

impl fmt::Display for ValueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ValueError::NotBoolean(v) => write!(f, "{v:?} is not a boolean (true or false)"),
            ValueError::Negative(v) => write!(f, "{v:?} is negative"),
            ValueError::NotWholeNumber(v) => write!(f, "{v:?} is not a whole number"),
            ValueError::NotNumber(v) => write!(f, "{v:?} is not a number"),
            ValueError::OutOfRange { value, min, max } => write!(f, "{value} is out of range ({min} to {max})"),
            ValueError::Duration(why) | ValueError::Invalid(why) => f.write_str(why),
            ValueError::TooShort { value, min } => write!(f, "{value:?} is shorter than {min:?}"),
            ValueError::TooLong(v) => write!(f, "{v:?} is longer than 7 days"),
            ValueError::NotAddress(v) => write!(f, "{v:?} is not an address like :8080 or 127.0.0.1:8080 (0 disables)"),
            ValueError::Empty => f.write_str("must not be empty"),
            ValueError::NotA { value, what } => write!(f, "{value:?} is not {what}"),
            ValueError::NotOneOf { value, allowed } => write!(f, "{value:?} is not one of {}", allowed.join(", ")),
        }
    }
}

impl std::error::Error for ValueError {}

pub type Checked<T> = Result<T, ValueError>;

/// Go's `strconv.ParseBool` spellings.
pub fn boolean(v: &str) -> Checked<bool> {
    match v.trim() {
        "true" | "1" | "t" | "T" | "TRUE" | "True" => Ok(true),
        "false" | "0" | "f" | "F" | "FALSE" | "False" => Ok(false),
        other => Err(ValueError::NotBoolean(other.to_string())),
    }
}

pub fn count(v: &str) -> Checked<usize> {
    let t = v.trim();
    if t.starts_with('-') && t[1..].parse::<u64>().is_ok() {
        return Err(ValueError::Negative(t.to_string()));
    }
    t.parse::<usize>().map_err(|_| ValueError::NotWholeNumber(t.to_string()))
}

pub fn count_in(v: &str, min: usize, max: usize) -> Checked<usize> {
    let n = count(v)?;
    if n < min || n > max {
        return Err(ValueError::OutOfRange { value: n.to_string(), min: min.to_string(), max: max.to_string() });
    }
    Ok(n)
}

pub fn number_in(v: &str, min: f64, max: f64) -> Checked<f64> {
    let q: f64 = v.trim().parse().map_err(|_| ValueError::NotNumber(v.to_string()))?;
    if !q.is_finite() || !(min..=max).contains(&q) {
        return Err(ValueError::OutOfRange { value: format!("{v:?}"), min: min.to_string(), max: max.to_string() });
    }
    Ok(q)
}

pub fn dur(v: &str, min: Duration) -> Checked<Duration> {
    let d = duration::parse(v).map_err(ValueError::Duration)?;
    if d < min {
        return Err(ValueError::TooShort { value: v.to_string(), min });
    }
    if d > MAX_DURATION {
        return Err(ValueError::TooLong(v.to_string()));
    }
    Ok(d)
}

/// `:8080`, `0.0.0.0:8080`, `[::]:8080`, `localhost:8080`; `0` or empty disables the endpoint.
pub fn bind_address(v: &str) -> Checked<Option<SocketAddr>> {
    let v = v.trim();
    if v.is_empty() || v == "0" {
        return Ok(None);
    }
    let full = match v.strip_prefix("localhost:") {
        Some(port) => format!("127.0.0.1:{port}"),
        None if v.starts_with(':') => format!("0.0.0.0{v}"),
        None => v.to_string(),
    };
    full.parse().map(Some).map_err(|_| ValueError::NotAddress(v.to_string()))
}

pub fn non_empty(v: &str) -> Checked<String> {
    let t = v.trim();
    if t.is_empty() { Err(ValueError::Empty) } else { Ok(t.to_string()) }
}

/// RFC 1123 subdomain (Lease names) or label (namespaces).
pub fn dns_name(v: &str, label: bool) -> Checked<String> {
    let t = v.trim();
    let max = if label { 63 } else { 253 };
    let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || (!label && c == '.');
    let parts_ok = t.split('.').all(|p| !p.is_empty() && !p.starts_with('-') && !p.ends_with('-'));
    if t.is_empty() || t.len() > max || !t.chars().all(ok_char) || !parts_ok {
        let what = if label {
            "a namespace name (lower-case letters, digits, '-')"
        } else {
            "a Kubernetes object name (lower-case letters, digits, '-', '.')"
        };
        return Err(ValueError::NotA { value: t.to_string(), what });
    }
    Ok(t.to_string())
}

/// Label/annotation keys (`[prefix/]name`) or prefixes ending in `*`.
pub fn strip_list(v: &str) -> Checked<String> {
    for e in v.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let key = e.strip_suffix('*').unwrap_or(e);
        let ok = !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || "-._/".contains(c));
        if !ok {
            let what = "a label/annotation key or a prefix ending in *";
            return Err(ValueError::NotA { value: e.to_string(), what });
        }
    }
    Ok(v.to_string())
}

pub fn log_level(v: &str) -> Checked<log::LevelFilter> {
    match v.trim().to_ascii_lowercase().as_str() {
        "trace" => Ok(log::LevelFilter::Trace),
        "debug" => Ok(log::LevelFilter::Debug),
        "info" => Ok(log::LevelFilter::Info),
        "warn" | "warning" => Ok(log::LevelFilter::Warn),
        "error" => Ok(log::LevelFilter::Error),
        "off" => Ok(log::LevelFilter::Off),
        other => {
            Err(ValueError::NotA { value: other.to_string(), what: "a level (trace, debug, info, warn, error, off)" })
        }
    }
}

/// zap's levels, or a positive verbosity (debug).
pub fn zap_level(v: &str) -> Checked<log::LevelFilter> {
    match v.trim().to_ascii_lowercase().as_str() {
        "debug" => Ok(log::LevelFilter::Debug),
        "info" => Ok(log::LevelFilter::Info),
        "warn" => Ok(log::LevelFilter::Warn),
        "error" | "dpanic" | "panic" | "fatal" => Ok(log::LevelFilter::Error),
        other => match other.parse::<u8>() {
            Ok(0) => Ok(log::LevelFilter::Info),
            Ok(_) => Ok(log::LevelFilter::Debug),
            Err(_) => Err(ValueError::NotA {
                value: other.to_string(),
                what: "a zap level (debug, info, warn, error, or a verbosity > 0)",
            }),
        },
    }
}

pub fn one_of(v: &str, allowed: &'static [&'static str]) -> Checked<()> {
    if allowed.contains(&v.trim()) { Ok(()) } else { Err(ValueError::NotOneOf { value: v.to_string(), allowed }) }
}

/// Another module's message, minus the leading `--flag: ` some of them carry (the parser adds it).
pub fn invalid(e: String) -> ValueError {
    ValueError::Invalid(match e.split_once(": ") {
        Some((flag, rest)) if flag.starts_with("--") => rest.to_string(),
        _ => e,
    })
}
