//! What tasks need of the loop's streams and listeners (see [`crate::task`]): reads that
//! wake a task, flushes it awaits, bytes put back, a bind it waits for.

use super::*;

/// What async streams and listeners need of the loop's internals (see [`crate::task`]).
impl IoLoop {
    /// A task's read: starts `request` (when given) and answers now if it is satisfied, else
    /// registers `waker` to be woken with the result stored in the entry.
    pub(crate) fn poll_task_read(
        &mut self,
        id: StreamId,
        request: Option<ReadRequest>,
        waker: &Waker,
    ) -> std::task::Poll<Result<Bytes, StreamError>> {
        use std::task::Poll;
        let Some(entry) = self.entry_mut(id) else {
            return Poll::Ready(Err(StreamError::UnknownStream));
        };
        if let Some(request) = request {
            if let Err(e) = entry.stream.start_read(request) {
                return Poll::Ready(Err(e));
            }
            entry.on_read = Some(ReadWaiter::Task(waker.clone()));
            self.poll_stream_read(id);
            self.queue_interest(id);
        }
        let Some(entry) = self.entry_mut(id) else {
            return Poll::Ready(Err(StreamError::UnknownStream));
        };
        match entry.on_read.take() {
            Some(ReadWaiter::Done(result)) => {
                entry.in_flight -= 1;
                self.streams_to_check.push(id);
                Poll::Ready(result)
            }
            Some(ReadWaiter::Task(old)) => {
                let waiter = if old.will_wake(waker) {
                    old
                } else {
                    waker.clone()
                };
                entry.on_read = Some(ReadWaiter::Task(waiter));
                Poll::Pending
            }
            other => {
                entry.on_read = other;
                Poll::Ready(Err(StreamError::ReadPending))
            }
        }
    }

    /// A task gave up its read: a pending request is dropped (buffered bytes stay), and a
    /// result it had not taken goes back to the front of the buffer. Loses no byte.
    pub(crate) fn cancel_task_read(&mut self, id: StreamId) {
        let Some(entry) = self.entry_mut(id) else {
            return;
        };
        match entry.on_read.take() {
            Some(ReadWaiter::Task(_)) => {
                entry.stream.take_pending();
                self.queue_interest(id);
            }
            Some(ReadWaiter::Done(result)) => {
                entry.in_flight -= 1;
                if let Ok(data) = result {
                    entry.stream.unread(data);
                }
                self.queue_interest(id);
                self.streams_to_check.push(id);
            }
            other => entry.on_read = other,
        }
    }

    /// Runs `on_flushed` once `target` bytes in total have been written (or with the close
    /// error): flush to a mark, for writers that wait for the queue to drain below a level.
    #[track_caller]
    pub(crate) fn flush_until(
        &mut self,
        id: StreamId,
        target: u64,
        on_flushed: FlushCallback,
    ) -> Result<(), StreamError> {
        self.flush_to(id, target, on_flushed, Origin::here())
    }

    /// The one flush: a waiter kept in target order, or an outcome queued at once.
    pub(super) fn flush_to(
        &mut self,
        id: StreamId,
        target: u64,
        on_flushed: FlushCallback,
        origin: Origin,
    ) -> Result<(), StreamError> {
        let entry = self.entry_mut(id).ok_or(StreamError::UnknownStream)?;
        let result = match entry.stream.close_reason() {
            Some(reason) => Err(StreamError::Closed(reason)),
            None if entry.stream.total_written() >= target => Ok(()),
            None => {
                let at = entry.flush_waiters.partition_point(|w| w.0 <= target);
                entry.flush_waiters.insert(at, (target, on_flushed, origin));
                return Ok(());
            }
        };
        self.push_task(
            origin,
            TaskKind::Flushed {
                stream: id,
                result,
                callback: on_flushed,
            },
        );
        Ok(())
    }

    /// Puts `data` back at the front of the stream's read buffer (no read may be pending).
    pub(crate) fn unread(&mut self, id: StreamId, data: Bytes) {
        if let Some(entry) = self.entry_mut(id) {
            entry.stream.unread(data);
        }
    }

    /// Wakes `waker` when the listener is bound or fails to bind (now, if it already has).
    pub(crate) fn poll_listener_bound(
        &mut self,
        id: ListenerId,
        waker: &Waker,
    ) -> std::task::Poll<Result<SocketAddr, io::ErrorKind>> {
        let Some(l) = self.listeners.get_mut(id.0) else {
            return std::task::Poll::Ready(Err(io::ErrorKind::NotConnected));
        };
        match l.bound {
            Some(result) => std::task::Poll::Ready(result),
            None => {
                l.on_bound = Some(waker.clone());
                std::task::Poll::Pending
            }
        }
    }
}
