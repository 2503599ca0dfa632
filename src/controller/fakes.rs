//! Test doubles of [`MirrorApi`], so the real executor and reconciler run in unit tests:
//! - [`Script`]: kube-rs/controller-rs style fixtures — the exact calls expected, in order, each with
//!   its canned answer; any unexpected, different or missing call fails the test;
//! - [`Cluster`]: a small stateful cluster (resourceVersions, uids, preconditions, merge patches,
//!   finalizers) that logs every call, for multi-pass scenarios whose answers follow from earlier
//!   writes. Tests assert the exact call log of each pass.
//!
//! Calls are written `VERB namespace/name [detail]`: `GET`, `POST`, `PUT … rv=<precondition>`,
//! `PATCH … <patch JSON>`, `DELETE … uid=<precondition>`, and `EVENT <type> <reason>: <message>`.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use serde_json::{Value, json};

use crate::client::{self, ApiResource, Reason, Status};
use crate::controller::writer::{MirrorApi, WriteError, WriteResult};
use crate::events::{EventType, InvolvedObject};
use crate::model::ObjectKey;

pub fn api_error(code: u16, reason: Reason, message: &str) -> client::Error {
    client::Error::Api(Box::new(Status { code, reason, message: message.into(), details: None, retry_after: None }))
}

fn key_of(obj: &Value, ns: &str) -> ObjectKey {
    ObjectKey::new(ns, obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or(""))
}

fn rv_of(obj: &Value) -> &str {
    obj.pointer("/metadata/resourceVersion").and_then(Value::as_str).unwrap_or("")
}

fn describe_event(ty: EventType, reason: &str, message: &str) -> String {
    let ty = match ty {
        EventType::Normal => "Normal",
        EventType::Warning => "Warning",
    };
    format!("EVENT {ty} {reason}: {message}")
}

/// A canned answer.
#[derive(Debug)]
pub enum Answer {
    /// The object a GET, POST, PUT or PATCH returns (ignored for DELETE and EVENT).
    Object(Value),
    /// Success without an object (DELETE, EVENT).
    Ok,
    Error(client::Error),
    /// Fenced: this replica is not the leader.
    NotLeader,
}

/// The exact calls expected, in order, with their answers.
#[derive(Default)]
pub struct Script {
    expected: Mutex<VecDeque<(String, Answer)>>,
}

impl Script {
    pub fn new(calls: Vec<(&str, Answer)>) -> Self {
        Script { expected: Mutex::new(calls.into_iter().map(|(c, a)| (c.to_string(), a)).collect()) }
    }

    /// Every expected call was made.
    pub fn finish(&self) {
        let left: Vec<String> = self.expected.lock().unwrap().iter().map(|(c, _)| c.clone()).collect();
        assert!(left.is_empty(), "expected calls not made: {left:#?}");
    }

    fn answer(&self, call: String) -> Answer {
        let next = self.expected.lock().unwrap().pop_front();
        match next {
            None => panic!("unexpected call: {call}"),
            Some((want, answer)) => {
                assert_eq!(call, want, "calls differ");
                answer
            }
        }
    }

    fn object(&self, call: String) -> WriteResult<Value> {
        match self.answer(call) {
            Answer::Object(v) => Ok(v),
            Answer::Ok => Ok(Value::Null),
            Answer::Error(e) => Err(WriteError::Api(e)),
            Answer::NotLeader => Err(WriteError::NotLeader),
        }
    }
}

impl MirrorApi for Script {
    async fn get(&self, _: &ApiResource, ns: &str, name: &str) -> client::Result<Value> {
        match self.object(format!("GET {ns}/{name}")) {
            Ok(v) => Ok(v),
            Err(WriteError::Api(e)) => Err(e),
            Err(WriteError::NotLeader) => panic!("a read is never fenced"),
        }
    }

    async fn create(&self, _: &ApiResource, ns: &str, obj: &Value) -> WriteResult<Value> {
        self.object(format!("POST {}", key_of(obj, ns)))
    }

    async fn update(&self, _: &ApiResource, ns: &str, name: &str, obj: &Value) -> WriteResult<Value> {
        self.object(format!("PUT {ns}/{name} rv={}", rv_of(obj)))
    }

