//! The in-memory API server on the wire: every behaviour a client relies on, via raw HTTPS.
#![cfg(feature = "testkit")]

mod common;

use std::time::{Duration, Instant};

use common::*;
use hyper::Method;
use kubemirror::testkit::{Matcher, Rule, ServerOptions, User};
use serde_json::{Value, json};

const CMS: &str = "/api/v1/namespaces/default/configmaps";

fn cm(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": "v"}})
}

fn labelled(name: &str, labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": labels}})
}

fn crd(group: &str, plural: &str, kind: &str, scope: &str) -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{plural}.{group}")},
        "spec": {"group": group, "scope": scope,
            "names": {"plural": plural, "singular": kind.to_lowercase(), "kind": kind, "shortNames": ["w"]},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}
    })
}

#[tokio::test]
async fn unauthenticated_and_forbidden_bodies() {
    let s = server_with(ServerOptions {
        users: vec![
            User::admin(),
            User {
                name: "bob".into(),
                token: "bob-token".into(),
                rules: vec![
                    Rule::new(&["get", "list"], &[""], &["configmaps"]).in_namespaces(&["default"]),
                    Rule::new(&["create"], &["authorization.k8s.io"], &["selfsubjectaccessreviews"]),
                ],
            },
        ],
        ..Default::default()
    })
    .await;
    let r = Api::anonymous(&s).get("/api/v1/namespaces/default/configmaps").await;
    assert_eq!(r.status, 401);
    assert_eq!(
        r.json(),
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": "Unauthorized", "reason": "Unauthorized", "code": 401})
    );
    let bob = Api::new(&s, "bob");
    assert_eq!(bob.get(CMS).await.status, 200);
    let r = bob.get("/api/v1/namespaces/kube-system/secrets").await;
    assert_eq!(r.status, 403);
    assert_eq!(
        r.json(),
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "secrets is forbidden: User \"bob\" cannot list resource \"secrets\" in API group \"\" in the namespace \"kube-system\"",
            "reason": "Forbidden", "details": {"kind": "secrets"}, "code": 403})
    );
    let r = bob.get("/apis/apps/v1/deployments").await;
    assert_eq!(
        r.json()["message"],
        "deployments.apps is forbidden: User \"bob\" cannot list resource \"deployments\" in API group \"apps\" at the cluster scope"
    );
    let r = bob.delete(&format!("{CMS}/x")).await;
    assert_eq!(r.json()["details"], json!({"name": "x", "kind": "configmaps"}));
    // Client certificates authenticate too (CommonName = user); RBAC applies the same way.
    let by_cert = Api::with_client_cert(&s, "bob");
    assert_eq!(by_cert.get(CMS).await.status, 200);
    assert_eq!(
        by_cert.get("/api/v1/namespaces/kube-system/secrets").await.json()["message"],
        "secrets is forbidden: User \"bob\" cannot list resource \"secrets\" in API group \"\" in the namespace \"kube-system\""
    );
    assert_eq!(Api::with_client_cert(&s, "admin").get("/api/v1/namespaces/kube-system/secrets").await.status, 200);
    let kc = std::fs::read_to_string(s.kubeconfig_cert_path("bob")).unwrap();
    assert!(kc.contains("client-certificate-data:") && kc.contains("client-key-data:") && !kc.contains("token:"));
    // Access reviews answer from the same allow-lists.
    let review = |verb: &str, ns: &str| {
        json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": {"verb": verb, "resource": "configmaps", "namespace": ns}}})
    };
    let ssar = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews";
    assert_eq!(bob.post(ssar, &review("list", "default")).await.json()["status"]["allowed"], true);
    assert_eq!(bob.post(ssar, &review("delete", "default")).await.json()["status"]["allowed"], false);
    let sar = json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
        "spec": {"user": "bob", "resourceAttributes": {"verb": "get", "resource": "configmaps", "namespace": "other"}}});
    let r = Api::admin(&s).post("/apis/authorization.k8s.io/v1/subjectaccessreviews", &sar).await;
    assert_eq!(r.status, 201);
    assert_eq!(r.json()["status"]["allowed"], false);
    // Token rotation: the old token stops working at once.
    let before = Api::new(&s, "bob");
    s.set_token("bob", "bob-token-2").unwrap();
    assert_eq!(before.get(CMS).await.status, 401);
    assert_eq!(Api::new(&s, "bob").get(CMS).await.status, 200);
    assert_eq!(std::fs::read_to_string(s.token_path("bob")).unwrap(), "bob-token-2");
    // A kubeconfig is written for each user.
    let kc = std::fs::read_to_string(s.kubeconfig_path("bob")).unwrap();
    assert!(kc.contains("token: bob-token") && kc.contains(&s.url()) && kc.contains("certificate-authority-data:"));
}

