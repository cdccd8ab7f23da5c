//! The gRPC transport of `exporter:otap`: one bidi `ArrowMetrics` stream at a time, on
//! a thread of its own.
//!
//! The exporter node (on the ITS thread) encodes each interval into tables and hands
//! them over through a bounded queue; it never waits for the network. This thread
//! owns the connection and the [`Producer`] of the current stream:
//!
//! - batch ids 0, 1, 2, … per stream; statuses are matched by id, in any order;
//! - at most `max_in_flight` batches are unanswered at a time;
//! - a non-OK status for a batch (or CANCELED, the receiver closing itself) stops new
//!   batches on the stream, which ends once the others are answered (the receiver
//!   may have taken them); a broken or closed stream, or no answer within
//!   `ack_timeout`, ends it at once (a stream ended CANCELED, a receiver shutting
//!   down, too, but as no failure). What was not taken is produced again, with a
//!   fresh [`Producer`], on the next stream, in the order it was pushed, after a
//!   backoff (doubling up to `max_backoff`, longer if the receiver asks);
//! - a failure is charged to one batch: the refused one, or the oldest unanswered one
//!   of a stream that broke (the receivers read in order); the others go again
//!   without a charge;
//! - a cumulative batch waiting to go again is let go (counted as superseded, not
//!   dropped) once a newer batch with the totals of all its series was taken: it
//!   would land after that one, an older reading after a newer, and the newer totals
//!   include its values;
//! - the configured headers go with every stream as gRPC metadata;
//! - a batch charged `max_retries + 1` times, or that the receiver refused in a way
//!   it would refuse again (invalid data, credentials, no such service), on its status
//!   or by refusing the stream, is dropped and counted; when the queue is full the
//!   oldest interval is dropped and its batches counted, each as superseded where
//!   newer cumulative batches waiting behind it carry the totals of all its series.
//!   With cumulative temporality the next export carries the totals again, so a
//!   dropped batch loses no value.
//!
//! Memory is bounded by `queue_capacity` intervals waiting plus `max_in_flight` batches
//! in flight (each held once, as its tables). Every failure kind is counted in
//! [`TransportStats`] and logged once per outage: the first time it happens, and again
//! only after a batch was delivered in between.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tonic::codec::CompressionEncoding;
use tonic::metadata::{Ascii, MetadataKey, MetadataMap, MetadataValue};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::encode::MetricsTables;
use crate::producer::{IpcCompression, Producer, ProducerOptions};
use crate::proto::{BatchArrowRecords, BatchStatus};

/// The gRPC method of OTAP metrics.
pub const ARROW_METRICS_PATH: &str =
    "/opentelemetry.proto.experimental.arrow.v1.ArrowMetricsService/ArrowMetrics";

/// gRPC message compression.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrpcCompression {
    /// None (the IPC bodies can be compressed instead).
    #[default]
    None,
    /// gzip.
    Gzip,
    /// zstd.
    Zstd,
    /// zstd, until the receiver refuses zstd messages; then gzip, until it refuses
    /// those too; then none, each for the transport's lifetime. Python's grpcio never
    /// takes zstd but takes gzip; the upstream Rust `receiver:otap` takes only
    /// uncompressed messages unless configured otherwise. A refused stream counts as
    /// no failure, and its batches go again with the next choice.
    Auto,
}

/// How the transport connects, retries and bounds its memory. Its `Debug` shows header
/// names, never their values (tokens).
#[derive(Clone)]
pub struct TransportSettings {
    /// `http://HOST:PORT` or `https://HOST:PORT`.
    pub endpoint: String,
    /// PEM file of the certificate authority for `https` (the web PKI roots otherwise).
    pub ca_file: Option<std::path::PathBuf>,
    /// PEM certificate and private key this client presents, for receivers that require
    /// client certificates (mutual TLS); both or neither.
    pub client_identity: Option<(std::path::PathBuf, std::path::PathBuf)>,
    /// gRPC message compression.
    pub grpc_compression: GrpcCompression,
    /// IPC body compression and dictionaries.
    pub producer: ProducerOptions,
    /// Compress the IPC bodies (zstd) exactly when the messages go uncompressed,
    /// whatever `producer.compression` says: one compression, over the whole message
    /// where the receiver takes it (much smaller for small batches, whose Arrow
    /// metadata IPC compression never reaches), over the bodies where it does not.
    pub ipc_compression_auto: bool,
    /// Batches sent and not yet answered, at most.
    pub max_in_flight: usize,
    /// Intervals waiting for the transport, at most (the oldest is dropped beyond).
    pub queue_capacity: usize,
    /// Failures charged to a batch before it is dropped, at most (see the module
    /// doc: a batch sent again beside the one charged spends nothing).
    pub max_retries: u32,
    /// First wait before reconnecting.
    pub initial_backoff: Duration,
    /// Longest wait before reconnecting.
    pub max_backoff: Duration,
    /// How long a batch may stay unanswered before the stream is given up.
    pub ack_timeout: Duration,
    /// How long connecting may take.
    pub connect_timeout: Duration,
    /// How long one stream is used: after that, no new batch goes on it; once its
    /// batches are answered it is closed, and the next batch opens a new one with fresh
    /// dictionaries. Bounds what both ends hold for a stream, and lets a load balancer
    /// move the exporter.
    pub max_stream_lifetime: Duration,
    /// gRPC metadata sent when each stream opens (`authorization`, API keys): ASCII
    /// names and values; see [`metadata`].
    pub headers: Vec<(String, String)>,
    /// Where warnings go (standard error by default).
    pub log: LogSink,
}

/// Where the transport's warnings go.
#[derive(Clone)]
pub struct LogSink(pub Arc<dyn Fn(&str) + Send + Sync>);

impl Default for LogSink {
    fn default() -> Self {
        LogSink(Arc::new(|line| eprintln!("{line}")))
    }
}

impl std::fmt::Debug for LogSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LogSink")
    }
}

/// What the transport did, in running totals (read by the node into its metric set).
#[derive(Debug, Default)]
pub struct TransportStats {
    /// Batches sent on a stream (retries included, and batches sent again with the
    /// next compression after a receiver refused one under `auto`).
    pub batches_sent: AtomicU64,
    /// Bytes of `BatchArrowRecords` sent (before gRPC compression).
    pub bytes_sent: AtomicU64,
    /// Batches answered OK.
    pub batches_acked: AtomicU64,
    /// Data points in batches answered OK.
    pub points_acked: AtomicU64,
    /// Batches answered with a non-OK status.
    pub batches_rejected: AtomicU64,
    /// Batches sent again on a new stream after a failed one.
    pub batches_retried: AtomicU64,
    /// Batches given up: out of retries, refused for good (invalid, unauthenticated),
    /// pushed out of a full queue (unless superseded), or still held when the exporter
    /// stopped.
    pub batches_dropped: AtomicU64,
    /// Data points in dropped batches.
    pub points_dropped: AtomicU64,
    /// Cumulative batches let go because newer ones carry the totals of all their
    /// series: not sent again after such a newer batch was taken (they would land after
    /// it), or pushed out of a full queue while such newer batches wait behind them. No
    /// value is lost (the newer totals include theirs), only that earlier reading; what
    /// becomes of the newer batches is counted with them.
    pub batches_superseded: AtomicU64,
    /// Data points in superseded batches.
    pub points_superseded: AtomicU64,
    /// Connection attempts that failed.
    pub connect_failures: AtomicU64,
    /// Streams that ended in failure (broken, closed, non-OK status, no answer).
    pub stream_failures: AtomicU64,
    /// Statuses for batch ids that were not in flight.
    pub unknown_statuses: AtomicU64,
    /// Streams given up because a batch stayed unanswered for `ack_timeout`.
    pub ack_timeouts: AtomicU64,
    /// Batches in flight now.
    pub in_flight: AtomicU64,
}

