//! The socket system calls of the drivers: listen, accept, connect, recv into a lent buffer,
//! vectored send. Every `unsafe` of the crate's socket path lives here, each with its reason.
//! Nothing here knows about the loop beyond the buffer type it lends.

use bytes::buf::Limit;
use bytes::{BufMut, BytesMut};
use eddy_core::ListenOptions;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::io::{self, IoSlice};
use std::net::{Ipv4Addr, SocketAddr};

/// Flags for every send: never raise SIGPIPE on a peer that went away (EPIPE instead).
#[cfg(not(target_vendor = "apple"))]
const SEND_FLAGS: libc::c_int = libc::MSG_NOSIGNAL;
/// Apple has no MSG_NOSIGNAL; sockets get SO_NOSIGPIPE instead (see `stream_options`).
#[cfg(target_vendor = "apple")]
const SEND_FLAGS: libc::c_int = 0;

/// Most slices offered to one `sendmsg` (the core offers at most this many too).
pub(crate) const MAX_SLICES: usize = eddy_core::stream::MAX_WRITE_SLICES;

/// Binds a non-blocking, close-on-exec listener the way Tornado's `bind_sockets` does.
///
/// SO_REUSEADDR always (restart while old connections sit in TIME_WAIT), IPV6_V6ONLY on IPv6
/// (one listener per family), SO_REUSEPORT when asked. Returns the socket and its real address.
pub(crate) fn listen(addr: SocketAddr, options: ListenOptions) -> io::Result<(Socket, SocketAddr)> {
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    sock.set_cloexec(true)?;
    sock.set_nonblocking(true)?;
    sock.set_reuse_address(true)?;
    if addr.is_ipv6() {
        sock.set_only_v6(true)?;
    }
    if options.reuse_port {
        sock.set_reuse_port(true)?;
    }
    sock.bind(&addr.into())?;
    let backlog = i32::try_from(options.backlog).unwrap_or(i32::MAX);
    sock.listen(backlog)?;
    let local = sock
        .local_addr()?
        .as_socket()
        .ok_or(io::ErrorKind::InvalidInput)?;
    Ok((sock, local))
}

/// Binds and listens on a unix domain socket at `path` with permission bits `mode`
/// (Tornado's `bind_unix_socket`). A socket file nobody accepts on (a crashed server's) is
/// replaced; a live one is `AddrInUse`; anything else at the path is left alone and
/// refused. The socket is reported at `0.0.0.0:0`.
pub(crate) fn listen_unix(
    path: &str,
    mode: u32,
    options: ListenOptions,
) -> io::Result<(Socket, SocketAddr)> {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            match std::os::unix::net::UnixStream::connect(path) {
                Ok(_) => {
                    return Err(io::Error::new(
                        io::ErrorKind::AddrInUse,
                        format!("{path}: a server is listening there"),
                    ))
                }
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    std::fs::remove_file(path)?; // stale: nobody accepts on it
                }
                Err(e) => return Err(e),
            }
        }
        Ok(_) => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{path} exists and is not a socket"),
            ))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let sock = Socket::new(Domain::UNIX, Type::STREAM, None)?;
    sock.set_cloexec(true)?;
    sock.set_nonblocking(true)?;
    sock.bind(&SockAddr::unix(path)?)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    let backlog = i32::try_from(options.backlog).unwrap_or(i32::MAX);
    sock.listen(backlog)?;
    Ok((sock, (Ipv4Addr::UNSPECIFIED, 0).into()))
}

/// Accepts one connection: non-blocking, close-on-exec, TCP_NODELAY.
pub(crate) fn accept(listener: &Socket) -> io::Result<(Socket, SocketAddr)> {
    let (sock, addr) = accept_nonblocking(listener)?;
    stream_options(&sock);
    let peer = addr
        .as_socket()
        .unwrap_or_else(|| (Ipv4Addr::UNSPECIFIED, 0).into());
    Ok((sock, peer))
}

