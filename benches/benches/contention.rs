//! Per-thread cost of an increment when two cores record at once.
//!
//! - `one_thread`: one pinned thread on its own set (the baseline).
//! - `two_threads_own_sets`: two threads pinned to different cores, each recording into
//!   its own set, as the SDK is meant to be used: the cost must stay at `one_thread`.
//! - `two_threads_shared_atomic`: two pinned threads on one shared `AtomicU64`, what a
//!   global counter costs (the cache line bounces between the cores).
//!
//! Each thread times its own loop between a start barrier and its end; the reported
//! time per iteration is the slower thread's.

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use benches::{HotSet, pin_to_core};
use criterion::{Criterion, criterion_group, criterion_main};

fn run_threads(threads: usize, iters: u64, body: impl Fn(u64) + Send + Sync + 'static) -> Duration {
    let body = Arc::new(body);
    let barrier = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let body = Arc::clone(&body);
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                pin_to_core(t);
                barrier.wait();
                let start = Instant::now();
                body(iters);
                start.elapsed()
            })
        })
        .collect();
    handles
        .into_iter()
        .map(|h| h.join().expect("bench thread"))
        .max()
        .unwrap_or_default()
}

fn own_set(iters: u64) {
    let (sender, _receiver) = metric_schema::channel(1);
    let mut reporter = metric_schema::Reporter::new(sender, 0, 0);
    let handle = reporter.register::<HotSet, _>(&());
    let set: &HotSet = &handle;
    for _ in 0..iters {
        black_box(set).counter.add(1);
    }
    assert_eq!(set.counter.get(), iters);
}

fn contention(c: &mut Criterion) {
    let cores = core_affinity::get_core_ids().map_or(0, |c| c.len());
    let mut group = c.benchmark_group("contention");
    group.bench_function("one_thread", |b| {
        b.iter_custom(|iters| run_threads(1, iters, own_set));
    });
    if cores >= 2 {
        group.bench_function("two_threads_own_sets", |b| {
            b.iter_custom(|iters| run_threads(2, iters, own_set));
        });
        let shared = Arc::new(AtomicU64::new(0));
        group.bench_function("two_threads_shared_atomic", |b| {
            b.iter_custom(|iters| {
                let shared = Arc::clone(&shared);
                run_threads(2, iters, move |n| {
                    for _ in 0..n {
                        black_box(&*shared).fetch_add(1, Ordering::Relaxed);
                    }
                })
            });
        });
    } else {
        eprintln!("contention: only {cores} core(s) visible; the two-thread cases need 2");
    }
    group.finish();
}

criterion_group!(benches, contention);
criterion_main!(benches);
