//! Kubeconfig files: parsing, kubectl-style merging, and resolution of one context into a Config.

use std::path::PathBuf;

use super::config::{Config, ConfigError, Env};

pub fn load(paths: &[PathBuf], context: Option<&str>, _env: &Env) -> Result<Config, ConfigError> {
    let mut e = ConfigError::new("kubeconfig loading is not implemented yet");
    if let Some(p) = paths.first() {
        e = e.file(p);
    }
    if let Some(c) = context {
        e = e.context(c);
    }
    Err(e)
}
