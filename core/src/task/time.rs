//! Timers for tasks: `sleep`, `sleep_until`, `timeout`, and `Interval` (Tornado's
//! `gen.sleep`, `gen.with_timeout` and `PeriodicCallback`), on the loop's timer heap.
//!
//! A sleeping task costs one heap entry that wakes it; nothing is allocated per sleep.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use super::current::{with_loop, LoopBound};
use crate::io_loop::TimerAction;
use crate::time::{Duration, Instant};
use crate::timer::TimerId;

/// Completes `delay` after now, in loop time (measured from its creation, not its first poll).
///
/// # Panics
/// Outside a task.
pub fn sleep(delay: Duration) -> Sleep {
    let now = with_loop(|io| io.now());
    sleep_until(now + delay)
}

/// Completes once the loop's clock reaches `deadline` (at once if it has).
pub fn sleep_until(deadline: Instant) -> Sleep {
    Sleep {
        deadline,
        timer: None,
        bound: None,
    }
}

/// The future of [`sleep`] and [`sleep_until`]; dropping it cancels its timer.
#[must_use = "futures do nothing unless awaited"]
pub struct Sleep {
    deadline: Instant,
    timer: Option<TimerId>,
    bound: Option<LoopBound>,
}

impl Sleep {
    /// When it completes.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Moves the deadline (re-arming the timer at the next poll).
    pub fn reset(&mut self, deadline: Instant) {
        self.deadline = deadline;
        self.cancel_timer();
    }

    fn cancel_timer(&mut self) {
        if let (Some(timer), Some(bound)) = (self.timer.take(), &self.bound) {
            bound.run_or_defer(move |io| {
                io.timers.cancel(timer);
            });
        }
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        with_loop(|io| {
            if io.now() >= this.deadline {
                if let Some(timer) = this.timer.take() {
                    io.timers.cancel(timer);
                }
                return Poll::Ready(());
            }
            if this.bound.is_none() {
                this.bound = Some(LoopBound::of(io));
            }
            // Re-arm with this poll's waker (a task's waker stays the same between polls,
            // so this happens once per sleep in practice).
            if let Some(timer) = this.timer.take() {
                io.timers.cancel(timer);
            }
            let action = TimerAction::Wake(cx.waker().clone());
            this.timer = Some(io.timers.insert(this.deadline, action));
            Poll::Pending
        })
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        self.cancel_timer();
    }
}

impl std::fmt::Debug for Sleep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sleep")
            .field("deadline", &self.deadline)
            .finish()
    }
}

/// The error of [`timeout`]: the deadline passed first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("deadline elapsed")]
pub struct Elapsed;

/// Runs `future` for at most `limit`: its output, or [`Elapsed`] (and `future` is dropped).
/// The future is held inline: no allocation.
///
/// # Panics
/// Outside a task.
pub fn timeout<F: Future>(limit: Duration, future: F) -> Timeout<F> {
    Timeout {
        future,
        sleep: sleep(limit),
    }
}

/// [`timeout`] under its earlier name, for futures that are `Unpin` (a boxed one, say).
///
/// # Panics
/// Outside a task.
pub fn timeout_unpin<F: Future + Unpin>(limit: Duration, future: F) -> Timeout<F> {
    timeout(limit, future)
}

pin_project_lite::pin_project! {
    /// The future of [`timeout`].
    #[must_use = "futures do nothing unless awaited"]
    pub struct Timeout<F> {
        #[pin]
        future: F,
        sleep: Sleep,
    }
}

impl<F: Future> Future for Timeout<F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(v) = this.future.poll(cx) {
            return Poll::Ready(Ok(v));
        }
        match Pin::new(this.sleep).poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(Elapsed)),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Ticks every `period`, the first tick one period from now; missed ticks are skipped, as
/// Tornado's `PeriodicCallback` skips them: after a stall the next tick is the first multiple
/// of `period` (from the start) still in the future.
///
/// # Panics
/// Outside a task, or if `period` is zero.
pub fn interval(period: Duration) -> Interval {
    assert!(!period.is_zero(), "interval period must be positive");
    let start = with_loop(|io| io.now());
    Interval {
        period,
        sleep: sleep_until(start + period),
    }
}

/// A stream of ticks; see [`interval`].
#[derive(Debug)]
pub struct Interval {
    period: Duration,
    sleep: Sleep,
}

impl Interval {
    /// Waits for the next tick and returns its scheduled instant.
    pub async fn tick(&mut self) -> Instant {
        std::future::poll_fn(|cx| self.poll_tick(cx)).await
    }

    /// Polls for the next tick (for hand-written futures).
    pub fn poll_tick(&mut self, cx: &mut Context<'_>) -> Poll<Instant> {
        if Pin::new(&mut self.sleep).poll(cx).is_pending() {
            return Poll::Pending;
        }
        let tick = self.sleep.deadline();
        let now = with_loop(|io| io.now());
        let mut next = tick + self.period;
        if next <= now {
            let period = self.period.as_nanos();
            let behind = (now - next).as_nanos();
            let skip = u32::try_from(behind / period + 1).unwrap_or(u32::MAX);
            next += self.period.saturating_mul(skip);
        }
        self.sleep.reset(next);
        Poll::Ready(tick)
    }

    /// The period.
    pub fn period(&self) -> Duration {
        self.period
    }
}
