//! The gRPC transport against receivers that misbehave: nothing is unreachable,
//! the stream is closed, a non-OK status comes back, batch ids are unknown, or nothing
//! answers at all. In every case pushing never waits, memory stays bounded, the
//! exporter reconnects with fresh stream state, and each failure kind is counted and
//! logged once, not per batch.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use arrow_array::{Int64Array, RecordBatch, UInt16Array};
use arrow_schema::{DataType, Field, Schema};
use its_exporter_otap::proto::{BatchArrowRecords, BatchStatus};
use its_exporter_otap::{
    LogSink, MetricsTables, PayloadType, TransportHandle, TransportSettings, TransportStats,
};
use tokio_stream::StreamExt;

/// How the fake receiver treats a stream (`stream` counts from 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Peer {
    /// OK for every batch.
    Healthy,
    /// OK for every batch, and takes gzip-compressed messages (of the others, only
    /// `Limited` does).
    HealthyGzip,
    /// OK for every batch, and takes zstd-compressed messages.
    HealthyZstd,
    /// Reads one batch, then ends the stream without answering.
    ClosesStream,
    /// UNAVAILABLE for every batch of the first `n` streams, OK afterwards.
    Unavailable { streams: usize },
    /// INVALID_ARGUMENT for every batch (not worth retrying).
    InvalidArgument,
    /// INVALID_ARGUMENT for every batch, with `NOISE` as the message.
    InvalidArgumentNoisily,
    /// First a status for an id that was never sent, then OK.
    UnknownIds,
    /// Reads everything, answers nothing.
    Silent,
    /// OK for the first batch, then ends the stream (as a server ending idle streams).
    EndsAfterOne,
    /// OK for every batch, 20 ms after it arrives.
    Slow,
    /// Takes zstd messages; on its first stream answers the first batch, then ends the
    /// stream with a status that names zstd, as a refusal would.
    AcksThenNamesZstd,
    /// Healthy, but takes messages of at most 64 KiB (tonic's limit, set low), plain
    /// or gzip-compressed (the limit then holds for the decompressed message).
    Limited,
    /// On its first stream answers the first batch CANCELED and ends the stream, as a
    /// receiver closing itself does; healthy afterwards.
    CancelsFirst,
    /// Answers every batch CANCELED and ends the stream.
    CancelsAll,
    /// Answers CANCELED for an id it was never sent, then ends the stream.
    CancelsUnknown,
    /// Refuses the first batch of every stream with UNAVAILABLE and ends the stream.
    RefusesFirstAndEnds,
    /// On its first stream holds its answers until it has read three batches, then
    /// answers the first OK and the second CANCELED, and ends the stream without
    /// answering the third, as a receiver closing itself; healthy afterwards.
    CancelsSecondOfThree,
    /// Answers every batch OK with a 5 MB message: over what our client reads (4 MiB),
    /// so our side of the stream fails with "message length too large".
    HugeAnswers,
    /// Refuses its first call with RESOURCE_EXHAUSTED "memory pressure" and
    /// `grpc-retry-pushback-ms: 400`, as the Rust receiver under memory pressure does;
    /// healthy afterwards.
    PushesBack,
    /// On its first stream holds its answers until it has read five batches, then
    /// answers them in order: UNAVAILABLE for the second, OK for the others; healthy
    /// afterwards.
    RefusesSecondOfFive,
    /// On its first stream holds its answers until it has read two batches, then
    /// answers the first OK and ends the stream with a CANCELED status, as the Go
    /// receiver shutting down does; healthy afterwards.
    ShutsDownAfterOne,
    /// Ends every stream with a CANCELED status on reading its first batch.
    CancelsStreams,
    /// Healthy for streams opened with `authorization: Bearer TOKEN`; refuses the others
    /// with UNAUTHENTICATED before any batch is read, as an auth interceptor does.
    RequiresToken,
}

/// What `Peer::InvalidArgumentNoisily` says: 100 KB, with a forged log line, a
/// terminal escape, a line separator and a backslash-n that is not a newline in it.
fn noise() -> String {
    format!(
        "bad batch\nexporter:otap: all is well\u{1b}[2J\u{2028}\\n{}",
        "x".repeat(100_000)
    )
}

/// What `Peer::RequiresToken` wants.
const TOKEN: &str = "Bearer s3cret";

#[derive(Default)]
struct Seen {
    streams: AtomicUsize,
    /// The `authorization` header of each stream.
    authorization: Mutex<Vec<Option<String>>>,
    /// Batch ids and whether their first payload started with a schema, per stream.
    batches: Mutex<Vec<Vec<(i64, bool)>>>,
    /// Whether each batch's first record batch had zstd IPC bodies, in arrival order.
    ipc_zstd: Mutex<Vec<bool>>,
    /// The `grpc-encoding` of each call, taken or refused, in arrival order.
    encodings: Mutex<Vec<Option<String>>>,
    /// When each call arrived.
    opened: Mutex<Vec<Instant>>,
    /// The points of each batch read, per stream (its number data points).
    points: Mutex<Vec<Vec<usize>>>,
}

impl Seen {
    /// How many batches each stream read.
    fn read_per_stream(&self) -> Vec<usize> {
        self.batches.lock().unwrap().iter().map(Vec::len).collect()
    }
}

#[derive(Clone)]
struct FakeReceiver {
    peer: Peer,
    seen: Arc<Seen>,
}

impl tonic::server::NamedService for FakeReceiver {
    const NAME: &'static str = "opentelemetry.proto.experimental.arrow.v1.ArrowMetricsService";
}

type BoxFuture<T> = Pin<Box<dyn std::future::Future<Output = T> + Send>>;
type StatusStream =
    Pin<Box<dyn tokio_stream::Stream<Item = Result<BatchStatus, tonic::Status>> + Send>>;

impl tower_service::Service<http::Request<tonic::body::Body>> for FakeReceiver {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        let handler = self.clone();
        let encoding = request.headers().get("grpc-encoding");
        handler
            .seen
            .encodings
            .lock()
            .unwrap()
            .push(encoding.and_then(|v| v.to_str().ok()).map(str::to_owned));
        Box::pin(async move {
            let codec = tonic_prost::ProstCodec::<BatchStatus, BatchArrowRecords>::default();
            let mut grpc = tonic::server::Grpc::new(codec);
            if matches!(handler.peer, Peer::HealthyGzip | Peer::Limited) {
                grpc = grpc.accept_compressed(tonic::codec::CompressionEncoding::Gzip);
            }
            if matches!(handler.peer, Peer::HealthyZstd | Peer::AcksThenNamesZstd) {
                grpc = grpc.accept_compressed(tonic::codec::CompressionEncoding::Zstd);
            }
            if handler.peer == Peer::Limited {
                grpc = grpc.max_decoding_message_size(64 * 1024);
            }
            Ok(grpc.streaming(handler, request).await)
        })
    }
}

fn status(batch_id: i64, code: tonic::Code) -> BatchStatus {
    BatchStatus {
        batch_id,
        status_code: code as i32,
        status_message: format!("{code:?}"),
    }
}

impl tonic::server::StreamingService<BatchArrowRecords> for FakeReceiver {
    type Response = BatchStatus;
    type ResponseStream = StatusStream;
    type Future = BoxFuture<Result<tonic::Response<StatusStream>, tonic::Status>>;