#[tokio::test]
async fn discovery_documents() {
    let s = server().await;
    let api = Api::admin(&s);
    assert_eq!(api.get("/version").await.json()["gitVersion"], "v1.31.0");
    let core = api.get("/api").await.json();
    assert_eq!(core["versions"], json!(["v1"]));
    assert_eq!(core["serverAddressByClientCIDRs"][0]["serverAddress"], s.addr().to_string());
    let v1 = api.get("/api/v1").await.json();
    assert!(v1["resources"].as_array().unwrap().iter().any(|r| r["name"] == "secrets"));
    // Aggregated discovery is not served: the plain APIGroupList comes back as application/json.
    let r = api
        .get_as("/apis", "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json")
        .await;
    assert_eq!(r.header("content-type").as_deref(), Some("application/json"));
    let groups = r.json();
    assert_eq!(groups["kind"], "APIGroupList");
    let names: Vec<&str> = groups["groups"].as_array().unwrap().iter().map(|g| g["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"apps") && names.contains(&"coordination.k8s.io"));
    assert!(!names.contains(&"resource.k8s.io"), "only served groups are listed: {names:?}");
    assert_eq!(api.get("/apis/apps").await.json()["preferredVersion"]["groupVersion"], "apps/v1");
    let apps = api.get("/apis/apps/v1").await.json();
    assert!(apps["resources"].as_array().unwrap().iter().any(|r| r["name"] == "deployments"));
    let r = api.get("/apis/nope.example.com/v1").await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["message"], "the server could not find the requested resource");
    assert_eq!(api.get("/api/v1/nothings").await.status, 404);
}

#[tokio::test]
async fn crds_appear_in_discovery_and_become_servable() {
    let s = server().await;
    let api = Api::admin(&s);
    let r = api
        .post(
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
            &crd("example.com", "widgets", "Widget", "Namespaced"),
        )
        .await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["status"]["conditions"][1]["type"], "Established");
    let r = api
        .post(
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
            &crd("example.com", "gadgets", "Gadget", "Cluster"),
        )
        .await;
    assert_eq!(r.status, 201);
    let groups = api.get("/apis").await.json();
    assert!(groups["groups"].as_array().unwrap().iter().any(|g| g["name"] == "example.com"));
    let rl = api.get("/apis/example.com/v1").await.json();
    let names: Vec<&str> = rl["resources"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names.len(), 4, "{names:?}");
    assert!(names.contains(&"widgets/status"));
    let w = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w1"}, "spec": {"size": 1}, "status": {"ok": true}});
    let r = api.post("/apis/example.com/v1/namespaces/default/widgets", &w).await;
    assert_eq!(r.status, 201);
    let created = r.json();
    assert_eq!(created["metadata"]["generation"], 1);
    assert!(created.get("status").is_none(), "status is dropped on create with a status subresource");
    let g = json!({"apiVersion": "example.com/v1", "kind": "Gadget", "metadata": {"name": "g1"}});
    assert_eq!(api.post("/apis/example.com/v1/gadgets", &g).await.status, 201);
    assert_eq!(api.post("/apis/example.com/v1/namespaces/default/gadgets", &g).await.status, 404);
    // Update without resourceVersion is refused for custom resources.
    let r = api.put("/apis/example.com/v1/namespaces/default/widgets/w1", &w).await;
    assert_eq!(r.status, 422);
    // Spec change bumps generation; status goes through /status only.
    let mut upd = created.clone();
    upd["spec"]["size"] = json!(2);
    let r = api.put("/apis/example.com/v1/namespaces/default/widgets/w1", &upd).await.json();
    assert_eq!(r["metadata"]["generation"], 2);
    let mut st = r.clone();
    st["status"] = json!({"ready": 1});
    let r2 = api.put("/apis/example.com/v1/namespaces/default/widgets/w1/status", &st).await.json();
    assert_eq!(r2["status"]["ready"], 1);
    assert_eq!(r2["metadata"]["generation"], 2);
    let st_apply = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w1"}, "status": {"phase": "Ready"}});
    let r3 = api
        .patch("/apis/example.com/v1/namespaces/default/widgets/w1/status?fieldManager=st", APPLY, &st_apply)
        .await
        .json();
    assert_eq!(r3["status"]["phase"], "Ready");
    assert_eq!(r3["spec"]["size"], 2);
    let r = api
        .patch("/apis/example.com/v1/namespaces/default/widgets/none/status?fieldManager=st", APPLY, &st_apply)
        .await;
    assert_eq!(r.status, 404);
    // Strategic merge patch is not for custom resources.
    let r = api.patch("/apis/example.com/v1/namespaces/default/widgets/w1", STRATEGIC, &json!({})).await;
    assert_eq!(r.status, 415);
    assert_eq!(
        r.json()["message"],
        "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
    );
    let r = api.delete("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.com").await;
    assert_eq!(r.status, 200);
    let rl = api.get("/apis/example.com/v1").await.json();
    let left: Vec<&str> = rl["resources"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(left, ["gadgets", "gadgets/status"]);
    assert_eq!(api.get("/apis/example.com/v1/namespaces/default/widgets").await.status, 404);
    api.delete("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/gadgets.example.com").await;
    assert_eq!(api.get("/apis/example.com").await.status, 404);
    // Recreated: empty again (instances went with the CRD).
    api.post(
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
        &crd("example.com", "widgets", "Widget", "Namespaced"),
    )
    .await;
    let l = api.get("/apis/example.com/v1/widgets").await.json();
    assert_eq!(l["items"], json!([]));
    assert_eq!(l["kind"], "WidgetList");
}

#[tokio::test]
async fn create_update_conflicts_and_status_shapes() {
    let s = server().await;
    let api = Api::admin(&s);
    let r = api.post(CMS, &cm("a")).await;
    assert_eq!(r.status, 201);
    let a = r.json();
    assert!(a["metadata"]["uid"].as_str().unwrap().len() == 36);
    assert!(a["metadata"]["creationTimestamp"].as_str().unwrap().ends_with('Z'));
    let r = api.post(CMS, &cm("a")).await;
    assert_eq!(r.status, 409);
    assert_eq!(
        r.json(),
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "configmaps \"a\" already exists", "reason": "AlreadyExists",
            "details": {"name": "a", "kind": "configmaps"}, "code": 409})
    );
    let r = api.get(&format!("{CMS}/zz")).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["details"], json!({"name": "zz", "kind": "configmaps"}));
    assert_eq!(r.json()["reason"], "NotFound");

    // Optimistic concurrency.
    let mut u1 = a.clone();
    u1["data"]["k"] = json!("v2");
    let b = api.put(&format!("{CMS}/a"), &u1).await.json();
    assert!(rv_of(&b) > rv_of(&a));
    let r = api.put(&format!("{CMS}/a"), &u1).await;
    assert_eq!(r.status, 409);
    assert_eq!(
        r.json()["message"],
        "Operation cannot be fulfilled on configmaps \"a\": the object has been modified; please apply your changes to the latest version and try again"
    );
    assert_eq!(r.json()["reason"], "Conflict");
    // A uid that is not the stored object's is a failed precondition.
    let mut other = b.clone();
    other["metadata"]["uid"] = json!("00000000-0000-4000-a000-000000000000");
    let r = api.put(&format!("{CMS}/a"), &other).await;
    assert_eq!(r.status, 409);
    // As kube-apiserver 1.37 words it: the storage layer's error, etcd key included.
    assert_eq!(
        r.json()["message"],
        format!(
            "Operation cannot be fulfilled on configmaps \"a\": StorageError: invalid object, Code: 4, Key: \
             /registry/configmaps/default/a, ResourceVersion: 0, AdditionalErrorMsg: Precondition failed: UID in \
             precondition: 00000000-0000-4000-a000-000000000000, UID in object meta: {}",
            b["metadata"]["uid"].as_str().unwrap()
        )
    );
    // Creating with a resourceVersion is refused by storage (a 500, as kubectl users know it).
    let mut copy = cm("copy");
    copy["metadata"]["resourceVersion"] = json!("12");
    let r = api.post(CMS, &copy).await;
    assert_eq!(r.status, 500);
    assert_eq!(r.json()["message"], "resourceVersion should not be set on objects to be created");
    // A no-op update stores nothing and keeps the resourceVersion.
    let same = api.put(&format!("{CMS}/a"), &b).await.json();
    assert_eq!(rv_of(&same), rv_of(&b));
    // Resource versions only grow, across resources.
    let mut last = rv_of(&b);
    for i in 0..5 {
        let o = api
            .post("/api/v1/namespaces/default/secrets", &json!({"metadata": {"name": format!("s{i}")}}))
            .await
            .json();
        assert!(rv_of(&o) > last);
        last = rv_of(&o);
    }
    // 422: invalid name, oversized annotations.
    let r = api.post(CMS, &cm("Bad_Name")).await;
    assert_eq!(r.status, 422);
    let body = r.json();
    assert_eq!(body["reason"], "Invalid");
    assert!(body["message"].as_str().unwrap().starts_with(
        "ConfigMap \"Bad_Name\" is invalid: metadata.name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain"
    ));
    assert_eq!(body["details"]["causes"][0]["field"], "metadata.name");
    assert_eq!(body["details"]["kind"], "ConfigMap");
    let mut big = cm("big");
    big["metadata"]["annotations"] = json!({"a": "x".repeat(256 * 1024)});
    let r = api.post(CMS, &big).await;
    assert_eq!(r.status, 422);
    assert_eq!(
        r.json()["message"],
        "ConfigMap \"big\" is invalid: metadata.annotations: Too long: must have at most 262144 bytes"
    );
    let r = api.raw(Method::POST, CMS, Some("text/plain"), None, b"x".to_vec()).await;
    assert_eq!(r.status, 415);
    assert_eq!(r.json()["reason"], "UnsupportedMediaType");
    let r = api.post(&format!("{CMS}/a"), &cm("a")).await;
    assert_eq!(r.status, 405);
    assert_eq!(r.json()["message"], "the server does not allow this method on the requested resource");
    // YAML bodies are accepted.
    let r =
        api.raw(Method::POST, CMS, Some("application/yaml"), None, b"metadata:\n  name: from-yaml\n".to_vec()).await;
    assert_eq!(r.status, 201);
    // generateName.
    let r = api.post(CMS, &json!({"metadata": {"generateName": "gen-"}})).await.json();
    let n = r["metadata"]["name"].as_str().unwrap();
    assert!(n.starts_with("gen-") && n.len() == 9, "{n}");
}

#[tokio::test]
async fn generation_follows_the_kind() {
    let s = server().await;
    let api = Api::admin(&s);
    let c = api.post(CMS, &cm("c")).await.json();
    assert!(c["metadata"].get("generation").is_none());
    let dep =
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}, "spec": {"replicas": 1}});
    let d = api.post("/apis/apps/v1/namespaces/default/deployments", &dep).await.json();
    assert_eq!(d["metadata"]["generation"], 1);
    let d = api
        .patch("/apis/apps/v1/namespaces/default/deployments/d", MERGE, &json!({"metadata": {"labels": {"a": "b"}}}))
        .await
        .json();
    assert_eq!(d["metadata"]["generation"], 1);
    let d = api
        .patch("/apis/apps/v1/namespaces/default/deployments/d", MERGE, &json!({"spec": {"replicas": 3}}))
        .await
        .json();
    assert_eq!(d["metadata"]["generation"], 2);
}

