//! The async runtime the controller runs on, built in one place so the benchmark's baseline runs on
//! the same one.
//!
//! One thread by default, whatever the node's core count: the controller's pace is set by the API
//! server and the client rate limit, not by CPU (converging 1,000 mirrors takes about one
//! CPU-second), while every runtime thread costs a stack and a malloc arena of its own — with
//! tokio's default of one thread per core, a 64-core node would hold 64 of each for nothing.
//! The one thread is the main thread itself (tokio's current-thread runtime): a multi-thread
//! runtime with one worker still allocates on two threads, so in two malloc arenas, which cost
//! S2 of the benchmark 0.9 MiB. `TOKIO_WORKER_THREADS` (tokio's own variable) set above 1 gives a
//! multi-thread runtime with that many workers.

/// The environment variable tokio reads for its worker count.
const WORKER_THREADS_ENV: &str = "TOKIO_WORKER_THREADS";

/// The runtime for `kubemirror run`.
pub fn build() -> std::io::Result<tokio::runtime::Runtime> {
    let threads =
        worker_threads(std::env::var_os(WORKER_THREADS_ENV).as_deref().map(|v| v.to_string_lossy()).as_deref())?;
    match threads {
        1 => tokio::runtime::Builder::new_current_thread().enable_all().build(),
        n => tokio::runtime::Builder::new_multi_thread().worker_threads(n).enable_all().build(),
    }
}

/// The worker count for the variable's value (checked here: tokio itself panics on a bad one).
fn worker_threads(var: Option<&str>) -> std::io::Result<usize> {
    match var.map(str::trim) {
        None => Ok(1),
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=1024).contains(&n) => Ok(n),
            _ => Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("{WORKER_THREADS_ENV}={v:?} is not a thread count between 1 and 1024"),
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_worker_unless_the_variable_says_otherwise() {
        assert_eq!(worker_threads(None).unwrap(), 1);
        assert_eq!(worker_threads(Some("4")).unwrap(), 4);
        for bad in ["0", "-1", "many", "", "100000"] {
            let e = worker_threads(Some(bad)).unwrap_err().to_string();
            assert!(e.contains("TOKIO_WORKER_THREADS"), "{e}");
        }
    }
}
