//! The per-core reporter: registration of sets, sparse snapshots, the bounded queue.
//!
//! One [`Reporter`] lives on each core. It owns (a reference to) every metric set
//! registered on that core; the user records through a [`MetricSetHandle`] with plain
//! loads and stores. On [`Reporter::report`] it copies the dirty fields of every set into
//! a [`SnapshotBatch`], resets them and `try_send`s the batch on a bounded queue:
//!
//! - a full queue is never waited on: the values stay in the sets (or in the one batch
//!   already taken) and leave with the next report; nothing is lost, nothing blocks;
//! - a set is announced by a [`Registration`] in the same batch as, and ahead of, its
//!   first snapshot; later snapshots carry only its [`SetId`];
//! - a set whose handle was dropped is reported one last time, then unregistered;
//! - batches come back from the consumer through [`SnapshotReceiver::recycle`], so in
//!   steady state a report allocates nothing.

use std::cell::RefCell;
use std::marker::PhantomData;
use std::ops::Deref;
use std::rc::Rc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Receiver, RecvTimeoutError, SendTimeoutError, Sender, TrySendError};

use crate::attributes::AttributeSet;
use crate::metric_set::{DynMetricSet, MetricSet};
use crate::snapshot::{Registration, SetId, SnapshotBatch};

static NEXT_SET_ID: AtomicU32 = AtomicU32::new(0);
static LOST_VALUES: AtomicU64 = AtomicU64::new(0);
static DETACHED_SETS: AtomicU64 = AtomicU64::new(0);

/// Values the process could not deliver because the consumer was gone (the receiver was
/// dropped) when a reporter sent them. Anything else is delivered, possibly late.
pub fn lost_values() -> u64 {
    LOST_VALUES.load(Ordering::Relaxed)
}

/// Sets registered through [`register`] on a thread with no installed reporter: their
/// values are never reported.
pub fn detached_sets() -> u64 {
    DETACHED_SETS.load(Ordering::Relaxed)
}

/// Nanoseconds since the Unix epoch (0 for a clock before 1970).
pub fn unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Creates the bounded queue between reporters and one consumer.
///
/// `capacity` is the number of batches in flight (at least 1). Clone the sender for each
/// core that reports into this queue.
pub fn channel(capacity: usize) -> (SnapshotSender, SnapshotReceiver) {
    let capacity = capacity.max(1);
    let (tx, rx) = crossbeam_channel::bounded(capacity);
    // Room for every batch in flight plus one spare per reporter in most set-ups; a
    // batch that does not fit is simply freed.
    let (recycle_tx, recycle_rx) = crossbeam_channel::bounded(capacity + 16);
    (
        SnapshotSender {
            tx,
            recycled: recycle_rx,
        },
        SnapshotReceiver {
            rx,
            recycle: recycle_tx,
        },
    )
}

/// The reporting end of the queue; clone it for each core.
#[derive(Debug, Clone)]
pub struct SnapshotSender {
    tx: Sender<SnapshotBatch>,
    recycled: Receiver<SnapshotBatch>,
}

impl SnapshotSender {
    /// A batch to fill, reused from the consumer's recycled ones when there is one.
    pub fn fresh_batch(&self, core: u32, numa_node: u32, end_unix_nanos: u64) -> SnapshotBatch {
        let mut batch = self.recycled.try_recv().unwrap_or_default();
        batch.reset(core, numa_node, end_unix_nanos);
        batch
    }

    /// Sends a batch built elsewhere (a relay such as the NUMA first stage of the ITS),
    /// waiting for room until `deadline`; hands the batch back on time-out or when the
    /// consumer is gone. Values of a batch the caller then gives up are the caller's to
    /// count (see [`count_lost`]).
    pub fn send_deadline(&self, batch: SnapshotBatch, deadline: Instant) -> Result<(), RelayError> {
        self.tx.send_deadline(batch, deadline).map_err(|e| match e {
            SendTimeoutError::Timeout(b) => RelayError::Timeout(b),
            SendTimeoutError::Disconnected(b) => RelayError::Disconnected(b),
        })
    }
}

