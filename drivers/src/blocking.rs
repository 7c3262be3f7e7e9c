//! `BlockingThreads`: the small, bounded thread pool behind `spawn_blocking` on the OS drivers
//! (Tornado's default `run_in_executor` executor).
//!
//! One pool per process, shared by every loop thread. Threads start on demand up to a bound
//! and leave after a while idle; jobs beyond the bound wait in a FIFO queue.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::Duration;

use eddy_core::task::BlockingPool;

/// Most threads the shared pool runs at once.
pub const MAX_BLOCKING_THREADS: usize = 16;
/// How long an idle pool thread waits for work before it exits.
const IDLE_EXIT: Duration = Duration::from_secs(10);

type Job = Box<dyn FnOnce() + Send>;

struct PoolState {
    jobs: VecDeque<Job>,
    threads: usize,
    idle: usize,
}

/// A bounded pool of threads for blocking jobs; see the module docs.
pub struct BlockingThreads {
    state: Mutex<PoolState>,
    ready: Condvar,
    max_threads: usize,
}

impl BlockingThreads {
    /// A pool of at most `max_threads` threads (at least one).
    pub fn new(max_threads: usize) -> Arc<BlockingThreads> {
        Arc::new(BlockingThreads {
            state: Mutex::new(PoolState {
                jobs: VecDeque::new(),
                threads: 0,
                idle: 0,
            }),
            ready: Condvar::new(),
            max_threads: max_threads.max(1),
        })
    }

    /// The process-wide pool the drivers install on their loops.
    pub fn shared() -> Arc<BlockingThreads> {
        static POOL: OnceLock<Arc<BlockingThreads>> = OnceLock::new();
        POOL.get_or_init(|| BlockingThreads::new(MAX_BLOCKING_THREADS))
            .clone()
    }

    /// Threads running now.
    pub fn threads(&self) -> usize {
        self.lock().threads
    }

    /// Queues `job`, starting a thread if none is idle and the bound allows.
    pub fn submit(self: &Arc<Self>, job: Job) {
        let mut state = self.lock();
        state.jobs.push_back(job);
        if state.idle > 0 {
            drop(state);
            self.ready.notify_one();
            return;
        }
        if state.threads < self.max_threads {
            state.threads += 1;
            drop(state);
            let pool = self.clone();
            let spawned = std::thread::Builder::new()
                .name("eddy-blocking".into())
                .spawn(move || pool.work());
            if spawned.is_err() {
                // No thread: the job waits for a running one (or, with none, for the next
                // submit that can start a thread).
                self.lock().threads -= 1;
                tracing::error!("could not start a blocking-pool thread");
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PoolState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn work(&self) {
        let mut state = self.lock();
        loop {
            if let Some(job) = state.jobs.pop_front() {
                drop(state);
                job(); // jobs catch their own panics (see eddy_core::task::spawn_blocking)
                state = self.lock();
                continue;
            }
            state.idle += 1;
            let (next, timeout) = self
                .ready
                .wait_timeout(state, IDLE_EXIT)
                .unwrap_or_else(|e| e.into_inner());
            state = next;
            state.idle -= 1;
            if timeout.timed_out() && state.jobs.is_empty() {
                state.threads -= 1;
                return;
            }
        }
    }
}

/// A loop's handle on a shared [`BlockingThreads`].
pub(crate) struct PoolHandle(pub(crate) Arc<BlockingThreads>);

impl BlockingPool for PoolHandle {
    fn execute(&self, job: Job) {
        self.0.submit(job);
    }
}
