//! Handles that queue callbacks onto a loop without `&mut IoLoop`: [`Remote`] from any thread
//! (waking the driver), [`LocalHandle`] from the loop's own thread.

use super::*;

/// Shared between an [`IoLoop`] and its [`Remote`] handles.
pub(crate) struct RemoteShared {
    pub(super) queue: Mutex<Vec<(RemoteCallback, &'static Location<'static>, tracing::Span)>>,
    /// Tasks woken from other threads.
    pub(crate) woken: Mutex<Vec<Arc<TaskHeader>>>,
    pub(super) pending: AtomicBool,
    pub(super) waker: Mutex<Option<Arc<dyn Fn() + Send + Sync>>>,
}

impl RemoteShared {
    /// Marks work as pending and wakes a sleeping driver (once until the loop takes it).
    pub(crate) fn notify(&self) {
        if !self.pending.swap(true, Ordering::AcqRel) {
            let waker = self.waker.lock().unwrap_or_else(|e| e.into_inner()).clone();
            if let Some(wake) = waker {
                wake();
            }
        }
    }
}

/// A `Send + Clone` handle that queues callbacks onto a loop from any thread and wakes it.
#[derive(Clone)]
pub struct Remote {
    pub(super) shared: Arc<RemoteShared>,
}

impl Remote {
    /// Queues `f` to run on the loop's thread in a coming round, waking the loop if it sleeps.
    #[track_caller]
    pub fn add_callback(&self, f: impl FnOnce(&mut IoLoop) + Send + 'static) {
        let location = Location::caller();
        self.shared
            .queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((Box::new(f), location, tracing::Span::current()));
        self.shared.notify();
    }
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Remote")
    }
}

/// A same-thread handle that queues callbacks onto its loop without `&mut IoLoop` (e.g. from a
/// `Drop` impl); they run in a coming round. Not `Send`: use [`Remote`] across threads.
#[derive(Clone)]
pub struct LocalHandle {
    pub(crate) queue: Rc<RefCell<Vec<(Callback, Origin)>>>,
}

impl LocalHandle {
    /// Queues `f` for a coming round of the loop.
    #[track_caller]
    pub fn add_callback(&self, f: impl FnOnce(&mut IoLoop) + 'static) {
        self.queue.borrow_mut().push((Box::new(f), Origin::here()));
    }
}

impl std::fmt::Debug for LocalHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LocalHandle")
    }
}

/// Callbacks queued through a [`Remote`] or a [`LocalHandle`].
impl IoLoop {
    /// A handle for queuing callbacks from other threads.
    pub fn remote(&self) -> Remote {
        Remote {
            shared: self.remote.clone(),
        }
    }

    /// A same-thread handle for queuing callbacks where no `&mut IoLoop` is at hand.
    pub fn local_handle(&self) -> LocalHandle {
        self.local.clone()
    }

    /// Installs the function a [`Remote`] calls to wake a sleeping driver.
    pub fn set_waker(&mut self, wake: Arc<dyn Fn() + Send + Sync>) {
        *self.remote.waker.lock().unwrap_or_else(|e| e.into_inner()) = Some(wake);
    }

    /// The loop woke up because a [`Remote`] queued work; moves that work into the queue.
    #[inline]
    pub fn handle_woken(&mut self) {
        // A plain load first: the swap is a locked instruction, and nearly every round has
        // nothing from other threads.
        if self.remote.pending.load(Ordering::Acquire)
            && self.remote.pending.swap(false, Ordering::AcqRel)
        {
            self.take_remote_callbacks();
        }
    }

    /// Moves callbacks added through a [`Remote`] into the queue.
    #[inline(never)]
    pub(super) fn take_remote_callbacks(&mut self) {
        let woken =
            std::mem::take(&mut *self.remote.woken.lock().unwrap_or_else(|e| e.into_inner()));
        for header in woken {
            self.queue_poll(header);
        }
        let drained =
            std::mem::take(&mut *self.remote.queue.lock().unwrap_or_else(|e| e.into_inner()));
        for (callback, location, span) in drained {
            self.push_task(
                Origin {
                    location,
                    span: Origin::boxed(span),
                },
                TaskKind::Remote(callback),
            );
        }
    }

    /// Moves callbacks added through a [`LocalHandle`] into the queue.
    #[inline(never)]
    pub(super) fn take_local_callbacks(&mut self) {
        let local = std::mem::take(&mut *self.local.queue.borrow_mut());
        for (callback, origin) in local {
            self.push_task(origin, TaskKind::Call(callback));
        }
    }
}
