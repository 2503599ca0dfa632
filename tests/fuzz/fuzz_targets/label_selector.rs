//! Label and field selector parsing on arbitrary text; a selector that parses must match or not
//! match any label set without panicking, and its rendering must parse to the same selector.
#![no_main]

use std::collections::BTreeMap;

use kubemirror::selector::{FieldSelector, LabelSelector};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(sel) = LabelSelector::parse(text) {
        let mut labels = BTreeMap::new();
        labels.insert("env".to_string(), "prod".to_string());
        let _ = sel.matches(&labels);
        let _ = sel.matches_with(|k| if k.len() % 2 == 0 { Some("x") } else { None });
        // The selector is sent to the API server as its rendering: it must mean the same.
        let rendered = sel.to_string();
        let again = LabelSelector::parse(&rendered);
        assert_eq!(again.as_ref(), Ok(&sel), "{text:?} rendered as {rendered:?}");
    }
    if let Ok(sel) = FieldSelector::parse(text) {
        let _ = sel.matches_with(|f| Some(f.to_string()));
    }
});