/// Why [`SnapshotSender::send_deadline`] handed a batch back.
#[derive(Debug)]
pub enum RelayError {
    /// No room before the deadline.
    Timeout(SnapshotBatch),
    /// The consumer is gone.
    Disconnected(SnapshotBatch),
}

/// Adds the values of a batch that could not be delivered to [`lost_values`].
pub fn count_lost(batch: &SnapshotBatch) {
    LOST_VALUES.fetch_add(batch.value_count() as u64, Ordering::Relaxed);
}

impl SnapshotSender {}

/// A new process-wide set id, for relays that build their own registrations.
pub fn next_set_id() -> SetId {
    SetId(NEXT_SET_ID.fetch_add(1, Ordering::Relaxed))
}

/// The consuming end of the queue.
#[derive(Debug)]
pub struct SnapshotReceiver {
    rx: Receiver<SnapshotBatch>,
    recycle: Sender<SnapshotBatch>,
}

impl SnapshotReceiver {
    /// Takes a batch if one is waiting.
    pub fn try_recv(&self) -> Option<SnapshotBatch> {
        self.rx.try_recv().ok()
    }

    /// Takes a batch if one is waiting; `Err(Disconnected)` once every reporter is gone
    /// and the queue is empty (nothing more will ever come).
    pub fn try_next(&self) -> Result<Option<SnapshotBatch>, RecvError> {
        match self.rx.try_recv() {
            Ok(batch) => Ok(Some(batch)),
            Err(crossbeam_channel::TryRecvError::Empty) => Ok(None),
            Err(crossbeam_channel::TryRecvError::Disconnected) => Err(RecvError::Disconnected),
        }
    }

    /// Waits up to `timeout` for a batch. `Err(Disconnected)` once every sender is gone
    /// and the queue is empty.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<SnapshotBatch, RecvError> {
        self.rx.recv_timeout(timeout).map_err(|e| match e {
            RecvTimeoutError::Timeout => RecvError::Timeout,
            RecvTimeoutError::Disconnected => RecvError::Disconnected,
        })
    }

    /// Waits for a batch; `None` once every sender is gone and the queue is empty.
    pub fn recv(&self) -> Option<SnapshotBatch> {
        self.rx.recv().ok()
    }

    /// Hands a processed batch back to the reporters for reuse.
    pub fn recycle(&self, batch: SnapshotBatch) {
        // A full recycle queue only means the batch is freed instead of reused.
        let _ = self.recycle.try_send(batch);
    }

    /// A handle that recycles batches from elsewhere (the node that finishes with a
    /// batch is often not the one that received it).
    pub fn recycler(&self) -> Recycler {
        Recycler {
            recycle: self.recycle.clone(),
        }
    }

    /// Batches waiting in the queue.
    pub fn len(&self) -> usize {
        self.rx.len()
    }

    /// Whether no batch is waiting.
    pub fn is_empty(&self) -> bool {
        self.rx.is_empty()
    }

    /// The queue's capacity in batches.
    pub fn capacity(&self) -> usize {
        self.rx.capacity().unwrap_or(0)
    }
}

/// Hands processed batches back to the reporters; see [`SnapshotReceiver::recycler`].
#[derive(Debug, Clone)]
pub struct Recycler {
    recycle: Sender<SnapshotBatch>,
}

impl Recycler {
    /// Hands a processed batch back for reuse (freed if the recycle queue is full).
    pub fn recycle(&self, batch: SnapshotBatch) {
        let _ = self.recycle.try_send(batch);
    }
}

/// Why [`SnapshotReceiver::recv_timeout`] returned no batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecvError {
    /// Nothing arrived in time.
    Timeout,
    /// Every reporter is gone and the queue is empty.
    Disconnected,
}

