//! Reading request bodies within bounds: upload bodies must keep up a minimum average rate and
//! never pause longer than `body_idle_timeout`; small bodies (REST, token, manifest) must arrive
//! whole within a deadline. These hold before authentication too, so a client cannot hold a
//! request open by trickling bytes.
//!
//! Only the time spent waiting for the client counts against it: time spent waiting for our own
//! disk (the upload writer pushing back) never does. When the registry cuts a resumable upload's
//! body short, the bytes that did arrive are made durable and the answer says where to resume.

use super::App;
use crate::error::{range_header, ApiError, Code};
use crate::oci::RepositoryName;
use bytes::{Bytes, BytesMut};
use http::StatusCode;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use std::time::Duration;
use stowage_engine::UploadWriter;
use tokio::time::Instant;

/// Pieces are handed to the upload writer in batches of about this much: one message, one
/// wake-up of its thread and one vectored write per batch. 1 MiB batches (8 deep) were tried:
/// 1 GiB push A/B medians of 5, server CPU 1.76 s against 1.87 s, context switches ~8,300 against
/// ~15,600, but wall time 1.97 s against 1.82 s, which cost the push its margin over
/// Distribution under load (both measured with vectored writes).
const GATHER_BYTES: usize = 256 * 1024;
/// Body pieces at least this large go to the upload writer as they are, without a copy (a
/// profile of a 1 GiB push spent 8% of the daemon's CPU copying pieces into the gathering
/// buffer when only pieces of 256 KiB and more passed).
const PASS_BYTES: usize = 64 * 1024;

/// Why an upload body ended before its end.
enum Cut {
    /// Slower than `upload_min_rate` over a period (bytes per second seen).
    TooSlow { seen: u64 },
    /// No data for `body_idle_timeout`.
    Stalled,
    /// The client's side broke off.
    Broken(String),
}

/// How pumping a body into an upload failed.
enum PumpError {
    Cut(Cut),
    /// Not the client's pace: a write the engine refused (size limit, storage).
    Failed(ApiError),
}

impl From<ApiError> for PumpError {
    fn from(e: ApiError) -> PumpError {
        PumpError::Failed(e)
    }
}

impl From<stowage_engine::Error> for PumpError {
    fn from(e: stowage_engine::Error) -> PumpError {
        PumpError::Failed(e.into())
    }
}

/// The `upload_min_rate` check: the bytes that arrive in each period of waiting for the client
/// must average at least the minimum. Periods are consecutive rather than sliding, which bounds a
/// slow client just as well and needs no history.
struct RateFloor {
    /// Bytes per second; 0 turns the check off.
    min: u64,
    period: Duration,
    waited: Duration,
    bytes: u64,
}

impl RateFloor {
    fn new(min: u64, period: Duration) -> RateFloor {
        RateFloor { min, period, waited: Duration::ZERO, bytes: 0 }
    }

    /// Waiting time left in the current period, if the check is on.
    fn time_left(&self) -> Option<Duration> {
        (self.min > 0).then(|| self.period.saturating_sub(self.waited))
    }

    /// Records `bytes` that took `waited` to arrive. At the end of a period, `Err` with the rate
    /// seen if it was below the minimum.
    fn record(&mut self, bytes: u64, waited: Duration) -> Result<(), u64> {
        if self.min == 0 {
            return Ok(());
        }
        self.waited += waited;
        self.bytes += bytes;
        if self.waited < self.period {
            return Ok(());
        }
        let millis = self.waited.as_millis().max(1);
        let seen = u64::try_from(u128::from(self.bytes) * 1000 / millis).unwrap_or(u64::MAX);
        let needed = u128::from(self.min) * self.period.as_millis() / 1000;
        if u128::from(self.bytes) < needed {
            return Err(seen);
        }
        self.waited = Duration::ZERO;
        self.bytes = 0;
        Ok(())
    }
}

