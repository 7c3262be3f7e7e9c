//! The executor: task slots, wakers, join handles, and how the loop polls a task.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe, Location};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use crate::io_loop::{IoLoop, Origin, RemoteShared, Task, TaskKind};
use crate::slab::Key;

/// Loop numbers tell loops sharing a thread apart (the simulator runs many); 0 is none.
static NEXT_LOOP_NO: AtomicU32 = AtomicU32::new(1);
/// Thread numbers: unique for the life of the process, unlike thread-local addresses.
static NEXT_THREAD_NO: AtomicU64 = AtomicU64::new(1);

thread_local! {
    static THREAD_NO: u64 = NEXT_THREAD_NO.fetch_add(1, Ordering::Relaxed);
    /// Tasks woken on this thread since their loop last looked, oldest first.
    static WOKEN: RefCell<Vec<Arc<TaskHeader>>> = const { RefCell::new(Vec::new()) };
}

/// A fresh loop number.
pub(crate) fn next_loop_no() -> u32 {
    NEXT_LOOP_NO.fetch_add(1, Ordering::Relaxed)
}

/// True if a task of loop `loop_no` was woken on this thread and not yet queued.
pub(crate) fn has_woken_tasks(loop_no: u32) -> bool {
    WOKEN.with(|w| w.borrow().iter().any(|h| h.loop_no == loop_no))
}

/// `key` of a finished task.
const DONE: u64 = u64::MAX;

/// The part of a task its wakers share: `Send + Sync`, so a waker can travel to any thread.
pub(crate) struct TaskHeader {
    loop_no: u32,
    thread_no: u64,
    /// The task's slot key (index << 32 | generation), or `DONE`.
    key: AtomicU64,
    /// Queued for a poll and not yet polled: further wakes are no-ops.
    scheduled: AtomicBool,
    /// `abort` was called: the next poll drops the future instead.
    aborted: AtomicBool,
    remote: Arc<RemoteShared>,
    /// Where the task was spawned (its polls are logged as coming from there).
    location: &'static Location<'static>,
}

impl TaskHeader {
    fn key(&self) -> Option<Key> {
        let k = self.key.load(Ordering::Acquire);
        (k != DONE).then_some(Key {
            index: (k >> 32) as u32,
            generation: k as u32,
        })
    }

    fn abort(self: &Arc<Self>) {
        self.aborted.store(true, Ordering::Release);
        self.wake_by_ref();
    }
}

impl Wake for TaskHeader {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if self.key.load(Ordering::Acquire) == DONE || self.scheduled.swap(true, Ordering::AcqRel) {
            return; // finished, or already queued: waking twice is harmless
        }
        if THREAD_NO.with(|t| *t) == self.thread_no {
            // The loop's own thread: no lock, and no allocation once the list has grown.
            WOKEN.with(|w| w.borrow_mut().push(self.clone()));
        } else {
            self.wake_from_another_thread();
        }
    }
}

impl TaskHeader {
    #[cold]
    #[inline(never)]
    fn wake_from_another_thread(self: &Arc<Self>) {
        self.remote
            .woken
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(self.clone());
        self.remote.notify();
    }
}

/// Where a task's output goes when it ends some other way than by finishing.
trait JoinSink {
    fn fail(&self, error: JoinError);
}

/// A spawned task as its loop holds it.
pub(crate) struct TaskSlot {
    /// `None` only while it is being polled.
    future: Option<Pin<Box<dyn Future<Output = ()>>>>,
    join: Option<Rc<dyn JoinSink>>,
    header: Arc<TaskHeader>,
    origin: Origin,
}

/// Why a task produced no output.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JoinError {
    /// The task panicked; the loop caught it and went on.
    #[error("task spawned at {location} panicked: {message}")]
    Panicked {
        /// The panic message.
        message: String,
        /// Where the task was spawned.
        location: &'static Location<'static>,
    },
    /// The task was aborted, or its loop dropped it (shutdown, simulated host crash).
    #[error("task was cancelled")]
    Cancelled,
}

/// State shared by a task and its [`JoinHandle`].
struct JoinShared<T> {
    output: RefCell<Option<Result<T, JoinError>>>,
    waiter: Cell<Option<Waker>>,
}

impl<T> JoinShared<T> {
    fn complete(&self, result: Result<T, JoinError>) {
        *self.output.borrow_mut() = Some(result);
        if let Some(waker) = self.waiter.take() {
            waker.wake();
        }
    }
}

impl<T> JoinSink for JoinShared<T> {
    fn fail(&self, error: JoinError) {
        if self.output.borrow().is_none() {
            self.complete(Err(error));
        }
    }
}

/// Awaits a task's output; `abort()` cancels the task; dropping the handle detaches it.
pub struct JoinHandle<T> {
    shared: Rc<JoinShared<T>>,
    header: Arc<TaskHeader>,
    taken: bool,
}