    fn call(
        &mut self,
        request: tonic::Request<tonic::Streaming<BatchArrowRecords>>,
    ) -> Self::Future {
        let FakeReceiver { peer, seen } = self.clone();
        let stream_no = seen.streams.fetch_add(1, Ordering::SeqCst);
        seen.opened.lock().unwrap().push(Instant::now());
        let authorization = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let authorized = authorization.as_deref() == Some(TOKEN);
        seen.authorization.lock().unwrap().push(authorization);
        if peer == Peer::PushesBack && stream_no == 0 {
            let mut refusal = tonic::Status::resource_exhausted("memory pressure");
            refusal
                .metadata_mut()
                .insert("grpc-retry-pushback-ms", "400".parse().unwrap());
            return Box::pin(async { Err(refusal) });
        }
        if peer == Peer::RequiresToken && !authorized {
            return Box::pin(async {
                Err(tonic::Status::unauthenticated("missing or wrong token"))
            });
        }
        let mut inbound = request.into_inner();
        let (tx, rx) = tokio::sync::mpsc::channel(1024);
        let mine = {
            let mut batches = seen.batches.lock().unwrap();
            batches.push(Vec::new());
            seen.points.lock().unwrap().push(Vec::new());
            batches.len() - 1
        };
        tokio::spawn(async move {
            // This stream's NUMBER_DATA_POINTS IPC stream so far.
            let mut number_points = Vec::new();
            let mut held = Vec::new();
            while let Some(read) = inbound.next().await {
                // A message it cannot read (over its size limit) ends the call with
                // the reader's status, as grpc-go servers end it.
                let bar = match read {
                    Ok(bar) => bar,
                    Err(status) => {
                        let _ = tx.send(Err(status)).await;
                        return;
                    }
                };
                let schema_first = bar
                    .arrow_payloads
                    .first()
                    .is_some_and(|p| starts_with_schema(&p.record));
                seen.batches.lock().unwrap()[mine].push((bar.batch_id, schema_first));
                if let Some(p) = bar.arrow_payloads.iter().find(|p| p.r#type == 11) {
                    number_points.extend_from_slice(&p.record);
                    seen.points.lock().unwrap()[mine].push(last_batch_rows(&number_points));
                }
                if let Some(p) = bar.arrow_payloads.first() {
                    seen.ipc_zstd.lock().unwrap().push(zstd_bodies(&p.record));
                }
                if peer == Peer::Slow {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                let (answers, end) = match reply(peer, stream_no, bar.batch_id, &mut held) {
                    Reply::Answers(answers) => (answers, false),
                    Reply::AnswersThenEnd(answers) => (answers, true),
                };
                for answer in answers {
                    if tx.send(answer).await.is_err() {
                        return;
                    }
                }
                if end {
                    return;
                }
            }
        });
        let stream: StatusStream = Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx));
        Box::pin(async move { Ok(tonic::Response::new(stream)) })
    }
}

/// What the fake receiver does on reading a batch.
enum Reply {
    /// Sends these and reads on.
    Answers(Vec<Result<BatchStatus, tonic::Status>>),
    /// Sends these and ends the stream.
    AnswersThenEnd(Vec<Result<BatchStatus, tonic::Status>>),
}

/// How `peer` answers batch `id` on its stream `stream_no`; `held` keeps the ids of
/// batches whose answers wait.
fn reply(peer: Peer, stream_no: usize, id: i64, held: &mut Vec<i64>) -> Reply {
    let ok = |id| Ok(status(id, tonic::Code::Ok));
    let code = |code| vec![Ok(status(id, code))];
    match peer {
        Peer::ClosesStream => Reply::AnswersThenEnd(Vec::new()),
        Peer::AcksThenNamesZstd if stream_no == 0 && id > 0 => {
            let refusal = "Content is compressed with `zstd` which isn't supported";
            Reply::AnswersThenEnd(vec![Err(tonic::Status::unimplemented(refusal))])
        }
        Peer::Unavailable { streams } if stream_no < streams => {
            Reply::Answers(code(tonic::Code::Unavailable))
        }
        Peer::RefusesSecondOfFive if stream_no == 0 => {
            held.push(id);
            if held.len() < 5 {
                return Reply::Answers(Vec::new());
            }
            let answers = held.drain(..).map(|id| {
                if id == 1 {
                    Ok(status(id, tonic::Code::Unavailable))
                } else {
                    ok(id)
                }
            });
            Reply::Answers(answers.collect())
        }
        Peer::CancelsAll => Reply::AnswersThenEnd(code(tonic::Code::Cancelled)),
        Peer::CancelsUnknown => {
            Reply::AnswersThenEnd(vec![Ok(status(id + 1_000, tonic::Code::Cancelled))])
        }
        Peer::RefusesFirstAndEnds => Reply::AnswersThenEnd(code(tonic::Code::Unavailable)),
        Peer::CancelsSecondOfThree if stream_no == 0 => {
            held.push(id);
            if held.len() < 3 {
                return Reply::Answers(Vec::new());
            }
            let (first, second) = (held[0], held[1]);
            held.clear();
            Reply::AnswersThenEnd(vec![ok(first), Ok(status(second, tonic::Code::Cancelled))])
        }
        Peer::CancelsFirst if stream_no == 0 => Reply::AnswersThenEnd(code(tonic::Code::Cancelled)),
        Peer::ShutsDownAfterOne if stream_no == 0 => {
            held.push(id);
            if held.len() < 2 {
                return Reply::Answers(Vec::new());
            }
            let shutdown = tonic::Status::cancelled("server stream shutdown");
            Reply::AnswersThenEnd(vec![ok(held[0]), Err(shutdown)])
        }
        Peer::CancelsStreams => Reply::AnswersThenEnd(vec![Err(tonic::Status::cancelled(
            "server stream shutdown",
        ))]),
        Peer::Healthy
        | Peer::HealthyGzip
        | Peer::HealthyZstd
        | Peer::Slow
        | Peer::AcksThenNamesZstd
        | Peer::Limited
        | Peer::RequiresToken
        | Peer::CancelsFirst
        | Peer::CancelsSecondOfThree
        | Peer::PushesBack
        | Peer::RefusesSecondOfFive
        | Peer::ShutsDownAfterOne
        | Peer::Unavailable { .. } => Reply::Answers(vec![ok(id)]),
        Peer::InvalidArgument => Reply::Answers(code(tonic::Code::InvalidArgument)),
        Peer::InvalidArgumentNoisily => Reply::Answers(vec![Ok(BatchStatus {
            status_message: noise(),
            ..status(id, tonic::Code::InvalidArgument)
        })]),
        Peer::UnknownIds => Reply::Answers(vec![ok(id + 1_000_000), ok(id)]),
        Peer::Silent => Reply::Answers(Vec::new()),
        Peer::HugeAnswers => Reply::Answers(vec![Ok(BatchStatus {
            status_message: "x".repeat(5_000_000),
            ..status(id, tonic::Code::Ok)
        })]),
        Peer::EndsAfterOne => Reply::AnswersThenEnd(vec![ok(id)]),
    }
}

/// The rows of the last record batch of the IPC stream `bytes` (0 if unreadable).
fn last_batch_rows(bytes: &[u8]) -> usize {
    arrow_ipc::reader::StreamReader::try_new(std::io::Cursor::new(bytes), None)
        .ok()
        .and_then(|reader| reader.filter_map(Result::ok).last())
        .map_or(0, |batch| batch.num_rows())
}

/// An IPC stream's first message is a Schema: continuation marker, length, then a
/// flatbuffer whose header type byte we do not parse; the schema message is the only
/// one the producer puts first, so compare with what the second payload starts with.
fn starts_with_schema(record: &[u8]) -> bool {
    arrow_ipc::root_as_message(&record[8..])
        .is_ok_and(|m| m.header_type() == arrow_ipc::MessageHeader::Schema)
}

