//! Watch events and the stream that decodes them. The body is newline-delimited JSON, one event
//! per line, but HTTP frames cut lines anywhere: bytes are buffered until a full line is there.

use std::collections::VecDeque;
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::Value;

use super::error::{Error, Result, Status, error_chain};
use super::object::ObjectExt;

/// Annotation on the bookmark that ends the initial events of a `sendInitialEvents` watch.
pub const INITIAL_EVENTS_END: &str = "k8s.io/initial-events-end";

#[derive(Debug, Clone, PartialEq)]
pub enum WatchEvent {
    Added(Value),
    Modified(Value),
    Deleted(Value),
    Bookmark {
        resource_version: String,
        initial_events_end: bool,
    },
    /// The server ended the watch with a Status, typically 410 Expired.
    Error(Status),
}

/// A line longer than this is not a watch event from a sane server (the API server refuses request
/// bodies over 3 MiB and etcd values over 1.5 MiB); refuse it rather than buffer without bound.
pub const MAX_LINE: usize = 16 << 20;

/// Incremental decoder: feed body chunks, take complete events.
#[derive(Debug, Default)]
pub struct WatchDecoder {
    buf: Vec<u8>,
    /// Bytes of `buf` already known to hold no newline: a big object arriving in many small
    /// frames is scanned once, not once per frame.
    scanned: usize,
}

impl WatchDecoder {
    pub fn push(&mut self, chunk: &[u8], out: &mut VecDeque<Result<WatchEvent>>) {
        self.buf.extend_from_slice(chunk);
        let mut start = 0;
        let mut from = self.scanned;
        while let Some(pos) = self.buf[from..].iter().position(|&b| b == b'\n') {
            let end = from + pos;
            let line = &self.buf[start..end];
            if !line.iter().all(u8::is_ascii_whitespace) {
                out.push_back(decode_event(line));
            }
            start = end + 1;
            from = start;
        }
        self.buf.drain(..start);
        self.scanned = self.buf.len();
        if self.buf.len() > MAX_LINE {
            self.buf.clear();
            self.scanned = 0;
            out.push_back(Err(Error::Decode(format!("watch event longer than {MAX_LINE} bytes"))));
        }
    }

    /// The end of the body: a last event without its newline still counts.
    pub fn finish(&mut self, out: &mut VecDeque<Result<WatchEvent>>) {
        let rest = std::mem::take(&mut self.buf);
        self.scanned = 0;
        if !rest.iter().all(u8::is_ascii_whitespace) {
            out.push_back(decode_event(&rest));
        }
    }
}

/// Decodes one line. Errors name the line's size and what is wrong with it, never its content (a
/// Secret's data may be in it).
pub fn decode_event(line: &[u8]) -> Result<WatchEvent> {
    let mut v: Value = serde_json::from_slice(line)
        .map_err(|e| Error::Decode(format!("watch event of {} bytes is not JSON: {e}", line.len())))?;
    let typ = v.get("type").and_then(Value::as_str).unwrap_or_default().to_string();
    let object = v.get_mut("object").map(Value::take).unwrap_or(Value::Null);
    if !object.is_object() {
        return Err(Error::Decode(format!("watch event {} without an object", known_type(&typ))));
    }
    match typ.as_str() {
        "ADDED" => Ok(WatchEvent::Added(object)),
        "MODIFIED" => Ok(WatchEvent::Modified(object)),
        "DELETED" => Ok(WatchEvent::Deleted(object)),
        "BOOKMARK" => Ok(WatchEvent::Bookmark {
            resource_version: object.resource_version().unwrap_or_default().to_string(),
            initial_events_end: object.annotation(INITIAL_EVENTS_END) == Some("true"),
        }),
        "ERROR" => Status::from_value(&object, None)
            .map(WatchEvent::Error)
            .ok_or_else(|| Error::Decode("watch ERROR event whose object is not a Status".into())),
        other => Err(Error::Decode(format!("watch event of unknown type ({} bytes)", other.len()))),
    }
}

/// The event type as shown in errors: one of the protocol's, else a placeholder (the line is
/// untrusted text).
fn known_type(t: &str) -> &'static str {
    ["ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR"].into_iter().find(|k| *k == t).unwrap_or("of unknown type")
}

/// The events of one watch request. Not counted against the client's rate limit.
pub struct WatchStream {
    body: Option<Incoming>,
    decoder: WatchDecoder,
    queue: VecDeque<Result<WatchEvent>>,
    idle: Duration,
    /// The kind every object must have (when it names one).
    kind: Option<String>,
}

impl WatchStream {
    pub(crate) fn new(body: Incoming, idle: Duration) -> Self {
        WatchStream { body: Some(body), decoder: WatchDecoder::default(), queue: VecDeque::new(), idle, kind: None }
    }

    /// Objects of another kind are errors, not events: a server answering a watch of Secrets with
    /// Pods must not have them cached as Secrets.
    pub(crate) fn expecting_kind(mut self, kind: &str) -> Self {
        self.kind = Some(kind.to_string());
        self
    }

    fn check_kind(&self, ev: Result<WatchEvent>) -> Result<WatchEvent> {
        let ev = ev?;
        if let (WatchEvent::Added(o) | WatchEvent::Modified(o) | WatchEvent::Deleted(o), Some(want)) = (&ev, &self.kind)
            && o.kind().is_some_and(|k| k != want)
        {
            return Err(Error::Decode(format!("watch event with an object of another kind than {want}")));
        }
        Ok(ev)
    }

