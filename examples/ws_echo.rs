//! A bare WebSocket echo server on eddy-web (`/ws`), the server benches/ws.sh measures.
//!
//! ```text
//! cargo run --release --example ws_echo -- --port 8888
//! ```

use eddy::server_args::{run_server, shared_listen_options};
use eddy::web::websocket::{Message, WebSocket, WebSocketHandler};
use eddy::web::{Application, Route};
use std::process::ExitCode;

struct Echo;
impl WebSocketHandler for Echo {
    async fn on_message(&mut self, ws: &WebSocket, message: Message) {
        let _ = ws.send(message).await;
    }
}

fn main() -> ExitCode {
    run_server("ws_echo", 8888, |io, addr| {
        Application::new(vec![Route::websocket("/ws", || Echo)]).listen(
            io,
            addr,
            shared_listen_options(),
        );
    })
}