#[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
fn accept_nonblocking(listener: &Socket) -> io::Result<(Socket, SockAddr)> {
    use std::os::fd::{AsRawFd, FromRawFd};
    let fd = listener.as_raw_fd();
    // SAFETY: `try_init` hands us zeroed storage of `sockaddr_storage` size and its length;
    // accept4 writes at most that many bytes and updates the length, as try_init requires.
    unsafe {
        SockAddr::try_init(|storage, len| {
            let flags = libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
            let new = libc::accept4(fd, storage.cast(), len, flags);
            if new < 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: accept4 returned a fresh descriptor that nothing else owns.
            Ok(Socket::from_raw_fd(new))
        })
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
fn accept_nonblocking(listener: &Socket) -> io::Result<(Socket, SockAddr)> {
    let (sock, addr) = listener.accept()?; // sets close-on-exec where accept4 is missing
    sock.set_nonblocking(true)?;
    Ok((sock, addr))
}

/// Options every connected stream gets; failures only cost latency, so they are ignored.
fn stream_options(sock: &Socket) {
    let _ = sock.set_nodelay(true);
    #[cfg(target_vendor = "apple")]
    let _ = sock.set_nosigpipe(true);
}

/// Starts a non-blocking connect; `Ok((sock, true))` while it is in progress.
pub(crate) fn connect(addr: SocketAddr) -> io::Result<(Socket, bool)> {
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    sock.set_cloexec(true)?;
    sock.set_nonblocking(true)?;
    stream_options(&sock);
    match sock.connect(&addr.into()) {
        Ok(()) => Ok((sock, false)),
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => Ok((sock, true)),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok((sock, true)),
        Err(e) => Err(e),
    }
}

/// Reads once into the spare room of the lent buffer and advances it; returns (read, room).
/// A read of 0 means end of file; fewer than `room` means the socket was drained.
pub(crate) fn recv_into(
    sock: &Socket,
    buf: &mut Limit<&mut BytesMut>,
) -> io::Result<(usize, usize)> {
    let chunk = buf.chunk_mut();
    // SAFETY: recv(2) only writes initialised bytes into this slice and never reads it, and
    // we never write uninitialised bytes through it.
    let spare = unsafe { chunk.as_uninit_slice_mut() };
    let room = spare.len();
    let n = loop {
        match sock.recv(spare) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => break other?,
        }
    };
    assert!(n <= room, "recv reported more bytes than the buffer holds");
    // SAFETY: recv reported that it initialised the first `n` bytes of the spare room.
    unsafe { buf.advance_mut(n) };
    Ok((n, room))
}

/// Writes as much of `chunks` as the socket takes in one `send`/`sendmsg`; returns (written,
/// offered). With `more`, the kernel is told more data follows at once (`MSG_MORE`, Linux):
/// a response head queued before a file range then leaves in one segment with the file's
/// first bytes, as nginx's `tcp_nopush` arranges.
pub(crate) fn send_chunks<'a>(
    sock: &Socket,
    chunks: impl Iterator<Item = &'a [u8]>,
    more: bool,
) -> io::Result<(usize, usize)> {
    #[cfg(target_os = "linux")]
    let flags = if more {
        SEND_FLAGS | libc::MSG_MORE
    } else {
        SEND_FLAGS
    };
    #[cfg(not(target_os = "linux"))]
    let flags = {
        let _ = more;
        SEND_FLAGS
    };
    let mut chunks = chunks.take(MAX_SLICES);
    let Some(first) = chunks.next() else {
        return Ok((0, 0));
    };
    let Some(second) = chunks.next() else {
        // One slice (a whole small response or message, the usual case) goes out with
        // send(2): no iovec array to fill, and the kernel copies in no msghdr.
        if first.is_empty() {
            return Ok((0, 0));
        }
        return retry_interrupted(|| sock.send_with_flags(first, flags)).map(|n| (n, first.len()));
    };
    // IoSlice is Copy: the array is filled by a plain store loop, only when needed.
    let mut slices = [IoSlice::new(&[]); MAX_SLICES];
    slices[0] = IoSlice::new(first);
    slices[1] = IoSlice::new(second);
    let mut count = 2;
    let mut offered = first.len() + second.len();
    for chunk in chunks {
        slices[count] = IoSlice::new(chunk);
        offered += chunk.len();
        count += 1;
    }
    if offered == 0 {
        return Ok((0, 0));
    }
    retry_interrupted(|| sock.send_vectored_with_flags(&slices[..count], flags))
        .map(|n| (n, offered))
}

/// Runs a system call again while it fails with `EINTR`.
fn retry_interrupted(mut call: impl FnMut() -> io::Result<usize>) -> io::Result<usize> {
    loop {
        match call() {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// True for accept errors that mean "out of descriptors or memory": back off, don't spin.
pub(crate) fn is_resource_exhaustion(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

/// True for accept errors about one connection only (it died in the backlog): skip it.
pub(crate) fn is_per_connection_accept_error(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ECONNABORTED | libc::EPROTO | libc::EPERM | libc::EINTR)
    )
}