impl std::fmt::Display for RecvError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RecvError::Timeout => "no snapshot batch arrived in time",
            RecvError::Disconnected => "every reporter is gone and the snapshot queue is empty",
        })
    }
}

impl std::error::Error for RecvError {}

/// What one call to [`Reporter::report`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportOutcome {
    /// A batch was handed to the queue.
    Sent,
    /// Nothing to report.
    Idle,
    /// The queue was full: the values wait (in the sets, or in one pending batch) for the
    /// next report.
    Deferred,
    /// The consumer is gone: the batch's values were counted in [`lost_values`].
    Lost,
}

/// Counters a reporter keeps about itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReporterStats {
    /// Calls to `report`.
    pub reports: u64,
    /// Batches handed to the queue.
    pub batches_sent: u64,
    /// Reports that found the queue full.
    pub deferred: u64,
    /// Batches dropped because the consumer was gone.
    pub lost_batches: u64,
    /// Field values in those batches.
    pub lost_values: u64,
}

/// Identity of a reporter's own metric set.
#[crate::attribute_set(name = "metric_schema.reporter.attrs")]
pub struct ReporterAttrs {
    /// The reporter's core.
    #[attribute(key = "core.id")]
    pub core: u32,
    /// Its NUMA node.
    #[attribute(key = "numa.node")]
    pub numa_node: u32,
}

/// A reporter's own counters, reported with its core's sets (opt in with
/// [`Reporter::with_self_metrics`]).
#[crate::metric_set(name = "metric_schema.reporter")]
pub struct ReporterMetrics {
    /// Reports attempted.
    #[metric(unit = "{report}")]
    pub reports: crate::Counter<u64>,
    /// Reports that found the queue full: their values waited in the sets for the next
    /// report.
    #[metric(unit = "{report}")]
    pub deferred: crate::Counter<u64>,
    /// Batches handed to the queue.
    #[metric(unit = "{batch}")]
    pub batches_sent: crate::Counter<u64>,
}

struct Entry {
    id: SetId,
    set: Rc<dyn DynMetricSet>,
    /// Present until the registration has been put in a batch.
    registration: Option<Registration>,
    window_start: u64,
}

/// A registered metric set: dereferences to the set, records with plain stores.
///
/// Dropping the last handle unregisters the set after its last values are reported.
/// The handle is `!Send`: a set is recorded only by the core that registered it.
pub struct MetricSetHandle<M: MetricSet> {
    set: Rc<M>,
    id: Option<SetId>,
}

/// Another handle to the same set (for example one for a node's loop and one for its
/// effect handler). The set is unregistered once every handle is dropped.
impl<M: MetricSet> Clone for MetricSetHandle<M> {
    fn clone(&self) -> Self {
        MetricSetHandle {
            set: Rc::clone(&self.set),
            id: self.id,
        }
    }
}

impl<M: MetricSet> MetricSetHandle<M> {
    /// The id snapshots of this set carry (`None` for a detached set).
    pub fn id(&self) -> Option<SetId> {
        self.id
    }
}

impl<M: MetricSet> Deref for MetricSetHandle<M> {
    type Target = M;

    #[inline(always)]
    fn deref(&self) -> &M {
        &self.set
    }
}

impl<M: MetricSet> std::fmt::Debug for MetricSetHandle<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricSetHandle")
            .field("set", &M::DESCRIPTOR.name)
            .field("id", &self.id)
            .finish()
    }
}

/// The reporter of one core. See the [module documentation](self).
pub struct Reporter {
    core: u32,
    numa_node: u32,
    sender: SnapshotSender,
    sets: Vec<Entry>,
    pending: Option<SnapshotBatch>,
    spare: Option<SnapshotBatch>,
    interval: Duration,
    next_due: Instant,
    stats: ReporterStats,
    self_metrics: Option<MetricSetHandle<ReporterMetrics>>,
}