/// The guard of `mutex`, poisoned or not: what it guards stays consistent because
/// every critical section is a single push, pop or assignment (a full queue's push also
/// reads the waiting batches' series, without changing anything).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn bump(counter: &AtomicU64, by: u64) {
    counter.fetch_add(by, Ordering::Relaxed);
}

/// One interval's tables, waiting or in flight.
#[derive(Debug)]
struct Job {
    /// Its place among the batches pushed (oldest first), which retries keep.
    seq: u64,
    tables: MetricsTables,
    points: u64,
    attempts: u32,
    /// Bytes of its last `BatchArrowRecords` (0 before the first send).
    size: u64,
    /// Put back to go again after a failed stream: counted as retried when sent.
    again: bool,
}

/// What the node and the transport thread share.
#[derive(Debug)]
struct Shared {
    /// Intervals waiting, oldest first, each as its batches (one, unless it was split).
    queue: Mutex<VecDeque<VecDeque<Job>>>,
    work: Notify,
    deadline: Mutex<Option<Instant>>,
    stats: Arc<TransportStats>,
    /// The next batch's `Job::seq`.
    next_seq: AtomicU64,
}

/// The node's end: queue tables, close, wait for the end.
#[derive(Debug)]
pub struct TransportHandle {
    shared: Arc<Shared>,
    capacity: usize,
    done: Option<tokio::sync::oneshot::Receiver<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TransportHandle {
    /// Starts the transport thread. Fails only when the thread cannot be started or the
    /// endpoint or CA file is unusable.
    pub fn spawn(settings: TransportSettings, stats: Arc<TransportStats>) -> Result<Self, String> {
        let endpoint = endpoint(&settings)?;
        let metadata = metadata(&settings.headers)?;
        let shared = Arc::new(Shared {
            queue: Mutex::new(VecDeque::with_capacity(settings.queue_capacity)),
            work: Notify::new(),
            deadline: Mutex::new(None),
            stats,
            next_seq: AtomicU64::new(0),
        });
        let (done_tx, done) = tokio::sync::oneshot::channel();
        let capacity = settings.queue_capacity;
        let thread_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("its-otap-grpc".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build();
                let log = LogOnce {
                    sink: settings.log.clone(),
                    logged: Vec::new(),
                };
                match runtime {
                    Ok(runtime) => runtime.block_on(
                        Transport {
                            endpoint,
                            metadata,
                            settings,
                            shared: thread_shared,
                            retry: VecDeque::new(),
                            taken_totals: HashMap::new(),
                            log,
                            auto: Some(CompressionEncoding::Zstd),
                            pushback: None,
                        }
                        .run(),
                    ),
                    Err(e) => {
                        log.error(&format!("cannot start the gRPC runtime: {e}"));
                        thread_shared.drop_all_waiting();
                    }
                }
                let _ = done_tx.send(());
            })
            .map_err(|e| format!("cannot start the gRPC transport thread: {e}"))?;
        Ok(TransportHandle {
            shared,
            capacity,
            done: Some(done),
            thread: Some(thread),
        })
    }

    /// Queues one interval's tables; never waits. When the queue is full the oldest
    /// waiting interval is dropped, each of its batches counted as dropped, or as
    /// superseded where the cumulative batches behind it carry the totals of all its
    /// series.
    pub fn push(&self, tables: MetricsTables) {
        self.push_interval(vec![tables]);
    }

    /// Queues the batches of one interval (several when it was split). A full queue
    /// drops its oldest interval, all its batches, counted: an interval never pushes
    /// out its own parts.
    pub fn push_interval(&self, parts: Vec<MetricsTables>) {
        if parts.is_empty() {
            return;
        }
        let jobs = parts
            .into_iter()
            .map(|tables| Job {
                seq: self.shared.next_seq.fetch_add(1, Ordering::Relaxed),
                points: tables.point_count() as u64,
                tables,
                attempts: 0,
                size: 0,
                again: false,
            })
            .collect();
        {
            let mut queue = lock(&self.shared.queue);
            let oldest = if queue.len() >= self.capacity {
                queue.pop_front()
            } else {
                None
            };
            queue.push_back(jobs);
            for job in oldest.iter().flatten() {
                if carried_on(job, queue.iter().flatten()) {
                    self.shared.count_superseded(job);
                } else {
                    self.shared.count_dropped(job);
                }
            }
        }
        self.shared.work.notify_one();
    }

    /// Asks the transport to deliver what it holds until shortly before `deadline`,
    /// then to stop and count what is left; waits (without blocking the thread) until
    /// it has, and returns by `deadline`.
    pub async fn close(&mut self, deadline: Instant) {
        let left = deadline.saturating_duration_since(Instant::now());
        // Keep a tenth (up to 100 ms) for the transport to count what it drops.
        let give_up_at = deadline
            .checked_sub((left / 10).min(Duration::from_millis(100)))
            .unwrap_or(deadline);
        *lock(&self.shared.deadline) = Some(give_up_at);
        self.shared.work.notify_one();
        if let Some(done) = self.done.take() {
            let _ = tokio::time::timeout_at(tokio::time::Instant::from_std(deadline), done).await;
        }
        if let Some(thread) = self.thread.take()
            && thread.is_finished()
        {
            let _ = thread.join();
        }
    }
}

impl Drop for TransportHandle {
    fn drop(&mut self) {
        // Dropped without `close` (an engine error): let the thread finish on its own
        // with what it holds until a short deadline.
        let mut deadline = lock(&self.shared.deadline);
        if deadline.is_none() {
            *deadline = Some(Instant::now() + Duration::from_secs(1));
            drop(deadline);
            self.shared.work.notify_one();
        }
    }
}

impl Shared {
    fn count_dropped(&self, job: &Job) {
        bump(&self.stats.batches_dropped, 1);
        bump(&self.stats.points_dropped, job.points);
    }

    fn count_superseded(&self, job: &Job) {
        bump(&self.stats.batches_superseded, 1);
        bump(&self.stats.points_superseded, job.points);
    }

    fn drop_all_waiting(&self) {
        let intervals: Vec<VecDeque<Job>> = lock(&self.queue).drain(..).collect();
        for job in intervals.iter().flatten() {
            self.count_dropped(job);
        }
    }

    /// The next batch: the oldest interval's next part.
    fn pop(&self) -> Option<Job> {
        let mut queue = lock(&self.queue);
        let oldest = queue.front_mut()?;
        let job = oldest.pop_front();
        if oldest.is_empty() {
            queue.pop_front();
        }
        job
    }

    fn has_waiting(&self) -> bool {
        !lock(&self.queue).is_empty()
    }

    /// Closing: the node (or the handle's drop) set a deadline.
    fn closing(&self) -> bool {
        self.deadline().is_some()
    }

