//! The floor for the HTTP benchmark: a single-threaded epoll server that does nothing but
//! `recv`, count request heads (each `\r\n\r\n` ends one) and `send` one fixed response per
//! head. No parsing, no routing, no per-request state: what any HTTP server must at least pay
//! in system calls, measured in the same run as eddy and hyper.
//!
//! Usage: floor_hello PORT [close|parse]
//! With `close` every response says `Connection: close` and the connection is closed after
//! its first response (the benchmark's connection-per-request scenario); otherwise
//! connections are kept alive and pipelined heads are answered in one `send`. With `parse`
//! every complete head a read holds is also parsed with `httparse` (16 field slots, nothing
//! checked beyond what it checks): what parsing alone adds to the floor, the least any
//! server built on `httparse` pays.
//!
//! The fixed response is the same size as eddy's hello answer (status line, `Content-Type`,
//! `Content-Length`, a 29-byte `Date`, `Server`). Output that the socket does not take at
//! once is kept and the connection stops being read until it drains (no unbounded buffering).

use std::io;

const KEEP_ALIVE_RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\nServer: eddy\r\n\r\nHello, World!";
const CLOSE_RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\nServer: eddy\r\nConnection: close\r\n\r\nHello, World!";
const LISTENER: u64 = u64::MAX;
const MAX_EVENTS: usize = 256;

/// One connection: how much of a `\r\n\r\n` the last read ended in, and unsent output.
#[derive(Default)]
struct Conn {
    /// Bytes of `\r\n\r\n` matched at the end of what was read so far (0-3).
    matched: u8,
    /// Output the socket did not take yet; reading waits until it is empty.
    pending: Vec<u8>,
    /// Close once `pending` is sent (`close` mode).
    closing: bool,
}

struct Floor {
    epoll: i32,
    listener: i32,
    close_mode: bool,
    parse_mode: bool,
    conns: Vec<Option<Conn>>,
    read_buf: Vec<u8>,
    out: Vec<u8>,
}

fn check(ret: i32) -> io::Result<i32> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Counts the request heads that end in `data`, carrying a partial `\r\n\r\n` across reads.
fn count_heads(matched: &mut u8, data: &[u8]) -> usize {
    const END: &[u8; 4] = b"\r\n\r\n";
    let mut heads = 0;
    let mut m = usize::from(*matched);
    for &b in data {
        if b == END[m] {
            m += 1;
            if m == 4 {
                heads += 1;
                m = 0;
            }
        } else {
            m = usize::from(b == b'\r');
        }
    }
    *matched = m as u8;
    heads
}

impl Floor {
    fn bind(port: u16, close_mode: bool, parse_mode: bool) -> io::Result<Floor> {
        // SAFETY: plain socket calls on integers and a stack `sockaddr_in` that outlives them.
        unsafe {
            let listener = check(libc::socket(
                libc::AF_INET,
                libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                0,
            ))?;
            let one: libc::c_int = 1;
            check(libc::setsockopt(
                listener,
                libc::SOL_SOCKET,
                libc::SO_REUSEADDR,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            ))?;
            let mut addr: libc::sockaddr_in = std::mem::zeroed();
            addr.sin_family = libc::AF_INET as libc::sa_family_t;
            addr.sin_port = port.to_be();
            addr.sin_addr.s_addr = u32::from_be_bytes([127, 0, 0, 1]).to_be();
            check(libc::bind(
                listener,
                (&addr as *const libc::sockaddr_in).cast(),
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            ))?;
            check(libc::listen(listener, 1024))?;
            let epoll = check(libc::epoll_create1(libc::EPOLL_CLOEXEC))?;
            let floor = Floor {
                epoll,
                listener,
                close_mode,
                parse_mode,
                conns: Vec::new(),
                read_buf: vec![0u8; 64 * 1024],
                out: Vec::with_capacity(64 * 1024),
            };
            floor.ctl(
                libc::EPOLL_CTL_ADD,
                listener,
                libc::EPOLLIN as u32,
                LISTENER,
            )?;
            Ok(floor)
        }
    }

    fn ctl(&self, op: i32, fd: i32, events: u32, token: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event { events, u64: token };
        // SAFETY: `ev` is a valid epoll_event for the duration of the call.
        check(unsafe { libc::epoll_ctl(self.epoll, op, fd, &mut ev) }).map(drop)
    }