#[tokio::test]
async fn secrets_merge_string_data() {
    let s = server().await;
    let api = Api::admin(&s);
    let r = api
        .post("/api/v1/namespaces/default/secrets", &json!({"metadata": {"name": "s"}, "stringData": {"u": "admin"}}))
        .await
        .json();
    assert_eq!(r["data"]["u"], "YWRtaW4=");
    assert_eq!(r["type"], "Opaque");
    assert!(r.get("stringData").is_none());
    // data is []byte on the wire: not base64 is a decode error.
    let bad = api
        .post("/api/v1/namespaces/default/secrets", &json!({"metadata": {"name": "raw"}, "data": {"k": "not base64!"}}))
        .await;
    assert_eq!(bad.status, 400);
    assert_eq!(
        bad.json()["message"],
        "Secret in version \"v1\" cannot be handled as a Secret: illegal base64 data at input byte 3"
    );
    // Through a patch it is the patch that is invalid (422 on the field `patch`), as kube-apiserver says.
    let p = api.patch("/api/v1/namespaces/default/secrets/s", MERGE, &json!({"data": {"k": "not base64!"}})).await;
    assert_eq!((p.status, p.json()["reason"].as_str()), (422, Some("Invalid")));
    let msg = p.json()["message"].as_str().unwrap().to_string();
    assert!(msg.starts_with(" \"\" is invalid: patch: Invalid value: \"{"), "{msg}");
    assert!(msg.ends_with("\": illegal base64 data at input byte 3"), "{msg}");
    // Type is immutable; immutable Secrets keep their data (what kubemirror's W-6 is about).
    let mut tls = r.clone();
    tls["type"] = json!("kubernetes.io/tls");
    let e = api.put("/api/v1/namespaces/default/secrets/s", &tls).await;
    assert_eq!(e.status, 422);
    // As kube-apiserver 1.37 answers (tests/real-apiserver): the update rules, then the new type's keys.
    assert_eq!(
        e.json()["message"],
        "Secret \"s\" is invalid: [type: Invalid value: \"kubernetes.io/tls\": field is immutable, \
         data[tls.crt]: Required value, data[tls.key]: Required value]"
    );
    let causes: Vec<Value> =
        e.json()["details"]["causes"].as_array().unwrap().iter().map(|c| c["field"].clone()).collect();
    assert_eq!(causes, [json!("type"), json!("data[tls.crt]"), json!("data[tls.key]")]);
    // A new Secret of a built-in type needs that type's keys.
    let no_key = json!({"metadata": {"name": "t"}, "type": "kubernetes.io/tls", "data": {"tls.crt": "eA=="}});
    let e = api.post("/api/v1/namespaces/default/secrets", &no_key).await;
    assert_eq!(
        (e.status, e.json()["message"].as_str()),
        (422, Some("Secret \"t\" is invalid: data[tls.key]: Required value"))
    );
    let frozen = api
        .post(
            "/api/v1/namespaces/default/secrets",
            &json!({"metadata": {"name": "f"}, "immutable": true, "data": {"a": "YQ=="}}),
        )
        .await
        .json();
    let r = api.patch("/api/v1/namespaces/default/secrets/f", MERGE, &json!({"data": {"a": "Yg=="}})).await;
    assert_eq!(r.status, 422);
    assert_eq!(
        r.json()["message"],
        "Secret \"f\" is invalid: data: Forbidden: field is immutable when `immutable` is set"
    );
    assert_eq!(
        api.patch("/api/v1/namespaces/default/secrets/f", MERGE, &json!({"metadata": {"labels": {"a": "b"}}}))
            .await
            .status,
        200
    );
    assert_eq!(api.delete("/api/v1/namespaces/default/secrets/f").await.status, 200);
    let _ = frozen;
    let big = json!({"metadata": {"name": "big"}, "stringData": {"k": "x".repeat(1024 * 1024)}});
    let r = api.post("/api/v1/namespaces/default/secrets", &big).await;
    assert_eq!(r.status, 422);
    assert_eq!(r.json()["message"], "Secret \"big\" is invalid: data: Too long: must have at most 1048576 bytes");
}

#[tokio::test]
async fn finalizers_and_delete_preconditions() {
    let s = server().await;
    let api = Api::admin(&s);
    let mut o = cm("f");
    o["metadata"]["finalizers"] = json!(["example.com/hold"]);
    let created = api.post(CMS, &o).await.json();
    let mut w = api.watch(&format!("{CMS}?watch=true&resourceVersion={}", rv_of(&created))).await;

    let r = api.delete_with(&format!("{CMS}/f"), &json!({"preconditions": {"uid": "nope"}})).await;
    assert_eq!(r.status, 409);
    // As kube-apiserver 1.37 answers (tests/real-apiserver): the Kind, not the resource, in the
    // message and the details.
    assert_eq!(
        r.json()["message"],
        format!(
            "Operation cannot be fulfilled on ConfigMap \"f\": the UID in the precondition (nope) does not match the \
             UID in record ({}). The object might have been deleted and then recreated",
            created["metadata"]["uid"].as_str().unwrap()
        )
    );
    assert_eq!(r.json()["details"], json!({"name": "f", "kind": "ConfigMap"}));
    let r = api.delete_with(&format!("{CMS}/f"), &json!({"preconditions": {"resourceVersion": "1"}})).await;
    assert_eq!(r.status, 409);
    assert!(
        r.json()["message"].as_str().unwrap().starts_with(
            "Operation cannot be fulfilled on ConfigMap \"f\": the ResourceVersion in the precondition (1) does not \
             match the ResourceVersion in record ("
        ),
        "{}",
        r.json()["message"]
    );

    let r = api.delete_with(&format!("{CMS}/f"), &json!({"propagationPolicy": "Foreground"})).await;
    assert_eq!(r.status, 200);
    let pending = r.json();
    assert_eq!(pending["kind"], "ConfigMap");
    assert!(pending["metadata"]["deletionTimestamp"].is_string());
    assert_eq!(w.next().await.unwrap()["type"], "MODIFIED");
    assert_eq!(api.get(&format!("{CMS}/f")).await.status, 200);
    // No new finalizers on an object being deleted.
    let r = api.patch(&format!("{CMS}/f"), STRATEGIC, &json!({"metadata": {"finalizers": ["example.com/late"]}})).await;
    assert_eq!(r.status, 422);
    assert_eq!(
        r.json()["message"],
        "ConfigMap \"f\" is invalid: metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{\"example.com/late\"}"
    );
    // Removing the last finalizer completes the deletion.
    let r = api.patch(&format!("{CMS}/f"), MERGE, &json!({"metadata": {"finalizers": null}})).await;
    assert_eq!(r.status, 200);
    let ev = w.next().await.unwrap();
    assert_eq!(ev["type"], "DELETED");
    assert_eq!(api.get(&format!("{CMS}/f")).await.status, 404);
    // Without finalizers: gone at once, answered with a Success Status.
    api.post(CMS, &cm("g")).await;
    let r = api.delete(&format!("{CMS}/g")).await.json();
    assert_eq!(r["status"], "Success");
    assert_eq!(r["details"]["name"], "g");
    assert_eq!(r["details"]["kind"], "configmaps");
    let r = api.delete_with(&format!("{CMS}/x"), &json!({"propagationPolicy": "Sideways"})).await;
    assert_eq!(r.status, 422);
}

#[tokio::test]
async fn dry_run_stores_nothing() {
    let s = server().await;
    let api = Api::admin(&s);
    let before = s.resource_version();
    let r = api.post(&format!("{CMS}?dryRun=All"), &cm("d")).await;
    assert_eq!(r.status, 201);
    assert_eq!(r.json()["metadata"]["name"], "d");
    // Never stored: no resourceVersion at all, as kube-apiserver 1.37 answers.
    assert!(r.json()["metadata"].get("resourceVersion").is_none(), "{}", r.json());
    assert_eq!(api.get(&format!("{CMS}/d")).await.status, 404);
    assert_eq!(s.resource_version(), before);
    let real = api.post(CMS, &cm("d")).await.json();
    let rv = s.resource_version();
    let r = api.patch(&format!("{CMS}/d?dryRun=All"), MERGE, &json!({"data": {"k": "changed"}})).await.json();
    assert_eq!(r["data"]["k"], "changed");
    let r = api.delete_with(&format!("{CMS}/d"), &json!({"dryRun": ["All"]})).await;
    assert_eq!(r.status, 200);
    assert_eq!(s.resource_version(), rv);
    assert_eq!(api.get(&format!("{CMS}/d")).await.json(), real);
}