    fn deadline(&self) -> Option<Instant> {
        *lock(&self.deadline)
    }
}

/// `headers` as gRPC metadata: names as HTTP/2 allows (lowercased), values of visible
/// ASCII. Refused: binary (`-bin`) metadata, the names gRPC itself uses (`grpc-*`,
/// `content-type`, `te`), HTTP/1 connection headers (HTTP/2 forbids them, and hyper
/// would drop them, and with `connection` the headers it names, without a word), and a
/// name given twice.
pub fn metadata(headers: &[(String, String)]) -> Result<MetadataMap, String> {
    const CONNECTION: [&str; 5] = [
        "connection",
        "keep-alive",
        "proxy-connection",
        "transfer-encoding",
        "upgrade",
    ];
    let mut map = MetadataMap::new();
    for (name, value) in headers {
        let lower = name.to_ascii_lowercase();
        if lower.starts_with("grpc-") || lower == "content-type" || lower == "te" {
            return Err(format!(
                "header `{name}`: gRPC sets it itself; give your own headers only"
            ));
        }
        if CONNECTION.contains(&lower.as_str()) {
            return Err(format!(
                "header `{name}`: a connection header, which HTTP/2 does not carry"
            ));
        }
        if map.contains_key(lower.as_str()) {
            return Err(format!(
                "header `{name}`: given twice (names are case-insensitive)"
            ));
        }
        if lower.ends_with("-bin") {
            return Err(format!(
                "header `{name}`: binary (`-bin`) metadata is not supported; give an ASCII header"
            ));
        }
        let key = MetadataKey::<Ascii>::from_bytes(lower.as_bytes()).map_err(|_| {
            format!("header `{name}`: not a valid header name (letters, digits, `-`, `_`, `.`)")
        })?;
        let value = MetadataValue::<Ascii>::try_from(value.as_str()).map_err(|_| {
            format!("header `{name}`: the value must be visible ASCII (no line breaks or control characters)")
        })?;
        map.append(key, value);
    }
    Ok(map)
}

fn endpoint(settings: &TransportSettings) -> Result<Endpoint, String> {
    let text = settings.endpoint.as_str();
    let https = text.starts_with("https://");
    if !https && !text.starts_with("http://") {
        return Err(format!(
            "endpoint `{text}`: give `http://HOST:PORT` or `https://HOST:PORT`"
        ));
    }
    let mut endpoint = Endpoint::from_shared(text.to_owned())
        .map_err(|e| format!("endpoint `{text}`: {e}"))?
        .connect_timeout(settings.connect_timeout)
        .tcp_nodelay(true);
    if https {
        let mut tls = ClientTlsConfig::new().with_webpki_roots();
        let read = |what: &str, path: &std::path::Path| {
            std::fs::read(path).map_err(|e| format!("{what} `{}`: {e}", path.display()))
        };
        if let Some(path) = &settings.ca_file {
            tls = tls.ca_certificate(Certificate::from_pem(read("ca_file", path)?));
        }
        if let Some((cert, key)) = &settings.client_identity {
            tls = tls.identity(Identity::from_pem(
                read("cert_file", cert)?,
                read("key_file", key)?,
            ));
        }
        endpoint = endpoint
            .tls_config(tls)
            .map_err(|e| format!("endpoint `{text}`: TLS: {e}"))?;
    } else if settings.ca_file.is_some() || settings.client_identity.is_some() {
        return Err(format!(
            "`ca_file`, `cert_file` and `key_file` are for `https` endpoints; `{text}` is plain http"
        ));
    }
    Ok(endpoint)
}

/// Failure kinds, each logged once per outage (unknown batch ids: once).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Problem {
    Connect,
    Broken,
    Closed,
    Rejected,
    UnknownBatchId,
    NoAnswer,
    Dropped,
}

#[derive(Debug)]
struct LogOnce {
    sink: LogSink,
    logged: Vec<Problem>,
}

impl LogOnce {
    fn warn(&mut self, problem: Problem, text: impl FnOnce() -> String) {
        if !self.logged.contains(&problem) {
            self.logged.push(problem);
            let once = if problem == Problem::UnknownBatchId {
                "logged once"
            } else {
                "logged once until delivery resumes"
            };
            (self.sink.0)(&format!("exporter:otap: {} ({once})", text()));
        }
    }

    /// A batch went through: the outage is over. Unknown batch ids are a peer's bug,
    /// not an outage; they stay logged once for the transport's lifetime.
    fn delivered(&mut self, endpoint: &str) {
        let before = self.logged.len();
        self.logged.retain(|p| *p == Problem::UnknownBatchId);
        if self.logged.len() < before {
            (self.sink.0)(&format!("exporter:otap: delivering to {endpoint} again"));
        }
    }

    fn error(&self, text: &str) {
        (self.sink.0)(&format!("exporter:otap: {text}"));
    }
}

/// Why a stream could not be opened.
enum Refused {
    /// The receiver does not take our message compression; `Auto` moved to the next.
    Compression,
    /// Anything else; `retryable` as [`retryable`] says for its code.
    Other { retryable: bool },
}

/// Why a stream ended.
enum StreamEnd {
    /// Closing and nothing left to send: done.
    Finished,
    /// Ended without a failure (the receiver closed an idle stream, a retired one
    /// drained, or `Auto` moved to the next compression): reconnect when there is work,
    /// without a backoff and without counting a failure.
    Idle,
    /// A failure; reconnect after a backoff.
    Failed,
    /// The receiver cancelled the stream's batches and took none: reconnect after a
    /// backoff, without counting a failure.
    Paused,
}

impl StreamEnd {
    /// How a stream that ran out of batches in flight ended: in failure if a batch
    /// was refused on it; with a pause if the receiver cancelled and took nothing.
    fn after(failed: bool, paused: bool) -> StreamEnd {
        if failed {
            StreamEnd::Failed
        } else if paused {
            StreamEnd::Paused
        } else {
            StreamEnd::Idle
        }
    }
}

/// What the receiver said on one stream so far.
#[derive(Default)]
struct Heard {
    /// An OK.
    acked: bool,
    /// CANCELED: the receiver is closing the stream.
    cancelled: bool,
    /// A refusal: the stream ends in failure once the batches in flight beside it are
    /// answered (the receiver may have taken them: sending them again would count
    /// them twice).
    failed: bool,
}

impl Heard {
    /// Some status for a batch in flight: the receiver reads our messages.
    fn answered(&self) -> bool {
        self.acked || self.cancelled || self.failed
    }

    /// The stream takes no new batch.
    fn retiring(&self) -> bool {
        self.cancelled || self.failed
    }

    /// How the stream ends once nothing is in flight.
    fn end(&self) -> StreamEnd {
        StreamEnd::after(self.failed, self.cancelled && !self.acked)
    }
}

/// What an answer said.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Answer {
    /// OK for a batch in flight.
    Acked,
    /// A non-OK status for a batch in flight.
    Refused,
    /// A status for a batch id not in flight.
    Unknown,
}

