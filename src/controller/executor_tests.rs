//! The real executor against scripted API calls: given a source and what the caches hold, the
//! planner's plan must be carried out with exactly these calls, in this order (kube-rs
//! controller-rs fixture style). Every call not in the script, or left out, fails the test.

use std::sync::Mutex;

use serde_json::json;

use crate::cache::{SharedInterner, Store};
use crate::client::{ApiResource, Reason};
use crate::controller::executor::{Executor, Report, Settings};
use crate::controller::fakes::{Answer, Script, api_error};
use crate::controller::state::StatusMemo;
use crate::controller::writer::WriteError;
use crate::mirror::build::{self, BuildConfig, NoTransform};
use crate::mirror::drift::Ledger;
use crate::mirror::plan::{self, Outcome, Plan, SourceState};
use crate::mirror::targets::TargetConfig;
use crate::mirror::testutil::{mirror_of, now, source, source_with, written};
use crate::model::{MirrorRecord, NamespaceRecord, ObjectKey, SourceObject};

const STATUS: &str = "kubemirror.raczylo.com/sync-status";

fn settings() -> Settings {
    Settings {
        targets: TargetConfig::default(),
        build: BuildConfig::default(),
        verify_unknown: true,
        verify_source_freshness: false,
        transform: Default::default(),
    }
}

fn namespaces() -> Vec<NamespaceRecord> {
    ["default", "app1", "app2", "app3"]
        .iter()
        .map(|n| NamespaceRecord::from_object(&json!({"metadata": {"name": n}})).unwrap())
        .collect()
}

/// The server's answer to a write: an object with this resourceVersion.
fn stored(rv: &str) -> Answer {
    Answer::Object(json!({"metadata": {"resourceVersion": rv, "uid": format!("uid-{rv}")}}))
}

fn status_patch(text: &str) -> String {
    format!("PATCH default/db {}", json!({"metadata": {"annotations": {STATUS: text}}}))
}

struct Run {
    plan: Plan,
    result: Result<Report, WriteError>,
    ledger: Ledger,
}

/// Plans for `src` over `mirrors` and executes the plan against `script`; the script must be used up.
async fn execute(script: &Script, src: &SourceObject, mirrors: &[MirrorRecord], ledger: Ledger) -> Run {
    execute_with_store(script, src, mirrors, ledger, None).await
}

/// [`execute`], the executor also seeing the type's mirror store (the watch's later view).
async fn execute_with_store(
    script: &Script,
    src: &SourceObject,
    mirrors: &[MirrorRecord],
    ledger: Ledger,
    store: Option<&Store<MirrorRecord>>,
) -> Run {
    let settings = settings();
    let plan = plan::plan(&settings.context(), SourceState::Seen(src), &namespaces(), mirrors, &ledger);
    let (ledger, statuses) = (Mutex::new(ledger), StatusMemo::default());
    let exec = Executor {
        api: script,
        resource: &ApiResource::secrets(),
        settings: &settings,
        ledger: &ledger,
        mirrors: store,
        statuses: &statuses,
    };
    let result = exec.execute(&plan, Some(src)).await;
    script.finish();
    Run { plan, result, ledger: ledger.into_inner().unwrap() }
}

#[tokio::test]
async fn finalizer_first_then_one_create_per_target_then_the_status() {
    let src = source_with(Some("app1,app2"), |o| o["metadata"]["finalizers"] = json!(null));
    let script = Script::new(vec![
        (
            r#"PATCH default/db {"metadata":{"finalizers":["kubemirror.raczylo.com/finalizer"],"resourceVersion":"100"}}"#,
            stored("101"),
        ),
        ("POST app1/db", stored("7")),
        ("POST app2/db", stored("8")),
        (&status_patch("synced:2,failed:0,conflicts:0,skipped:0"), stored("102")),
    ]);
    let run = execute(&script, &src, &[], Ledger::default()).await;
    let report = run.result.unwrap();
    assert_eq!((report.writes, report.needs_retry()), (4, false));
    assert_eq!(run.ledger.last_write(&ObjectKey::new("app1", "db")).map(|w| &*w.resource_version), Some("7"));
}

