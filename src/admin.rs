//! The admin HTTP endpoints: `/metrics`, `/healthz` (liveness) and `/readyz` (readiness), plain
//! HTTP/1.1 on their own listeners, as the chart's probes and Prometheus expect.
//!
//! Liveness fails when a watcher is stuck (nothing at all happened for too long) — the silent stall
//! the peers' users fix with restart CronJobs — so the kubelet restarts us instead. A check may pass
//! with notes (a type that cannot be watched does not hold readiness back): they are listed in the
//! body as `[!]name: note` lines, with or without `?verbose`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::metrics::Metrics;

/// A named check: `Ok` with notes worth showing (often none), or the reason it fails.
pub type Check = Arc<dyn Fn() -> Result<Vec<String>, String> + Send + Sync>;

#[derive(Clone, Default)]
pub struct Checks {
    pub liveness: Vec<(String, Check)>,
    pub readiness: Vec<(String, Check)>,
}

fn run_checks(checks: &[(String, Check)], verbose: bool) -> (StatusCode, String) {
    let mut body = String::new();
    let mut ok = true;
    for (name, check) in checks {
        match check() {
            Ok(notes) => {
                if verbose {
                    body.push_str(&format!("[+]{name} ok\n"));
                }
                for note in notes {
                    body.push_str(&format!("[!]{name}: {note}\n"));
                }
            }
            Err(why) => {
                ok = false;
                log::warn!("health check {name} failed: {why}");
                body.push_str(&format!("[-]{name} failed: {why}\n"));
            }
        }
    }
    if ok {
        body.push_str("ok\n");
        (StatusCode::OK, body)
    } else {
        (StatusCode::INTERNAL_SERVER_ERROR, body)
    }
}

fn respond(req: &Request<Incoming>, checks: &Checks, metrics: Option<&Metrics>) -> Response<Full<Bytes>> {
    let verbose = req.uri().query().is_some_and(|q| q.split('&').any(|p| p == "verbose"));
    let (status, content_type, body) = match (req.method(), req.uri().path()) {
        (&Method::GET, "/healthz" | "/livez") => {
            let (s, b) = run_checks(&checks.liveness, verbose);
            (s, "text/plain; charset=utf-8", b)
        }
        (&Method::GET, "/readyz") => {
            let (s, b) = run_checks(&checks.readiness, verbose);
            (s, "text/plain; charset=utf-8", b)
        }
        (&Method::GET, "/metrics") if metrics.is_some() => {
            let text = metrics.map(Metrics::render).unwrap_or_default();
            (StatusCode::OK, "text/plain; version=0.0.4; charset=utf-8", text)
        }
        _ => (StatusCode::NOT_FOUND, "text/plain; charset=utf-8", "not found\n".to_string()),
    };
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    if let Ok(v) = hyper::header::HeaderValue::from_str(content_type) {
        resp.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    resp
}

/// Serves until `shutdown` turns true. Returns the bound address (useful with port 0).
pub async fn serve(
    addr: SocketAddr,
    checks: Checks,
    metrics: Option<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let state = Arc::new((checks, metrics));
    tokio::spawn(async move {
        loop {
            let stream = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((s, _)) => s,
                    Err(e) => {
                        log::warn!("admin server {local}: accept failed: {e}");
                        continue;
                    }
                },
                _ = shutdown.wait_for(|stop| *stop) => return,
            };
            let state = state.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| {
                    let state = state.clone();
                    async move { Ok::<_, Infallible>(respond(&req, &state.0, state.1.as_ref())) }
                });
                if let Err(e) =
                    hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await
                {
                    log::debug!("admin server {local}: connection error: {e}");
                }
            });
        }
    });
    Ok(local)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn get(addr: SocketAddr, path: &str) -> String {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes()).await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn probes_follow_their_checks_and_metrics_render() {
        let synced = Arc::new(AtomicBool::new(false));
        let flag = synced.clone();
        let checks = Checks {
            liveness: vec![("ping".into(), Arc::new(|| Ok(Vec::new())) as Check)],
            readiness: vec![(
                "caches".into(),
                Arc::new(move || {
                    if flag.load(Ordering::SeqCst) {
                        Ok(vec!["Widget.v1: cannot sync".into()])
                    } else {
                        Err("not synced".into())
                    }
                }) as Check,
            )],
        };
        let metrics = Metrics::new().unwrap();
        metrics.leader.set(1.0);
        let (tx, rx) = watch::channel(false);
        let addr = serve("127.0.0.1:0".parse().unwrap(), checks, Some(metrics), rx).await.unwrap();

        assert!(get(addr, "/healthz").await.starts_with("HTTP/1.1 200"));
        let not_ready = get(addr, "/readyz?verbose").await;
        assert!(
            not_ready.starts_with("HTTP/1.1 500") && not_ready.contains("[-]caches failed: not synced"),
            "{not_ready}"
        );
        synced.store(true, Ordering::SeqCst);
        let ready = get(addr, "/readyz").await;
        assert!(
            ready.starts_with("HTTP/1.1 200") && ready.ends_with("[!]caches: Widget.v1: cannot sync\nok\n"),
            "{ready}"
        );
        assert!(get(addr, "/metrics").await.contains("kubemirror_leader 1"));
        assert!(get(addr, "/nope").await.starts_with("HTTP/1.1 404"));
        tx.send(true).unwrap();
    }
}