struct Transport {
    endpoint: Endpoint,
    /// The configured headers, sent when each stream opens.
    metadata: MetadataMap,
    settings: TransportSettings,
    shared: Arc<Shared>,
    /// Batches to send again on the next stream, oldest first (by `Job::seq`), ahead
    /// of those waiting in the queue.
    retry: VecDeque<Job>,
    /// For each series of the cumulative batches answered OK, the newest such batch's
    /// `Job::seq`: what supersedes an older batch waiting to go again. One entry per
    /// series, as many as the aggregation upstream holds.
    taken_totals: HashMap<u64, u64>,
    log: LogOnce,
    /// What `GrpcCompression::Auto` sends now: zstd, then gzip, then nothing, as the
    /// receiver refuses each.
    auto: Option<CompressionEncoding>,
    /// The least wait before the next stream, as the receiver asked with its last
    /// refusal (`grpc-retry-pushback-ms`, or memory pressure).
    pushback: Option<Duration>,
}

impl Transport {
    async fn run(mut self) {
        let mut backoff = self.settings.initial_backoff;
        loop {
            self.let_superseded_go();
            // Connect only when there is something to send.
            while self.retry.is_empty() && !self.shared.has_waiting() {
                if self.shared.closing() {
                    return;
                }
                self.shared.work.notified().await;
            }
            if self.past_deadline() {
                self.give_up();
                return;
            }
            let connected = self
                .within(self.settings.connect_timeout, self.endpoint.connect())
                .await;
            let channel = match connected {
                Some(Ok(channel)) => channel,
                Some(Err(e)) => {
                    bump(&self.shared.stats.connect_failures, 1);
                    let endpoint = &self.settings.endpoint;
                    self.log.warn(Problem::Connect, || {
                        format!("cannot connect to {endpoint}: {}", error_chain(&e))
                    });
                    self.back_off(&mut backoff).await;
                    continue;
                }
                None => {
                    bump(&self.shared.stats.connect_failures, 1);
                    let endpoint = &self.settings.endpoint;
                    let timeout = self.settings.connect_timeout;
                    self.log.warn(Problem::Connect, || {
                        format!("cannot connect to {endpoint} within {timeout:?}")
                    });
                    self.back_off(&mut backoff).await;
                    continue;
                }
            };
            match self.stream(channel, &mut backoff).await {
                StreamEnd::Finished => return,
                StreamEnd::Idle => {}
                StreamEnd::Failed => {
                    bump(&self.shared.stats.stream_failures, 1);
                    self.back_off(&mut backoff).await;
                }
                StreamEnd::Paused => self.back_off(&mut backoff).await,
            }
        }
    }

    /// `work` run to its end, unless `limit` from now or the shutdown deadline (one
    /// set meanwhile too) comes first: `None` then.
    async fn within<F: std::future::Future>(&self, limit: Duration, work: F) -> Option<F::Output> {
        let give_up_at = tokio::time::Instant::now() + limit;
        let mut work = std::pin::pin!(work);
        loop {
            let until = self.shared.deadline().map_or(give_up_at, |deadline| {
                give_up_at.min(tokio::time::Instant::from_std(deadline))
            });
            tokio::select! {
                out = &mut work => return Some(out),
                () = tokio::time::sleep_until(until) => return None,
                // A close sets the deadline: look again.
                () = self.shared.work.notified() => {}
            }
        }
    }

    fn past_deadline(&self) -> bool {
        self.shared
            .deadline()
            .is_some_and(|deadline| Instant::now() >= deadline)
    }