impl<T> JoinHandle<T> {
    /// Cancels the task: it is dropped at its next poll (in a coming round), not polled again.
    /// Awaiting the handle then gives [`JoinError::Cancelled`]; a finished task keeps its output.
    pub fn abort(&self) {
        self.header.abort();
    }

    /// A `Send` handle that can abort the task from anywhere.
    pub fn abort_handle(&self) -> AbortHandle {
        AbortHandle {
            header: self.header.clone(),
        }
    }

    /// True once the task has produced its output (or failed).
    pub fn is_finished(&self) -> bool {
        self.shared.output.borrow().is_some()
    }

    /// The output, if the task has finished (for callback code and tests).
    pub fn try_output(self) -> Option<Result<T, JoinError>> {
        self.shared.output.borrow_mut().take()
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = Result<T, JoinError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        assert!(!self.taken, "JoinHandle polled after it completed");
        let output = self.shared.output.borrow_mut().take();
        if let Some(result) = output {
            self.taken = true;
            return Poll::Ready(result);
        }
        self.shared.waiter.set(Some(cx.waker().clone()));
        Poll::Pending
    }
}

impl<T> std::fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinHandle")
            .field("finished", &self.is_finished())
            .finish()
    }
}

/// Aborts a task from any thread (see [`JoinHandle::abort`]).
#[derive(Clone)]
pub struct AbortHandle {
    header: Arc<TaskHeader>,
}

impl AbortHandle {
    /// Cancels the task at its next poll; harmless once it has finished.
    pub fn abort(&self) {
        self.header.abort();
    }
}

impl std::fmt::Debug for AbortHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AbortHandle")
    }
}

/// Spawns `future` on the loop running the current task; see [`IoLoop::spawn`].
///
/// # Panics
/// Outside a task (use [`IoLoop::spawn`] from callback code).
#[track_caller]
pub fn spawn<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + 'static,
{
    let location = Location::caller();
    super::with_loop(|io| io.spawn_at(future, location))
}

/// Yields once: the task is polled again in the next round (after I/O and other tasks).
pub fn yield_now() -> YieldNow {
    YieldNow { yielded: false }
}

/// The future of [`yield_now`].
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct YieldNow {
    yielded: bool,
}