#[tokio::test]
async fn label_and_field_selectors() {
    let s = server().await;
    let api = Api::admin(&s);
    api.post(CMS, &labelled("a", json!({"env": "prod", "tier": "web"}))).await;
    api.post(CMS, &labelled("b", json!({"env": "dev"}))).await;
    api.post(CMS, &labelled("c", json!({"tier": "db"}))).await;
    api.post("/api/v1/namespaces/kube-system/configmaps", &labelled("d", json!({"env": "prod"}))).await;
    let names = |v: Value| -> Vec<String> {
        v["items"].as_array().unwrap().iter().map(|i| i["metadata"]["name"].as_str().unwrap().to_string()).collect()
    };
    let q = |sel: &str| {
        format!("/api/v1/configmaps?labelSelector={}", sel.replace(' ', "+").replace('=', "%3D").replace(',', "%2C"))
    };
    assert_eq!(names(api.get(&q("env=prod")).await.json()), ["a", "d"]);
    assert_eq!(names(api.get(&q("env==prod")).await.json()), ["a", "d"]);
    assert_eq!(names(api.get(&q("env!=prod")).await.json()), ["b", "c"]);
    assert_eq!(names(api.get(&q("env in (dev,prod),tier")).await.json()), ["a"]);
    assert_eq!(names(api.get(&q("env notin (prod)")).await.json()), ["b", "c"]);
    assert_eq!(names(api.get(&q("tier")).await.json()), ["a", "c"]);
    assert_eq!(names(api.get(&q("!env")).await.json()), ["c"]);
    assert_eq!(names(api.get("/api/v1/configmaps?fieldSelector=metadata.name%3Dd").await.json()), ["d"]);
    let l = api.get("/api/v1/configmaps?fieldSelector=metadata.namespace%3Ddefault%2Cmetadata.name!%3Da").await.json();
    assert_eq!(names(l), ["b", "c"]);
    let r = api.get(&q("env in (")).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["reason"], "BadRequest");
}

#[tokio::test]
async fn pagination_and_expired_continue() {
    let s = server().await;
    let api = Api::admin(&s);
    for i in 0..7 {
        api.post(CMS, &cm(&format!("p{i}"))).await;
    }
    let first = api.get(&format!("{CMS}?limit=3")).await.json();
    assert_eq!(first["items"].as_array().unwrap().len(), 3);
    assert_eq!(first["metadata"]["remainingItemCount"], 4);
    let tok = first["metadata"]["continue"].as_str().unwrap().to_string();
    api.post(CMS, &cm("p99")).await;
    let mut seen: Vec<String> = Vec::new();
    let mut tok = Some(tok);
    while let Some(t) = tok {
        let page = api.get(&format!("{CMS}?limit=3&continue={t}")).await.json();
        assert_eq!(page["metadata"]["resourceVersion"], first["metadata"]["resourceVersion"], "pages share a snapshot");
        seen.extend(
            page["items"].as_array().unwrap().iter().map(|i| i["metadata"]["name"].as_str().unwrap().to_string()),
        );
        tok = page["metadata"]["continue"].as_str().map(String::from);
    }
    assert_eq!(seen, ["p3", "p4", "p5", "p6"]);
    // After a compaction the token cannot be honoured.
    let first = api.get(&format!("{CMS}?limit=2")).await.json();
    let t = first["metadata"]["continue"].as_str().unwrap().to_string();
    api.post(CMS, &cm("late")).await;
    s.compact();
    let r = api.get(&format!("{CMS}?limit=2&continue={t}")).await;
    assert_eq!(r.status, 410);
    let b = r.json();
    assert_eq!(b["reason"], "Expired");
    assert!(
        b["message"]
            .as_str()
            .unwrap()
            .starts_with("The provided continue parameter is too old to display a consistent list result.")
    );
    let r = api.get(&format!("{CMS}?continue=garbage!")).await;
    assert_eq!(r.status, 400);
    assert!(r.json()["message"].as_str().unwrap().starts_with("invalid continue token: continue key is not valid: "));
}

#[tokio::test]
async fn list_resource_version_semantics() {
    let s = server().await;
    let api = Api::admin(&s);
    let a = api.post(CMS, &cm("a")).await.json();
    let at = rv_of(&a);
    api.post(CMS, &cm("b")).await;
    let cur = api.get(CMS).await.json();
    assert_eq!(cur["metadata"]["resourceVersion"], s.resource_version().to_string());
    assert_eq!(cur["items"].as_array().unwrap().len(), 2);
    assert_eq!(api.get(&format!("{CMS}?resourceVersion=0")).await.json()["items"].as_array().unwrap().len(), 2);
    let nolder = api.get(&format!("{CMS}?resourceVersion={at}&resourceVersionMatch=NotOlderThan")).await.json();
    assert_eq!(nolder["items"].as_array().unwrap().len(), 2);
    let exact = api.get(&format!("{CMS}?resourceVersion={at}&resourceVersionMatch=Exact")).await.json();
    assert_eq!(exact["items"].as_array().unwrap().len(), 1);
    assert_eq!(exact["metadata"]["resourceVersion"], at.to_string());
    let r = api.get(&format!("{CMS}?resourceVersion=999999")).await;
    assert_eq!(r.status, 504);
    assert_eq!(r.json()["details"]["causes"][0]["reason"], "ResourceVersionTooLarge");
    // ListOptions validation.
    let r = api.get(&format!("{CMS}?resourceVersionMatch=NotOlderThan")).await;
    assert_eq!(r.status, 422);
    assert_eq!(
        r.json()["message"],
        "ListOptions.meta.k8s.io \"\" is invalid: resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided"
    );
    assert_eq!(api.get(&format!("{CMS}?resourceVersion=0&resourceVersionMatch=Exact")).await.status, 422);
    let page = api.get(&format!("{CMS}?limit=1")).await.json();
    let tok = page["metadata"]["continue"].as_str().unwrap().to_string();
    assert_eq!(api.get(&format!("{CMS}?limit=1&continue={tok}&resourceVersion={at}")).await.status, 400);
    s.compact();
    api.post(CMS, &cm("c")).await;
    let r = api.get(&format!("{CMS}?resourceVersion={at}&resourceVersionMatch=Exact")).await;
    assert_eq!(r.status, 410);
    assert_eq!(r.json()["message"], "The resourceVersion for the provided list is too old.");
}