    /// Waits out the backoff, or what the receiver asked for if longer (cut short by
    /// the shutdown deadline), then doubles the backoff.
    async fn back_off(&mut self, backoff: &mut Duration) {
        let wait = self.pushback.take().map_or(*backoff, |p| p.max(*backoff));
        let mut until = tokio::time::Instant::now() + wait;
        if let Some(deadline) = self.shared.deadline() {
            until = until.min(tokio::time::Instant::from_std(deadline));
        }
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(until) => break,
                () = self.shared.work.notified() => {
                    // A close sets the deadline: recompute the wake-up time.
                    if let Some(deadline) = self.shared.deadline() {
                        until = until.min(tokio::time::Instant::from_std(deadline));
                    }
                }
            }
        }
        *backoff = (*backoff * 2).min(self.settings.max_backoff);
        if self.past_deadline() {
            self.give_up();
        }
    }

    /// The deadline passed: everything still held is dropped and counted.
    fn give_up(&mut self) {
        self.let_superseded_go();
        let held = self.retry.len() as u64;
        for job in self.retry.drain(..) {
            self.shared.count_dropped(&job);
        }
        self.shared.drop_all_waiting();
        if held > 0 || self.shared.stats.batches_dropped.load(Ordering::Relaxed) > 0 {
            let endpoint = &self.settings.endpoint;
            self.log.warn(Problem::Dropped, || {
                format!("stopped before delivering everything to {endpoint}; the rest is counted as dropped")
            });
        }
    }

    fn next_job(&mut self) -> Option<Job> {
        self.retry.pop_front().or_else(|| self.shared.pop())
    }

    /// A batch failed on a stream: send it again on the next one, or drop it.
    fn requeue(&mut self, mut job: Job, retryable: bool) {
        job.attempts += 1;
        if retryable && job.attempts <= self.settings.max_retries {
            job.again = true;
            self.put_back(job);
        } else {
            self.shared.count_dropped(&job);
            let endpoint = &self.settings.endpoint;
            self.log.warn(Problem::Dropped, || {
                format!("dropping batches {endpoint} did not take (out of retries, or refused in a way a retry cannot fix); each is counted in its.exporter.otap.dropped_batches")
            });
        }
    }

    /// A client for the next stream on `channel`, with its message compression
    /// (`Auto` resolved), and a fresh producer whose IPC compression goes with it.
    fn next_stream(&self, channel: Channel) -> (tonic::client::Grpc<Channel>, Producer) {
        let compression = match self.settings.grpc_compression {
            GrpcCompression::None => None,
            GrpcCompression::Gzip => Some(CompressionEncoding::Gzip),
            GrpcCompression::Zstd => Some(CompressionEncoding::Zstd),
            GrpcCompression::Auto => self.auto,
        };
        let mut options = self.settings.producer.clone();
        if self.settings.ipc_compression_auto {
            options.compression = if compression.is_some() {
                IpcCompression::None
            } else {
                IpcCompression::Zstd
            };
        }
        let mut grpc = tonic::client::Grpc::new(channel);
        if let Some(encoding) = compression {
            grpc = grpc.send_compressed(encoding);
        }
        let grpc = grpc
            .accept_compressed(CompressionEncoding::Gzip)
            .accept_compressed(CompressionEncoding::Zstd);
        (grpc, Producer::new(options))
    }

    /// Whether `status` ending a stream means the receiver does not take the messages
    /// `Auto` compresses now; if so, the next streams take the next choice (zstd, then
    /// gzip, then none), and that is logged once per step.
    fn compression_refused_by(&mut self, status: &tonic::Status) -> bool {
        let refused = match self.auto {
            Some(encoding) if self.settings.grpc_compression == GrpcCompression::Auto => encoding,
            _ => return false,
        };
        if !refuses_compression(status, refused) {
            return false;
        }
        self.auto = match refused {
            CompressionEncoding::Zstd => Some(CompressionEncoding::Gzip),
            _ => None,
        };
        let next = match self.auto {
            Some(_) => "gzip-compressed",
            None if self.settings.ipc_compression_auto => {
                "uncompressed, with zstd Arrow IPC bodies,"
            }
            None => "uncompressed",
        };
        self.log.error(&format!(
            "{} does not take {refused}-compressed gRPC messages ({}); sending them {next} from now on (set `grpc_compression` to choose)",
            self.settings.endpoint,
            status_text(status)
        ));
        true
    }

    async fn stream(&mut self, channel: Channel, backoff: &mut Duration) -> StreamEnd {
        let window = self.settings.max_in_flight;
        let (tx, rx) = tokio::sync::mpsc::channel::<BatchArrowRecords>(window);
        let (grpc, mut producer) = self.next_stream(channel);
        let mut in_flight: BTreeMap<i64, (Job, tokio::time::Instant)> = BTreeMap::new();

        // Fill the window first: some servers answer the headers only with the first
        // status, and tonic waits for the headers before it hands out the responses.
        self.fill(&mut producer, &tx, &mut in_flight);
        let mut inbound = match self.open(grpc, rx).await {
            Ok(inbound) => inbound,
            Err(Refused::Compression) => {
                self.give_back(in_flight);
                return StreamEnd::Idle;
            }
            Err(Refused::Other { retryable }) => {
                self.refused_at_open(in_flight, retryable);
                return StreamEnd::Failed;
            }
        };

        let retire_at = tokio::time::Instant::now() + self.settings.max_stream_lifetime;
        let mut heard = Heard::default();
        loop {
            // A stream past its lifetime, one the receiver is closing, and one that
            // failed take no new batch and end once answered.
            let retiring = heard.retiring() || tokio::time::Instant::now() >= retire_at;
            // Nothing new goes out past the shutdown deadline: it is counted as dropped.
            if !retiring && !self.past_deadline() {
                self.fill(&mut producer, &tx, &mut in_flight);
            }
            self.shared
                .stats
                .in_flight
                .store(in_flight.len() as u64, Ordering::Relaxed);
            if in_flight.is_empty() && self.retry.is_empty() && !self.shared.has_waiting() {
                if self.shared.closing() {
                    // Half-close our side; the receiver ends the stream.
                    drop(tx);
                    return StreamEnd::Finished;
                }
            } else if self.past_deadline() {
                // Past the deadline: this gives up what is held, too.
                self.drop_in_flight(in_flight);
                return StreamEnd::Finished;
            }
            if retiring && in_flight.is_empty() {
                // Unless it failed, the next batch opens a fresh stream right away.
                drop(tx);
                return heard.end();
            }
            let oldest = in_flight.values().map(|(_, sent)| *sent).min();
            let answer_by = oldest.map(|sent| sent + self.settings.ack_timeout);
            let deadline = self.shared.deadline().map(tokio::time::Instant::from_std);
            let wake_at = [answer_by, deadline, (!retiring).then_some(retire_at)]
                .into_iter()
                .flatten()
                .min();
            tokio::select! {
                message = inbound.message() => match message {
                    // Servers end streams that sat idle (or too long): not a failure
                    // when nothing was waiting for an answer.
                    Ok(None) | Err(_) if in_flight.is_empty() => return heard.end(),
                    // The receiver closing itself, as it said with CANCELED: what it
                    // did not answer goes again, without a charge (it read none of it).
                    Ok(None) | Err(_) if heard.cancelled => {
                        self.end_in_flight(in_flight, Self::send_again);
                        return StreamEnd::after(heard.failed, !heard.acked);
                    }
                    Ok(Some(status)) => self.hear(&status, &mut in_flight, &mut heard, backoff),
                    Ok(None) => {
                        let endpoint = &self.settings.endpoint;
                        let open = in_flight.len();
                        self.log.warn(Problem::Closed, || {
                            format!("{endpoint} ended the stream with {open} batches unanswered")
                        });
                        self.fail_in_flight(in_flight, heard.failed, true);
                        return StreamEnd::Failed;
                    }
                    // A receiver that answered has read our messages: a later status
                    // naming the encoding is no refusal of it.
                    Err(status) if !heard.answered() && self.compression_refused_by(&status) => {
                        self.give_back(in_flight);
                        return StreamEnd::Idle;
                    }
                    // The stream cancelled: the receiver shutting down (the Go one ends
                    // its streams so, "server stream shutdown"), no failure of ours or
                    // of the batches. What it did not answer goes again; the oldest
                    // spends a retry, so that a receiver cancelling every stream cannot
                    // keep a batch going for ever.
                    Err(status) if status.code() == tonic::Code::Cancelled => {
                        self.fail_in_flight(in_flight, heard.failed, true);
                        return StreamEnd::after(heard.failed, !heard.acked);
                    }
                    Err(status) => {
                        self.broken(&status, in_flight, &heard);
                        return StreamEnd::Failed;
                    }
                },
                // New work, or a close setting its deadline (also while retiring or
                // with a full window: the deadline must cut the wait short).
                () = self.shared.work.notified() => {}
                () = sleep_until_or_forever(wake_at) => {
                    if answer_by.is_some_and(|a| tokio::time::Instant::now() >= a) {
                        self.no_answer();
                        self.fail_in_flight(in_flight, heard.failed, true);
                        return StreamEnd::Failed;
                    }
                }
            }
        }
    }

    /// The receiver refused the stream before reading a batch: its batches spend a
    /// retry for the oldest (see [`Transport::fail_in_flight`]), or, when a retry cannot
    /// help (wrong credentials, no ArrowMetrics service), are all rejected and dropped.
    fn refused_at_open(
        &mut self,
        in_flight: BTreeMap<i64, (Job, tokio::time::Instant)>,
        retryable: bool,
    ) {
        if retryable {
            self.fail_in_flight(in_flight, false, true);
        } else {
            bump(&self.shared.stats.batches_rejected, in_flight.len() as u64);
            self.drop_in_flight(in_flight);
        }
    }

    /// Handles one status on a stream and notes in `heard` what it says.
    fn hear(
        &mut self,
        status: &BatchStatus,
        in_flight: &mut BTreeMap<i64, (Job, tokio::time::Instant)>,
        heard: &mut Heard,
        backoff: &mut Duration,
    ) {
        // OTAP's CANCELED: the receiver is closing itself (it read the end of our
        // stream, or it shuts down), which is no error. That batch goes again on the
        // next stream, spending a retry, so that a receiver cancelling everything
        // cannot keep a batch going for ever.
        if status.status_code == tonic::Code::Cancelled as i32
            && let Some((job, _)) = in_flight.remove(&status.batch_id)
        {
            self.requeue(job, true);
            heard.cancelled = true;
            return;
        }
        match self.answer(status, in_flight) {
            Answer::Acked => {
                heard.acked = true;
                *backoff = self.settings.initial_backoff;
            }
            Answer::Refused => heard.failed = true,
            Answer::Unknown => {}
        }
    }

    /// The stream ended with `status`: logged once, and the oldest batch in flight
    /// charged with it (see [`Transport::fail_in_flight`]); but where the receiver names a
    /// size limit, the batches over it are dropped instead, since they would break the
    /// next stream too, and the others go again.
    fn broken(
        &mut self,
        status: &tonic::Status,
        in_flight: BTreeMap<i64, (Job, tokio::time::Instant)>,
        heard: &Heard,
    ) {
        let endpoint = &self.settings.endpoint;
        self.log.warn(Problem::Broken, || {
            format!("stream to {endpoint} broke: {}", status_text(status))
        });
        self.pushback = pushback(status);
        let limit = size_limit(status);
        if let Some(limit) = limit.filter(|l| in_flight.values().any(|(job, _)| job.size > *l)) {
            self.end_in_flight(in_flight, |t, job| {
                if job.size <= limit {
                    t.send_again(job);
                } else {
                    t.requeue(job, false);
                }
            });
        } else {
            // No batch over a limit the status names (it may be our own client's, on
            // an oversized answer): charged as any broken stream.
            // UNIMPLEMENTED on a stream the receiver took is no missing service.
            let code = status.code();
            let retry = code == tonic::Code::Unimplemented || retryable(code);
            self.fail_in_flight(in_flight, heard.failed, retry);
        }
    }

    /// Starts the `ArrowMetrics` call on a connected channel.
    async fn open(
        &mut self,
        mut grpc: tonic::client::Grpc<Channel>,
        rx: tokio::sync::mpsc::Receiver<BatchArrowRecords>,
    ) -> Result<tonic::Streaming<BatchStatus>, Refused> {
        let mut request = tonic::Request::new(tokio_stream::wrappers::ReceiverStream::new(rx));
        *request.metadata_mut() = self.metadata.clone();
        let path = http::uri::PathAndQuery::from_static(ARROW_METRICS_PATH);
        let codec = tonic_prost::ProstCodec::<BatchArrowRecords, BatchStatus>::default();
        let started = async {
            grpc.ready().await.map_err(|e| {
                tonic::Status::unavailable(format!("channel not ready: {}", error_chain(&e)))
            })?;
            grpc.streaming(request, path, codec).await
        };
        match self.within(self.settings.ack_timeout, started).await {
            None => {
                self.no_answer();
                Err(Refused::Other { retryable: true })
            }
            Some(Err(status)) if self.compression_refused_by(&status) => Err(Refused::Compression),
            Some(Err(status)) => {
                self.pushback = pushback(&status);
                let endpoint = &self.settings.endpoint;
                let retryable = retryable(status.code());
                self.log.warn(Problem::Broken, || {
                    format!("{endpoint} refused the stream: {}", status_text(&status))
                });
                Err(Refused::Other { retryable })
            }
            Some(Ok(response)) => Ok(response.into_inner()),
        }
    }

    fn no_answer(&mut self) {
        bump(&self.shared.stats.ack_timeouts, 1);
        let endpoint = &self.settings.endpoint;
        let timeout = self.settings.ack_timeout;
        self.log.warn(Problem::NoAnswer, || {
            format!("{endpoint} did not answer within {timeout:?}; reconnecting")
        });
    }

    /// Produces and sends batches until the window is full or nothing waits.
    fn fill(
        &mut self,
        producer: &mut Producer,
        tx: &tokio::sync::mpsc::Sender<BatchArrowRecords>,
        in_flight: &mut BTreeMap<i64, (Job, tokio::time::Instant)>,
    ) {
        while in_flight.len() < self.settings.max_in_flight {
            // Room first: a batch produced moves the stream's dictionaries on, so it
            // must go out. The channel holds `max_in_flight` messages, so there is room
            // unless the stream is gone, which the response side reports.
            let Ok(permit) = tx.try_reserve() else { break };
            let Some(job) = self.next_job() else { break };
            let bar = match producer.produce(&job.tables) {
                Ok(bar) => bar,
                Err(e) => {
                    // Our own encoding failed: this batch can never be sent.
                    self.log
                        .error(&format!("cannot write Arrow IPC, batch dropped: {e}"));
                    self.shared.count_dropped(&job);
                    continue;
                }
            };
            let id = bar.batch_id;
            let size = prost::Message::encoded_len(&bar) as u64;
            permit.send(bar);
            bump(&self.shared.stats.batches_sent, 1);
            if job.again {
                bump(&self.shared.stats.batches_retried, 1);
            }
            bump(&self.shared.stats.bytes_sent, size);
            let job = Job {
                size,
                again: false,
                ..job
            };
            in_flight.insert(id, (job, tokio::time::Instant::now()));
        }
    }

    /// Handles one status. A refused batch ends the stream in failure once the others
    /// are answered.
    fn answer(
        &mut self,
        status: &BatchStatus,
        in_flight: &mut BTreeMap<i64, (Job, tokio::time::Instant)>,
    ) -> Answer {
        let Some((job, _)) = in_flight.remove(&status.batch_id) else {
            bump(&self.shared.stats.unknown_statuses, 1);
            let endpoint = &self.settings.endpoint;
            let id = status.batch_id;
            self.log.warn(Problem::UnknownBatchId, || {
                format!("{endpoint} answered batch id {id}, which is not in flight; ignored (and counted in its.exporter.otap.unknown_statuses)")
            });
            return Answer::Unknown;
        };
        if status.status_code == 0 {
            bump(&self.shared.stats.batches_acked, 1);
            bump(&self.shared.stats.points_acked, job.points);
            for key in &job.tables.totals_of {
                let newest = self.taken_totals.entry(*key).or_insert(job.seq);
                *newest = job.seq.max(*newest);
            }
            self.log.delivered(&self.settings.endpoint);
            return Answer::Acked;
        }
        bump(&self.shared.stats.batches_rejected, 1);
        let code = tonic::Code::from_i32(status.status_code);
        let retryable = retryable(code);
        let endpoint = &self.settings.endpoint;
        self.log.warn(Problem::Rejected, || {
            format!(
                "{endpoint} answered {code:?} ({}): {}; reconnecting with a fresh stream once the batches in flight are answered",
                status.status_code,
                peer_text(&status.status_message)
            )
        });
        self.requeue(job, retryable);
        Answer::Refused
    }

    /// The stream ended with `in_flight` unanswered: `each` handles them oldest first
    /// (and puts what goes again back in `retry` with [`Transport::put_back`]); past
    /// the shutdown deadline, what is held is then given up.
    fn end_in_flight(
        &mut self,
        in_flight: BTreeMap<i64, (Job, tokio::time::Instant)>,
        mut each: impl FnMut(&mut Self, Job),
    ) {
        for (_, (job, _)) in in_flight {
            each(self, job);
        }
        self.shared.stats.in_flight.store(0, Ordering::Relaxed);
        if self.past_deadline() {
            self.give_up();
        }
    }

    /// `job` back in `retry`, in the order the batches were pushed: an older interval
    /// never goes out after a newer one it was queued before.
    fn put_back(&mut self, job: Job) {
        let at = self.retry.partition_point(|j| j.seq < job.seq);
        self.retry.insert(at, job);
    }

    /// The stream could not carry its batches for a reason of ours (a compression the
    /// receiver does not take): they go first on the next stream, as if never sent.
    fn give_back(&mut self, in_flight: BTreeMap<i64, (Job, tokio::time::Instant)>) {
        self.end_in_flight(in_flight, Self::put_back);
    }

    /// Every batch in flight dropped and counted: the receiver would refuse them all
    /// again, or the shutdown deadline passed.
    fn drop_in_flight(&mut self, in_flight: BTreeMap<i64, (Job, tokio::time::Instant)>) {
        self.end_in_flight(in_flight, |t, job| t.requeue(job, false));
    }

    /// The stream failed (broken, ended, silent or refused at open) with `in_flight`
    /// unanswered. One failure spends one retry: if a batch was `refused` on this
    /// stream, that one has paid already; otherwise the oldest unanswered batch pays
    /// (or is dropped, when not `retryable` or out of retries), since the receiver
    /// reads in order and most likely failed on it. The others, which it most likely
    /// never read, go again first on the next stream without spending one. Every
    /// failed stream charges a batch, so none can keep the others going for ever.
    fn fail_in_flight(
        &mut self,
        in_flight: BTreeMap<i64, (Job, tokio::time::Instant)>,
        refused: bool,
        retryable: bool,
    ) {
        let mut charge = !refused;
        self.end_in_flight(in_flight, |t, job| {
            if std::mem::take(&mut charge) {
                t.requeue(job, retryable);
            } else {
                t.send_again(job);
            }
        });
    }

    /// Whether `job` carries cumulative totals only of series whose newer totals the
    /// receiver took already (a batch refused while newer ones beside it were taken,
    /// say): sending it would put an older reading after a newer one, which backends
    /// reject or read as a counter reset. A series it alone carries makes it go.
    fn superseded(&self, job: &Job) -> bool {
        !job.tables.totals_of.is_empty()
            && job
                .tables
                .totals_of
                .iter()
                .all(|key| self.taken_totals.get(key).is_some_and(|&seq| seq > job.seq))
    }

    /// Lets the batches waiting to go again that newer totals superseded go, counted.
    /// Only those can be: the others wait in the queue, newer than anything sent.
    fn let_superseded_go(&mut self) {
        let mut retry = std::mem::take(&mut self.retry);
        retry.retain(|job| {
            let superseded = self.superseded(job);
            if superseded {
                self.shared.count_superseded(job);
            }
            !superseded
        });
        self.retry = retry;
    }

    /// `job` goes again on the next stream without spending a retry.
    fn send_again(&mut self, mut job: Job) {
        job.again = true;
        self.put_back(job);
    }
}

