//! `spawn_blocking`: work that would block the loop runs elsewhere and completes a task
//! (Tornado's `run_in_executor`).
//!
//! The core starts no threads: where blocking work runs is the driver's choice, through the
//! [`BlockingPool`] it installs on the loop. The OS drivers install a small bounded thread
//! pool; with none installed (the simulator, plain tests) the work runs on the loop itself in
//! a coming round, a deterministic point in (virtual) time.

use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use super::current::with_loop;
use crate::io_loop::IoLoop;

/// Runs blocking jobs somewhere other than the loop's thread; supplied by the driver.
pub trait BlockingPool {
    /// Runs `job` soon; it must not be dropped unrun unless the process is ending.
    fn execute(&self, job: Box<dyn FnOnce() + Send>);
}

/// Why a blocking job produced no value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlockingError {
    /// The job panicked.
    #[error("blocking job panicked: {0}")]
    Panicked(String),
}

/// A job's result and the task waiting for it; written by the worker, read by the loop.
struct BlockingShared<T> {
    result: Option<Result<T, BlockingError>>,
    waker: Option<Waker>,
}

/// The future of [`spawn_blocking`]; dropping it does not stop the job, only its delivery.
#[must_use = "futures do nothing unless awaited"]
pub struct BlockingTask<T> {
    shared: Arc<Mutex<BlockingShared<T>>>,
}

impl<T> Future for BlockingTask<T> {
    type Output = Result<T, BlockingError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut shared = self.shared.lock().unwrap_or_else(|e| e.into_inner());
        match shared.result.take() {
            Some(result) => Poll::Ready(result),
            None => {
                shared.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

/// Runs `f` on the driver's blocking pool and completes when it returns (see the module docs).
///
/// # Panics
/// Outside a task (use [`IoLoop::spawn_blocking`] from callback code).
pub fn spawn_blocking<T, F>(f: F) -> BlockingTask<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    with_loop(|io| io.spawn_blocking(f))
}

impl IoLoop {
    /// Runs `f` where it may block (the driver's pool, else a coming round of this loop).
    pub fn spawn_blocking<T, F>(&mut self, f: F) -> BlockingTask<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let shared = Arc::new(Mutex::new(BlockingShared {
            result: None,
            waker: None,
        }));
        let out = shared.clone();
        let job = move || {
            let result = catch_unwind(AssertUnwindSafe(f)).map_err(|panic| {
                BlockingError::Panicked(crate::io_loop::panic_message(&*panic).to_owned())
            });
            let waker = {
                let mut out = out.lock().unwrap_or_else(|e| e.into_inner());
                out.result = Some(result);
                out.waker.take()
            };
            if let Some(waker) = waker {
                waker.wake();
            }
        };
        match &self.blocking {
            Some(pool) => pool.execute(Box::new(job)),
            None => self.add_callback(move |_| job()),
        }
        BlockingTask { shared }
    }

    /// Installs where [`spawn_blocking`] runs jobs (drivers do this; see the module docs).
    pub fn set_blocking_pool(&mut self, pool: Rc<dyn BlockingPool>) {
        self.blocking = Some(pool);
    }
}
