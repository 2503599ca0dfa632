//! Kubeconfig loading from text: YAML parsing, merging and resolution of the current context must
//! give a Config or an error naming the field, never panic or exhaust memory.
#![no_main]

use std::path::Path;

use kubemirror::client::{Config, Env};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    // Referenced files resolve against a directory that does not exist; devices and /proc are
    // out of bounds for a fuzzer (the bounded read is tested in the main crate).
    if ["dev/", "proc/", "sys/"].iter().any(|p| text.contains(p)) {
        return;
    }
    let mut env = Env::default();
    env.vars.insert("SSL_CERT_FILE".into(), "/nonexistent/kubemirror-fuzz/ca.pem".into());
    let _ = Config::from_kubeconfig_text(text, Path::new("/nonexistent/kubemirror-fuzz/config"), None, &env);
});