/// Whether `newer` batches carry the totals of every series the cumulative `job`
/// carries: pushed out of a full queue, it then loses nothing (the newer totals include
/// its values), and is counted as superseded; what becomes of the newer batches is
/// counted with them. Runs under the queue's lock, so the usual case, one newer
/// cumulative batch with all the series, is a merge of two sorted lists; only a job
/// whose series several newer batches share (split intervals) takes a copy.
fn carried_on<'a>(job: &Job, newer: impl Iterator<Item = &'a Job> + Clone) -> bool {
    let keys = &job.tables.totals_of;
    if keys.is_empty() {
        return false;
    }
    if newer
        .clone()
        .any(|other| is_subset(keys, &other.tables.totals_of))
    {
        return true;
    }
    let mut left = keys.clone();
    for other in newer {
        left.retain(|key| other.tables.totals_of.binary_search(key).is_err());
        if left.is_empty() {
            return true;
        }
    }
    false
}

/// Whether every key of `keys` is in `of`, both sorted.
fn is_subset(keys: &[u64], of: &[u64]) -> bool {
    let mut of = of.iter();
    keys.iter().all(|key| of.any(|other| other == key))
}

/// Whether a batch refused with `code` is worth sending again: not when the receiver
/// will refuse the same bytes again (invalid data, credentials, a missing service).
fn retryable(code: tonic::Code) -> bool {
    !matches!(
        code,
        tonic::Code::InvalidArgument
            | tonic::Code::PermissionDenied
            | tonic::Code::Unauthenticated
            | tonic::Code::Unimplemented
    )
}

