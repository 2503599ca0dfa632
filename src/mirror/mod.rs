//! Mirroring decisions, free of I/O: which namespaces a source targets, what each mirror must look
//! like, which writes bring the cluster there, and how the outcome is reported. The runtime feeds
//! these functions from its caches and executes what they return.

pub mod build;
pub mod hash;
pub mod plan;
pub mod status;
pub mod targets;