#[tokio::test]
async fn watch_resumes_and_expires_like_the_watch_cache() {
    let s = server().await;
    let api = Api::admin(&s);
    let a = api.post(CMS, &cm("a")).await.json();
    api.post(CMS, &cm("b")).await;
    api.delete(&format!("{CMS}/a")).await;
    let mut w = api.watch(&format!("{CMS}?watch=true&resourceVersion={}", rv_of(&a))).await;
    let e1 = w.next().await.unwrap();
    assert_eq!((e1["type"].as_str(), e1["object"]["metadata"]["name"].as_str()), (Some("ADDED"), Some("b")));
    let e2 = w.next().await.unwrap();
    assert_eq!((e2["type"].as_str(), e2["object"]["metadata"]["name"].as_str()), (Some("DELETED"), Some("a")));
    assert!(rv_of(&e2["object"]) > rv_of(&e1["object"]));
    // Live events follow the replay.
    api.post(CMS, &cm("c")).await;
    assert_eq!(w.next().await.unwrap()["object"]["metadata"]["name"], "c");
    // Without a resourceVersion: the current state first.
    let mut w0 = api.watch(&format!("{CMS}?watch=1")).await;
    let first = w0.next().await.unwrap();
    assert_eq!((first["type"].as_str(), first["object"]["metadata"]["name"].as_str()), (Some("ADDED"), Some("b")));

    s.compact();
    let compacted = s.resource_version();
    let mut old = api.watch(&format!("{CMS}?watch=true&resourceVersion={}", rv_of(&a))).await;
    let err = old.next().await.unwrap();
    assert_eq!(
        err,
        json!({"type": "ERROR", "object": {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": format!("too old resource version: {} ({compacted})", rv_of(&a)), "reason": "Expired", "code": 410}})
    );
    assert!(old.ends_within(Duration::from_secs(5)).await);
}

#[tokio::test]
async fn watch_bookmarks_and_timeout() {
    let s = server_with(ServerOptions { bookmark_interval: Duration::from_millis(50), ..Default::default() }).await;
    let api = Api::admin(&s);
    let rv = s.resource_version();
    let mut w =
        api.watch(&format!("{CMS}?watch=true&allowWatchBookmarks=true&resourceVersion={rv}&timeoutSeconds=1")).await;
    let b = w.next().await.unwrap();
    assert_eq!(b["type"], "BOOKMARK");
    assert_eq!(b["object"]["kind"], "ConfigMap");
    assert_eq!(b["object"]["metadata"]["resourceVersion"], rv.to_string());
    api.post("/api/v1/namespaces/default/secrets", &json!({"metadata": {"name": "elsewhere"}})).await;
    // Bookmarks advance with the store even when this resource is quiet.
    let start_rv = rv.to_string();
    let advanced = loop {
        let e = w.next().await.unwrap();
        if e["type"] == "BOOKMARK" && e["object"]["metadata"]["resourceVersion"] != start_rv.as_str() {
            break e;
        }
    };
    assert_eq!(advanced["object"]["metadata"]["resourceVersion"], s.resource_version().to_string());
    let started = Instant::now();
    assert!(w.ends_within(Duration::from_secs(5)).await, "timeoutSeconds closes the stream");
    assert!(started.elapsed() < Duration::from_secs(10), "not the 30-minute default");
    // No bookmarks unless asked.
    let mut quiet = api.watch(&format!("{CMS}?watch=true&resourceVersion={rv}&timeoutSeconds=1")).await;
    assert!(quiet.next_within(Duration::from_secs(5)).await.is_none());
}

#[tokio::test]
async fn watch_list_sends_initial_events_then_the_end_bookmark() {
    let s = server_with(ServerOptions { minor_version: 34, ..Default::default() }).await;
    let api = Api::admin(&s);
    api.post(CMS, &cm("a")).await;
    api.post(CMS, &cm("b")).await;
    let rv = s.resource_version();
    let mut w = api
        .watch(&format!(
            "{CMS}?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true"
        ))
        .await;
    assert_eq!(w.next().await.unwrap()["object"]["metadata"]["name"], "a");
    assert_eq!(w.next().await.unwrap()["object"]["metadata"]["name"], "b");
    let end = w.next().await.unwrap();
    assert_eq!(end["type"], "BOOKMARK");
    assert_eq!(end["object"]["metadata"]["annotations"], json!({"k8s.io/initial-events-end": "true"}));
    assert_eq!(end["object"]["metadata"]["resourceVersion"], rv.to_string());
    api.post(CMS, &cm("c")).await;
    assert_eq!(w.next_event().await.unwrap()["object"]["metadata"]["name"], "c");
    let r = api.get(&format!("{CMS}?watch=true&sendInitialEvents=true")).await;
    assert_eq!(r.status, 422);
    assert_eq!(r.json()["details"]["causes"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn watch_list_is_refused_where_the_watch_list_gate_is_off() {
    // 1.31's default (and 1.33's), and what kube-apiserver 1.37 answers with --feature-gates=WatchList=false.
    let s = server().await;
    let api = Api::admin(&s);
    let r = api
        .get(&format!(
            "{CMS}?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true"
        ))
        .await;
    assert_eq!(r.status, 422);
    assert_eq!(
        r.json()["message"],
        "ListOptions.meta.k8s.io \"\" is invalid: sendInitialEvents: Forbidden: sendInitialEvents is forbidden for \
         watch unless the WatchList feature gate is enabled"
    );
    let r = api.get(&format!("{CMS}?watch=true&sendInitialEvents=false")).await;
    let fields: Vec<Value> =
        r.json()["details"]["causes"].as_array().unwrap().iter().map(|c| c["field"].clone()).collect();
    assert_eq!(fields, [json!("resourceVersionMatch"), json!("sendInitialEvents")]);
    let on = server_with(ServerOptions { watch_list: Some(true), ..Default::default() }).await;
    let r = Api::admin(&on)
        .raw(
            hyper::Method::GET,
            &format!("{CMS}?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&timeoutSeconds=1"),
            None,
            None,
            vec![],
        )
        .await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn watch_selectors_turn_transitions_into_added_and_deleted() {
    let s = server().await;
    let api = Api::admin(&s);
    let rv = s.resource_version();
    let mut w = api.watch(&format!("{CMS}?watch=true&resourceVersion={rv}&labelSelector=app%3Dx")).await;
    api.post(CMS, &labelled("out", json!({"app": "y"}))).await;
    api.post(CMS, &labelled("in", json!({"app": "x"}))).await;
    let e = w.next().await.unwrap();
    assert_eq!((e["type"].as_str(), e["object"]["metadata"]["name"].as_str()), (Some("ADDED"), Some("in")));
    // Leaving the selector is a DELETED with the last matching state at the new resourceVersion.
    let moved = api.patch(&format!("{CMS}/in"), MERGE, &json!({"metadata": {"labels": {"app": "z"}}})).await.json();
    let e = w.next().await.unwrap();
    assert_eq!(e["type"], "DELETED");
    assert_eq!(e["object"]["metadata"]["labels"]["app"], "x");
    assert_eq!(e["object"]["metadata"]["resourceVersion"], moved["metadata"]["resourceVersion"]);
    // Entering it is an ADDED.
    api.patch(&format!("{CMS}/out"), MERGE, &json!({"metadata": {"labels": {"app": "x"}}})).await;
    let e = w.next().await.unwrap();
    assert_eq!((e["type"].as_str(), e["object"]["metadata"]["name"].as_str()), (Some("ADDED"), Some("out")));
    api.patch(&format!("{CMS}/out"), MERGE, &json!({"data": {"n": "1"}})).await;
    assert_eq!(w.next().await.unwrap()["type"], "MODIFIED");
    // Field selectors and namespaces scope watches too.
    let mut byname = api
        .watch(&format!("/api/v1/configmaps?watch=true&resourceVersion={rv}&fieldSelector=metadata.name%3Dout"))
        .await;
    let e = byname.next().await.unwrap();
    assert_eq!(e["object"]["metadata"]["name"], "out");
}

#[tokio::test]
async fn metadata_only_and_table_representations() {
    let s = server().await;
    let api = Api::admin(&s);
    api.post(CMS, &cm("a")).await;
    let m = api.get_as(&format!("{CMS}/a"), META).await;
    assert_eq!(
        m.header("content-type").as_deref(),
        Some("application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1")
    );
    let m = m.json();
    assert_eq!(m["kind"], "PartialObjectMetadata");
    assert_eq!(m["apiVersion"], "meta.k8s.io/v1");
    assert!(m.get("data").is_none());
    let l = api.get_as(CMS, META_LIST).await.json();
    assert_eq!(l["kind"], "PartialObjectMetadataList");
    assert_eq!(l["items"][0]["kind"], "PartialObjectMetadata");
    assert!(l["metadata"]["resourceVersion"].is_string());
    let rv = s.resource_version();
    let mut w = api.watch_as(&format!("{CMS}?watch=true&resourceVersion={rv}"), META).await;
    api.patch(&format!("{CMS}/a"), MERGE, &json!({"data": {"k": "2"}})).await;
    let e = w.next().await.unwrap();
    assert_eq!(e["object"]["kind"], "PartialObjectMetadata");
    assert!(e["object"].get("data").is_none());
    let t = api.get_as(CMS, TABLE).await.json();
    assert_eq!(t["kind"], "Table");
    assert_eq!(t["columnDefinitions"][0]["name"], "Name");
    assert_eq!(t["rows"][0]["cells"][0], "a");
    assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
    // Built-in printers for Secrets, ConfigMaps and Namespaces; Name/Age elsewhere.
    let cols = |t: &Value| -> Vec<String> {
        t["columnDefinitions"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap().to_string()).collect()
    };
    assert_eq!(cols(&t), ["Name", "Data", "Age"]);
    assert_eq!(t["rows"][0]["cells"][1], 1);
    let secrets = api.get_as("/api/v1/namespaces/kube-system/secrets", TABLE).await.json();
    assert_eq!(cols(&secrets), ["Name", "Type", "Data", "Age"]);
    let ns = api.get_as("/api/v1/namespaces/default", TABLE).await.json();
    assert_eq!(ns["rows"][0]["cells"][1], "Active");
    let leases = api.get_as("/apis/coordination.k8s.io/v1/leases", TABLE).await.json();
    assert_eq!(cols(&leases), ["Name", "Age"]);
    let r = api.get_as(CMS, "application/vnd.kubernetes.protobuf").await;
    assert_eq!(r.status, 406);
}

#[tokio::test]
async fn namespace_termination() {
    let s = server().await;
    let api = Api::admin(&s);
    api.post("/api/v1/namespaces", &json!({"metadata": {"name": "doomed"}})).await;
    let ns = api.get("/api/v1/namespaces/doomed").await.json();
    assert_eq!(ns["status"]["phase"], "Active");
    assert_eq!(ns["metadata"]["labels"]["kubernetes.io/metadata.name"], "doomed");
    let mut held = cm("held");
    held["metadata"]["finalizers"] = json!(["example.com/hold"]);
    api.post("/api/v1/namespaces/doomed/configmaps", &held).await;
    api.post("/api/v1/namespaces/doomed/secrets", &json!({"metadata": {"name": "s"}})).await;
    let r = api.delete("/api/v1/namespaces/doomed").await.json();
    assert_eq!(r["status"]["phase"], "Terminating");
    assert!(r["metadata"]["deletionTimestamp"].is_string());
    // As kube-apiserver 1.37: a Namespace has no grace period (other kinds with finalizers get 0).
    assert!(r["metadata"].get("deletionGracePeriodSeconds").is_none(), "{r}");
    let r = api.post("/api/v1/namespaces/doomed/configmaps", &cm("new")).await;
    assert_eq!(r.status, 403);
    assert_eq!(
        r.json()["message"],
        "configmaps \"new\" is forbidden: unable to create new content in namespace doomed because it is being terminated"
    );
    assert_eq!(r.json()["details"]["causes"][0]["reason"], "NamespaceTerminating");
    assert!(
        eventually(Duration::from_secs(5), || async {
            api.get("/api/v1/namespaces/doomed/secrets/s").await.status == 404
        })
        .await
    );
    // The finalizer holds the namespace in Terminating.
    let held = api.get("/api/v1/namespaces/doomed/configmaps/held").await.json();
    assert!(held["metadata"]["deletionTimestamp"].is_string());
    assert_eq!(api.get("/api/v1/namespaces/doomed").await.json()["status"]["phase"], "Terminating");
    api.patch("/api/v1/namespaces/doomed/configmaps/held", MERGE, &json!({"metadata": {"finalizers": []}})).await;
    assert!(
        eventually(Duration::from_secs(5), || async { api.get("/api/v1/namespaces/doomed").await.status == 404 }).await
    );
    let r = api.post("/api/v1/namespaces/doomed/configmaps", &cm("x")).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["message"], "namespaces \"doomed\" not found");
    assert_eq!(r.json()["details"], json!({"name": "doomed", "kind": "namespaces"}));
}

#[tokio::test]
async fn patch_flavours_and_server_side_apply() {
    let s = server().await;
    let api = Api::admin(&s);
    let mut o = cm("p");
    o["metadata"]["finalizers"] = json!(["a"]);
    api.post(CMS, &o).await;
    let p = format!("{CMS}/p");
    let r = api.patch(&p, MERGE, &json!({"data": {"x": "1", "k": null}})).await.json();
    assert_eq!(r["data"], json!({"x": "1"}));
    let r =
        api.patch(&p, JSONPATCH, &json!([{"op": "add", "path": "/metadata/labels", "value": {"l": "1"}}])).await.json();
    assert_eq!(r["metadata"]["labels"]["l"], "1");
    let r = api.patch(&p, JSONPATCH, &json!([{"op": "test", "path": "/data/x", "value": "nope"}])).await;
    assert_eq!(r.status, 422);
    // kube-apiserver 1.37's answer, word for word: a fixed message and empty details.
    assert_eq!(r.json()["message"], "the server rejected our request due to an error in our request");
    assert_eq!(r.json()["details"], json!({}));
    let r = api.patch(&p, STRATEGIC, &json!({"metadata": {"finalizers": ["b"]}})).await.json();
    assert_eq!(r["metadata"]["finalizers"], json!(["a", "b"]));
    // A stale resourceVersion inside a patch is a conflict.
    let r = api.patch(&p, MERGE, &json!({"metadata": {"resourceVersion": "1"}, "data": {"y": "1"}})).await;
    assert_eq!(r.status, 409);
    let r = api.patch(&p, "application/xml", &json!({})).await;
    assert_eq!(r.status, 415);
    assert_eq!(api.patch(&format!("{CMS}/missing"), MERGE, &json!({})).await.status, 404);

    // Server-side apply: requires a field manager, creates, conflicts, force.
    let cfg = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa"}, "data": {"a": "1"}});
    let r = api.patch(&format!("{CMS}/ssa"), APPLY, &cfg).await;
    assert_eq!(r.status, 422);
    assert!(r.json()["message"].as_str().unwrap().contains("fieldManager: Required value"));
    let r = api.patch(&format!("{CMS}/ssa?fieldManager=one"), APPLY, &cfg).await;
    assert_eq!(r.status, 201);
    assert_eq!(r.json()["metadata"]["managedFields"][0]["manager"], "one");
    assert_eq!(r.json()["metadata"]["managedFields"][0]["operation"], "Apply");
    let cfg2 = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa"}, "data": {"a": "2"}});
    let r = api.patch(&format!("{CMS}/ssa?fieldManager=two"), APPLY, &cfg2).await;
    assert_eq!(r.status, 409);
    assert_eq!(
        r.json(),
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "Apply failed with 1 conflict: conflict with \"one\": .data.a", "reason": "Conflict",
            "details": {"causes": [{"reason": "FieldManagerConflict", "message": "conflict with \"one\"", "field": ".data.a"}]},
            "code": 409})
    );
    let r = api.patch(&format!("{CMS}/ssa?fieldManager=two&force=true"), APPLY, &cfg2).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["data"]["a"], "2");
    // YAML apply bodies.
    let yaml = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa\ndata:\n  a: \"2\"\n  b: \"3\"\n";
    let r = api
        .raw(Method::PATCH, &format!("{CMS}/ssa?fieldManager=two"), Some(APPLY), None, yaml.as_bytes().to_vec())
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["data"], json!({"a": "2", "b": "3"}));
}

#[tokio::test]
async fn leases_and_events_are_ordinary_resources() {
    let s = server().await;
    let api = Api::admin(&s);
    let lease = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "leader"},
        "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15, "renewTime": "2024-01-02T03:04:05.123456Z", "acquireTime": "2024-01-02T03:04:05.000000Z"}});
    let l = api.post("/apis/coordination.k8s.io/v1/namespaces/kube-system/leases", &lease).await;
    assert_eq!(l.status, 201);
    let mut l = l.json();
    assert_eq!(l["spec"]["renewTime"], "2024-01-02T03:04:05.123456Z");
    l["spec"]["holderIdentity"] = json!("b");
    let stale = l.clone();
    assert_eq!(api.put("/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/leader", &l).await.status, 200);
    assert_eq!(api.put("/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/leader", &stale).await.status, 409);
    let ev = json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e1.17"}, "reason": "Mirrored",
        "involvedObject": {"kind": "Secret", "name": "s", "namespace": "default"}, "eventTime": "2024-01-02T03:04:05.000001Z"});
    assert_eq!(api.post("/api/v1/namespaces/default/events", &ev).await.status, 201);
    let list = api.get("/api/v1/events?fieldSelector=involvedObject.name%3Ds").await.json();
    assert_eq!(list["items"][0]["eventTime"], "2024-01-02T03:04:05.000001Z");
}