/// Whether `status` says the receiver cannot read messages compressed with `encoding`.
/// tonic answers UNIMPLEMENTED "Content is compressed with `zstd` which isn't
/// supported", grpc-go UNIMPLEMENTED "grpc: Decompressor is not installed for
/// grpc-encoding", grpc-java UNIMPLEMENTED "Can't find decompressor for zstd",
/// C-core "Compression algorithm 'zstd' is disabled", and grpcio INTERNAL "Error
/// parsing 'grpc-encoding' metadata"; a server may also list what it takes in
/// `grpc-accept-encoding`.
fn refuses_compression(status: &tonic::Status, encoding: CompressionEncoding) -> bool {
    let code = matches!(
        status.code(),
        tonic::Code::Unimplemented | tonic::Code::Internal | tonic::Code::InvalidArgument
    );
    // Naming the header, or the encoding as the message's compression: not our own
    // "error decompressing" of a response, nor a decode error that mentions zstd (of
    // an Arrow IPC body, say).
    let name = encoding.to_string();
    let text = status.message().to_ascii_lowercase();
    let named = text.contains("grpc-encoding")
        || text.contains(&format!("compressed with `{name}`"))
        || text.contains(&format!("compressed with {name}"))
        || text.contains(&format!("decompressor for {name}"))
        || text.contains(&format!("algorithm '{name}'"))
        // UNIMPLEMENTED is about what the server cannot do, never a decode error.
        || (status.code() == tonic::Code::Unimplemented && text.contains(&name));
    let not_listed = status
        .metadata()
        .get("grpc-accept-encoding")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accepted| !accepted.split(',').any(|e| e.trim() == name));
    code && (named || not_listed)
}

