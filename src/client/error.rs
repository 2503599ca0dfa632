//! Typed API errors. Every non-2xx answer is decoded from its `Status` body, so callers branch on
//! the reason (NotFound, Conflict, Gone...) instead of parsing messages.

use std::fmt;
use std::time::Duration;

use serde_json::Value;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, Clone, PartialEq)]
pub enum Error {
    /// The API server answered with a non-2xx status (or a watch ERROR event).
    Api(Box<Status>),
    /// The request never got an answer: connect, TLS, reset. The text is the full source chain.
    Transport(String),
    /// No answer (or, on a watch, no event) within this time.
    Timeout(Duration),
    /// The answer or a local input could not be decoded or built.
    Decode(String),
}

/// A Kubernetes `Status`, trimmed to what callers act on.
#[derive(Debug, Clone, PartialEq)]
pub struct Status {
    pub code: u16,
    pub reason: Reason,
    pub message: String,
    pub details: Option<Value>,
    pub retry_after: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    NotFound,
    AlreadyExists,
    Conflict,
    Gone,
    Expired,
    Forbidden,
    Unauthorized,
    Invalid,
    BadRequest,
    MethodNotAllowed,
    UnsupportedMediaType,
    TooManyRequests,
    ServerTimeout,
    Timeout,
    InternalError,
    ServiceUnavailable,
    Other(String),
}

impl Reason {
    /// The reason string as the API server spells it (`metav1.StatusReason`).
    pub fn parse(s: &str) -> Reason {
        match s {
            "NotFound" => Reason::NotFound,
            "AlreadyExists" => Reason::AlreadyExists,
            "Conflict" => Reason::Conflict,
            "Gone" => Reason::Gone,
            "Expired" => Reason::Expired,
            "Forbidden" => Reason::Forbidden,
            "Unauthorized" => Reason::Unauthorized,
            "Invalid" => Reason::Invalid,
            "BadRequest" => Reason::BadRequest,
            "MethodNotAllowed" => Reason::MethodNotAllowed,
            "UnsupportedMediaType" => Reason::UnsupportedMediaType,
            "TooManyRequests" => Reason::TooManyRequests,
            "ServerTimeout" => Reason::ServerTimeout,
            "Timeout" => Reason::Timeout,
            "InternalError" => Reason::InternalError,
            "ServiceUnavailable" => Reason::ServiceUnavailable,
            other => Reason::Other(other.to_string()),
        }
    }

    /// What client-go infers when a Status carries no reason.
    pub fn from_code(code: u16) -> Reason {
        match code {
            400 => Reason::BadRequest,
            401 => Reason::Unauthorized,
            403 => Reason::Forbidden,
            404 => Reason::NotFound,
            405 => Reason::MethodNotAllowed,
            409 => Reason::Conflict,
            410 => Reason::Gone,
            415 => Reason::UnsupportedMediaType,
            422 => Reason::Invalid,
            429 => Reason::TooManyRequests,
            500 => Reason::InternalError,
            503 => Reason::ServiceUnavailable,
            504 => Reason::Timeout,
            _ => Reason::Other(String::new()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Reason::NotFound => "NotFound",
            Reason::AlreadyExists => "AlreadyExists",
            Reason::Conflict => "Conflict",
            Reason::Gone => "Gone",
            Reason::Expired => "Expired",
            Reason::Forbidden => "Forbidden",
            Reason::Unauthorized => "Unauthorized",
            Reason::Invalid => "Invalid",
            Reason::BadRequest => "BadRequest",
            Reason::MethodNotAllowed => "MethodNotAllowed",
            Reason::UnsupportedMediaType => "UnsupportedMediaType",
            Reason::TooManyRequests => "TooManyRequests",
            Reason::ServerTimeout => "ServerTimeout",
            Reason::Timeout => "Timeout",
            Reason::InternalError => "InternalError",
            Reason::ServiceUnavailable => "ServiceUnavailable",
            Reason::Other(s) => s,
        }
    }
}

impl Status {
    /// Decodes a `Status` object (from a response body or a watch ERROR event). The HTTP code wins
    /// over the body's `code`, which some proxies leave at 0.
    pub fn from_value(v: &Value, http_code: Option<u16>) -> Option<Status> {
        if v.get("kind").and_then(Value::as_str) != Some("Status") {
            return None;
        }
        let body_code = v.get("code").and_then(Value::as_u64).and_then(|c| u16::try_from(c).ok()).unwrap_or(0);
        let code = http_code.unwrap_or(body_code);
        let reason = match v.get("reason").and_then(Value::as_str) {
            Some(r) if !r.is_empty() => Reason::parse(r),
            _ => Reason::from_code(code),
        };
        let details = v.get("details").filter(|d| !d.is_null()).cloned();
        let retry_after =
            details.as_ref().and_then(|d| d.get("retryAfterSeconds")).and_then(Value::as_u64).map(Duration::from_secs);
        Some(Status {
            code,
            reason,
            message: v.get("message").and_then(Value::as_str).unwrap_or_default().to_string(),
            details,
            retry_after,
        })
    }