    fn run(&mut self) -> io::Result<()> {
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; MAX_EVENTS];
        loop {
            // SAFETY: `events` has room for MAX_EVENTS entries.
            let n =
                unsafe { libc::epoll_wait(self.epoll, events.as_mut_ptr(), MAX_EVENTS as i32, -1) };
            if n < 0 {
                let err = io::Error::last_os_error();
                if err.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(err);
            }
            for ev in &events[..n as usize] {
                let (token, flags) = (ev.u64, ev.events);
                if token == LISTENER {
                    self.accept_all();
                } else {
                    self.on_ready(token as i32, flags);
                }
            }
        }
    }

    fn accept_all(&mut self) {
        loop {
            // SAFETY: null address pointers are allowed by accept4.
            let fd = unsafe {
                libc::accept4(
                    self.listener,
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                    libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                )
            };
            if fd < 0 {
                return;
            }
            let one: libc::c_int = 1;
            // SAFETY: `one` outlives the call; `fd` is the socket just accepted.
            unsafe {
                libc::setsockopt(
                    fd,
                    libc::IPPROTO_TCP,
                    libc::TCP_NODELAY,
                    (&one as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                );
            }
            let slot = fd as usize;
            if self.conns.len() <= slot {
                self.conns.resize_with(slot + 1, || None);
            }
            self.conns[slot] = Some(Conn::default());
            if self
                .ctl(libc::EPOLL_CTL_ADD, fd, libc::EPOLLIN as u32, fd as u64)
                .is_err()
            {
                self.close(fd);
            }
        }
    }

    fn close(&mut self, fd: i32) {
        if let Some(slot) = self.conns.get_mut(fd as usize) {
            *slot = None;
        }
        // SAFETY: `fd` is a connection this server owns; closing removes it from epoll.
        unsafe { libc::close(fd) };
    }

    fn on_ready(&mut self, fd: i32, flags: u32) {
        let Some(Some(conn)) = self.conns.get_mut(fd as usize) else {
            return;
        };
        if !conn.pending.is_empty() {
            if flags & libc::EPOLLOUT as u32 == 0 && flags & libc::EPOLLERR as u32 == 0 {
                return;
            }
            let pending = std::mem::take(&mut conn.pending);
            let closing = conn.closing;
            match send_some(fd, &pending) {
                Err(()) => return self.close(fd),
                Ok(sent) if sent < pending.len() => {
                    if let Some(Some(conn)) = self.conns.get_mut(fd as usize) {
                        conn.pending = pending[sent..].to_vec();
                    }
                    return;
                }
                Ok(_) if closing => return self.close(fd),
                Ok(_) => {
                    let _ = self.ctl(libc::EPOLL_CTL_MOD, fd, libc::EPOLLIN as u32, fd as u64);
                    return;
                }
            }
        }
        // SAFETY: `read_buf` is valid for writes of its length.
        let n = unsafe {
            libc::recv(
                fd,
                self.read_buf.as_mut_ptr().cast(),
                self.read_buf.len(),
                0,
            )
        };
        if n == 0 {
            return self.close(fd);
        }
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::WouldBlock {
                self.close(fd);
            }
            return;
        }
        let heads = count_heads(&mut conn.matched, &self.read_buf[..n as usize]);
        if heads == 0 {
            return;
        }
        if self.parse_mode {
            std::hint::black_box(parse_heads(&self.read_buf[..n as usize]));
        }
        let (response, heads) = if self.close_mode {
            (CLOSE_RESPONSE, 1)
        } else {
            (KEEP_ALIVE_RESPONSE, heads)
        };
        self.out.clear();
        for _ in 0..heads {
            self.out.extend_from_slice(response);
        }
        match send_some(fd, &self.out) {
            Err(()) => self.close(fd),
            Ok(sent) if sent == self.out.len() => {
                if self.close_mode {
                    self.close(fd);
                }
            }
            Ok(sent) => {
                let rest = self.out[sent..].to_vec();
                if let Some(Some(conn)) = self.conns.get_mut(fd as usize) {
                    conn.pending = rest;
                    conn.closing = self.close_mode;
                }
                let _ = self.ctl(libc::EPOLL_CTL_MOD, fd, libc::EPOLLOUT as u32, fd as u64);
            }
        }
    }
}

/// Parses the complete request heads at the start of `data` with `httparse`; returns how
/// many parsed and their summed method, path and field counts (kept, so none is optimised
/// away).
fn parse_heads(mut data: &[u8]) -> usize {
    let mut sum = 0;
    loop {
        let mut fields = [httparse::EMPTY_HEADER; 16];
        let mut req = httparse::Request::new(&mut fields);
        match req.parse(data) {
            Ok(httparse::Status::Complete(len)) => {
                sum += req.method.map_or(0, str::len)
                    + req.path.map_or(0, str::len)
                    + req.headers.len();
                data = &data[len..];
            }
            _ => return sum,
        }
    }
}

/// One `send`; `Ok(bytes taken)` (0 when the socket is full), `Err` when the peer is gone.
fn send_some(fd: i32, data: &[u8]) -> Result<usize, ()> {
    // SAFETY: `data` is valid for reads of its length.
    let n = unsafe { libc::send(fd, data.as_ptr().cast(), data.len(), libc::MSG_NOSIGNAL) };
    if n >= 0 {
        return Ok(n as usize);
    }
    match io::Error::last_os_error().kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(0),
        _ => Err(()),
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let port: u16 = args
        .next()
        .and_then(|p| p.parse().ok())
        .expect("usage: floor_hello PORT [close|parse]");
    let mode = args.next();
    let mut floor = Floor::bind(
        port,
        mode.as_deref() == Some("close"),
        mode.as_deref() == Some("parse"),
    )
    .expect("bind");
    floor.run().expect("epoll loop");
}

#[cfg(test)]
mod tests {
    use super::count_heads;

    #[test]
    fn counts_heads_split_anywhere() {
        let two = b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n";
        for split in 0..two.len() {
            let mut m = 0;
            let n = count_heads(&mut m, &two[..split]) + count_heads(&mut m, &two[split..]);
            assert_eq!(n, 2, "split at {split}");
        }
    }
}