async fn sleep_until_or_forever(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// What a peer wrote, fit for one log line: control characters, line separators and
/// bidirectional overrides escaped, and backslashes doubled (a newline or a terminal
/// escape cannot forge or hide lines, nor pass for an escaped one), cut after about
/// `PEER_TEXT_MAX` bytes with the count of the rest.
fn peer_text(text: &str) -> String {
    const PEER_TEXT_MAX: usize = 512;
    let mut out = String::with_capacity(text.len().min(PEER_TEXT_MAX + 32));
    for (i, c) in text.char_indices() {
        if out.len() >= PEER_TEXT_MAX {
            let _ = write!(out, "... ({} more bytes)", text.len() - i);
            break;
        }
        let hidden = matches!(
            c,
            '\u{2028}' | '\u{2029}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
        );
        if c == '\\' {
            out.push_str("\\\\");
        } else if c.is_control() || hidden {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

fn status_text(status: &tonic::Status) -> String {
    let mut text = if status.message().is_empty() {
        format!("{:?}", status.code())
    } else {
        format!("{:?}: {}", status.code(), peer_text(status.message()))
    };
    // A transport failure (a TLS alert, a reset) carries its cause as the source.
    if let Some(source) = std::error::Error::source(status) {
        let chain = error_chain(source);
        let cause = chain
            .strip_prefix(status.message())
            .map_or(chain.as_str(), |rest| rest.trim_start_matches(": "));
        if !cause.is_empty() {
            text.push_str(": ");
            text.push_str(&peer_text(cause));
        }
    }
    if too_large(status) {
        text.push_str(
            " (a message bigger than the receiver takes: lower `max_batch_bytes`, or raise the receiver's limit)",
        );
    }
    text
}

/// The receiver's message size limit, when `status` says a message was over it and
/// names the limit last in bytes, as tonic, grpc-go and grpcio do ("the limit is:
/// 4194304 bytes", "size limit, of 4194304 bytes, exceeded", "(5000000 vs.
/// 4194304)"). A number under 1 KiB is no byte count (say "4 MiB"): unknown then.
fn size_limit(status: &tonic::Status) -> Option<u64> {
    if !too_large(status) {
        return None;
    }
    status
        .message()
        .split(|c: char| !c.is_ascii_digit())
        .rfind(|word| !word.is_empty())?
        .parse()
        .ok()
        .filter(|limit| *limit >= 1024)
}

/// How long `status` asks the client to wait before it tries again: its
/// `grpc-retry-pushback-ms` (the gRPC retry design's header, which the Rust OTAP
/// receiver sends under memory pressure), at most 5 minutes; for RESOURCE_EXHAUSTED
/// without it (the Go receiver's admission limit, "too much pending data") a second,
/// so that an overloaded receiver is not met with retries every few milliseconds.
fn pushback(status: &tonic::Status) -> Option<Duration> {
    let asked = status
        .metadata()
        .get("grpc-retry-pushback-ms")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|ms| Duration::from_millis(ms).min(Duration::from_mins(5)));
    asked.or_else(|| {
        (status.code() == tonic::Code::ResourceExhausted && !too_large(status))
            .then_some(Duration::from_secs(1))
    })
}

/// Whether `status` says a message was over the receiver's size limit: tonic answers
/// OUT_OF_RANGE "Error, decoded message length too large" (RESOURCE_EXHAUSTED "Error
/// decompressing: size limit, of N bytes, exceeded" for a compressed one), grpc-go
/// and grpcio RESOURCE_EXHAUSTED "received message larger than max".
fn too_large(status: &tonic::Status) -> bool {
    let text = status.message().to_ascii_lowercase();
    matches!(
        status.code(),
        tonic::Code::OutOfRange | tonic::Code::ResourceExhausted
    ) && ["too large", "larger than", "size limit"]
        .iter()
        .any(|words| text.contains(words))
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        let part = inner.to_string();
        if !text.ends_with(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = inner.source();
    }
    text
}

impl std::fmt::Debug for TransportSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let header_names: Vec<&str> = self.headers.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("TransportSettings")
            .field("endpoint", &self.endpoint)
            .field("ca_file", &self.ca_file)
            .field("client_identity", &self.client_identity)
            .field("grpc_compression", &self.grpc_compression)
            .field("producer", &self.producer)
            .field("ipc_compression_auto", &self.ipc_compression_auto)
            .field("max_in_flight", &self.max_in_flight)
            .field("queue_capacity", &self.queue_capacity)
            .field("max_retries", &self.max_retries)
            .field("initial_backoff", &self.initial_backoff)
            .field("max_backoff", &self.max_backoff)
            .field("ack_timeout", &self.ack_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("max_stream_lifetime", &self.max_stream_lifetime)
            .field("header_names", &header_names)
            .finish_non_exhaustive()
    }
}

impl Default for TransportSettings {
    fn default() -> Self {
        TransportSettings {
            endpoint: String::new(),
            ca_file: None,
            client_identity: None,
            grpc_compression: GrpcCompression::None,
            producer: ProducerOptions::default(),
            ipc_compression_auto: false,
            max_in_flight: 16,
            queue_capacity: 64,
            max_retries: 3,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            ack_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            max_stream_lifetime: Duration::from_mins(10),
            headers: Vec::new(),
            log: LogSink::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_limits_are_read_from_what_receivers_say() {
        use tonic::Code::{OutOfRange, ResourceExhausted, Unavailable};
        let limit = |code, message: &str| size_limit(&tonic::Status::new(code, message));
        let tonic = "Error, decoded message length too large: found 200370 bytes, the limit is: 65536 bytes";
        assert_eq!(limit(OutOfRange, tonic), Some(65_536));
        let compressed =
            "Error decompressing: size limit, of 65536 bytes, exceeded while decompressing message";
        assert_eq!(limit(ResourceExhausted, compressed), Some(65_536));
        let go = "grpc: received message larger than max (5000000 vs. 4194304)";
        assert_eq!(limit(ResourceExhausted, go), Some(4_194_304));
        // No byte count, or not about size: unknown, so every batch is retried.
        assert_eq!(
            limit(ResourceExhausted, "message larger than max of 4 MiB"),
            None
        );
        assert_eq!(limit(ResourceExhausted, "message too large"), None);
        assert_eq!(limit(ResourceExhausted, "quota exhausted for 60 s"), None);
        assert_eq!(limit(Unavailable, go), None);
    }

    #[test]
    fn compression_refusals_are_told_from_errors_that_mention_zstd() {
        use tonic::Code::{Internal, Unimplemented};
        let zstd = CompressionEncoding::Zstd;
        let refuses =
            |code, message: &str| refuses_compression(&tonic::Status::new(code, message), zstd);
        // tonic, grpc-go, grpcio.
        assert!(refuses(
            Unimplemented,
            "Content is compressed with `zstd` which isn't supported"
        ));
        assert!(refuses(
            Unimplemented,
            "grpc: Decompressor is not installed for grpc-encoding \"zstd\""
        ));
        assert!(refuses(Internal, "Error parsing 'grpc-encoding' metadata"));
        // grpc-java, C-core.
        assert!(refuses(Unimplemented, "Can't find decompressor for zstd"));
        assert!(refuses(Internal, "Can't find decompressor for zstd"));
        assert!(refuses(
            Internal,
            "Compression algorithm 'zstd' is disabled."
        ));
        // A receiver that could not decode a zstd IPC body has taken the message.
        assert!(!refuses(
            Internal,
            "otel-arrow decode: zstd: invalid input: magic number mismatch"
        ));
        // A server that lists what it takes.
        let mut listed = tonic::Status::new(Unimplemented, "unsupported");
        listed
            .metadata_mut()
            .insert("grpc-accept-encoding", "gzip, identity".parse().unwrap());
        assert!(refuses_compression(&listed, zstd));
        listed
            .metadata_mut()
            .insert("grpc-accept-encoding", "zstd, gzip".parse().unwrap());
        assert!(!refuses_compression(&listed, zstd));
    }

    #[test]
    fn a_receivers_pushback_sets_the_least_wait() {
        use tonic::Code::{ResourceExhausted, Unavailable};
        let with = |code, header: Option<&str>| {
            let mut status = tonic::Status::new(code, "memory pressure");
            if let Some(value) = header {
                status
                    .metadata_mut()
                    .insert("grpc-retry-pushback-ms", value.parse().unwrap());
            }
            pushback(&status)
        };
        assert_eq!(
            with(ResourceExhausted, Some("1500")),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            with(Unavailable, Some("250")),
            Some(Duration::from_millis(250))
        );
        // A receiver cannot park the exporter for ever.
        assert_eq!(
            with(Unavailable, Some("999999999")),
            Some(Duration::from_mins(5))
        );
        // Overload without a header: a second; anything else: the usual backoff.
        assert_eq!(with(ResourceExhausted, None), Some(Duration::from_secs(1)));
        assert_eq!(
            with(ResourceExhausted, Some("soon")),
            Some(Duration::from_secs(1))
        );
        assert_eq!(with(Unavailable, None), None);
        let too_large = tonic::Status::new(
            ResourceExhausted,
            "received message larger than max (5 vs. 4194304)",
        );
        assert_eq!(pushback(&too_large), None);
    }
}