    /// The Status of a non-2xx answer. A body that is not a Status (a proxy's HTML page, plain
    /// text, an echo of the request) still gives a useful error: the code and the body's size,
    /// never its content.
    pub fn from_response(code: u16, body: &[u8], retry_after: Option<Duration>) -> Status {
        let parsed = serde_json::from_slice::<Value>(body).ok().and_then(|v| Status::from_value(&v, Some(code)));
        let mut status = parsed.unwrap_or_else(|| Status {
            code,
            reason: Reason::from_code(code),
            message: format!("{}{} bytes", super::redact::NON_STATUS_PREFIX, body.len()),
            details: None,
            retry_after: None,
        });
        if retry_after.is_some() {
            status.retry_after = retry_after;
        }
        status
    }
}

/// `Retry-After` in its delay-seconds form; the HTTP-date form is not used by the API server.
pub(crate) fn parse_retry_after(v: &str) -> Option<Duration> {
    v.trim().parse::<u64>().ok().map(Duration::from_secs)
}

impl Error {
    pub fn status(&self) -> Option<&Status> {
        match self {
            Error::Api(s) => Some(s),
            _ => None,
        }
    }

    pub fn code(&self) -> Option<u16> {
        self.status().map(|s| s.code)
    }

    fn reason_is(&self, f: impl Fn(&Reason, u16) -> bool) -> bool {
        self.status().is_some_and(|s| f(&s.reason, s.code))
    }

    pub fn is_not_found(&self) -> bool {
        self.reason_is(|r, c| *r == Reason::NotFound || (c == 404 && matches!(r, Reason::Other(_))))
    }

    pub fn is_already_exists(&self) -> bool {
        self.reason_is(|r, _| *r == Reason::AlreadyExists)
    }

    pub fn is_conflict(&self) -> bool {
        self.reason_is(|r, c| *r == Reason::Conflict || (c == 409 && matches!(r, Reason::Other(_))))
    }

    /// 410 Gone or Expired: the resourceVersion is too old, relist.
    pub fn is_gone(&self) -> bool {
        self.reason_is(|r, c| matches!(r, Reason::Gone | Reason::Expired) || c == 410)
    }

    pub fn is_forbidden(&self) -> bool {
        self.reason_is(|r, _| *r == Reason::Forbidden)
    }

    pub fn is_unauthorized(&self) -> bool {
        self.reason_is(|r, c| *r == Reason::Unauthorized || c == 401)
    }

    pub fn is_invalid(&self) -> bool {
        self.reason_is(|r, _| *r == Reason::Invalid)
    }

    /// Worth trying again later: throttled, server-side trouble, or no answer at all.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Api(s) => {
                s.code == 429
                    || s.code >= 500
                    || matches!(s.reason, Reason::TooManyRequests | Reason::ServerTimeout | Reason::Timeout)
            }
            Error::Transport(_) | Error::Timeout(_) => true,
            Error::Decode(_) => false,
        }
    }

    /// Joins an error and all its sources: hyper-util's top-level text is only "client error (Connect)".
    pub(crate) fn transport(e: &(dyn std::error::Error + 'static)) -> Error {
        Error::Transport(error_chain(e))
    }
}

pub(crate) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cur = s.source();
    }
    out
}