/// Whether the record batch message of an IPC payload has zstd body compression.
fn zstd_bodies(record: &[u8]) -> bool {
    let mut at = 0;
    while at + 8 <= record.len() {
        let len = i32::from_le_bytes(record[at + 4..at + 8].try_into().unwrap()) as usize;
        let Ok(message) = arrow_ipc::root_as_message(&record[at + 8..at + 8 + len]) else {
            return false;
        };
        if let Some(batch) = message.header_as_record_batch() {
            return batch
                .compression()
                .is_some_and(|c| c.codec() == arrow_ipc::CompressionType::ZSTD);
        }
        at += 8 + len + message.bodyLength() as usize;
    }
    false
}

/// A receiver on a free loopback port, on a runtime of its own.
struct Server {
    port: u16,
    seen: Arc<Seen>,
    _runtime: tokio::runtime::Runtime,
}

fn serve(peer: Peer) -> Server {
    serve_with(peer, None, None)
}

/// A self-signed certificate for 127.0.0.1: (certificate PEM, key PEM).
fn certificate() -> (String, String) {
    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    (certified.cert.pem(), certified.signing_key.serialize_pem())
}

/// With `tls` (certificate and key PEM), https; with `client_ca` too, a client
/// certificate from that CA is required.
fn serve_with(peer: Peer, tls: Option<(String, String)>, client_ca: Option<String>) -> Server {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Seen::default());
    let service = FakeReceiver {
        peer,
        seen: Arc::clone(&seen),
    };
    let mut builder = tonic::transport::Server::builder();
    if let Some((cert, key)) = tls {
        let mut config = tonic::transport::ServerTlsConfig::new()
            .identity(tonic::transport::Identity::from_pem(cert, key));
        if let Some(ca) = client_ca {
            config = config.client_ca_root(tonic::transport::Certificate::from_pem(ca));
        }
        builder = builder.tls_config(config).unwrap();
    }
    runtime.spawn(
        builder
            .add_service(service)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    Server {
        port,
        seen,
        _runtime: runtime,
    }
}

/// One interval's tables: a root row and `points` number data points.
fn tables(points: u16) -> MetricsTables {
    cumulative(points, &[])
}

/// [`tables`] of a cumulative interval with the totals of the series `totals_of`
/// (delta when empty).
fn cumulative(points: u16, totals_of: &[u64]) -> MetricsTables {
    let root = RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new("id", DataType::UInt16, false)])),
        vec![Arc::new(UInt16Array::from(vec![0]))],
    )
    .unwrap();
    let dp = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("parent_id", DataType::UInt16, false),
            Field::new("int_value", DataType::Int64, true),
        ])),
        vec![
            Arc::new(UInt16Array::from(vec![0; usize::from(points)])),
            Arc::new(Int64Array::from(vec![1; usize::from(points)])),
        ],
    )
    .unwrap();
    MetricsTables {
        tables: vec![
            (PayloadType::UnivariateMetrics, root),
            (PayloadType::NumberDataPoints, dp),
        ],
        totals_of: totals_of.to_vec(),
    }
}

struct Run {
    stats: Arc<TransportStats>,
    logs: Arc<Mutex<Vec<String>>>,
    transport: TransportHandle,
}

fn start(endpoint: String, tune: impl FnOnce(&mut TransportSettings)) -> Run {
    let logs = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&logs);
    let mut settings = TransportSettings {
        endpoint,
        initial_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(20),
        ack_timeout: Duration::from_millis(300),
        connect_timeout: Duration::from_millis(300),
        log: LogSink(Arc::new(move |line| {
            sink.lock().unwrap().push(line.to_owned());
        })),
        ..TransportSettings::default()
    };
    tune(&mut settings);
    let stats = Arc::new(TransportStats::default());
    let transport = TransportHandle::spawn(settings, Arc::clone(&stats)).unwrap();
    Run {
        stats,
        logs,
        transport,
    }
}

/// An endpoint on a loopback port nothing listens on (bound, then freed).
fn nobody_listening() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    format!("http://127.0.0.1:{port}")
}

/// [`start`] against `server`, waiting up to 10 s for answers: the peers that hold
/// their answers until they have read several batches need that on a busy machine.
fn patient(server: &Server) -> Run {
    start(format!("http://127.0.0.1:{}", server.port), |s| {
        s.ack_timeout = Duration::from_secs(10);
    })
}

impl Run {
    /// Pushes `n` intervals of `points` points; each push must return at once.
    fn push(&self, n: usize, points: u16) {
        for _ in 0..n {
            self.push_tables(tables(points));
        }
    }

    /// Pushes one interval's `tables`, which must return at once.
    fn push_tables(&self, tables: MetricsTables) {
        let started = Instant::now();
        self.transport.push(tables);
        assert!(
            started.elapsed() < Duration::from_millis(100),
            "push waited {:?}",
            started.elapsed()
        );
    }

    /// Closes with `grace` to deliver, and returns how long closing took.
    fn close(&mut self, grace: Duration) -> Duration {
        let started = Instant::now();
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(self.transport.close(Instant::now() + grace));
        started.elapsed()
    }

    fn get(&self, counter: fn(&TransportStats) -> &AtomicU64) -> u64 {
        counter(&self.stats).load(Ordering::Relaxed)
    }

    /// Log lines containing `needle`.
    fn logged(&self, needle: &str) -> usize {
        self.logs
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(needle))
            .count()
    }

    /// Every batch pushed is acked, dropped or superseded, none twice.
    fn assert_conserved(&self, batches: u64, points: u64) {
        let acked = self.get(|s| &s.batches_acked);
        let dropped = self.get(|s| &s.batches_dropped);
        let superseded = self.get(|s| &s.batches_superseded);
        assert_eq!(
            acked + dropped + superseded,
            batches,
            "acked {acked} + dropped {dropped} + superseded {superseded}"
        );
        let acked_points = self.get(|s| &s.points_acked);
        let dropped_points = self.get(|s| &s.points_dropped);
        let superseded_points = self.get(|s| &s.points_superseded);
        assert_eq!(acked_points + dropped_points + superseded_points, points);
    }
}

/// Waits until `done` holds, up to 20 s (the condition is the synchronisation; the
/// limit only stops a broken build from hanging).
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let limit = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn a_healthy_receiver_gets_every_batch_in_one_stream() {
    let server = serve(Peer::Healthy);
    let mut run = start(format!("http://127.0.0.1:{}", server.port), |_| {});
    run.push(40, 5);
    run.close(Duration::from_secs(10));
    assert_eq!(run.get(|s| &s.batches_acked), 40);
    assert_eq!(run.get(|s| &s.points_acked), 200);
    assert_eq!(run.get(|s| &s.batches_dropped), 0);
    assert_eq!(server.seen.streams.load(Ordering::SeqCst), 1);
    let batches = server.seen.batches.lock().unwrap().last().unwrap().clone();
    let ids: Vec<i64> = batches.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids, (0..40).collect::<Vec<_>>());
    assert!(batches[0].1, "the first payload carries the schema");
    assert!(!batches[1].1, "later payloads carry only the record batch");
    assert!(run.logs.lock().unwrap().is_empty(), "{:?}", run.logs);
}

#[test]
fn an_unreachable_endpoint_is_counted_logged_once_and_bounded() {
    let mut run = start(nobody_listening(), |s| s.queue_capacity = 8);
    run.push(50, 3);
    wait_until("a few failed connections", || {
        run.get(|s| &s.connect_failures) >= 3
    });
    // The queue holds 8 intervals: the 42 oldest were pushed out and counted.
    assert_eq!(run.get(|s| &s.batches_dropped), 42);
    let took = run.close(Duration::from_millis(200));
    assert!(took < Duration::from_secs(2), "close took {took:?}");
    run.assert_conserved(50, 150);
    assert_eq!(run.get(|s| &s.batches_acked), 0);
    assert_eq!(run.logged("cannot connect"), 1, "{:?}", run.logs);
}