#[tokio::test]
async fn fault_injection() {
    let s = server().await;
    let api = Api::admin(&s);
    s.fail_next(Matcher::new(Some("list"), Some("configmaps")), 2, 429, Some(3));
    let r = api.get(CMS).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after").as_deref(), Some("3"));
    assert_eq!(
        r.json(),
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "Too many requests, please try again later.", "reason": "TooManyRequests",
            "details": {"retryAfterSeconds": 3}, "code": 429})
    );
    assert_eq!(api.get("/api/v1/namespaces/default/secrets").await.status, 200, "other resources unaffected");
    assert_eq!(api.get(CMS).await.status, 429);
    assert_eq!(api.get(CMS).await.status, 200);
    s.fail_next(Matcher::new(Some("create"), None), 1, 500, None);
    let r = api.post(CMS, &cm("x")).await;
    assert_eq!(r.status, 500);
    assert_eq!(r.json()["reason"], "InternalError");
    assert_eq!(r.json()["details"]["causes"][0]["message"], "injected fault");
    s.fail_next(Matcher::any(), 1, 503, Some(1));
    let r = api.get(CMS).await;
    assert_eq!((r.status, r.json()["reason"].as_str()), (503, Some("ServiceUnavailable")));

    s.set_latency(Matcher::new(Some("get"), None), Some(Duration::from_millis(200)));
    let t = Instant::now();
    api.get("/version").await;
    assert!(t.elapsed() >= Duration::from_millis(200));
    s.set_latency(Matcher::any(), None);

    s.hang(Matcher::new(Some("list"), Some("secrets")));
    let api2 = Api::admin(&s);
    let hung = tokio::spawn(async move { api2.get("/api/v1/namespaces/default/secrets").await.status });
    assert_eq!(api.get(CMS).await.status, 200, "non-matching requests pass");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!hung.is_finished(), "a partitioned request does not complete");
    s.release();
    assert_eq!(hung.await.unwrap(), 200);

    // Open watches stall during a partition and deliver once it heals.
    let mut stalled = api.watch(&format!("{CMS}?watch=true&resourceVersion={}", s.resource_version())).await;
    s.hang(Matcher::new(Some("watch"), Some("configmaps")));
    s.create_object(cm("during")).unwrap();
    let early = tokio::time::timeout(Duration::from_millis(200), stalled.next()).await;
    assert!(early.is_err(), "no event crosses the partition: {early:?}");
    s.release();
    assert_eq!(stalled.next().await.unwrap()["object"]["metadata"]["name"], "during");
    drop(stalled);
    assert!(eventually(Duration::from_secs(5), || async { s.open_watches() == 0 }).await);

    let mut w = api.watch(&format!("{CMS}?watch=true&resourceVersion={}", s.resource_version())).await;
    assert!(eventually(Duration::from_secs(5), || async { s.open_watches() == 1 }).await);
    s.close_watches();
    assert!(w.ends_within(Duration::from_secs(5)).await);
    assert!(eventually(Duration::from_secs(5), || async { s.open_watches() == 0 }).await);
}

