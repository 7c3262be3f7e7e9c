//! The current loop: how async code reaches its [`IoLoop`] without holding `&mut IoLoop`.
//!
//! While a loop polls (or drops) a task it moves itself into a thread-local slot and leaves a
//! spare, empty loop in its place; [`with_loop`] borrows it from there. Moving the loop is a
//! few hundred bytes of `memcpy` per poll and needs no `unsafe`. Loops nest: a task may run
//! another loop of its own, and the outer one is current again when that returns.

use std::cell::RefCell;

use crate::io_loop::{IoLoop, LocalHandle};

thread_local! {
    /// The loop whose task is being polled on this thread.
    static CURRENT: RefCell<Option<IoLoop>> = const { RefCell::new(None) };
    /// An empty loop, swapped in for the real one while it is current.
    static SPARE: RefCell<Option<IoLoop>> = const { RefCell::new(None) };
}

/// Runs `f` with the loop that is polling the current task (Tornado's `IOLoop.current()`).
///
/// This is the one way async code reaches its loop: to call the callback API, read
/// [`IoLoop::now`], or spawn. It works the same under every driver and on every simulated host.
///
/// # Panics
/// Outside a task (no loop is polling on this thread), or when called inside another
/// `with_loop` (the loop is already lent out).
#[track_caller]
pub fn with_loop<R>(f: impl FnOnce(&mut IoLoop) -> R) -> R {
    CURRENT.with(|current| {
        let Ok(mut current) = current.try_borrow_mut() else {
            lent_out()
        };
        let Some(io) = current.as_mut() else {
            no_loop()
        };
        f(io)
    })
}

#[cold]
#[inline(never)]
#[track_caller]
fn lent_out() -> ! {
    panic!("eddy: with_loop called inside with_loop (the loop is already lent out)")
}

#[cold]
#[inline(never)]
#[track_caller]
fn no_loop() -> ! {
    panic!("eddy: no loop is running a task on this thread; async eddy APIs work inside tasks spawned on an IoLoop")
}

#[cold]
#[inline(never)]
#[track_caller]
fn other_loop() -> ! {
    panic!("eddy: an async stream or timer was used on another loop than its own")
}

/// Like [`with_loop`], but `None` instead of a panic when no loop is current (or it is lent).
pub fn try_with_loop<R>(f: impl FnOnce(&mut IoLoop) -> R) -> Option<R> {
    CURRENT.with(|current| {
        let mut current = current.try_borrow_mut().ok()?;
        Some(f(current.as_mut()?))
    })
}

impl IoLoop {
    /// Makes this loop current on its thread while `f` runs (see the module docs).
    pub(crate) fn enter<R>(&mut self, f: impl FnOnce() -> R) -> R {
        let spare = SPARE
            .with(|s| s.borrow_mut().take())
            .unwrap_or_else(IoLoop::placeholder);
        let real = std::mem::replace(self, spare);
        let outer = CURRENT.with(|c| c.replace(Some(real)));
        /// Puts the loop back even if `f` unwinds.
        struct Restore<'a> {
            io: &'a mut IoLoop,
            outer: Option<IoLoop>,
        }
        impl Drop for Restore<'_> {
            fn drop(&mut self) {
                let real = CURRENT
                    .with(|c| c.replace(self.outer.take()))
                    .expect("the entered loop is still current");
                let spare = std::mem::replace(self.io, real);
                SPARE.with(|s| *s.borrow_mut() = Some(spare));
            }
        }
        let _restore = Restore { io: self, outer };
        f()
    }

    /// An empty loop that stands in for one that is current; it belongs to no tasks.
    fn placeholder() -> IoLoop {
        let mut io = IoLoop::default();
        io.loop_no = 0;
        io
    }
}

/// What an async adapter keeps of the loop it belongs to: which loop, and a handle to queue
/// clean-up on it when dropped where that loop is not current.
#[derive(Clone)]
pub(crate) struct LoopBound {
    loop_no: u32,
    local: LocalHandle,
}

impl LoopBound {
    /// Binds to `io`.
    pub(crate) fn of(io: &IoLoop) -> LoopBound {
        LoopBound {
            loop_no: io.loop_no,
            local: io.local_handle(),
        }
    }

    /// Runs `f` on the bound loop, which must be current.
    #[track_caller]
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut IoLoop) -> R) -> R {
        with_loop(|io| {
            if io.loop_no != self.loop_no {
                other_loop();
            }
            f(io)
        })
    }

    /// Runs `f` on the bound loop now if it is current, else queues it for its next round.
    pub(crate) fn run_or_defer(&self, f: impl FnOnce(&mut IoLoop) + 'static) {
        let mut f = Some(f);
        let ran = try_with_loop(|io| {
            if io.loop_no == self.loop_no {
                (f.take().expect("not yet run"))(io);
                true
            } else {
                false
            }
        });
        if ran != Some(true) {
            if let Some(f) = f {
                self.local.add_callback(f);
            }
        }
    }
}