impl App {
    /// Streams a request body into a one-shot upload (`POST ?digest=`), which cannot be resumed:
    /// a body cut short fails the request and the client pushes again.
    pub(super) async fn stream_body(&self, body: Incoming, w: &mut UploadWriter) -> Result<u64, ApiError> {
        match self.pump(body, w).await {
            Ok(n) => Ok(n),
            Err(PumpError::Failed(e)) => Err(e),
            Err(PumpError::Cut(cut)) => Err(self.cut_error(cut, "push the blob again")),
        }
    }

    /// Streams a request body into resumable upload `w` and gives the writer back to end the
    /// chunk or finish.
    ///
    /// When the registry ends a body itself (too slow, stalled), the bytes that did arrive are
    /// kept: made durable and recorded, so a slow client still makes progress from one attempt to
    /// the next. When the client's side breaks off, the chunk is dropped whole, as before: nobody
    /// hears an offset then, and a client that re-sends the same chunk finds the upload where it
    /// left it. Either way the error carries the upload's `Range`, `Location` and
    /// `Docker-Upload-UUID`, the offset the upload-status request also reports.
    pub(super) async fn stream_resumable(
        &self,
        name: &RepositoryName,
        body: Incoming,
        mut w: UploadWriter,
    ) -> Result<UploadWriter, ApiError> {
        let start = w.offset();
        let cut = match self.pump(body, &mut w).await {
            Ok(_) => return Ok(w),
            Err(PumpError::Failed(e)) => return Err(e),
            Err(PumpError::Cut(cut)) => cut,
        };
        let id = w.id().to_string();
        let offset = match cut {
            Cut::Broken(_) => start,
            Cut::TooSlow { .. } | Cut::Stalled => w.end_chunk().await?,
        };
        let todo = format!(
            "{offset} bytes of the upload are stored; resume from offset {offset} (the Range header, \
             also reported by GET on the upload's URL)"
        );
        Err(self
            .cut_error(cut, &todo)
            .with_header(http::header::RANGE, &range_header(offset))
            .with_header(http::header::LOCATION, &format!("/v2/{name}/blobs/uploads/{id}"))
            .with_header(http::HeaderName::from_static("docker-upload-uuid"), &id))
    }

    fn cut_error(&self, cut: Cut, todo: &str) -> ApiError {
        match cut {
            Cut::TooSlow { seen } => ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                Code::BlobUploadInvalid,
                format!(
                    "the request body arrived at {seen} bytes/s over {} s, below the minimum of {} bytes/s; {todo}",
                    self.settings.upload_min_rate_period.as_secs_f64(),
                    self.settings.upload_min_rate
                ),
            ),
            Cut::Stalled => ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                Code::BlobUploadInvalid,
                format!("no request body data for {} s; {todo}", self.settings.body_idle_timeout.as_secs_f64()),
            ),
            Cut::Broken(e) => {
                ApiError::bad_request(Code::BlobUploadInvalid, format!("request body broke off ({e}); {todo}"))
            }
        }
    }

    /// Feeds a body into an upload writer. Pieces smaller than [`PASS_BYTES`] are copied together
    /// so the disk sees no tiny writes; the rest pass uncopied; and the writer thread is woken
    /// once per [`GATHER_BYTES`] or so, with every piece ready by then. Bytes
    /// that arrived before a cut are all handed to the writer.
    async fn pump(&self, body: Incoming, w: &mut UploadWriter) -> Result<u64, PumpError> {
        let idle = self.settings.body_idle_timeout;
        let mut floor = RateFloor::new(self.settings.upload_min_rate, self.settings.upload_min_rate_period);
        let mut body = body;
        let mut acc = BytesMut::new();
        // Pieces ready for the writer, sent together once they reach GATHER_BYTES.
        let mut ready: Vec<Bytes> = Vec::new();
        let mut ready_bytes = 0usize;
        let mut received = 0u64;
        let cut = loop {
            let wait = floor.time_left().map_or(idle, |left| left.min(idle));
            let asked = Instant::now();
            let next = tokio::time::timeout(wait, body.frame()).await;
            let waited = asked.elapsed();
            let data = match next {
                Err(_) if waited >= idle => break Some(Cut::Stalled),
                // The rate period ended while waiting: checked below with no new bytes.
                Err(_) => None,
                Ok(None) => break None,
                Ok(Some(Err(e))) => break Some(Cut::Broken(e.to_string())),
                Ok(Some(Ok(f))) => f.into_data().ok(),
            };
            let n = data.as_ref().map_or(0, |d| d.len() as u64);
            if let Some(data) = data {
                received += n;
                if data.len() >= PASS_BYTES {
                    // Large enough to write as it is: never copied. What was gathered goes
                    // first, to keep the order.
                    if !acc.is_empty() {
                        ready_bytes += acc.len();
                        ready.push(acc.split().freeze());
                    }
                    ready_bytes += data.len();
                    ready.push(data);
                } else {
                    acc.extend_from_slice(&data);
                    if acc.len() >= PASS_BYTES {
                        ready_bytes += acc.len();
                        ready.push(acc.split().freeze());
                    }
                }
                if ready_bytes >= GATHER_BYTES {
                    ready_bytes = 0;
                    w.write_pieces(std::mem::take(&mut ready)).await?;
                }
            }
            if let Err(seen) = floor.record(n, waited) {
                break Some(Cut::TooSlow { seen });
            }
        };
        if !acc.is_empty() {
            ready.push(acc.freeze());
        }
        if !ready.is_empty() {
            w.write_pieces(ready).await?;
        }
        match cut {
            None => Ok(received),
            Some(cut) => Err(PumpError::Cut(cut)),
        }
    }
}

