//! `Oneshot`: one value handed from a loop callback to the task that awaits it.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

/// A single-use, same-thread slot: a callback `complete`s it, a future polls it.
pub(crate) struct Oneshot<T> {
    inner: Rc<OneshotInner<T>>,
}

struct OneshotInner<T> {
    value: RefCell<Option<T>>,
    waker: Cell<Option<Waker>>,
}

impl<T> Clone for Oneshot<T> {
    fn clone(&self) -> Self {
        Oneshot {
            inner: self.inner.clone(),
        }
    }
}

impl<T> Oneshot<T> {
    /// An empty slot.
    pub(crate) fn new() -> Oneshot<T> {
        Oneshot {
            inner: Rc::new(OneshotInner {
                value: RefCell::new(None),
                waker: Cell::new(None),
            }),
        }
    }

    /// Stores the value and wakes the awaiting task, if any.
    pub(crate) fn complete(&self, value: T) {
        *self.inner.value.borrow_mut() = Some(value);
        if let Some(waker) = self.inner.waker.take() {
            waker.wake();
        }
    }

    /// The value if it has come, else registers the task's waker.
    pub(crate) fn poll(&self, cx: &mut Context<'_>) -> Poll<T> {
        if let Some(value) = self.inner.value.borrow_mut().take() {
            return Poll::Ready(value);
        }
        self.inner.waker.set(Some(cx.waker().clone()));
        Poll::Pending
    }

    /// Takes the value if it has come (used on cancellation).
    pub(crate) fn take(&self) -> Option<T> {
        self.inner.value.borrow_mut().take()
    }
}