impl std::fmt::Debug for Reporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reporter")
            .field("core", &self.core)
            .field("numa_node", &self.numa_node)
            .field("sets", &self.sets.len())
            .field("pending", &self.pending.is_some())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

/// Default cadence of [`Reporter::report_if_due`].
pub const DEFAULT_REPORT_INTERVAL: Duration = Duration::from_secs(1);

impl Reporter {
    /// A reporter for `core` on `numa_node`, sending into `sender`.
    pub fn new(sender: SnapshotSender, core: u32, numa_node: u32) -> Self {
        Reporter {
            core,
            numa_node,
            sender,
            sets: Vec::new(),
            pending: None,
            spare: None,
            interval: DEFAULT_REPORT_INTERVAL,
            next_due: Instant::now() + DEFAULT_REPORT_INTERVAL,
            stats: ReporterStats::default(),
            self_metrics: None,
        }
    }

    /// Also reports the reporter's own counters (reports, deferred reports, batches
    /// sent) as the `metric_schema.reporter` set of this core: a full queue becomes
    /// visible downstream.
    #[must_use]
    pub fn with_self_metrics(mut self) -> Self {
        let attrs = ReporterAttrs {
            core: self.core,
            numa_node: self.numa_node,
        };
        self.self_metrics = Some(self.register::<ReporterMetrics, _>(&attrs));
        self
    }

