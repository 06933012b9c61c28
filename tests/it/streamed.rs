//! Large blob bodies are streamed in bounded pieces (issue 11): exact bytes and lengths for whole
//! and ranged reads, a bounded read-ahead per response, and no reading on after the client hangs up.

use crate::common::*;
use crate::spec::*;
use std::time::{Duration, Instant};

/// Bigger than the single-read path and many pieces long.
const LEN: usize = 24 << 20;

fn data() -> Vec<u8> {
    (0..LEN).map(|i| (i % 251) as u8 ^ (i >> 20) as u8).collect()
}

async fn metric(s: &TestServer, name: &str) -> u64 {
    let text = anonymous().get(format!("{}/metrics", s.url)).send().await.unwrap().text().await.unwrap();
    let line =
        text.lines().find(|l| l.starts_with(&format!("{name} "))).unwrap_or_else(|| panic!("no {name} in {text}"));
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

#[tokio::test]
async fn whole_and_ranged_reads_of_a_large_blob_are_exact() {
    let s = TestServer::start();
    let bytes = data();
    let d = push_blob(&s, "syn1/big", &bytes).await;
    let r = client().get(s.v2(&format!("syn1/big/blobs/{d}"))).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "content-length"), LEN.to_string());
    assert_eq!(header(&r, "docker-content-digest"), d);
    let got = r.bytes().await.unwrap();
    assert_eq!(got.len(), LEN);
    assert!(got.as_ref() == bytes.as_slice(), "whole body differs");
    assert!(metric(&s, "stowage_blob_stream_read_bytes_total").await >= LEN as u64, "the body was streamed");

    // Ranges that start and end inside pieces, on piece edges, and run to the end.
    for (start, end) in [
        (1usize, LEN - 2),
        ((1 << 20) - 1, (5 << 20) + 3),
        (256 << 10, (1 << 20) + (256 << 10) - 1),
        (LEN - 3_000_000, LEN - 1),
    ] {
        let r = client()
            .get(s.v2(&format!("syn1/big/blobs/{d}")))
            .header("range", format!("bytes={start}-{end}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 206);
        assert_eq!(header(&r, "content-length"), (end - start + 1).to_string());
        assert_eq!(header(&r, "content-range"), format!("bytes {start}-{end}/{LEN}"));
        let got = r.bytes().await.unwrap();
        assert!(got.as_ref() == &bytes[start..=end], "range {start}-{end} differs");
    }
    let peak = metric(&s, "stowage_blob_stream_window_peak_bytes").await;
    assert!(peak > 0 && peak <= stowage::blob_stream::WINDOW_BYTES as u64, "read-ahead peak {peak}");
    assert_eq!(metric(&s, "stowage_blob_streams_abandoned_total").await, 0);
}

#[tokio::test]
async fn a_client_that_hangs_up_stops_the_reads() {
    let s = TestServer::start();
    let d = push_blob(&s, "syn1/big", &data()).await;
    let mut r = client().get(s.v2(&format!("syn1/big/blobs/{d}"))).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.chunk().await.unwrap().is_some());
    drop(r);
    let t = Instant::now();
    while metric(&s, "stowage_blob_streams_abandoned_total").await == 0 {
        assert!(t.elapsed() < Duration::from_secs(20), "the server kept reading for a client that left");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let read = metric(&s, "stowage_blob_stream_read_bytes_total").await;
    // What the socket buffers took before the hang-up, plus one window: far less than the blob.
    assert!(read < (LEN / 2) as u64, "read {read} of {LEN} bytes for a client that hung up at once");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(metric(&s, "stowage_blob_stream_read_bytes_total").await, read, "reads went on after the stop");
}

#[tokio::test]
async fn small_blobs_keep_the_single_read_path() {
    let s = TestServer::start();
    let small = vec![7u8; 100_000];
    let d = push_blob(&s, "syn1/small", &small).await;
    let r = client().get(s.v2(&format!("syn1/small/blobs/{d}"))).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "content-length"), "100000");
    assert_eq!(r.bytes().await.unwrap().as_ref(), small.as_slice());
    assert_eq!(metric(&s, "stowage_blob_stream_read_bytes_total").await, 0, "a small blob was streamed");
}
