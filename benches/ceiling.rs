//! "hyper ceiling" reference server for the load comparison.
//!
//! ```text
//! cargo bench --bench ceiling -- --port PORT [--seconds N] [--threads N]
//! ```
//!
//! Serves a fixed 500-byte JSON body (`content-type: application/json`) for
//! every request on 127.0.0.1:PORT (HTTP/1.1 and h2c, keep-alive) with the
//! same hyper/hyper-util stack Stowage uses, for `--seconds` (default 10)
//! and then exits. `--port 0` picks a free port. It prints
//! `ceiling: listening on 127.0.0.1:PORT` once it accepts connections.
//! Without `--port` it serves nothing and exits 0 (so `cargo test
//! --all-targets` / plain `cargo bench` stay harmless).

use std::convert::Infallible;
use std::io::Write;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;

const BODY_LEN: usize = 500;

fn body() -> Bytes {
    let prefix = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","padding":""#;
    let suffix = r#""}"#;
    let pad = BODY_LEN - prefix.len() - suffix.len();
    let mut s = String::with_capacity(BODY_LEN);
    s.push_str(prefix);
    s.push_str(&"x".repeat(pad));
    s.push_str(suffix);
    debug_assert_eq!(s.len(), BODY_LEN);
    Bytes::from(s)
}

fn main() {
    let mut port: Option<u16> = None;
    let mut seconds: u64 = 10;
    let mut threads: usize = 2;
    let mut it = std::env::args().skip(1);
    while let Some(raw) = it.next() {
        let (key, inline) = match raw.split_once('=') {
            Some((k, v)) if k.starts_with("--") => (k.to_owned(), Some(v.to_owned())),
            _ => (raw.clone(), None),
        };
        let mut value = || inline.clone().or_else(|| it.next()).unwrap_or_default();
        match key.as_str() {
            "--port" => port = value().parse().ok(),
            "--seconds" => seconds = value().parse().unwrap_or(seconds),
            "--threads" => threads = value().parse().unwrap_or(threads),
            _ => {} // cargo's --bench etc.
        }
    }
    let Some(port) = port else {
        println!(
            "ceiling: no --port given, not serving. Usage: cargo bench --bench ceiling -- --port PORT [--seconds N]"
        );
        return;
    };
    let rt = match tokio::runtime::Builder::new_multi_thread().worker_threads(threads.max(1)).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ceiling: tokio runtime: {e}");
            std::process::exit(1);
        }
    };
    let res = rt.block_on(serve(port, Duration::from_secs(seconds)));
    rt.shutdown_timeout(Duration::from_secs(1));
    if let Err(e) = res {
        eprintln!("ceiling: {e}");
        std::process::exit(1);
    }
}

async fn serve(port: u16, run_for: Duration) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!("ceiling: listening on {}", listener.local_addr()?);
    let _ = std::io::stdout().flush();
    let body = body();
    let deadline = tokio::time::sleep(run_for);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            () = &mut deadline => break,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let body = body.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |_req: Request<Incoming>| {
                        let mut resp = Response::new(Full::new(body.clone()));
                        resp.headers_mut()
                            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                        async move { Ok::<_, Infallible>(resp) }
                    });
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        }
    }
    println!("ceiling: done after {}s", run_for.as_secs());
    Ok(())
}