impl App {
    /// Time allowed for a whole small body of at most `limit` bytes: `small_body_timeout`, or, if
    /// longer, the time `limit` bytes take at `upload_min_rate`, so a large manifest is never held
    /// to a stricter pace than an upload.
    pub(crate) fn small_body_deadline(&self, limit: usize) -> Duration {
        let s = &self.settings;
        let at_min_rate = match s.upload_min_rate {
            0 => Duration::ZERO,
            rate => Duration::from_millis(u64::try_from(limit).unwrap_or(u64::MAX).saturating_mul(1000) / rate),
        };
        s.small_body_timeout.max(at_min_rate)
    }

    /// Reads a whole small body (manifest, token form), refusing more than `limit` bytes and
    /// answering 408 when it does not arrive within [`App::small_body_deadline`].
    pub(super) async fn read_small_body(&self, body: Incoming, limit: usize) -> Result<Bytes, ApiError> {
        let allowed = self.small_body_deadline(limit);
        let deadline = Instant::now() + allowed;
        let idle = self.settings.body_idle_timeout;
        let mut body = body;
        let mut buf = BytesMut::new();
        loop {
            let frame = match tokio::time::timeout_at(deadline.min(Instant::now() + idle), body.frame()).await {
                Err(_) => {
                    let why = if Instant::now() >= deadline {
                        format!("the request body did not arrive within {} s", allowed.as_secs_f64())
                    } else {
                        format!("no request body data for {} s", idle.as_secs_f64())
                    };
                    return Err(ApiError::new(StatusCode::REQUEST_TIMEOUT, Code::ManifestInvalid, why));
                }
                Ok(None) => break,
                Ok(Some(Err(e))) => {
                    return Err(ApiError::bad_request(Code::ManifestInvalid, format!("request body broke off: {e}")))
                }
                Ok(Some(Ok(f))) => f,
            };
            if let Ok(d) = frame.into_data() {
                if buf.len() + d.len() > limit {
                    return Err(ApiError::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        Code::SizeInvalid,
                        format!("the request body is larger than the limit of {limit} bytes"),
                    ));
                }
                buf.extend_from_slice(&d);
            }
        }
        Ok(buf.freeze())
    }
}
