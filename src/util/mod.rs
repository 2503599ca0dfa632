//! Small self-contained helpers shared by the client, the runtime and the test kit.
//! Hand-rolled on purpose: each replaces a crate that would cost more than it saves.

pub mod backoff;
pub mod base64;
pub mod compact;
pub mod duration;
pub mod rand;
pub mod ratelimit;
pub mod time;
pub mod yaml;
