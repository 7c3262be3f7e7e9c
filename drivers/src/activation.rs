//! Listening sockets passed in by a supervisor: systemd's socket activation (`LISTEN_FDS`,
//! `LISTEN_PID`, descriptors from 3) and [`spawn_with_listeners`], which hands a process the
//! listeners it should serve, so that an old and a new process can accept from one socket
//! while one replaces the other and no connection is refused or reset.
//!
//! A loop still asks to listen on an address; when [`DriverConfig::inherited_listeners`]
//! holds a socket bound there, the driver serves a duplicate of it instead of binding.
//!
//! [`DriverConfig::inherited_listeners`]: crate::DriverConfig::inherited_listeners

use std::net::SocketAddr;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::process::{Child, Command};
use std::sync::Arc;

use socket2::Socket;

/// The first descriptor systemd passes (`SD_LISTEN_FDS_START`).
pub const LISTEN_FDS_START: RawFd = 3;

/// A listening TCP socket this process was given, and the address it is bound to.
#[derive(Clone, Debug)]
pub struct InheritedListener {
    /// The address the socket is bound to.
    pub addr: SocketAddr,
    fd: Arc<OwnedFd>,
}

impl InheritedListener {
    /// A duplicate of the socket (close-on-exec, non-blocking) for one loop to serve.
    pub(crate) fn duplicate(&self) -> std::io::Result<Socket> {
        let fd = self.fd.try_clone()?;
        let sock = Socket::from(fd);
        sock.set_cloexec(true)?;
        sock.set_nonblocking(true)?;
        Ok(sock)
    }
}

/// The TCP listeners systemd (or [`spawn_with_listeners`]) passed to this process:
/// descriptors 3.. when `LISTEN_PID` is this process and `LISTEN_FDS` counts them. The
/// variables are removed so that children do not inherit them; descriptors that are not
/// listening TCP sockets (a unix socket, a FIFO) are left alone and skipped.
pub fn listen_fds() -> Vec<InheritedListener> {
    let pid_matches = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
        .is_some_and(|p| p == std::process::id());
    let count = std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|n| n.parse::<i32>().ok())
        .unwrap_or(0);
    std::env::remove_var("LISTEN_PID");
    std::env::remove_var("LISTEN_FDS");
    std::env::remove_var("LISTEN_FDNAMES");
    if !pid_matches || count <= 0 {
        return Vec::new();
    }
    let mut found = Vec::new();
    for fd in LISTEN_FDS_START..LISTEN_FDS_START.saturating_add(count.min(1024)) {
        // SAFETY: the supervisor passed `fd` to this process for it to own (the
        // `LISTEN_FDS` protocol); nothing else in the process refers to it.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        let sock = Socket::from(owned);
        let listening = sock.is_listener().unwrap_or(false);
        let addr = sock.local_addr().ok().and_then(|a| a.as_socket());
        match (listening, addr) {
            (true, Some(addr)) => {
                let _ = sock.set_cloexec(true);
                found.push(InheritedListener {
                    addr,
                    fd: Arc::new(OwnedFd::from(sock)),
                });
            }
            _ => {
                // Not ours to use: give the descriptor back untouched, still open.
                let _ = std::os::fd::IntoRawFd::into_raw_fd(OwnedFd::from(sock));
            }
        }
    }
    found
}

/// Starts `program` with `args` serving `listeners`, as systemd would: they arrive as
/// descriptors 3.. with `LISTEN_FDS` and `LISTEN_PID` set (through `sh`, which knows the
/// child's pid before it execs the program). What a supervisor does to replace a server
/// without closing its socket: start the new process on the same listeners, then SIGTERM
/// the old one.
pub fn spawn_with_listeners(
    program: &str,
    args: &[&str],
    listeners: &[BorrowedFd<'_>],
    configure: impl FnOnce(&mut Command),
) -> std::io::Result<Child> {
    let fds: Vec<RawFd> = listeners.iter().map(|fd| fd.as_raw_fd()).collect();
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg("LISTEN_PID=$$ exec \"$0\" \"$@\"")
        .arg(program)
        .args(args)
        .env("LISTEN_FDS", fds.len().to_string());
    configure(&mut cmd);
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs in the forked child before exec and only calls dup2 and
    // fcntl, which are async-signal-safe; `fds` was copied into it before the fork.
    unsafe {
        cmd.pre_exec(move || {
            // Move every source out of the target range first, so no dup2 overwrites a
            // source still to be moved.
            let mut moved = Vec::with_capacity(fds.len());
            for &fd in &fds {
                let high = libc::fcntl(fd, libc::F_DUPFD, 64);
                if high < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                moved.push(high);
            }
            for (i, &fd) in moved.iter().enumerate() {
                let target = LISTEN_FDS_START + i as RawFd;
                if libc::dup2(fd, target) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // dup2 clears close-on-exec on the target: it survives the exec.
                libc::close(fd);
            }
            Ok(())
        });
    }
    cmd.spawn()
}