    async fn merge_patch(&self, _: &ApiResource, ns: &str, name: &str, patch: Value) -> WriteResult<Value> {
        self.object(format!("PATCH {ns}/{name} {patch}"))
    }

    async fn delete(&self, _: &ApiResource, ns: &str, name: &str, uid: &str) -> WriteResult<()> {
        self.object(format!("DELETE {ns}/{name} uid={uid}")).map(|_| ())
    }

    async fn event(&self, _: &InvolvedObject, ty: EventType, reason: &str, message: &str) -> WriteResult<()> {
        self.object(describe_event(ty, reason, message)).map(|_| ())
    }
}

/// RFC 7386 merge patch.
fn merge(target: &mut Value, patch: &Value) {
    match (target.as_object_mut(), patch.as_object()) {
        (Some(t), Some(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        _ => *target = patch.clone(),
    }
}

#[derive(Default)]
struct State {
    objects: BTreeMap<ObjectKey, Value>,
    rv: u64,
    calls: Vec<String>,
    /// One-shot failures by call prefix (`POST app2/db`).
    failures: Vec<(String, client::Error)>,
}

impl State {
    fn bump(&mut self) -> String {
        self.rv += 1;
        self.rv.to_string()
    }

    fn call(&mut self, call: String) -> client::Result<()> {
        let injected = self.failures.iter().position(|(prefix, _)| call.starts_with(prefix.as_str()));
        self.calls.push(call);
        match injected {
            Some(i) => Err(self.failures.remove(i).1),
            None => Ok(()),
        }
    }

    fn not_found(key: &ObjectKey) -> client::Error {
        api_error(404, Reason::NotFound, &format!("\"{}\" not found", key.name))
    }

    /// An object being deleted whose last finalizer is gone disappears, as on a real server.
    fn settle(&mut self, key: &ObjectKey) {
        let gone = self.objects.get(key).is_some_and(|o| {
            o.pointer("/metadata/deletionTimestamp").is_some()
                && o.pointer("/metadata/finalizers").and_then(Value::as_array).is_none_or(Vec::is_empty)
        });
        if gone {
            self.objects.remove(key);
        }
    }
}

/// A stateful fake cluster that logs every call (see the module docs).
#[derive(Default)]
pub struct Cluster {
    state: Mutex<State>,
}

impl Cluster {
    pub fn new(rv: u64) -> Self {
        Cluster { state: Mutex::new(State { rv, ..State::default() }) }
    }

    /// Stores `obj` as is (uid and resourceVersion assigned when missing), as someone else would.
    pub fn put(&self, mut obj: Value) {
        let mut st = self.state.lock().unwrap();
        let ns = obj.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or("").to_string();
        let key = key_of(&obj, &ns);
        let rv = st.bump();
        obj["metadata"]["resourceVersion"] = json!(rv);
        if obj.pointer("/metadata/uid").is_none() {
            obj["metadata"]["uid"] = json!(format!("uid-{rv}"));
        }
        st.objects.insert(key.clone(), obj);
        st.settle(&key);
    }

    /// Edits a stored object as someone else would: new content, new resourceVersion.
    pub fn edit(&self, key: &ObjectKey, f: impl FnOnce(&mut Value)) {
        let mut obj = self.get_object(key).expect("no such object");
        f(&mut obj);
        self.put(obj);
    }

    pub fn remove(&self, key: &ObjectKey) {
        self.state.lock().unwrap().objects.remove(key);
    }

    pub fn get_object(&self, key: &ObjectKey) -> Option<Value> {
        self.state.lock().unwrap().objects.get(key).cloned()
    }

    pub fn objects(&self) -> Vec<Value> {
        self.state.lock().unwrap().objects.values().cloned().collect()
    }

    pub fn keys(&self) -> Vec<String> {
        self.state.lock().unwrap().objects.keys().map(ToString::to_string).collect()
    }

    /// The next call starting with `prefix` fails with `error` (and is still logged).
    pub fn fail_next(&self, prefix: &str, error: client::Error) {
        self.state.lock().unwrap().failures.push((prefix.to_string(), error));
    }

    /// The calls made since the last `take_calls`.
    pub fn take_calls(&self) -> Vec<String> {
        std::mem::take(&mut self.state.lock().unwrap().calls)
    }
}

impl MirrorApi for Cluster {
    async fn get(&self, _: &ApiResource, ns: &str, name: &str) -> client::Result<Value> {
        let mut st = self.state.lock().unwrap();
        let key = ObjectKey::new(ns, name);
        st.call(format!("GET {key}"))?;
        st.objects.get(&key).cloned().ok_or_else(|| State::not_found(&key))
    }

    async fn create(&self, _: &ApiResource, ns: &str, obj: &Value) -> WriteResult<Value> {
        let mut st = self.state.lock().unwrap();
        let key = key_of(obj, ns);
        st.call(format!("POST {key}"))?;
        if st.objects.contains_key(&key) {
            return Err(api_error(409, Reason::AlreadyExists, &format!("\"{}\" already exists", key.name)).into());
        }
        let mut obj = obj.clone();
        let rv = st.bump();
        obj["metadata"]["resourceVersion"] = json!(rv);
        obj["metadata"]["uid"] = json!(format!("uid-{rv}"));
        st.objects.insert(key, obj.clone());
        Ok(obj)
    }

    async fn update(&self, _: &ApiResource, ns: &str, name: &str, obj: &Value) -> WriteResult<Value> {
        let mut st = self.state.lock().unwrap();
        let key = ObjectKey::new(ns, name);
        st.call(format!("PUT {key} rv={}", rv_of(obj)))?;
        let Some(live) = st.objects.get(&key) else { return Err(State::not_found(&key).into()) };
        if rv_of(live) != rv_of(obj) {
            return Err(api_error(409, Reason::Conflict, "the object has been modified").into());
        }
        if live.get("immutable") == Some(&json!(true)) && live.get("data") != obj.get("data") {
            return Err(
                api_error(422, Reason::Invalid, "data: Forbidden: field is immutable when `immutable` is set").into()
            );
        }
        let mut obj = obj.clone();
        obj["metadata"]["uid"] = live["metadata"]["uid"].clone();
        obj["metadata"]["resourceVersion"] = json!(st.bump());
        st.objects.insert(key, obj.clone());
        Ok(obj)
    }

    async fn merge_patch(&self, _: &ApiResource, ns: &str, name: &str, patch: Value) -> WriteResult<Value> {
        let mut st = self.state.lock().unwrap();
        let key = ObjectKey::new(ns, name);
        st.call(format!("PATCH {key} {patch}"))?;
        let Some(live) = st.objects.get(&key) else { return Err(State::not_found(&key).into()) };
        let precondition = patch.pointer("/metadata/resourceVersion").and_then(Value::as_str);
        if precondition.is_some_and(|rv| rv != rv_of(live)) {
            return Err(api_error(409, Reason::Conflict, "the object has been modified").into());
        }
        let mut obj = live.clone();
        merge(&mut obj, &patch);
        obj["metadata"]["resourceVersion"] = json!(st.bump());
        st.objects.insert(key.clone(), obj.clone());
        st.settle(&key);
        Ok(obj)
    }

    async fn delete(&self, _: &ApiResource, ns: &str, name: &str, uid: &str) -> WriteResult<()> {
        let mut st = self.state.lock().unwrap();
        let key = ObjectKey::new(ns, name);
        st.call(format!("DELETE {key} uid={uid}"))?;
        match st.objects.get(&key) {
            None => Err(State::not_found(&key).into()),
            Some(o) if o.pointer("/metadata/uid") != Some(&json!(uid)) => {
                Err(api_error(409, Reason::Conflict, "Precondition failed: UID in precondition").into())
            }
            Some(_) => {
                st.objects.remove(&key);
                Ok(())
            }
        }
    }

    async fn event(&self, _: &InvolvedObject, ty: EventType, reason: &str, message: &str) -> WriteResult<()> {
        // Recording failures never reach the pass; only fencing would.
        let _ = self.state.lock().unwrap().call(describe_event(ty, reason, message));
        Ok(())
    }
}
