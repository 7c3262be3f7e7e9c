//! The demo app's `/ws` echo with `websocket_connect` as the client, one body on every
//! backend: mio and poll over loopback, and the simulator with choppy links.

mod common;

use bytes::Bytes;
use common::{backends, run_pair};
use eddy::core::task::with_loop;
use eddy::core::ListenOptions;
use eddy::web::websocket::{seeded_mask_source, websocket_connect_with, Message, WsConnect};
use std::time::Duration;

#[test]
fn the_demo_echo_answers_text_binary_and_large_messages_then_closes_cleanly_on_every_backend() {
    for backend in backends() {
        run_pair(
            backend,
            |io, addr| {
                let (_, listener) =
                    eddy::web_demo::app(b"secret").listen(io, addr, ListenOptions::default());
                listener
            },
            move |io, addr| {
                io.spawn_detached(async move {
                    let url = format!("ws://{addr}/ws");
                    let mut ws =
                        websocket_connect_with(WsConnect::new(&url), seeded_mask_source(1))
                            .await
                            .unwrap_or_else(|e| panic!("[{backend:?}] connect: {e}"));
                    let big: Vec<u8> = common::pattern(9, 3 << 20);
                    let sent = [
                        Message::Text("héllo".into()),
                        Message::Binary(Bytes::from_static(b"\x00\x01\x02")),
                        Message::Binary(Bytes::from(big)),
                        Message::Text("x".repeat(70_000)),
                    ];
                    for m in &sent {
                        ws.send(m.clone()).await.expect("sent");
                    }
                    for m in &sent {
                        assert_eq!(ws.recv().await.as_ref(), Some(m), "[{backend:?}] echo");
                    }
                    ws.close(1000, "done");
                    assert_eq!(ws.recv().await, None);
                    let status = ws.close_status().expect("closed");
                    assert_eq!(status.code, 1000, "[{backend:?}] {status:?}");
                    with_loop(|io| io.stop());
                });
            },
            Duration::from_secs(30),
        );
    }
}