/// Never the message verbatim: it may echo the object (a 422's `Invalid value`, a webhook's
/// denial); see [`super::redact::summary`].
impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&super::redact::summary(self))?;
        if let Some(d) = self.retry_after {
            write!(f, " (retry after {}s)", d.as_secs())?;
        }
        Ok(())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Api(s) => write!(f, "API error {s}"),
            Error::Transport(m) => write!(f, "transport error: {m}"),
            Error::Timeout(d) => write!(f, "timed out after {:.1}s", d.as_secs_f64()),
            Error::Decode(m) => write!(f, "decode error: {m}"),
        }
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn decodes_a_status_body() {
        let body = json!({"kind":"Status","apiVersion":"v1","status":"Failure","message":"secrets \"x\" not found",
            "reason":"NotFound","details":{"name":"x","kind":"secrets"},"code":404});
        let s = Status::from_response(404, body.to_string().as_bytes(), None);
        assert_eq!(s.reason, Reason::NotFound);
        assert_eq!(s.message, "secrets \"x\" not found");
        assert_eq!(s.details.as_ref().and_then(|d| d.get("name")), Some(&json!("x")));
        let e = Error::Api(Box::new(s));
        assert!(e.is_not_found() && !e.is_conflict() && !e.is_retryable());
        assert_eq!(e.code(), Some(404));
    }

    #[test]
    fn reasons_map_to_predicates() {
        let mk = |code, reason: &str| {
            let body = json!({"kind":"Status","reason":reason,"code":code,"message":"m"});
            Error::Api(Box::new(Status::from_response(code, body.to_string().as_bytes(), None)))
        };
        assert!(mk(409, "AlreadyExists").is_already_exists());
        assert!(mk(409, "Conflict").is_conflict());
        assert!(mk(410, "Expired").is_gone());
        assert!(mk(410, "Gone").is_gone());
        assert!(mk(403, "Forbidden").is_forbidden());
        assert!(mk(422, "Invalid").is_invalid());
        assert!(mk(500, "InternalError").is_retryable());
        assert!(mk(504, "Timeout").is_retryable());
        assert_eq!(mk(418, "Teapot").status().map(|s| s.reason.clone()), Some(Reason::Other("Teapot".into())));
    }

    #[test]
    fn missing_reason_is_inferred_from_the_code() {
        let s = Status::from_response(429, br#"{"kind":"Status","code":429}"#, Some(Duration::from_secs(3)));
        assert_eq!(s.reason, Reason::TooManyRequests);
        assert_eq!(s.retry_after, Some(Duration::from_secs(3)));
        let e = Error::Api(Box::new(s));
        assert!(e.is_retryable());
        assert!(e.to_string().contains("retry after 3s"), "{e}");
    }

    #[test]
    fn retry_after_seconds_in_details_is_used() {
        let s = Status::from_response(429, br#"{"kind":"Status","details":{"retryAfterSeconds":7}}"#, None);
        assert_eq!(s.retry_after, Some(Duration::from_secs(7)));
    }

    #[test]
    fn non_status_body_names_the_code_and_the_size_never_the_content() {
        let s = Status::from_response(502, b"<html>\n<h1>Bad gateway: s3cr3t</h1></html>", None);
        assert_eq!(s.code, 502);
        let shown = Error::Api(Box::new(s)).to_string();
        assert_eq!(shown, "API error 502 Other: non-Status body of 42 bytes");
        let s = Status::from_response(500, &vec![b'x'; 5000], None);
        assert_eq!(s.to_string(), "500 InternalError: non-Status body of 5000 bytes");
        let s = Status::from_response(500, b"", None);
        assert_eq!(s.to_string(), "500 InternalError: non-Status body of 0 bytes");
    }

    #[test]
    fn retry_after_header_forms() {
        assert_eq!(parse_retry_after(" 5 "), Some(Duration::from_secs(5)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
    }

    #[test]
    fn error_chain_joins_sources() {
        #[derive(Debug)]
        struct Outer(std::io::Error);
        impl fmt::Display for Outer {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("client error (Connect)")
            }
        }
        impl std::error::Error for Outer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let e = Outer(std::io::Error::other("invalid peer certificate: UnknownIssuer"));
        let Error::Transport(m) = Error::transport(&e) else { panic!() };
        assert_eq!(m, "client error (Connect): invalid peer certificate: UnknownIssuer");
    }
}