#[tokio::test]
async fn restart_keeps_data_address_and_ca() {
    let s = server().await;
    let api = Api::admin(&s);
    api.post(CMS, &cm("keep")).await;
    let url = s.url();
    let mut w = api.watch(&format!("{CMS}?watch=true&resourceVersion={}", s.resource_version())).await;
    s.restart();
    assert!(w.ends_within(Duration::from_secs(5)).await);
    assert_eq!(s.url(), url);
    let fresh = Api::admin(&s);
    assert!(
        eventually(Duration::from_secs(5), || async { fresh.get(&format!("{CMS}/keep")).await.status == 200 }).await
    );
}

#[tokio::test]
async fn accounting() {
    let s = server_with(ServerOptions {
        users: vec![
            User::admin(),
            User {
                name: "ro".into(),
                token: "ro".into(),
                rules: vec![Rule::new(&["get", "list", "watch"], &["*"], &["*"])],
            },
        ],
        ..Default::default()
    })
    .await;
    let api = Api::admin(&s);
    let ro = Api::new(&s, "ro");
    api.post(CMS, &cm("a")).await;
    api.get(CMS).await;
    ro.get(CMS).await;
    ro.get(&format!("{CMS}/a")).await;
    let st = s.stats();
    assert_eq!(st.count("list", "configmaps"), 2);
    assert_eq!(st.requests.get(&("list".into(), "configmaps".into(), "ro".into())), Some(&1));
    assert_eq!(st.count("create", "configmaps"), 1);
    assert_eq!(st.verb("get"), 1);
    assert!(st.bytes_sent > 0);
    let mut w = api.watch(&format!("{CMS}?watch=true&resourceVersion={}", s.resource_version())).await;
    assert!(eventually(Duration::from_secs(5), || async { s.stats().open_watches == 1 }).await);
    api.post(CMS, &cm("b")).await;
    assert_eq!(w.next().await.unwrap()["object"]["metadata"]["name"], "b");
    assert_eq!(s.stats().watch_events, 1);
    s.reset_stats();
    let st = s.stats();
    assert_eq!((st.total(), st.bytes_sent, st.watch_events, st.open_watches), (0, 0, 0, 1));
}

#[tokio::test]
async fn http1_and_http2_by_alpn() {
    let s = server().await;
    let h2 = Api::admin(&s).get("/version").await;
    assert!(h2.http2);
    let h1 = Api::http1(&s).get("/version").await;
    assert!(!h1.http2);
    assert_eq!(h1.status, 200);
    let mut w = Api::http1(&s).watch(&format!("{CMS}?watch=true")).await;
    Api::admin(&s).post(CMS, &cm("over-h1")).await;
    assert_eq!(w.next().await.unwrap()["object"]["metadata"]["name"], "over-h1");
}

#[tokio::test]
async fn direct_seeding_at_scale() {
    let s = server().await;
    let t = Instant::now();
    for i in 0..2000 {
        s.create_object(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": format!("ns-{i}")}}))
            .unwrap();
    }
    for i in 0..50_000 {
        let obj = json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": format!("s-{i}"), "namespace": format!("ns-{}", i % 2000), "labels": {"n": (i % 10).to_string()}},
            "data": {"k": "dmFsdWU="}});
        s.create_object(obj).unwrap();
    }
    let seeded = t.elapsed();
    assert!(s.object_count() >= 52_000);
    assert!(s.get_object("v1", "Secret", Some("ns-7"), "s-7").is_some());
    assert_eq!(s.list_objects("v1", "Secret", Some("ns-0")).len(), 25);
    let api = Admin::new(&s);
    let t = Instant::now();
    let mut tok: Option<String> = None;
    let mut n = 0;
    loop {
        let path = match &tok {
            Some(t) => format!("/api/v1/secrets?limit=5000&continue={t}"),
            None => "/api/v1/secrets?limit=5000".into(),
        };
        let page = api.0.get_as(&path, META_LIST).await.json();
        n += page["items"].as_array().unwrap().len();
        tok = page["metadata"]["continue"].as_str().map(String::from);
        if tok.is_none() {
            break;
        }
    }
    assert_eq!(n, 50_000);
    let selected = api.0.get("/api/v1/secrets?labelSelector=n%3D3").await.json();
    assert_eq!(selected["items"].as_array().unwrap().len(), 5000);
    eprintln!("seeded 52k objects in {seeded:?}; paged them in {:?}", t.elapsed());
    // Direct writes and deletes.
    s.update_object(
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s-1", "namespace": "ns-1"}, "data": {}}),
    )
    .unwrap();
    assert_eq!(s.delete_object("v1", "Secret", Some("ns-1"), "s-1").unwrap(), None);
}

struct Admin(Api);

impl Admin {
    fn new(s: &kubemirror::testkit::ApiServer) -> Self {
        Admin(Api::admin(s))
    }
}

#[tokio::test]
async fn hostile_input_gets_errors_not_panics() {
    let s = server().await;
    let api = Api::admin(&s);
    let bad = api.raw(Method::POST, CMS, Some(JSON), None, b"{not json".to_vec()).await;
    assert_eq!(bad.status, 400);
    assert_eq!(api.post(CMS, &json!(["an", "array"])).await.status, 400);
    assert_eq!(api.post(CMS, &json!({"metadata": {"name": "l", "labels": "x"}})).await.status, 422);
    assert_eq!(api.post(CMS, &json!({"metadata": {"name": "a", "annotations": {"k": 1}}})).await.status, 422);
    let r = api
        .post(
            "/api/v1/namespaces/default/secrets",
            &json!({"metadata": {"name": "s"}, "data": "str", "stringData": {"a": "b"}}),
        )
        .await;
    assert_eq!(r.status, 201);
    assert_eq!(r.json()["data"], json!({"a": "Yg=="}));
    api.post("/api/v1/namespaces", &json!({"metadata": {"name": "odd"}})).await;
    let mut ns = api.get("/api/v1/namespaces/odd").await.json();
    ns["status"] = json!("weird");
    assert_eq!(api.put("/api/v1/namespaces/odd/status", &ns).await.status, 200);
    assert_eq!(api.delete("/api/v1/namespaces/odd").await.status, 200);
    assert!(
        eventually(Duration::from_secs(5), || async { api.get("/api/v1/namespaces/odd").await.status == 404 }).await
    );
    let r = api.patch(&format!("{CMS}/nope"), JSONPATCH, &json!({"op": "add"})).await;
    assert_eq!(r.status, 404);
    api.post(CMS, &cm("j")).await;
    let r =
        api.patch(&format!("{CMS}/j"), JSONPATCH, &json!([{"op": "replace", "path": "/metadata", "value": "x"}])).await;
    assert_eq!(r.status, 400);
    assert_eq!(api.get(&format!("{CMS}?limit=abc")).await.status, 400);
    assert_eq!(api.get(&format!("{CMS}?watch=true&resourceVersion=abc")).await.status, 422);
    assert_eq!(api.get("/api/v1/namespaces/default/configmaps/j/scale").await.status, 404);
    assert_eq!(api.get("/api/v1/namespaces/default/configmaps/a/b/c/d").await.status, 404);
    let huge = api.raw(Method::POST, CMS, Some(JSON), None, vec![b' '; 3 * 1024 * 1024 + 1]).await;
    assert_eq!(huge.status, 413);
    assert_eq!(huge.json()["message"], "Request entity too large: limit is 3145728");
    // The all-namespaces path of a namespaced resource only lists and watches.
    assert_eq!(api.post("/api/v1/configmaps", &cm("x")).await.status, 405);
    assert_eq!(api.get("/api/v1/configmaps/x").await.status, 404);
    // The server still works.
    assert_eq!(api.get(CMS).await.status, 200);
}

