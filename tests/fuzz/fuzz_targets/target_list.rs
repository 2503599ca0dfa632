//! The target-namespaces parser: split_list, Glob::parse and TargetSpec::parse on arbitrary text,
//! and matching any glob that parses against the input's own words.
#![no_main]

use kubemirror::mirror::targets::{Glob, TargetSpec, split_list};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (list, selector) = text.split_once('\n').unwrap_or((text, ""));
    let items = split_list(list);
    for item in &items {
        assert!(!item.is_empty() && item.trim() == *item);
        if let Ok(g) = Glob::parse(item) {
            let _ = g.matches(item);
            let _ = g.matches("app-1");
        }
    }
    let spec = TargetSpec::parse(Some(list), Some(selector));
    let _ = spec.is_empty();
});
