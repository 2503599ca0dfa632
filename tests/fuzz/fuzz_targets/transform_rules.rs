//! Any text as a rule document: compiling never panics and stays bounded; a compiled document
//! applied to a ConfigMap, a Secret and a Deployment (strict and not) never panics.
#![no_main]

use kubemirror::transform::{self, Data};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value, json};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let Ok(rules) = transform::compile(&text, &transform::Limits::default()) else { return };
    let labels: Map<String, Value> =
        [("app".to_string(), json!("web")), ("app.kubernetes.io/name".to_string(), json!("web"))].into_iter().collect();
    let annotations: Map<String, Value> = [("note".to_string(), json!("x"))].into_iter().collect();
    let objects = [
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "t", "labels": {"a": "b"}},
               "data": {"LOG_LEVEL": "debug", "n": "1"}}),
        json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": {"name": "s", "namespace": "t"},
               "data": {"password": "cw=="}}),
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "namespace": "t"},
               "spec": {"replicas": 1, "template": {"spec": {"containers": [{"name": "a", "image": "i", "env": [{"name": "X", "value": "1"}]}]}}}}),
    ];
    for ns in ["prod-eu", "staging", ""] {
        let data = Data {
            target_namespace: ns,
            source_namespace: "default",
            source_name: "src",
            target_name: "src",
            labels: Some(&labels),
            annotations: if ns.is_empty() { None } else { Some(&annotations) },
        };
        for obj in &objects {
            for strict in [false, true] {
                let mut o = obj.clone();
                let _ = rules.apply(&mut o, &data, strict);
            }
        }
    }
});