#[tokio::test]
async fn a_write_whose_echo_came_before_its_response_is_settled_at_once() {
    let (before, after) =
        (source("app1,app2"), source_with(Some("app1,app2"), |o| o["data"]["password"] = json!("bmV3")));
    let store = Store::new(SharedInterner::default());
    // The watch delivered app1's new version before the PUT's response; app2's is still to come.
    store.apply(mirror_of(&after, "app1", "7"));
    store.apply(mirror_of(&before, "app2", "6"));
    let script = Script::new(vec![
        ("PUT app1/db rv=5", stored("7")),
        ("PUT app2/db rv=6", stored("8")),
        (&status_patch("synced:2,failed:0,conflicts:0,skipped:0"), stored("101")),
    ]);
    let mirrors = [mirror_of(&before, "app1", "5"), mirror_of(&before, "app2", "6")];
    let run = execute_with_store(&script, &after, &mirrors, Ledger::default(), Some(&store)).await;
    assert_eq!(run.result.unwrap().writes, 3);
    assert!(run.ledger.last_write(&ObjectKey::new("app1", "db")).is_none(), "settled: the record says it");
    assert!(store.get(&ObjectKey::new("app1", "db")).unwrap().confirmed.get());
    assert_eq!(run.ledger.last_write(&ObjectKey::new("app2", "db")).map(|w| &*w.resource_version), Some("8"));
    assert!(!store.get(&ObjectKey::new("app2", "db")).unwrap().confirmed.get());
}

#[tokio::test]
async fn a_refused_finalizer_stops_the_pass_before_any_mirror() {
    let src = source_with(Some("app1,app2"), |o| o["metadata"]["finalizers"] = json!(null));
    let script = Script::new(vec![(
        r#"PATCH default/db {"metadata":{"finalizers":["kubemirror.raczylo.com/finalizer"],"resourceVersion":"100"}}"#,
        Answer::Error(api_error(409, Reason::Conflict, "the object has been modified")),
    )]);
    let report = execute(&script, &src, &[], Ledger::default()).await.result.unwrap();
    assert_eq!(report.finalizer_error.as_deref(), Some("Conflict (HTTP 409)"));
    assert!(report.needs_retry() && report.outcomes.is_empty());
}

#[tokio::test]
async fn a_failing_target_never_blocks_the_others() {
    let src = source("app1,app2,app3");
    let denied =
        r#"secrets is forbidden: User "ctl" cannot create resource "secrets" in API group "" in the namespace "app2""#;
    let script = Script::new(vec![
        ("POST app1/db", stored("7")),
        ("POST app2/db", Answer::Error(api_error(403, Reason::Forbidden, denied))),
        ("POST app3/db", stored("8")),
        (
            &status_patch(&format!("synced:2,failed:1,conflicts:0,skipped:0; last-error: app2: Forbidden: {denied}")),
            stored("101"),
        ),
        (&format!("EVENT Warning MirrorFailed: mirror in app2: Forbidden: {denied}"), Answer::Ok),
    ]);
    let run = execute(&script, &src, &[], Ledger::default()).await;
    let report = run.result.unwrap();
    assert_eq!(report.outcomes.len(), 3);
    assert!(matches!(report.outcomes[1], Outcome::Failed(_)) && report.outcomes[2] == Outcome::Done);
    assert!(report.needs_retry(), "the failed target is retried through the queue");
    assert_eq!(report.error_reasons, ["Forbidden"]);
}

#[tokio::test]
async fn a_create_that_meets_a_foreign_object_blocks_that_target_and_reports_it() {
    let src = source("app1");
    let foreign = json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "db", "namespace": "app1", "uid": "theirs", "resourceVersion": "3"}, "data": {"x": "eQ=="}});
    let conflict = "app1: an object of the same name exists and is not managed by kubemirror";
    let script = Script::new(vec![
        ("POST app1/db", Answer::Error(api_error(409, Reason::AlreadyExists, "secrets \"db\" already exists"))),
        ("GET app1/db", Answer::Object(foreign)),
        (&status_patch(&format!("synced:0,failed:0,conflicts:1,skipped:0; last-error: {conflict}")), stored("101")),
        (&format!("EVENT Warning MirrorConflict: {conflict}"), Answer::Ok),
    ]);
    let run = execute(&script, &src, &[], Ledger::default()).await;
    let report = run.result.unwrap();
    assert_eq!(report.blocked, [ObjectKey::new("app1", "db")]);
    assert!(run.ledger.is_blocked(&ObjectKey::new("app1", "db")));
    assert!(!report.needs_retry(), "a blocked target waits for its own backoff, not the queue's");
}

#[tokio::test]
async fn a_create_that_meets_our_own_mirror_adopts_it_without_writing() {
    let src = source("app1");
    let mut ours = build::build_mirror(&src, "app1", &BuildConfig::default(), &NoTransform, now()).unwrap().object;
    ours["metadata"]["uid"] = json!("m1");
    ours["metadata"]["resourceVersion"] = json!("9");
    let script = Script::new(vec![
        ("POST app1/db", Answer::Error(api_error(409, Reason::AlreadyExists, "already exists"))),
        ("GET app1/db", Answer::Object(ours)),
        (&status_patch("synced:1,failed:0,conflicts:0,skipped:0"), stored("101")),
    ]);
    let run = execute(&script, &src, &[], Ledger::default()).await;
    assert_eq!(run.result.unwrap().outcomes, [Outcome::Done]);
    assert_eq!(run.ledger.last_write(&ObjectKey::new("app1", "db")).map(|w| &*w.resource_version), Some("9"));
}

