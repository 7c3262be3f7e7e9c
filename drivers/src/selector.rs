//! Readiness sources behind one trait: mio (epoll/kqueue, edge-triggered, registered once)
//! and poll(2) (level-triggered, the interest set rebuilt every turn). A selector reports
//! readiness and wakes from other threads; it never reads, writes or accepts.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::time::Duration;

/// Token of the cross-thread waker.
pub(crate) const WAKER_TOKEN: usize = usize::MAX;

/// One readiness report.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Readiness {
    pub token: usize,
    pub readable: bool,
    pub writable: bool,
    /// The peer shut down its side (a read would return end of file, or an error).
    pub read_closed: bool,
}

/// What a level-triggered selector must watch for one descriptor this turn.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Want {
    pub fd: RawFd,
    pub token: usize,
    pub read: bool,
    pub write: bool,
}

/// A readiness source; see the module docs.
pub(crate) trait Selector: Sized {
    /// The name used in logs and errors.
    const NAME: &'static str;
    /// True if `select` needs the full interest set every turn (poll), false if it
    /// remembers registrations (mio).
    const NEEDS_WANTS: bool;
    /// A fresh selector.
    fn new(max_events: usize) -> io::Result<Self>;
    /// Starts watching `fd` for both directions (edge-triggered selectors only).
    fn register(&mut self, fd: RawFd, token: usize) -> io::Result<()>;
    /// The function a `Remote` calls to interrupt `select`.
    fn waker(&self) -> Arc<dyn Fn() + Send + Sync>;
    /// Waits until readiness, a wake, or `timeout` (`None`: forever); appends to `out`.
    /// EINTR returns early with no events.
    fn select(
        &mut self,
        wants: &[Want],
        timeout: Option<Duration>,
        out: &mut Vec<Readiness>,
    ) -> io::Result<()>;
}

/// epoll/kqueue through mio: every socket is registered once for both directions,
/// edge-triggered; the reactor remembers readiness until it hits EAGAIN.
pub(crate) struct MioSelector {
    poll: mio::Poll,
    events: mio::Events,
    waker: Arc<mio::Waker>,
}

impl Selector for MioSelector {
    const NAME: &'static str = "mio";
    const NEEDS_WANTS: bool = false;

    fn new(max_events: usize) -> io::Result<Self> {
        let poll = mio::Poll::new()?;
        let waker = Arc::new(mio::Waker::new(poll.registry(), mio::Token(WAKER_TOKEN))?);
        Ok(MioSelector {
            poll,
            events: mio::Events::with_capacity(max_events.max(1)),
            waker,
        })
    }

    fn register(&mut self, fd: RawFd, token: usize) -> io::Result<()> {
        let interest = mio::Interest::READABLE | mio::Interest::WRITABLE;
        self.poll
            .registry()
            .register(&mut mio::unix::SourceFd(&fd), mio::Token(token), interest)
    }

    fn waker(&self) -> Arc<dyn Fn() + Send + Sync> {
        let waker = self.waker.clone();
        Arc::new(move || {
            if let Err(e) = waker.wake() {
                tracing::warn!(error = %e, "waking the mio loop failed");
            }
        })
    }

    fn select(
        &mut self,
        _wants: &[Want],
        timeout: Option<Duration>,
        out: &mut Vec<Readiness>,
    ) -> io::Result<()> {
        match self.poll.poll(&mut self.events, timeout) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(()),
            other => other?,
        }
        for ev in self.events.iter() {
            let read_closed = ev.is_read_closed() || ev.is_error();
            out.push(Readiness {
                token: ev.token().0,
                readable: ev.is_readable() || read_closed,
                writable: ev.is_writable() || ev.is_write_closed() || ev.is_error(),
                read_closed,
            });
        }
        Ok(())
    }
}

/// poll(2): the portable fallback (Tornado's select loop). Level-triggered: the reactor
/// passes only the directions it still needs this turn, so a ready socket never spins it.
pub(crate) struct PollSelector {
    fds: Vec<libc::pollfd>,
    tokens: Vec<usize>,
    wake_read: OwnedFd,
    wake_write: Arc<OwnedFd>,
}