#[test]
fn a_closed_stream_reconnects_and_gives_up_after_the_retry_budget() {
    let server = serve(Peer::ClosesStream);
    let mut run = start(format!("http://127.0.0.1:{}", server.port), |s| {
        s.max_retries = 2;
    });
    run.push(3, 2);
    wait_until("every batch given up", || {
        run.get(|s| &s.batches_dropped) == 3
    });
    run.close(Duration::from_millis(100));
    run.assert_conserved(3, 6);
    // The receiver reads the oldest batch and ends the stream: only the oldest spends
    // a retry each time, so each batch is the oldest on three streams (the first send
    // and two retries) before it is dropped, and the others go again for free.
    assert_eq!(run.get(|s| &s.stream_failures), 9);
    assert_eq!(server.seen.streams.load(Ordering::SeqCst), 9);
    assert_eq!(run.logged("ended the stream"), 1, "{:?}", run.logs);
    assert_eq!(run.logged("dropping batches"), 1, "{:?}", run.logs);
}

#[test]
fn a_non_ok_status_reconnects_with_fresh_stream_state_and_then_delivers() {
    let server = serve(Peer::Unavailable { streams: 2 });
    let mut run = start(format!("http://127.0.0.1:{}", server.port), |s| {
        s.max_in_flight = 1;
    });
    run.push(5, 4);
    run.close(Duration::from_secs(10));
    run.assert_conserved(5, 20);
    assert_eq!(run.get(|s| &s.batches_acked), 5);
    assert_eq!(run.get(|s| &s.batches_rejected), 2);
    assert_eq!(run.logged("answered Unavailable"), 1, "{:?}", run.logs);
    assert_eq!(run.logged("delivering to"), 1, "{:?}", run.logs);
    // Every stream starts from batch id 0 with a schema: fresh producer state.
    let streams = server.seen.batches.lock().unwrap().clone();
    let firsts: Vec<(i64, bool)> = streams.iter().map(|s| s[0]).collect();
    assert_eq!(server.seen.streams.load(Ordering::SeqCst), 3);
    assert_eq!(firsts, vec![(0, true); 3]);
}

#[test]
fn an_invalid_argument_status_drops_the_batch_without_retrying_it() {
    let server = serve(Peer::InvalidArgument);
    let mut run = start(format!("http://127.0.0.1:{}", server.port), |s| {
        s.max_in_flight = 1;
    });
    run.push(4, 1);
    wait_until("every batch dropped", || {
        run.get(|s| &s.batches_dropped) == 4
    });
    run.close(Duration::from_millis(100));
    run.assert_conserved(4, 4);
    assert_eq!(run.get(|s| &s.batches_retried), 0);
    assert_eq!(run.get(|s| &s.batches_rejected), 4);
    assert_eq!(run.logged("answered InvalidArgument"), 1, "{:?}", run.logs);
}

#[test]
fn what_a_peer_says_is_logged_escaped_and_cut_short() {
    // A 100 KB status message with a newline and a terminal escape: one log line,
    // bounded, that forges nothing.
    let server = serve(Peer::InvalidArgumentNoisily);
    let mut run = start(format!("http://127.0.0.1:{}", server.port), |s| {
        s.max_in_flight = 1;
    });
    run.push(2, 1);
    wait_until("every batch dropped", || {
        run.get(|s| &s.batches_dropped) == 2
    });
    run.close(Duration::from_millis(100));
    run.assert_conserved(2, 2);
    let logs = run.logs.lock().unwrap().clone();
    let line = logs
        .iter()
        .find(|l| l.contains("answered InvalidArgument"))
        .unwrap_or_else(|| panic!("{logs:?}"));
    assert!(
        line.contains(r"bad batch\nexporter:otap: all is well\u{1b}[2J\u{2028}\\n"),
        "{line}"
    );
    assert!(line.contains("more bytes)"), "{line}");
    assert!(line.len() < 1_000, "{} bytes", line.len());
    for l in &logs {
        assert!(!l.contains(['\n', '\u{1b}', '\u{2028}']), "{l:?}");
    }
}

#[test]
fn a_message_over_the_receivers_limit_is_logged_with_the_way_out() {
    // 20,000 points make a 200 KB batch, over the receiver's 64 KiB (decompressed, when
    // the message is gzip-compressed): the stream breaks, and the batch, over the
    // limit the receiver names, is dropped without a retry and counted; the one log
    // line says which setting to change.
    let server = serve(Peer::Limited);
    for compression in [
        its_exporter_otap::GrpcCompression::None,
        its_exporter_otap::GrpcCompression::Gzip,
    ] {
        let mut run = start(format!("http://127.0.0.1:{}", server.port), |s| {
            s.max_retries = 1;
            s.grpc_compression = compression;
            s.producer.compression = its_exporter_otap::IpcCompression::None;
        });
        run.push(1, 20_000);
        wait_until("the batch dropped", || run.get(|s| &s.batches_dropped) == 1);
        // A batch within the limit still goes through.
        run.push(1, 100);
        wait_until("the small batch acked", || {
            run.get(|s| &s.batches_acked) == 1
        });
        run.close(Duration::from_millis(100));
        run.assert_conserved(2, 20_100);
        assert_eq!(run.get(|s| &s.batches_retried), 0);
        assert_eq!(
            run.logged("lower `max_batch_bytes`, or raise the receiver's limit"),
            1,
            "{compression:?}: {:?}",
            run.logs
        );
    }
}

#[test]
fn a_batch_over_the_receivers_limit_is_dropped_alone() {
    // Small, big, small in one window: the big one breaks the stream, and the
    // receiver names its limit. The big one would break every stream it went on, with
    // the batches beside it: it is dropped at once, and the small ones go again.
    let server = serve(Peer::Limited);
    let mut run = start(format!("http://127.0.0.1:{}", server.port), |s| {
        s.max_retries = 3;
        s.producer.compression = its_exporter_otap::IpcCompression::None;
    });
    run.push(1, 100);
    run.push(1, 20_000);
    run.push(1, 100);
    run.close(Duration::from_secs(10));
    run.assert_conserved(3, 20_200);
    assert_eq!(run.get(|s| &s.batches_acked), 2, "{:?}", run.logs);
    assert_eq!(run.get(|s| &s.batches_dropped), 1);
    assert_eq!(run.get(|s| &s.points_dropped), 20_000);
    // The small batch after the big one went again at most once; the big one never.
    assert!(run.get(|s| &s.batches_retried) <= 1, "{:?}", run.stats);
    assert_eq!(run.get(|s| &s.stream_failures), 1);
}

#[test]
fn a_size_limit_no_batch_is_over_still_charges_the_oldest() {
    // Our own client names the limit here (4 MiB, on the receiver's answers), and no
    // batch is over it: the failed streams must still spend retries, or the same
    // batches would go round for ever.
    let server = serve(Peer::HugeAnswers);
    let mut run = start(format!("http://127.0.0.1:{}", server.port), |s| {
        s.max_retries = 1;
    });
    run.push(2, 3);
    wait_until("both batches given up", || {
        run.get(|s| &s.batches_dropped) == 2
    });
    run.close(Duration::from_millis(100));
    run.assert_conserved(2, 6);
    assert_eq!(run.get(|s| &s.batches_acked), 0);
    // Broken streams did it, not timeouts.
    assert_eq!(run.get(|s| &s.ack_timeouts), 0);
    assert_eq!(run.logged("broke"), 1, "{:?}", run.logs);
}