impl Future for YieldNow {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.yielded {
            return Poll::Ready(());
        }
        self.yielded = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// How one poll of a task ended.
enum PollEnd {
    Pending(Pin<Box<dyn Future<Output = ()>>>),
    Finished,
    Aborted,
    Panicked(String),
}

impl IoLoop {
    /// Spawns a task: `future` is first polled in the next round, then whenever woken.
    ///
    /// The future need not be `Send` (hold `Rc`/`RefCell` across awaits freely); it is polled
    /// inside the tracing span current here. Drop the [`JoinHandle`] to detach the task.
    #[track_caller]
    pub fn spawn<F>(&mut self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + 'static,
    {
        self.spawn_at(future, Location::caller())
    }

    pub(crate) fn spawn_at<F>(
        &mut self,
        future: F,
        location: &'static Location<'static>,
    ) -> JoinHandle<F::Output>
    where
        F: Future + 'static,
    {
        let shared = Rc::new(JoinShared {
            output: RefCell::new(None),
            waiter: Cell::new(None),
        });
        let out = shared.clone();
        let wrapped = Box::pin(async move {
            let output = future.await;
            out.complete(Ok(output));
        });
        let sink: Rc<dyn JoinSink> = shared.clone();
        let header = self.insert_task(wrapped, Some(sink), Origin::at(location));
        JoinHandle {
            shared,
            header,
            taken: false,
        }
    }

    /// Spawns a task nobody joins; the returned handle can still abort it.
    #[track_caller]
    pub fn spawn_detached(&mut self, future: impl Future<Output = ()> + 'static) -> AbortHandle {
        let header = self.insert_task(Box::pin(future), None, Origin::here());
        AbortHandle { header }
    }

    /// Tasks spawned and not yet finished.
    pub fn task_count(&self) -> usize {
        self.tasks.len()
    }

    fn insert_task(
        &mut self,
        future: Pin<Box<dyn Future<Output = ()>>>,
        join: Option<Rc<dyn JoinSink>>,
        origin: Origin,
    ) -> Arc<TaskHeader> {
        let header = Arc::new(TaskHeader {
            loop_no: self.loop_no,
            thread_no: THREAD_NO.with(|t| *t),
            key: AtomicU64::new(DONE),
            scheduled: AtomicBool::new(true),
            aborted: AtomicBool::new(false),
            remote: self.remote.clone(),
            location: origin.location,
        });
        let key = self.tasks.insert(TaskSlot {
            future: Some(future),
            join,
            header: header.clone(),
            origin,
        });
        header.key.store(
            (u64::from(key.index) << 32) | u64::from(key.generation),
            Ordering::Release,
        );
        self.stats.tasks_spawned += 1;
        self.queue_poll(header.clone());
        header
    }

    /// Queues a poll of the task in the coming round.
    #[inline]
    pub(crate) fn queue_poll(&mut self, header: Arc<TaskHeader>) {
        // The span is entered by `poll_task` from the slot, so the queued entry clones none.
        let origin = Origin {
            location: header.location,
            span: None,
        };
        self.callbacks
            .push(Task::new(origin, TaskKind::Poll(header)));
    }

    /// Moves the tasks woken on this thread into the queue, in wake order.
    #[inline]
    pub(crate) fn take_woken_tasks(&mut self) {
        let woken = WOKEN.with(|w| {
            let mut w = w.borrow_mut();
            if w.is_empty() {
                return Vec::new();
            }
            if w.iter().all(|h| h.loop_no == self.loop_no) {
                return std::mem::take(&mut *w);
            }
            let mut mine = Vec::new();
            w.retain(|h| {
                let other = h.loop_no != self.loop_no;
                if !other {
                    mine.push(h.clone());
                }
                other
            });
            mine
        });
        if woken.is_empty() {
            return;
        }
        let mut woken = woken;
        for header in woken.drain(..) {
            self.queue_poll(header);
        }
        // Hand the allocation back so steady-state wakes never allocate.
        WOKEN.with(|w| {
            let mut w = w.borrow_mut();
            if w.is_empty() && w.capacity() < woken.capacity() && woken.capacity() <= 4096 {
                *w = woken;
            }
        });
    }

    /// Polls a task once (or drops it, if aborted), with this loop current.
    pub(crate) fn poll_task(&mut self, header: Arc<TaskHeader>) {
        let Some(key) = header.key() else {
            return;
        };
        let Some(slot) = self.tasks.get_mut(key) else {
            return;
        };
        if !Arc::ptr_eq(&slot.header, &header) {
            return;
        }
        let Some(mut future) = slot.future.take() else {
            return;
        };
        header.scheduled.store(false, Ordering::Release);
        let span = slot.origin.span.as_deref().cloned();
        let _entered = span.as_ref().map(tracing::Span::enter);
        let aborted = header.aborted.load(Ordering::Acquire);
        let waker = Waker::from(header.clone());
        let end = self.enter(|| {
            if aborted {
                drop_quietly(future);
                return PollEnd::Aborted;
            }
            let mut cx = Context::from_waker(&waker);
            match catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(&mut cx))) {
                Ok(Poll::Pending) => PollEnd::Pending(future),
                Ok(Poll::Ready(())) => {
                    drop_quietly(future);
                    PollEnd::Finished
                }
                Err(panic) => {
                    let message = crate::io_loop::panic_message(&*panic).to_owned();
                    drop_quietly(future);
                    PollEnd::Panicked(message)
                }
            }
        });
        while let Some(id) = self.streams_to_check.pop() {
            self.after_task(id);
        }
        let slot = self
            .tasks
            .get_mut(key)
            .expect("a task's slot outlives its poll");
        if let PollEnd::Pending(future) = end {
            slot.future = Some(future);
            return;
        }
        self.end_task(key, end);
    }

    /// A task finished, was aborted or panicked: frees its slot and tells its join handle.
    #[inline(never)]
    fn end_task(&mut self, key: Key, end: PollEnd) {
        let slot = self.tasks.get_mut(key).expect("present");
        let failure = match end {
            PollEnd::Pending(_) => unreachable!("handled by poll_task"),
            PollEnd::Finished => None,
            PollEnd::Aborted => Some(JoinError::Cancelled),
            PollEnd::Panicked(message) => {
                let location = slot.origin.location;
                self.stats.task_panics += 1;
                tracing::error!(spawned_at = %location, panic = %message, "task panicked; loop continues");
                Some(JoinError::Panicked { message, location })
            }
        };
        let slot = self.tasks.remove(key).expect("present");
        slot.header.key.store(DONE, Ordering::Release);
        if let (Some(error), Some(join)) = (failure, slot.join) {
            join.fail(error);
        }
        self.tasks.shrink_when_sparse();
    }

    /// Drops every task (with this loop current, so their streams and timers are released).
    pub fn drop_tasks(&mut self) {
        let keys: Vec<Key> = self.tasks.iter().map(|(k, _)| k).collect();
        for key in keys {
            let Some(slot) = self.tasks.remove(key) else {
                continue;
            };
            slot.header.key.store(DONE, Ordering::Release);
            if let Some(future) = slot.future {
                self.enter(|| drop_quietly(future));
            }
            while let Some(id) = self.streams_to_check.pop() {
                self.after_task(id);
            }
            if let Some(join) = slot.join {
                join.fail(JoinError::Cancelled);
            }
        }
        self.tasks.shrink_when_sparse();
    }
}

/// Drops a future, catching a panic from its destructor (logged; the loop goes on).
fn drop_quietly(future: Pin<Box<dyn Future<Output = ()>>>) {
    if catch_unwind(AssertUnwindSafe(move || drop(future))).is_err() {
        tracing::error!("a task's destructor panicked; loop continues");
    }
}