fn pipe_nonblocking() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` has room for the two descriptors pipe(2) writes.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe(2) succeeded, so both descriptors are fresh and owned by nobody else.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    for fd in [r.as_raw_fd(), w.as_raw_fd()] {
        // SAFETY: fcntl on a descriptor we own, with integer flag arguments only.
        unsafe {
            let fl = libc::fcntl(fd, libc::F_GETFL);
            if fl < 0 || libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK) < 0 {
                return Err(io::Error::last_os_error());
            }
            if libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) < 0 {
                return Err(io::Error::last_os_error());
            }
        }
    }
    Ok((r, w))
}

impl PollSelector {
    fn drain_wake_pipe(&self) {
        let mut buf = [0u8; 64];
        for _ in 0..64 {
            // SAFETY: reading into a stack buffer of the length we pass.
            let n = unsafe { libc::read(self.wake_read.as_raw_fd(), buf.as_mut_ptr().cast(), 64) };
            if n <= 0 {
                break;
            }
        }
    }
}

impl Selector for PollSelector {
    const NAME: &'static str = "poll";
    const NEEDS_WANTS: bool = true;

    fn new(_max_events: usize) -> io::Result<Self> {
        let (wake_read, wake_write) = pipe_nonblocking()?;
        Ok(PollSelector {
            fds: Vec::new(),
            tokens: Vec::new(),
            wake_read,
            wake_write: Arc::new(wake_write),
        })
    }

    fn register(&mut self, _fd: RawFd, _token: usize) -> io::Result<()> {
        Ok(())
    }

    fn waker(&self) -> Arc<dyn Fn() + Send + Sync> {
        let w = self.wake_write.clone();
        Arc::new(move || {
            let byte = 1u8;
            // SAFETY: writing one byte from a live stack variable to a pipe we own. A full
            // pipe (EAGAIN) already guarantees a pending wake, so the result is ignored.
            let _ = unsafe { libc::write(w.as_raw_fd(), (&byte as *const u8).cast(), 1) };
        })
    }

    fn select(
        &mut self,
        wants: &[Want],
        timeout: Option<Duration>,
        out: &mut Vec<Readiness>,
    ) -> io::Result<()> {
        self.fds.clear();
        self.tokens.clear();
        self.fds.push(libc::pollfd {
            fd: self.wake_read.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        });
        self.tokens.push(WAKER_TOKEN);
        for w in wants {
            let mut events = 0;
            if w.read {
                events |= libc::POLLIN;
            }
            if w.write {
                events |= libc::POLLOUT;
            }
            if events != 0 {
                self.fds.push(libc::pollfd {
                    fd: w.fd,
                    events,
                    revents: 0,
                });
                self.tokens.push(w.token);
            }
        }
        let timeout_ms = match timeout {
            None => -1,
            // Round up: waking a hair early would make the loop spin until the deadline.
            Some(d) => {
                let ms = d.as_nanos().div_ceil(1_000_000);
                libc::c_int::try_from(ms).unwrap_or(libc::c_int::MAX)
            }
        };
        let nfds = libc::nfds_t::try_from(self.fds.len()).unwrap_or(libc::nfds_t::MAX);
        // SAFETY: `fds` is a live, initialised array of `nfds` pollfd structs.
        let ready = unsafe { libc::poll(self.fds.as_mut_ptr(), nfds, timeout_ms) };
        if ready < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                return Ok(());
            }
            return Err(e);
        }
        for (pfd, &token) in self.fds.iter().zip(&self.tokens) {
            let r = pfd.revents;
            if r == 0 {
                continue;
            }
            if token == WAKER_TOKEN {
                self.drain_wake_pipe();
            }
            let read_closed = r & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0;
            out.push(Readiness {
                token,
                readable: r & libc::POLLIN != 0 || read_closed,
                writable: r & libc::POLLOUT != 0 || read_closed,
                read_closed,
            });
        }
        Ok(())
    }
}
