//! The async runtime the controller runs on, built in one place so the benchmark's baseline runs on
//! the same one.

/// The runtime for `kubemirror run`.
pub fn build() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build()
}
