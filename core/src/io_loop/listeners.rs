//! Listeners: how the application opens and closes them, and what the driver reports of their
//! binds and accepts.

use super::*;

/// Socket options for [`IoLoop::listen`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListenOptions {
    /// Accept backlog (Tornado's default: 128).
    pub backlog: u32,
    /// Set SO_REUSEPORT so several loops can each accept on their own socket.
    pub reuse_port: bool,
}

impl Default for ListenOptions {
    fn default() -> Self {
        ListenOptions {
            backlog: 128,
            reuse_port: false,
        }
    }
}

/// A listener: its address and options, the bind result, and who is told of accepts.
pub(super) struct ListenerEntry {
    pub(super) addr: SocketAddr,
    /// A unix domain socket's path and mode, instead of `addr`.
    pub(super) unix: Option<(String, u32)>,
    pub(super) options: ListenOptions,
    pub(super) bound: Option<Result<SocketAddr, io::ErrorKind>>,
    pub(super) on_accept: Option<AcceptCallback>,
    pub(super) origin: Origin,
    pub(super) closed: bool,
    /// A task waiting for the bind result.
    pub(super) on_bound: Option<Waker>,
}

/// Listeners: opening, closing, binds and accepts.
impl IoLoop {
    /// The address a listener is bound to (with the real port when 0 was asked), once bound.
    pub fn listener_addr(&self, id: ListenerId) -> Option<SocketAddr> {
        match self.listeners.get(id.0)?.bound {
            Some(Ok(addr)) => Some(addr),
            _ => None,
        }
    }

    /// Why a listener failed to bind, if it did.
    pub fn listener_error(&self, id: ListenerId) -> Option<io::ErrorKind> {
        match self.listeners.get(id.0)?.bound {
            Some(Err(kind)) => Some(kind),
            _ => None,
        }
    }

    /// Live listeners, in slot order.
    pub fn listener_ids(&self) -> impl Iterator<Item = ListenerId> + '_ {
        self.listeners
            .iter()
            .filter(|(_, l)| !l.closed)
            .map(|(k, _)| ListenerId(k))
    }

    // ===== application =====

    /// Listens at `addr`; `on_accept` runs for every accepted stream, with the peer's address.
    #[track_caller]
    pub fn listen(
        &mut self,
        addr: SocketAddr,
        options: ListenOptions,
        on_accept: impl FnMut(&mut IoLoop, StreamId, SocketAddr) + 'static,
    ) -> ListenerId {
        self.add_listener(addr, None, options, Box::new(on_accept), Origin::here())
    }

    pub(super) fn add_listener(
        &mut self,
        addr: SocketAddr,
        unix: Option<(String, u32)>,
        options: ListenOptions,
        on_accept: AcceptCallback,
        origin: Origin,
    ) -> ListenerId {
        let key = self.listeners.insert(ListenerEntry {
            addr,
            unix,
            options,
            bound: None,
            on_accept: Some(on_accept),
            origin,
            closed: false,
            on_bound: None,
        });
        let id = ListenerId(key);
        self.actions.push_back(PendingAction::Listen(id));
        id
    }

    /// Listens on a unix domain socket at `path` with permission bits `mode` (Tornado's
    /// `bind_unix_socket`); accepted streams work as TCP ones, with peer `0.0.0.0:0`.
    pub fn listen_unix(
        &mut self,
        path: &str,
        mode: u32,
        options: ListenOptions,
        on_accept: impl FnMut(&mut IoLoop, StreamId, SocketAddr) + 'static,
    ) -> ListenerId {
        self.add_listener(
            SocketAddr::from(([0, 0, 0, 0], 0)),
            Some((path.to_owned(), mode)),
            options,
            Box::new(on_accept),
            Origin::here(),
        )
    }

    /// Stops listening; streams already accepted are unaffected.
    pub fn close_listener(&mut self, id: ListenerId) {
        if let Some(l) = self.listeners.get_mut(id.0) {
            if !l.closed {
                l.closed = true;
                self.actions.push_back(PendingAction::CloseListener(id));
            }
        }
    }

    // ===== driver: inputs =====

    /// A listener was bound (with its real address) or failed to bind.
    pub fn handle_listening(&mut self, id: ListenerId, result: Result<SocketAddr, io::ErrorKind>) {
        let Some(l) = self.listeners.get_mut(id.0) else {
            return;
        };
        if let Err(kind) = result {
            tracing::error!(addr = %l.addr, error = %kind, origin = %l.origin.location, "listen failed");
        }
        l.bound = Some(result);
        if let Some(waker) = l.on_bound.take() {
            waker.wake();
        }
    }

    /// A connection was accepted; returns the new stream's id (`None`: listener gone, drop it).
    pub fn handle_accepted(&mut self, listener: ListenerId, peer: SocketAddr) -> Option<StreamId> {
        let l = self.listeners.get(listener.0)?;
        if l.closed {
            return None;
        }
        let origin = l.origin.clone();
        let entry = self.new_entry(StreamState::Open, Some(peer));
        let stream = StreamId(self.streams.insert(entry));
        self.stats.accepted += 1;
        self.push_task(
            origin,
            TaskKind::Accept {
                listener,
                stream,
                peer,
            },
        );
        self.queue_interest(stream);
        Some(stream)
    }
}