#[tokio::test]
async fn an_update_refused_as_immutable_replaces_the_mirror() {
    let old = source_with(Some("app1"), |o| o["immutable"] = json!(true));
    let new = source_with(Some("app1"), |o| {
        o["immutable"] = json!(true);
        o["data"]["password"] = json!("bmV3");
        o["metadata"]["annotations"][STATUS] = json!("synced:1,failed:0,conflicts:0,skipped:0");
    });
    let mut live = build::build_mirror(&old, "app1", &BuildConfig::default(), &NoTransform, now()).unwrap().object;
    live["metadata"]["uid"] = json!("m-app1");
    live["metadata"]["resourceVersion"] = json!("5");
    // The ledger does not know the mirror is immutable (a restart), so the plan is a plain update.
    let script = Script::new(vec![
        ("PUT app1/db rv=5", Answer::Error(api_error(422, Reason::Invalid, "data: Forbidden: field is immutable"))),
        ("GET app1/db", Answer::Object(live)),
        ("DELETE app1/db uid=m-app1", Answer::Ok),
        ("POST app1/db", stored("12")),
    ]);
    let run = execute(&script, &new, &[mirror_of(&old, "app1", "5")], Ledger::default()).await;
    assert_eq!(run.result.unwrap().outcomes, [Outcome::Done]);
}

#[tokio::test]
async fn a_drifted_mirror_is_read_once_and_put_back() {
    let src = source_with(Some("app1"), |o| {
        o["metadata"]["annotations"][STATUS] = json!("synced:1,failed:0,conflicts:0,skipped:0");
    });
    let mut live = build::build_mirror(&src, "app1", &BuildConfig::default(), &NoTransform, now()).unwrap().object;
    live["metadata"]["uid"] = json!("m-app1");
    live["metadata"]["resourceVersion"] = json!("6");
    live["data"]["password"] = json!("aGFja2Vk");
    let script = Script::new(vec![("GET app1/db", Answer::Object(live)), ("PUT app1/db rv=6", stored("7"))]);
    // Known hash, unknown resourceVersion (someone else wrote it): verify.
    let mut ledger = Ledger::default();
    ledger.record(ObjectKey::new("app1", "db"), written(&src, "app1", "5", None));
    let run = execute(&script, &src, &[mirror_of(&src, "app1", "6")], ledger).await;
    assert_eq!(run.result.unwrap().writes, 1);
}

#[tokio::test]
async fn lost_leadership_stops_the_pass_at_the_next_write() {
    let src = source("app1,app2,app3");
    let script = Script::new(vec![("POST app1/db", stored("7")), ("POST app2/db", Answer::NotLeader)]);
    let run = execute(&script, &src, &[], Ledger::default()).await;
    assert!(matches!(run.result, Err(WriteError::NotLeader)), "no further write, status or Event");
    assert_eq!(run.plan.ops.len(), 3);
}

#[tokio::test]
async fn deletions_release_the_finalizer_only_once_every_mirror_is_gone() {
    let src = source_with(Some("app1,app2"), |o| o["metadata"]["deletionTimestamp"] = json!("2025-01-01T00:00:00Z"));
    let mirrors = [mirror_of(&src, "app1", "5"), mirror_of(&src, "app2", "6")];
    // One delete fails: the finalizer stays, so the source cannot vanish with a mirror left behind.
    let script = Script::new(vec![
        ("DELETE app1/db uid=m-app1", Answer::Ok),
        ("DELETE app2/db uid=m-app2", Answer::Error(api_error(503, Reason::ServiceUnavailable, "try later"))),
    ]);
    let report = execute(&script, &src, &mirrors, Ledger::default()).await.result.unwrap();
    assert!(report.needs_retry() && report.finalizer_error.is_none());
    // Next time (app2 only left; a 404 counts as gone): released.
    let script = Script::new(vec![
        ("DELETE app2/db uid=m-app2", Answer::Error(api_error(404, Reason::NotFound, "not found"))),
        (r#"PATCH default/db {"metadata":{"finalizers":null,"resourceVersion":"100"}}"#, stored("101")),
    ]);
    let report = execute(&script, &src, &mirrors[1..], Ledger::default()).await.result.unwrap();
    assert!(!report.needs_retry());
}