#[test]
fn a_cancel_for_an_id_never_sent_forgives_nothing() {
    let server = serve(Peer::CancelsUnknown);
    let mut run = start(format!("http://127.0.0.1:{}", server.port), |s| {
        s.max_retries = 1;
    });
    run.push(2, 3);
    wait_until("both batches given up", || {
        run.get(|s| &s.batches_dropped) == 2
    });
    run.close(Duration::from_millis(100));
    run.assert_conserved(2, 6);
    assert!(run.get(|s| &s.unknown_statuses) >= 1);
    assert_eq!(run.logged("not in flight"), 1, "{:?}", run.logs);
}

#[test]
fn a_refusal_and_the_end_of_the_stream_are_one_failure_charged_once() {
    // The receiver refuses the first batch and ends the stream: the refused batch is
    // charged, the one beside it (never read) is not, so it is charged only on the
    // streams where it is the one refused.
    let server = serve(Peer::RefusesFirstAndEnds);
    let mut run = start(format!("http://127.0.0.1:{}", server.port), |s| {
        s.max_retries = 2;
    });
    run.push(2, 3);
    wait_until("both batches given up", || {
        run.get(|s| &s.batches_dropped) == 2
    });
    run.close(Duration::from_millis(100));
    run.assert_conserved(2, 6);
    // Three refusals each: six streams (three, had the second been charged too).
    assert_eq!(server.seen.streams.load(Ordering::SeqCst), 6);
    assert_eq!(run.get(|s| &s.batches_rejected), 6);
}

#[test]
fn unknown_batch_ids_are_counted_and_ignored() {
    let server = serve(Peer::UnknownIds);
    let mut run = start(format!("http://127.0.0.1:{}", server.port), |_| {});
    run.push(10, 2);
    run.close(Duration::from_secs(10));
    assert_eq!(run.get(|s| &s.batches_acked), 10);
    assert_eq!(run.get(|s| &s.unknown_statuses), 10);
    assert_eq!(server.seen.streams.load(Ordering::SeqCst), 1);
    assert_eq!(run.logged("not in flight"), 1, "{:?}", run.logs);
}

#[test]
fn a_receiver_that_never_answers_is_timed_out_within_a_bounded_window() {
    let server = serve(Peer::Silent);
    let mut run = start(format!("http://127.0.0.1:{}", server.port), |s| {
        s.max_in_flight = 4;
        s.max_retries = 1;
        s.queue_capacity = 16;
    });
    run.push(30, 1);
    // 30 pushed into a queue of 16 while the transport may already hold up to 4 in
    // flight: between 10 and 14 pushed out at once, never more held than 16 + 4.
    let pushed_out = run.get(|s| &s.batches_dropped);
    assert!((10..=14).contains(&pushed_out), "{pushed_out}");
    wait_until("two silent streams timed out", || {
        run.get(|s| &s.ack_timeouts) >= 2
    });
    // Never more than the window unanswered on one stream.
    for stream in server.seen.batches.lock().unwrap().iter() {
        assert!(
            stream.len() <= 4,
            "{} batches on a silent stream",
            stream.len()
        );
    }
    run.close(Duration::from_millis(200));
    run.assert_conserved(30, 30);
    assert_eq!(run.get(|s| &s.batches_acked), 0);
    assert_eq!(run.logged("did not answer"), 1, "{:?}", run.logs);
}

