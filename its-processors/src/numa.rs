//! The NUMA first stage: one thread per NUMA node, pinned to a core of that node,
//! folds its node's snapshot queue into series and relays only pre-aggregated batches
//! to the internal pipeline on the other side. With one NUMA node there is no first
//! stage: the receiver drains the node's queue directly.
//!
//! Nothing is dropped on the way: a stage waits for room in the cross-node queue, which
//! fills its own queue, which makes the cores defer their reports.

use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use metric_schema::reporter::{RecvError, RelayError, unix_nanos};
use metric_schema::{SnapshotReceiver, SnapshotSender};
use nodes::Topology;

use crate::aggregate::{Aggregator, Keep};

/// What one first stage moved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StageStats {
    /// Its NUMA node.
    pub numa_node: u32,
    /// Snapshot batches received from the node's cores.
    pub batches_in: u64,
    /// Bytes of value words received from the node's cores.
    pub bytes_in: u64,
    /// Pre-aggregated batches sent across nodes.
    pub batches_out: u64,
    /// Bytes of value words sent across nodes.
    pub bytes_out: u64,
}

/// The running first stages.
#[derive(Debug)]
pub struct FirstStages {
    threads: Vec<JoinHandle<StageStats>>,
}

impl FirstStages {
    /// Waits for every stage to end (once every core's reporter is gone) and returns
    /// what each moved.
    pub fn join(self) -> Vec<StageStats> {
        self.threads
            .into_iter()
            .filter_map(|t| t.join().ok())
            .collect()
    }
}

/// Starts one first stage per queue, each pinned to the first core of its NUMA node in
/// `topology`, relaying into `out` every `interval`. `keep` must be what the final
/// aggregation keeps, so that the first stage merges nothing the last one keeps apart.
pub fn spawn_first_stages(
    queues: Vec<(u32, SnapshotReceiver)>,
    topology: &Topology,
    keep: Keep,
    interval: Duration,
    out: &SnapshotSender,
) -> FirstStages {
    let threads = queues
        .into_iter()
        .map(|(numa_node, queue)| {
            let os_core = topology
                .numa_nodes()
                .iter()
                .find(|n| n.id == numa_node)
                .and_then(|n| n.cores.first())
                .and_then(|c| topology.placement(*c))
                .map(|p| p.os_core);
            let out = out.clone();
            std::thread::Builder::new()
                .name(format!("its-numa-{numa_node}"))
                .spawn(move || {
                    if let Some(os_core) = os_core {
                        // Best effort: an unpinned stage is slower, not wrong.
                        core_affinity_pin(os_core);
                    }
                    run_stage(numa_node, &queue, keep, interval, &out)
                })
                .expect("a first-stage thread")
        })
        .collect();
    FirstStages { threads }
}

fn core_affinity_pin(os_core: usize) {
    let _ = nodes::topology::pin_current_thread(os_core);
}

fn run_stage(
    numa_node: u32,
    queue: &SnapshotReceiver,
    keep: Keep,
    interval: Duration,
    out: &SnapshotSender,
) -> StageStats {
    let mut stats = StageStats {
        numa_node,
        ..StageStats::default()
    };
    let mut aggregator = Aggregator::new(keep, unix_nanos());
    let mut next = Instant::now() + interval;
    loop {
        let wait = next.saturating_duration_since(Instant::now());
        let done = match queue.recv_timeout(wait) {
            Ok(batch) => {
                stats.batches_in += 1;
                stats.bytes_in += batch.word_bytes() as u64;
                aggregator.apply(&batch);
                queue.recycle(batch);
                false
            }
            Err(RecvError::Timeout) => false,
            Err(RecvError::Disconnected) => true,
        };
        if done || Instant::now() >= next {
            let now = unix_nanos();
            let mut batch = out.fresh_batch(u32::MAX, numa_node, now);
            aggregator.relay_into(&mut batch, now);
            if !batch.is_empty() {
                stats.batches_out += 1;
                stats.bytes_out += batch.word_bytes() as u64;
                // Wait as long as it takes: giving up here would lose data.
                let far = Instant::now() + Duration::from_hours(1);
                let mut pending = batch;
                loop {
                    match out.send_deadline(pending, far) {
                        Ok(()) => break,
                        Err(RelayError::Timeout(back)) => pending = back,
                        Err(RelayError::Disconnected(lost)) => {
                            // The internal pipeline is gone: nothing can be delivered.
                            metric_schema::reporter::count_lost(&lost);
                            break;
                        }
                    }
                }
            }
            next = Instant::now() + interval;
        }
        if done {
            return stats;
        }
    }
}
