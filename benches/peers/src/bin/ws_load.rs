//! WebSocket load: `ws_load --url ws://127.0.0.1:8888/ws --conns 50 --secs 10 --size 1024`.
//! N connections, each sending a binary message and awaiting its echo, in a loop until
//! the deadline; prints `RESULT ops=.. secs=.. rate=..` (echoes per second).

use futures_util::{SinkExt, StreamExt};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

fn main() {
    let (mut url, mut conns, mut secs, mut size) = (String::new(), 50usize, 10u64, 1024usize);
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let v = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--url" => url = v,
            "--conns" => conns = v.parse().expect("--conns"),
            "--secs" => secs = v.parse().expect("--secs"),
            "--size" => size = v.parse().expect("--size"),
            other => panic!("unknown flag {other}"),
        }
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let started = Instant::now();
    let deadline = started + Duration::from_secs(secs);
    let total: u64 = rt.block_on(async {
        let mut tasks = Vec::new();
        for _ in 0..conns {
            let url = url.clone();
            tasks.push(tokio::spawn(async move {
                let (mut ws, _) = tokio_tungstenite::connect_async(url)
                    .await
                    .expect("connect");
                let payload = vec![7u8; size];
                let mut n = 0u64;
                while Instant::now() < deadline {
                    if ws.send(Message::binary(payload.clone())).await.is_err() {
                        break;
                    }
                    match ws.next().await {
                        Some(Ok(m)) if m.len() == size => n += 1,
                        _ => break,
                    }
                }
                let _ = ws.close(None).await;
                n
            }));
        }
        let mut sum = 0;
        for t in tasks {
            sum += t.await.unwrap_or(0);
        }
        sum
    });
    let secs = started.elapsed().as_secs_f64();
    println!(
        "RESULT ops={total} secs={secs:.2} rate={:.0}",
        total as f64 / secs
    );
}