#[tokio::test]
async fn delete_collection_and_the_examples() {
    let s = server().await;
    let api = Api::admin(&s);
    // Every manifest under examples/ applies cleanly (the sandbox depends on it).
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut text = String::new();
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "yaml") {
            text.push_str(&std::fs::read_to_string(&p).unwrap());
            text.push_str("\n---\n");
        }
    }
    let applied = s.apply_yaml(&text).unwrap();
    assert!(applied.len() >= 10);
    let sources = api.get("/api/v1/secrets?labelSelector=kubemirror.raczylo.com%2Fenabled%3Dtrue").await.json();
    assert_eq!(sources["items"].as_array().unwrap().len(), 4);
    assert_eq!(api.get("/apis/traefik.io/v1alpha1/namespaces/default/middlewares/compression").await.status, 200);
    let es = s.get_object("v1", "Secret", Some("external-secrets"), "multi-registry-secret").unwrap();
    assert_eq!(es["metadata"]["ownerReferences"][0]["kind"], "ExternalSecret");
    // Applying twice is idempotent (no new resourceVersion for unchanged objects).
    let rv = s.resource_version();
    s.apply_yaml(&text).unwrap();
    assert_eq!(s.resource_version(), rv);

    for i in 0..3 {
        api.post(CMS, &labelled(&format!("dc{i}"), json!({"batch": "1"}))).await;
    }
    let r = api.delete(&format!("{CMS}?labelSelector=batch%3D1")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["items"].as_array().unwrap().len(), 3);
    assert_eq!(api.get(&format!("{CMS}?labelSelector=batch%3D1")).await.json()["items"], json!([]));
}

#[tokio::test]
async fn services_get_cluster_ips_like_a_cluster() {
    let s = server().await;
    let api = Api::admin(&s);
    let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
        "spec": {"type": "NodePort", "selector": {"app": "web"}, "ports": [{"name": "http", "port": 80}]}});
    let created = api.post("/api/v1/namespaces/default/services", &svc).await.json();
    let ip = created["spec"]["clusterIP"].as_str().unwrap().to_string();
    assert!(ip.starts_with("10.9"), "{ip}");
    assert_eq!(created["spec"]["clusterIPs"], json!([ip]));
    let node_port = created["spec"]["ports"][0]["nodePort"].as_u64().unwrap();
    assert!((30000..=32767).contains(&node_port));
    // A verbatim copy into another namespace collides, as a naive mirror would (BEHAVIOR.md W-5).
    let mut copy = created.clone();
    for k in ["resourceVersion", "uid", "creationTimestamp", "managedFields"] {
        copy["metadata"].as_object_mut().unwrap().remove(k);
    }
    copy["metadata"]["namespace"] = json!("kube-public");
    let r = api.post("/api/v1/namespaces/kube-public/services", &copy).await;
    assert_eq!(r.status, 422);
    let msg = r.json()["message"].as_str().unwrap().to_string();
    assert!(
        msg.starts_with(&format!("Service \"web\" is invalid: [spec.clusterIPs: Invalid value: []string{{\"{ip}\"}}: failed to allocate IP {ip}: provided IP is already allocated")),
        "{msg}"
    );
    assert!(msg.contains("provided port is already allocated"), "{msg}");
    // Updates that omit the allocated values keep them; changing the clusterIP is refused.
    let mut upd = created.clone();
    upd["spec"].as_object_mut().unwrap().remove("clusterIP");
    upd["spec"].as_object_mut().unwrap().remove("clusterIPs");
    upd["spec"]["ports"][0].as_object_mut().unwrap().remove("nodePort");
    upd["spec"]["selector"] = json!({"app": "web2"});
    let kept = api.put("/api/v1/namespaces/default/services/web", &upd).await.json();
    assert_eq!(kept["spec"]["clusterIP"], json!(ip));
    assert_eq!(kept["spec"]["ports"][0]["nodePort"], json!(node_port));
    let r = api
        .patch("/api/v1/namespaces/default/services/web", MERGE, &json!({"spec": {"clusterIP": "10.96.200.200"}}))
        .await;
    assert_eq!(r.status, 422);
    assert!(r.json()["message"].as_str().unwrap().contains("may not change once set"));
    // Headless copies work; deleting frees the address.
    let headless = json!({"metadata": {"name": "h"}, "spec": {"clusterIP": "None", "ports": [{"port": 80}]}});
    assert_eq!(api.post("/api/v1/namespaces/default/services", &headless).await.status, 201);
    assert_eq!(api.post("/api/v1/namespaces/kube-public/services", &headless).await.status, 201);
    api.delete("/api/v1/namespaces/default/services/web").await;
    assert_eq!(api.post("/api/v1/namespaces/kube-public/services", &copy).await.status, 201);
}

#[tokio::test]
async fn cluster_defaults_seed_each_namespace() {
    let s = server_with(ServerOptions { cluster_defaults: true, ..Default::default() }).await;
    let api = Api::admin(&s);
    api.post("/api/v1/namespaces", &json!({"metadata": {"name": "fresh"}})).await;
    assert!(
        eventually(Duration::from_secs(5), || async {
            api.get("/api/v1/namespaces/fresh/configmaps/kube-root-ca.crt").await.status == 200
                && api.get("/api/v1/namespaces/fresh/serviceaccounts/default").await.status == 200
        })
        .await
    );
    let ca = api.get("/api/v1/namespaces/default/configmaps/kube-root-ca.crt").await.json();
    assert_eq!(ca["data"]["ca.crt"], s.ca_pem());
    // Namespace deletion still completes (the defaults are not recreated in a terminating namespace).
    api.delete("/api/v1/namespaces/fresh").await;
    assert!(
        eventually(Duration::from_secs(5), || async { api.get("/api/v1/namespaces/fresh").await.status == 404 }).await
    );
}

#[tokio::test]
async fn multi_version_crds_share_objects() {
    let s = server().await;
    let api = Api::admin(&s);
    let mut c = crd("example.com", "things", "Thing", "Namespaced");
    c["spec"]["versions"] = json!([
        {"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}},
        {"name": "v1beta1", "served": true, "storage": false, "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}
    ]);
    assert_eq!(api.post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", &c).await.status, 201);
    let g = api.get("/apis/example.com").await.json();
    assert_eq!(g["versions"].as_array().unwrap().len(), 2);
    let t = json!({"apiVersion": "example.com/v1beta1", "kind": "Thing", "metadata": {"name": "t"}, "spec": {"x": 1}});
    assert_eq!(api.post("/apis/example.com/v1beta1/namespaces/default/things", &t).await.status, 201);
    let mut w = api.watch("/apis/example.com/v1/namespaces/default/things?watch=true").await;
    assert_eq!(w.next().await.unwrap()["object"]["apiVersion"], "example.com/v1");
    assert_eq!(
        api.get("/apis/example.com/v1/namespaces/default/things/t").await.json()["apiVersion"],
        "example.com/v1"
    );
    assert_eq!(api.get("/apis/example.com/v1/things").await.json()["items"][0]["apiVersion"], "example.com/v1");
    assert_eq!(
        api.get("/apis/example.com/v1beta1/things").await.json()["items"][0]["apiVersion"],
        "example.com/v1beta1"
    );
    api.patch("/apis/example.com/v1beta1/namespaces/default/things/t", MERGE, &json!({"spec": {"x": 2}})).await;
    let e = w.next().await.unwrap();
    assert_eq!((e["type"].as_str(), e["object"]["apiVersion"].as_str()), (Some("MODIFIED"), Some("example.com/v1")));
}

#[tokio::test]
async fn the_watch_window_is_per_resource() {
    let s = server_with(ServerOptions { watch_history: 3, ..Default::default() }).await;
    let api = Api::admin(&s);
    let start = api.post(CMS, &cm("first")).await.json();
    let from = rv_of(&start);
    // Heavy traffic on another resource does not expire this one's window.
    for i in 0..10 {
        s.create_object(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": format!("s{i}")}})).unwrap();
    }
    let mut w = api.watch(&format!("{CMS}?watch=true&resourceVersion={from}")).await;
    api.post(CMS, &cm("second")).await;
    assert_eq!(w.next().await.unwrap()["object"]["metadata"]["name"], "second");
    // Its own traffic does.
    for i in 0..4 {
        api.post(CMS, &cm(&format!("more{i}"))).await;
    }
    let mut old = api.watch(&format!("{CMS}?watch=true&resourceVersion={from}")).await;
    let e = old.next().await.unwrap();
    assert_eq!(e["type"], "ERROR");
    assert_eq!(e["object"]["code"], 410);
}
