//! The TCP echo service written with async/await: the same behaviour as [`crate::echo`]
//! (every byte back, in order; back-pressure past [`HIGH_WATER`]), as tasks on the loop.
//!
//! [`serve_with`] starts it from callback code (a driver's or a simulated host's setup);
//! [`serve`] is the whole server as one `async fn`.

use crate::core::task::{self, TcpListener, TcpStream};
use crate::core::{IoLoop, ListenOptions, ListenerId};
use std::io;
use std::net::SocketAddr;

pub use crate::echo::{HIGH_WATER, READ_MAX};

/// Binds `addr` and echoes every connection, each in its own task, until the listener fails.
pub async fn serve(addr: SocketAddr, options: ListenOptions) -> io::Result<()> {
    let listener = TcpListener::bind_with(addr, options).await?;
    accept_loop(listener).await;
    Ok(())
}

/// Listens on `addr` from callback code and runs the accept loop as a task.
pub fn serve_with(io: &mut IoLoop, addr: SocketAddr, options: ListenOptions) -> ListenerId {
    let listener = TcpListener::listen_on(io, addr, options);
    let id = listener.id();
    io.spawn_detached(accept_loop(listener));
    id
}

/// Accepts forever, spawning one echo task per connection.
pub async fn accept_loop(mut listener: TcpListener) {
    while let Ok((stream, _peer)) = listener.accept().await {
        task::spawn(echo_connection(stream));
    }
}

/// Echoes one connection until the peer's end of file (or an error), then flushes and closes.
pub async fn echo_connection(mut stream: TcpStream) {
    while let Ok(data) = stream.read_some(READ_MAX).await {
        if stream.write(data).is_err() {
            return;
        }
        if stream.write_queued() > HIGH_WATER && stream.flush().await.is_err() {
            return;
        }
    }
    let _ = stream.flush().await;
}
