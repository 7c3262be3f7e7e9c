//! The comparison peer: a tokio current-thread TCP echo server (`--port N`).

use tokio::net::TcpListener;

fn main() -> std::io::Result<()> {
    let mut port = 8889u16;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--port" {
            port = args.next().and_then(|p| p.parse().ok()).expect("--port N");
        }
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = TcpListener::bind(("127.0.0.1", port)).await?;
        println!("tokio echo listening on {}", listener.local_addr()?);
        loop {
            let (sock, _) = match listener.accept().await {
                Ok(s) => s,
                Err(_) => continue,
            };
            let _ = sock.set_nodelay(true);
            tokio::spawn(eddy_bench_peers::echo_connection(sock));
        }
    })
}
