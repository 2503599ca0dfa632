//! Any text as a template: parsing never panics; a parsed template executes without panicking,
//! within its step budget and output cap.
#![no_main]

use kubemirror::transform::Data;
use kubemirror::transform::template::{Limits, Template};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value, json};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let Ok(t) = Template::parse(&text) else { return };
    let labels: Map<String, Value> =
        [("app".to_string(), json!("web")), ("tier".to_string(), json!(""))].into_iter().collect();
    for labels in [Some(&labels), None] {
        let data = Data {
            target_namespace: "prod-eu",
            source_namespace: "default",
            source_name: "src",
            target_name: "src",
            labels,
            annotations: labels,
        };
        if let Ok(out) = t.execute(&data, Limits::default()) {
            assert!(out.len() <= Limits::MAX_OUTPUT);
        }
    }
});