    /// The next event; `None` once the server closed the stream normally. No event (nor any
    /// bytes) for the idle timeout gives `Some(Err(Error::Timeout(..)))` and ends the stream.
    pub async fn next(&mut self) -> Option<Result<WatchEvent>> {
        loop {
            if let Some(ev) = self.queue.pop_front() {
                return Some(self.check_kind(ev));
            }
            let body = self.body.as_mut()?;
            match tokio::time::timeout(self.idle, body.frame()).await {
                Err(_) => {
                    self.body = None;
                    return Some(Err(Error::Timeout(self.idle)));
                }
                Ok(None) => {
                    self.body = None;
                    self.decoder.finish(&mut self.queue);
                }
                Ok(Some(Err(e))) => {
                    self.body = None;
                    return Some(Err(Error::Transport(error_chain(&e))));
                }
                Ok(Some(Ok(frame))) => {
                    if let Some(data) = frame.data_ref() {
                        self.decoder.push(data, &mut self.queue);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn decode_in_chunks(text: &str, sizes: &[usize]) -> Vec<Result<WatchEvent>> {
        let mut d = WatchDecoder::default();
        let mut out = VecDeque::new();
        let bytes = text.as_bytes();
        let mut pos = 0;
        for &n in sizes.iter().cycle() {
            if pos >= bytes.len() {
                break;
            }
            let end = (pos + n).min(bytes.len());
            d.push(&bytes[pos..end], &mut out);
            pos = end;
        }
        d.finish(&mut out);
        out.into_iter().collect()
    }

    #[test]
    fn events_split_across_chunks_decode_the_same() {
        let stream = [
            json!({"type":"ADDED","object":{"metadata":{"name":"a","resourceVersion":"1"}}}),
            json!({"type":"MODIFIED","object":{"metadata":{"name":"a","resourceVersion":"2"}}}),
            json!({"type":"BOOKMARK","object":{"kind":"Secret","metadata":{"resourceVersion":"3",
                "annotations":{"k8s.io/initial-events-end":"true"}}}}),
            json!({"type":"DELETED","object":{"metadata":{"name":"a","resourceVersion":"4"}}}),
            json!({"type":"ERROR","object":{"kind":"Status","code":410,"reason":"Expired","message":"too old"}}),
        ]
        .iter()
        .map(|v| format!("{v}\n"))
        .collect::<String>();
        let whole = decode_in_chunks(&stream, &[stream.len()]);
        for sizes in [&[1usize][..], &[7, 3], &[64], &[2, 200]] {
            assert_eq!(decode_in_chunks(&stream, sizes), whole, "chunks {sizes:?}");
        }
        assert_eq!(whole.len(), 5);
        assert!(matches!(&whole[0], Ok(WatchEvent::Added(o)) if o.name() == Some("a")));
        assert!(matches!(&whole[1], Ok(WatchEvent::Modified(_))));
        assert_eq!(whole[2], Ok(WatchEvent::Bookmark { resource_version: "3".into(), initial_events_end: true }));
        assert!(matches!(&whole[3], Ok(WatchEvent::Deleted(_))));
        match &whole[4] {
            Ok(WatchEvent::Error(s)) => assert!(s.code == 410 && s.message == "too old"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn last_line_without_newline_and_blank_lines() {
        let text = "\n{\"type\":\"BOOKMARK\",\"object\":{\"metadata\":{\"resourceVersion\":\"5\"}}}";
        let out = decode_in_chunks(text, &[4]);
        assert_eq!(out, vec![Ok(WatchEvent::Bookmark { resource_version: "5".into(), initial_events_end: false })]);
    }

    #[test]
    fn errors_never_quote_the_line() {
        // A Secret's data may be in any line that fails: errors give sizes and shapes only.
        const CANARY: &str = "kmcanary7Qx9";
        let lines = [
            format!("{{\"type\":\"ADDED\",\"object\":{{\"data\":{{\"p\":\"{CANARY}\""),
            format!("{{\"type\":\"{CANARY}\",\"object\":{{}}}}"),
            format!("{{\"type\":\"{CANARY}\",\"object\":\"{CANARY}\"}}"),
            format!("{{\"type\":\"ERROR\",\"object\":{{\"kind\":\"{CANARY}\",\"message\":\"{CANARY}\"}}}}"),
            format!("{{\"type\":\"ADDED\",\"object\":[\"{CANARY}\"]}}"),
            format!("{CANARY} not json at all"),
            format!("{{\"type\":\"ADDED\",\"object\":{{\"s\":\"{CANARY}\\u0000\\x\"}}}}"),
        ];
        for line in &lines {
            let e = decode_event(line.as_bytes()).unwrap_err().to_string();
            assert!(!e.contains(CANARY) && e.contains("watch "), "{line} -> {e}");
        }
        let status =
            format!("{{\"type\":\"ERROR\",\"object\":{{\"kind\":\"Status\",\"code\":500,\"message\":\"{CANARY}\"}}}}");
        let Ok(WatchEvent::Error(s)) = decode_event(status.as_bytes()) else { panic!() };
        assert!(!s.to_string().contains(CANARY), "{s}");
    }

    #[test]
    fn garbage_is_a_decode_error_not_a_panic() {
        let out = decode_in_chunks("not json\n{\"type\":\"WEIRD\",\"object\":{}}\n{\"type\":\"ADDED\"}\n", &[5]);
        assert_eq!(out.len(), 3);
        assert!(out.iter().all(|e| matches!(e, Err(Error::Decode(_)))), "{out:?}");
    }
}
