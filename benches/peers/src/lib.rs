//! What the peer binaries share: the echo loop both echo servers (real tokio sockets and
//! turmoil's simulated ones) run per connection.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Writes back everything read from `sock` until end of file or an error.
pub async fn echo_connection<S: AsyncRead + AsyncWrite + Unpin>(mut sock: S) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match sock.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if sock.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
}