    /// Sets the cadence used by [`Reporter::report_if_due`].
    #[must_use]
    pub fn with_interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self.next_due = Instant::now() + interval;
        self
    }

    /// The core this reporter belongs to.
    pub fn core(&self) -> u32 {
        self.core
    }

    /// The NUMA node of that core.
    pub fn numa_node(&self) -> u32 {
        self.numa_node
    }

    /// Counters about this reporter.
    pub fn stats(&self) -> ReporterStats {
        self.stats
    }

    /// Live sets (dropped handles are counted until their last report).
    pub fn set_count(&self) -> usize {
        self.sets.len()
    }

    /// Registers a new, zeroed set of type `M` bound to `attributes`.
    #[cold]
    pub fn register<M: MetricSet, A: AttributeSet>(
        &mut self,
        attributes: &A,
    ) -> MetricSetHandle<M> {
        let set = Rc::new(M::default());
        let id = next_set_id();
        let now = unix_nanos();
        self.sets.push(Entry {
            id,
            set: set.clone(),
            registration: Some(Registration {
                set_id: id,
                descriptor: M::DESCRIPTOR,
                attributes: A::DESCRIPTOR,
                attribute_values: attributes.values(),
                core: self.core,
                numa_node: self.numa_node,
                start_unix_nanos: now,
            }),
            window_start: now,
        });
        MetricSetHandle { set, id: Some(id) }
    }

    /// Reports if the interval has elapsed since the last report due.
    pub fn report_if_due(&mut self) -> Option<ReportOutcome> {
        let now = Instant::now();
        if now < self.next_due {
            return None;
        }
        self.next_due = now + self.interval;
        Some(self.report())
    }

    /// Snapshots every dirty field of every set into one batch and `try_send`s it.
    /// Never blocks. See the [module documentation](self).
    pub fn report(&mut self) -> ReportOutcome {
        let outcome = self.report_inner();
        // Counted after the fact: these land in the next report, like any value.
        if let Some(m) = &self.self_metrics {
            m.reports.inc();
            match outcome {
                ReportOutcome::Deferred => m.deferred.inc(),
                ReportOutcome::Sent => m.batches_sent.inc(),
                ReportOutcome::Idle | ReportOutcome::Lost => {}
            }
        }
        outcome
    }

    fn report_inner(&mut self) -> ReportOutcome {
        self.stats.reports += 1;
        if let Some(outcome) = self.flush_pending(None) {
            return outcome;
        }
        if self.sender.tx.is_full() {
            // Leave the values where they are: they go out with the next report.
            self.stats.deferred += 1;
            return ReportOutcome::Deferred;
        }
        let batch = self.snapshot(false);
        self.send(batch, None)
    }

    /// Reports every set one last time and unregisters them all, waiting for room in the
    /// queue until `deadline`. What still cannot be sent is counted in [`lost_values`].
    pub fn shutdown(mut self, deadline: Instant) -> ReportOutcome {
        self.finish(Some(deadline))
    }

    fn finish(&mut self, deadline: Option<Instant>) -> ReportOutcome {
        if self.flush_pending(deadline).is_some() {
            // Still no room: the pending batch is given up; count it.
            if let Some(batch) = self.pending.take() {
                self.count_lost(&batch);
            }
        }
        if self.sets.is_empty() {
            return ReportOutcome::Idle;
        }
        let batch = self.snapshot(true);
        let outcome = self.send(batch, deadline);
        if let Some(batch) = self.pending.take() {
            self.count_lost(&batch);
            return ReportOutcome::Lost;
        }
        outcome
    }

    /// Sends the pending batch first; `Some(outcome)` when the report must stop there.
    fn flush_pending(&mut self, deadline: Option<Instant>) -> Option<ReportOutcome> {
        let batch = self.pending.take()?;
        match self.send(batch, deadline) {
            ReportOutcome::Deferred => Some(ReportOutcome::Deferred),
            _ => None,
        }
    }

    fn snapshot(&mut self, unregister_all: bool) -> SnapshotBatch {
        let now = unix_nanos();
        let mut batch = self
            .spare
            .take()
            .or_else(|| self.sender.recycled.try_recv().ok())
            .unwrap_or_default();
        batch.reset(self.core, self.numa_node, now);
        let mut i = 0;
        while i < self.sets.len() {
            let entry = &mut self.sets[i];
            if let Some(registration) = entry.registration.take() {
                batch.push_registration(registration);
            }
            let set = &entry.set;
            batch.write_set(entry.id, entry.window_start, |w| set.snapshot_into(w));
            entry.window_start = now;
            if unregister_all || Rc::strong_count(&entry.set) == 1 {
                batch.push_unregistration(entry.id);
                self.sets.swap_remove(i);
            } else {
                i += 1;
            }
        }
        batch
    }

    fn send(&mut self, batch: SnapshotBatch, deadline: Option<Instant>) -> ReportOutcome {
        if batch.is_empty() {
            self.spare = Some(batch);
            return ReportOutcome::Idle;
        }
        let result = match deadline {
            None => self.sender.tx.try_send(batch).map_err(|e| match e {
                TrySendError::Full(b) => (b, false),
                TrySendError::Disconnected(b) => (b, true),
            }),
            Some(deadline) => self
                .sender
                .tx
                .send_deadline(batch, deadline)
                .map_err(|e| match e {
                    SendTimeoutError::Timeout(b) => (b, false),
                    SendTimeoutError::Disconnected(b) => (b, true),
                }),
        };
        match result {
            Ok(()) => {
                self.stats.batches_sent += 1;
                ReportOutcome::Sent
            }
            Err((batch, false)) => {
                self.stats.deferred += 1;
                self.pending = Some(batch);
                ReportOutcome::Deferred
            }
            Err((batch, true)) => {
                self.count_lost(&batch);
                ReportOutcome::Lost
            }
        }
    }

    #[cold]
    fn count_lost(&mut self, batch: &SnapshotBatch) {
        let values = batch.value_count() as u64;
        self.stats.lost_batches += 1;
        self.stats.lost_values += values;
        LOST_VALUES.fetch_add(values, Ordering::Relaxed);
    }
}

impl Drop for Reporter {
    /// A last, non-blocking report; prefer [`Reporter::shutdown`] with a deadline.
    fn drop(&mut self) {
        self.finish(None);
    }
}

thread_local! {
    static CURRENT: RefCell<Option<Reporter>> = const { RefCell::new(None) };
}