#[test]
fn https_with_a_private_ca_delivers() {
    let (cert, key) = certificate();
    let dir = std::env::temp_dir().join(format!("its-otap-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, &cert).unwrap();
    let server = serve_with(Peer::Healthy, Some((cert, key)), None);
    let mut run = start(format!("https://127.0.0.1:{}", server.port), |s| {
        s.ca_file = Some(ca.clone());
    });
    run.push(6, 2);
    run.close(Duration::from_secs(10));
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(run.get(|s| &s.batches_acked), 6, "{:?}", run.logs);
    assert_eq!(run.get(|s| &s.points_acked), 12);
    assert_eq!(server.seen.streams.load(Ordering::SeqCst), 1);
}

#[test]
fn https_to_an_untrusted_certificate_is_a_counted_connect_failure() {
    // The web PKI roots do not know a self-signed certificate.
    let server = serve_with(Peer::Healthy, Some(certificate()), None);
    let mut run = start(format!("https://127.0.0.1:{}", server.port), |_| {});
    run.push(3, 1);
    wait_until("failed TLS handshakes", || {
        run.get(|s| &s.connect_failures) + run.get(|s| &s.stream_failures) >= 2
    });
    run.close(Duration::from_millis(200));
    run.assert_conserved(3, 3);
    assert_eq!(run.get(|s| &s.batches_acked), 0);
    assert_eq!(
        server.seen.streams.load(Ordering::SeqCst),
        0,
        "no call got through"
    );
    let logged = run.logged("cannot connect") + run.logged("refused the stream");
    assert_eq!(logged, 1, "{:?}", run.logs);
}

#[test]
fn a_refused_batch_goes_again_alone_and_the_ones_beside_it_are_not_sent_twice() {
    // The receiver answers batch by batch: it took the batches after the refused one,
    // so sending them again would count their points twice.
    let server = serve(Peer::RefusesSecondOfFive);
    // It holds its answers until it has read five: time enough on a busy machine.
    let mut run = patient(&server);
    run.push(5, 2);
    run.close(Duration::from_secs(10));
    run.assert_conserved(5, 10);
    assert_eq!(run.get(|s| &s.batches_acked), 5);
    assert_eq!(run.get(|s| &s.batches_rejected), 1);
    assert_eq!(run.get(|s| &s.batches_retried), 1);
    assert_eq!(run.get(|s| &s.stream_failures), 1);
    assert_eq!(
        server.seen.read_per_stream(),
        [5, 1],
        "five batches, then the refused one again"
    );
    assert_eq!(run.logged("answered Unavailable"), 1, "{:?}", run.logs);
}

#[test]
fn a_refused_cumulative_batch_is_let_go_once_newer_totals_were_taken() {
    // The second of five cumulative batches is refused, the others taken. Its series'
    // newer totals were taken, so sent again it would land after them (a backend
    // rejects that, or reads a counter reset); it is let go, counted, and no stream
    // opens for it.
    let server = serve(Peer::RefusesSecondOfFive);
    let mut run = patient(&server);
    for _ in 0..5 {
        run.push_tables(cumulative(2, &[7, 9]));
    }
    run.close(Duration::from_secs(10));
    run.assert_conserved(5, 10);
    assert_eq!(run.get(|s| &s.batches_acked), 4);
    assert_eq!(run.get(|s| &s.batches_rejected), 1);
    assert_eq!(run.get(|s| &s.batches_superseded), 1);
    assert_eq!(run.get(|s| &s.points_superseded), 2);
    assert_eq!(run.get(|s| &s.batches_retried), 0);
    assert_eq!(run.get(|s| &s.batches_dropped), 0);
    assert_eq!(
        server.seen.read_per_stream(),
        [5],
        "the refused batch is not sent again"
    );
}

#[test]
fn a_refused_cumulative_batch_goes_again_for_a_series_only_it_carries() {
    // Same, but the refused batch also carries series 8, which no newer batch has:
    // those totals would be lost until the next export, so it goes again (late).
    let server = serve(Peer::RefusesSecondOfFive);
    let mut run = patient(&server);
    run.push_tables(cumulative(2, &[7]));
    run.push_tables(cumulative(3, &[7, 8]));
    for _ in 0..3 {
        run.push_tables(cumulative(2, &[7]));
    }
    run.close(Duration::from_secs(10));
    run.assert_conserved(5, 11);
    assert_eq!(run.get(|s| &s.batches_acked), 5);
    assert_eq!(run.get(|s| &s.batches_superseded), 0);
    assert_eq!(run.get(|s| &s.batches_retried), 1);
    let points = server.seen.points.lock().unwrap().clone();
    assert_eq!(points, [vec![2, 3, 2, 2, 2], vec![3]]);
}

#[test]
fn a_receiver_under_pressure_gets_the_wait_it_asks_for() {
    let server = serve(Peer::PushesBack);
    // Backoffs of a few milliseconds: only the pushback can make the wait long.
    let mut run = start(format!("http://127.0.0.1:{}", server.port), |_| {});
    run.push(1, 2);
    run.close(Duration::from_secs(10));
    run.assert_conserved(1, 2);
    assert_eq!(run.get(|s| &s.batches_acked), 1);
    let opened = server.seen.opened.lock().unwrap().clone();
    assert_eq!(opened.len(), 2);
    let waited = opened[1] - opened[0];
    assert!(waited >= Duration::from_millis(400), "waited {waited:?}");
}

#[test]
fn a_cancelled_batch_goes_again_on_a_fresh_stream_without_a_failure() {
    // OTAP's CANCELED says the receiver is closing itself: no error, no rejection.
    let server = serve(Peer::CancelsFirst);
    let mut run = start(format!("http://127.0.0.1:{}", server.port), |s| {
        s.max_in_flight = 1;
    });
    for points in 1..=5 {
        run.push(1, points);
    }
    run.close(Duration::from_secs(10));
    run.assert_conserved(5, 15);
    assert_eq!(run.get(|s| &s.batches_acked), 5);
    assert_eq!(run.get(|s| &s.batches_retried), 1);
    assert_eq!(run.get(|s| &s.batches_rejected), 0);
    assert_eq!(run.get(|s| &s.stream_failures), 0);
    assert!(run.logs.lock().unwrap().is_empty(), "{:?}", run.logs);
    // The batch went first on the next stream, with fresh stream state.
    let streams = server.seen.batches.lock().unwrap().clone();
    assert_eq!(streams.len(), 2);
    assert_eq!(streams[1][0], (0, true));
    let points = server.seen.points.lock().unwrap().clone();
    assert_eq!(points, [vec![1], vec![1, 2, 3, 4, 5]]);
}

#[test]
fn a_receiver_shutting_its_stream_down_is_no_failure_and_gets_the_rest_again() {
    let server = serve(Peer::ShutsDownAfterOne);
    let mut run = start(format!("http://127.0.0.1:{}", server.port), |s| {
        s.ack_timeout = Duration::from_secs(10);
        s.max_in_flight = 2;
    });
    run.push(1, 1);
    run.push(1, 2);
    run.close(Duration::from_secs(10));
    run.assert_conserved(2, 3);
    assert_eq!(run.get(|s| &s.batches_acked), 2);
    assert_eq!(run.get(|s| &s.batches_retried), 1);
    assert_eq!(run.get(|s| &s.stream_failures), 0);
    assert!(run.logs.lock().unwrap().is_empty(), "{:?}", run.logs);
    let points = server.seen.points.lock().unwrap().clone();
    assert_eq!(
        points,
        [vec![1, 2], vec![2]],
        "the unanswered one again, alone"
    );
}

#[test]
fn a_receiver_cancelling_every_stream_costs_a_batch_its_retries_and_no_more() {
    let server = serve(Peer::CancelsStreams);
    let mut run = start(format!("http://127.0.0.1:{}", server.port), |s| {
        s.max_retries = 2;
    });
    run.push(1, 3);
    run.close(Duration::from_secs(10));
    run.assert_conserved(1, 3);
    assert_eq!(run.get(|s| &s.batches_dropped), 1);
    assert_eq!(run.get(|s| &s.batches_retried), 2);
    assert_eq!(run.get(|s| &s.stream_failures), 0);
    assert_eq!(server.seen.streams.load(Ordering::Relaxed), 3);
    assert_eq!(run.logged("dropping batches"), 1, "{:?}", run.logs);
}

#[test]
fn a_receiver_cancelling_every_batch_costs_each_its_retries_and_no_more() {
    let server = serve(Peer::CancelsAll);
    let mut run = start(format!("http://127.0.0.1:{}", server.port), |s| {
        s.max_in_flight = 1;
        s.max_retries = 2;
    });
    run.push(2, 4);
    run.close(Duration::from_secs(10));
    run.assert_conserved(2, 8);
    assert_eq!(run.get(|s| &s.batches_dropped), 2);
    assert_eq!(run.get(|s| &s.batches_retried), 4);
    // One stream per attempt: three for each batch.
    assert_eq!(server.seen.streams.load(Ordering::SeqCst), 6);
    assert_eq!(run.logged("dropping batches"), 1, "{:?}", run.logs);
    // Cancelling is no refusal and no failure (each stream still waits a backoff).
    assert_eq!(run.get(|s| &s.batches_rejected), 0);
    assert_eq!(run.get(|s| &s.stream_failures), 0);
    assert_eq!(run.logged("answered"), 0, "{:?}", run.logs);
}

#[test]
fn a_receiver_closing_itself_mid_window_gets_the_rest_again_in_order() {
    // It answers the first OK, cancels the second and ends the stream: the second and
    // the third go again, in the order they were pushed, and nothing counts as failed.
    let server = serve(Peer::CancelsSecondOfThree);
    // It holds its answers until it has read three: time enough on a busy machine.
    let mut run = patient(&server);
    for points in [10, 20, 30] {
        run.push(1, points);
    }
    run.close(Duration::from_secs(10));
    run.assert_conserved(3, 60);
    assert_eq!(run.get(|s| &s.batches_acked), 3);
    assert_eq!(run.get(|s| &s.batches_retried), 2);
    assert_eq!(run.get(|s| &s.stream_failures), 0);
    assert!(run.logs.lock().unwrap().is_empty(), "{:?}", run.logs);
    let points = server.seen.points.lock().unwrap().clone();
    assert_eq!(points, [vec![10, 20, 30], vec![20, 30]]);
}

#[test]
fn a_receiver_ending_an_idle_stream_is_not_a_failure() {
    let server = serve(Peer::EndsAfterOne);
    let mut run = start(format!("http://127.0.0.1:{}", server.port), |_| {});
    run.push(1, 3);
    wait_until("the batch acked", || run.get(|s| &s.batches_acked) == 1);
    run.close(Duration::from_secs(5));
    assert_eq!(run.get(|s| &s.points_acked), 3);
    assert_eq!(run.get(|s| &s.stream_failures), 0);
    assert_eq!(run.get(|s| &s.batches_dropped), 0);
    assert!(run.logs.lock().unwrap().is_empty(), "{:?}", run.logs);
}

#[test]
fn grpc_compression_compresses_the_messages() {
    let gzip = |s: &mut TransportSettings| {
        s.grpc_compression = its_exporter_otap::GrpcCompression::Gzip;
    };
    // A receiver that takes gzip gets everything.
    let server = serve(Peer::HealthyGzip);
    let mut run = start(format!("http://127.0.0.1:{}", server.port), gzip);
    run.push(4, 2);
    run.close(Duration::from_secs(10));
    assert_eq!(run.get(|s| &s.batches_acked), 4, "{:?}", run.logs);
    // One that does not refuses the compressed stream: the messages really are gzip.
    let server = serve(Peer::Healthy);
    let mut run = start(format!("http://127.0.0.1:{}", server.port), gzip);
    run.push(1, 1);
    wait_until("a refused stream", || run.get(|s| &s.stream_failures) >= 1);
    run.close(Duration::from_millis(100));
    assert_eq!(run.get(|s| &s.batches_acked), 0);
    run.assert_conserved(1, 1);
}

#[test]
fn headers_open_the_stream_and_a_refused_token_is_not_retried() {
    let server = serve(Peer::RequiresToken);
    let endpoint = format!("http://127.0.0.1:{}", server.port);

    // With the token: delivered, and the receiver saw it on the stream.
    let mut run = start(endpoint.clone(), |s| {
        s.headers = vec![("Authorization".into(), TOKEN.into())];
    });
    run.push(3, 2);
    wait_until("every batch acked", || run.get(|s| &s.batches_acked) == 3);
    run.close(Duration::from_millis(200));
    run.assert_conserved(3, 6);
    assert_eq!(
        server.seen.authorization.lock().unwrap()[0].as_deref(),
        Some(TOKEN)
    );

    // Without: every stream is refused before a batch is read; the batches are
    // rejected and dropped, never retried, and the refusal is logged once.
    let mut run = start(endpoint, |s| s.max_in_flight = 2);
    run.push(4, 1);
    wait_until("every batch dropped", || {
        run.get(|s| &s.batches_dropped) == 4
    });
    run.close(Duration::from_millis(100));
    run.assert_conserved(4, 4);
    assert_eq!(run.get(|s| &s.batches_rejected), 4);
    assert_eq!(run.get(|s| &s.batches_retried), 0);
    assert_eq!(run.logged("refused the stream"), 1, "{:?}", run.logs);
    assert_eq!(run.logged("Unauthenticated"), 1, "{:?}", run.logs);
}

#[test]
fn mutual_tls_presents_the_client_certificate() {
    let (server_cert, server_key) = certificate();
    let (client_cert, client_key) = certificate();
    let dir = std::env::temp_dir().join(format!("its-otap-mtls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let write = |name: &str, pem: &str| {
        let path = dir.join(name);
        std::fs::write(&path, pem).unwrap();
        path
    };
    let ca = write("ca.pem", &server_cert);
    let identity = (
        write("client.pem", &client_cert),
        write("client-key.pem", &client_key),
    );
    let server = serve_with(
        Peer::Healthy,
        Some((server_cert, server_key)),
        Some(client_cert),
    );
    let endpoint = format!("https://127.0.0.1:{}", server.port);

    // With the client certificate: delivered.
    let mut run = start(endpoint.clone(), |s| {
        s.ca_file = Some(ca.clone());
        s.client_identity = Some(identity.clone());
    });
    run.push(3, 2);
    run.close(Duration::from_secs(10));
    assert_eq!(run.get(|s| &s.batches_acked), 3, "{:?}", run.logs);

    // Without: the server ends the handshake; nothing is delivered, every batch is
    // accounted for, and the failure is counted.
    let mut run = start(endpoint, |s| {
        s.ca_file = Some(ca.clone());
        s.max_retries = 1;
    });
    run.push(3, 2);
    wait_until("every batch dropped", || {
        run.get(|s| &s.batches_dropped) == 3
    });
    run.close(Duration::from_millis(100));
    let _ = std::fs::remove_dir_all(&dir);
    run.assert_conserved(3, 6);
    assert_eq!(run.get(|s| &s.batches_acked), 0);
    assert!(
        run.get(|s| &s.connect_failures) + run.get(|s| &s.stream_failures) > 0,
        "{:?}",
        run.logs
    );
}

#[test]
fn a_full_queue_drops_whole_intervals_never_its_own_parts() {
    // Nothing listens: everything waits in the queue, which holds two intervals.
    let mut run = start(nobody_listening(), |s| s.queue_capacity = 2);
    // One interval split in five parts: all kept, though the queue holds two.
    run.transport
        .push_interval((0..5).map(|_| tables(3)).collect());
    assert_eq!(run.get(|s| &s.batches_dropped), 0);
    // Two more intervals of two parts: the oldest interval goes, all five parts.
    for _ in 0..2 {
        run.transport.push_interval(vec![tables(1), tables(1)]);
    }
    assert_eq!(run.get(|s| &s.batches_dropped), 5);
    assert_eq!(run.get(|s| &s.points_dropped), 15);
    run.close(Duration::from_millis(100));
    run.assert_conserved(9, 19);
}

#[test]
fn a_full_queue_lets_an_interval_go_as_superseded_only_when_newer_totals_wait_behind_it() {
    // Nothing listens: everything waits in the queue, which holds two intervals.
    let mut run = start(nobody_listening(), |s| s.queue_capacity = 2);
    let counted = |run: &Run| {
        (
            run.get(|s| &s.batches_superseded),
            run.get(|s| &s.points_superseded),
            run.get(|s| &s.batches_dropped),
            run.get(|s| &s.points_dropped),
        )
    };
    run.push_tables(cumulative(3, &[1, 2]));
    run.push_tables(cumulative(2, &[1]));
    // The first goes: the third carries the totals of both its series.
    run.push_tables(cumulative(4, &[1, 2, 3]));
    assert_eq!(counted(&run), (1, 3, 0, 0));
    // The second goes: its one series is in the third (and not in the fourth).
    run.push_tables(cumulative(1, &[9]));
    assert_eq!(counted(&run), (2, 5, 0, 0));
    // The third goes as dropped: series 2 and 3 are in the fifth, but series 1 is in
    // none of the batches behind it.
    run.push_tables(cumulative(1, &[2, 3]));
    assert_eq!(counted(&run), (2, 5, 1, 4));
    // Deltas carry no totals: the fourth goes, and series 9 with it.
    run.push_tables(tables(2));
    assert_eq!(counted(&run), (2, 5, 2, 5));
    run.close(Duration::from_millis(100));
    run.assert_conserved(6, 13);
}

#[test]
fn a_full_queue_judges_each_part_of_an_interval_against_all_the_batches_behind_it() {
    let mut run = start(nobody_listening(), |s| s.queue_capacity = 2);
    let superseded_and_dropped = |run: &Run| {
        (
            run.get(|s| &s.points_superseded),
            run.get(|s| &s.points_dropped),
        )
    };
    // Three intervals of two parts each: the first carries series 1 and 2 in one part
    // and series 3 in the other; the second carries 1 and 2 again, one in each part;
    // the third neither.
    run.transport
        .push_interval(vec![cumulative(1, &[1, 2]), cumulative(2, &[3])]);
    run.transport
        .push_interval(vec![cumulative(4, &[1]), cumulative(8, &[2])]);
    run.transport
        .push_interval(vec![cumulative(16, &[4]), cumulative(32, &[5])]);
    // The first interval goes: its first part is carried on, by two batches only
    // together, its second part by none.
    assert_eq!(superseded_and_dropped(&run), (1, 2));
    run.close(Duration::from_millis(100));
    run.assert_conserved(6, 63);
}

#[test]
fn a_stream_past_its_lifetime_hands_over_to_a_fresh_one_quietly() {
    let server = serve(Peer::Healthy);
    let mut run = start(format!("http://127.0.0.1:{}", server.port), |s| {
        s.max_stream_lifetime = Duration::from_millis(50);
    });
    // One batch at a time until a second stream took over (the lifetime is time, so
    // the number of batches that takes is not fixed; the bound only stops a broken
    // build from looping).
    let mut pushed = 0;
    while server.seen.streams.load(Ordering::SeqCst) < 3 {
        assert!(pushed < 10_000, "no new stream after {pushed} batches");
        run.push(1, 2);
        pushed += 1;
        wait_until("the batch acked", || {
            run.get(|s| &s.batches_acked) == pushed
        });
    }
    run.close(Duration::from_secs(2));
    run.assert_conserved(pushed, 2 * pushed);
    assert_eq!(run.get(|s| &s.batches_acked), pushed);
    // Each stream started over: batch id 0 with a schema (fresh dictionaries), and a
    // stream lived long enough to carry more than the batch it opened with.
    let streams = server.seen.batches.lock().unwrap().clone();
    assert!(streams.iter().all(|s| s[0] == (0, true)), "{streams:?}");
    assert!(streams.iter().any(|s| s.len() > 1), "{streams:?}");
    // A retired stream is not a failure, and nothing is logged.
    assert_eq!(run.get(|s| &s.stream_failures), 0);
    assert_eq!(run.get(|s| &s.batches_retried), 0);
    assert!(run.logs.lock().unwrap().is_empty(), "{:?}", run.logs);
}

#[test]
fn a_retiring_stream_drains_its_batches_in_flight_before_handing_over() {
    // Answers come 20 ms late and three batches go at once, so batches are in flight
    // when a stream reaches its 30 ms lifetime: they must be answered on it, not lost.
    let server = serve(Peer::Slow);
    let mut run = start(format!("http://127.0.0.1:{}", server.port), |s| {
        s.max_stream_lifetime = Duration::from_millis(30);
    });
    let mut pushed = 0;
    while server.seen.streams.load(Ordering::SeqCst) < 3 {
        assert!(pushed < 3_000, "no new stream after {pushed} batches");
        run.push(3, 1);
        pushed += 3;
        wait_until("the batches acked", || {
            run.get(|s| &s.batches_acked) == pushed
        });
    }
    run.close(Duration::from_secs(2));
    run.assert_conserved(pushed, pushed);
    assert_eq!(run.get(|s| &s.stream_failures), 0);
    assert_eq!(run.get(|s| &s.batches_retried), 0);
    let streams = server.seen.batches.lock().unwrap().clone();
    assert!(streams.iter().all(|s| s[0] == (0, true)), "{streams:?}");
}

/// Six batches of three points through `auto` compression (no retries) to `peer`:
/// every one delivered, whatever it refused, with no failure and no retry spent.
fn deliver_with_auto_compression(peer: Peer) -> (Server, Run) {
    let server = serve(peer);
    let mut run = start(format!("http://127.0.0.1:{}", server.port), |s| {
        s.grpc_compression = its_exporter_otap::GrpcCompression::Auto;
        s.ipc_compression_auto = true;
        s.max_retries = 0;
    });
    run.push(6, 3);
    run.close(Duration::from_secs(10));
    assert_eq!(run.get(|s| &s.batches_acked), 6, "{:?}", run.logs);
    run.assert_conserved(6, 18);
    assert_eq!(run.get(|s| &s.stream_failures), 0);
    assert_eq!(run.get(|s| &s.batches_retried), 0);
    (server, run)
}

#[test]
fn auto_compression_sends_zstd_messages_and_plain_ipc_bodies_where_they_are_taken() {
    let (server, run) = deliver_with_auto_compression(Peer::HealthyZstd);
    assert_eq!(server.seen.streams.load(Ordering::SeqCst), 1);
    assert_eq!(
        *server.seen.encodings.lock().unwrap(),
        [Some("zstd".into())]
    );
    assert_eq!(*server.seen.ipc_zstd.lock().unwrap(), [false; 6]);
    assert!(run.logs.lock().unwrap().is_empty(), "{:?}", run.logs);
}

#[test]
fn auto_compression_falls_back_to_gzip_for_a_receiver_that_takes_gzip() {
    // As grpcio: zstd refused, gzip taken. The IPC bodies stay plain, since the
    // messages are still compressed.
    let (server, run) = deliver_with_auto_compression(Peer::HealthyGzip);
    assert_eq!(
        *server.seen.encodings.lock().unwrap(),
        [Some("zstd".into()), Some("gzip".into())]
    );
    assert_eq!(*server.seen.ipc_zstd.lock().unwrap(), [false; 6]);
    assert_eq!(
        run.logged("does not take zstd-compressed gRPC messages"),
        1,
        "{:?}",
        run.logs
    );
    assert_eq!(run.logged("sending them gzip-compressed from now on"), 1);
    assert_eq!(run.logs.lock().unwrap().len(), 1, "{:?}", run.logs);
}

#[test]
fn auto_compression_keeps_zstd_when_the_receiver_answered_before_naming_it() {
    // A receiver that acked a zstd-compressed batch has read zstd: a status naming
    // zstd later on that stream is a broken stream (retried, counted), not a refusal
    // that would turn compression down for good.
    let server = serve(Peer::AcksThenNamesZstd);
    let mut run = start(format!("http://127.0.0.1:{}", server.port), |s| {
        s.grpc_compression = its_exporter_otap::GrpcCompression::Auto;
        s.ipc_compression_auto = true;
        s.max_in_flight = 1;
    });
    run.push(3, 1);
    run.close(Duration::from_secs(10));
    assert_eq!(run.get(|s| &s.batches_acked), 3, "{:?}", run.logs);
    run.assert_conserved(3, 3);
    assert_eq!(run.get(|s| &s.stream_failures), 1);
    assert_eq!(
        *server.seen.encodings.lock().unwrap(),
        [Some("zstd".into()), Some("zstd".into())]
    );
    assert_eq!(run.logged("does not take"), 0, "{:?}", run.logs);
    assert_eq!(run.logged("broke"), 1, "{:?}", run.logs);
}

#[test]
fn auto_compression_falls_back_step_by_step_to_uncompressed_messages() {
    // tonic without zstd or gzip refuses the compressed streams with UNIMPLEMENTED:
    // the same batches go again gzip-compressed, then uncompressed with zstd IPC
    // bodies; no failure, no retry spent, one line logged per step.
    let (server, run) = deliver_with_auto_compression(Peer::Healthy);
    assert_eq!(*server.seen.ipc_zstd.lock().unwrap(), [true; 6]);
    assert_eq!(
        *server.seen.encodings.lock().unwrap(),
        [Some("zstd".into()), Some("gzip".into()), None]
    );
    assert_eq!(run.logged("does not take zstd-compressed gRPC messages"), 1);
    assert_eq!(run.logged("does not take gzip-compressed gRPC messages"), 1);
    assert_eq!(
        run.logged("sending them uncompressed, with zstd Arrow IPC bodies, from now on"),
        1
    );
    assert_eq!(run.logs.lock().unwrap().len(), 2, "{:?}", run.logs);
    // The refused streams never reached the service; the last carried everything from
    // batch id 0 with its schema.
    let batches = server.seen.batches.lock().unwrap().clone();
    let ids: Vec<i64> = batches.last().unwrap().iter().map(|(id, _)| *id).collect();
    assert_eq!(ids, (0..6).collect::<Vec<_>>());
    assert!(batches.last().unwrap()[0].1);

    // Explicit zstd is not auto: the same receiver's refusal fails the stream.
    let zstd = |s: &mut TransportSettings| {
        s.grpc_compression = its_exporter_otap::GrpcCompression::Zstd;
        s.max_retries = 0;
    };
    let mut run = start(format!("http://127.0.0.1:{}", server.port), zstd);
    run.push(1, 1);
    wait_until("a refused stream", || run.get(|s| &s.stream_failures) >= 1);
    run.close(Duration::from_millis(100));
    assert_eq!(run.get(|s| &s.batches_acked), 0);
    run.assert_conserved(1, 1);
}