/// Why a set could not be registered on this thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegisterError {
    /// No reporter is installed on this thread: call [`install`] first.
    NoReporter,
}

impl std::fmt::Display for RegisterError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(
            "no metric reporter is installed on this thread: call metric_schema::install(reporter) on the core before registering metric sets",
        )
    }
}

impl std::error::Error for RegisterError {}

/// [`install`] found a reporter already installed on this thread; the one offered is
/// handed back.
#[derive(Debug)]
pub struct AlreadyInstalled(pub Box<Reporter>);

impl std::fmt::Display for AlreadyInstalled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "a metric reporter is already installed on this thread; uninstall it before installing the one for core {}",
            self.0.core
        )
    }
}

impl std::error::Error for AlreadyInstalled {}

/// Installs `reporter` as this thread's reporter, for [`register`] and [`report`].
///
/// Hands the reporter back if one is already installed. Dropping the guard uninstalls
/// the reporter and lets it report one last time.
pub fn install(reporter: Reporter) -> Result<InstalledReporter, AlreadyInstalled> {
    CURRENT.with(|current| {
        let mut current = current.borrow_mut();
        if current.is_some() {
            return Err(AlreadyInstalled(Box::new(reporter)));
        }
        *current = Some(reporter);
        Ok(InstalledReporter {
            _not_send: PhantomData,
        })
    })
}

/// Keeps a reporter installed on this thread; see [`install`].
#[derive(Debug)]
pub struct InstalledReporter {
    _not_send: PhantomData<Rc<()>>,
}

impl InstalledReporter {
    /// Uninstalls the reporter and returns it (for example to call
    /// [`Reporter::shutdown`]).
    pub fn uninstall(self) -> Reporter {
        let reporter = CURRENT.with(|c| c.borrow_mut().take());
        std::mem::forget(self);
        reporter.expect("an InstalledReporter guard exists only while a reporter is installed")
    }
}

impl Drop for InstalledReporter {
    fn drop(&mut self) {
        // Take it out first: the reporter's own drop must not run inside the borrow.
        let reporter = CURRENT.with(|c| c.borrow_mut().take());
        drop(reporter);
    }
}

/// Runs `f` with this thread's reporter, if one is installed.
pub fn with_reporter<R>(f: impl FnOnce(&mut Reporter) -> R) -> Option<R> {
    CURRENT.with(|current| current.borrow_mut().as_mut().map(f))
}

/// Registers a set on this thread's reporter.
pub fn try_register<M: MetricSet, A: AttributeSet>(
    attributes: &A,
) -> Result<MetricSetHandle<M>, RegisterError> {
    with_reporter(|r| r.register::<M, A>(attributes)).ok_or(RegisterError::NoReporter)
}

/// Registers a set on this thread's reporter.
///
/// With no reporter installed the set still works but is never reported: it is counted
/// in [`detached_sets`] and a warning is printed once per process. Use [`try_register`]
/// to handle that case yourself.
pub fn register<M: MetricSet, A: AttributeSet>(attributes: &A) -> MetricSetHandle<M> {
    try_register(attributes).unwrap_or_else(|_| detached())
}

#[cold]
fn detached<M: MetricSet>() -> MetricSetHandle<M> {
    if DETACHED_SETS.fetch_add(1, Ordering::Relaxed) == 0 {
        eprintln!(
            "metric_schema: metric set `{}` registered on a thread with no reporter; its values will not be reported ({})",
            M::DESCRIPTOR.name,
            RegisterError::NoReporter
        );
    }
    MetricSetHandle {
        set: Rc::new(M::default()),
        id: None,
    }
}

/// Reports this thread's sets now; `None` if no reporter is installed.
pub fn report() -> Option<ReportOutcome> {
    with_reporter(Reporter::report)
}

/// Reports this thread's sets if their interval has elapsed.
pub fn report_if_due() -> Option<ReportOutcome> {
    with_reporter(Reporter::report_if_due).flatten()
}
