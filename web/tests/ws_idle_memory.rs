//! 10,000 idle WebSocket sessions on one loop (the demo app's `/ws` echo, through the web
//! layer: HTTP upgrade, session task, stream handler) and the heap bytes each holds on the
//! server, counted by a counting global allocator: at most 4 KiB per session.

use eddy_core::testing::DirectConn;
use eddy_core::{IoLoop, ListenOptions};
use eddy_web::websocket::{Message, WebSocket, WebSocketHandler};
use eddy_web::{Application, Route};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicI64, Ordering};

struct Counting;

static LIVE: AtomicI64 = AtomicI64::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts the bytes asked for.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as i64, Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as i64, Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size as i64 - layout.size() as i64, Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Heap bytes (requested sizes) one idle session may hold on the server.
const IDLE_SESSION_BUDGET: f64 = 4096.0;

const SESSIONS: usize = 10_000;

const HANDSHAKE: &[u8] = b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:80\r\nUpgrade: websocket\r\n\
Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
Sec-WebSocket-Version: 13\r\n\r\n";

struct Echo;
impl WebSocketHandler for Echo {
    async fn on_message(&mut self, ws: &WebSocket, message: Message) {
        let _ = ws.send(message).await;
    }
}

fn open_session(io: &mut IoLoop) -> DirectConn {
    let mut c = DirectConn::accept_another(io);
    let mut written = c.exchange(io, HANDSHAKE);
    // The request task answers 101, then the session task starts: a few rounds.
    for _ in 0..3 {
        written += c.exchange(io, b"");
    }
    assert!(written > 100, "a 101 answer went out ({written} bytes)");
    c
}

#[test]
fn ten_thousand_idle_websocket_sessions_hold_at_most_4_kib_each() {
    let mut io = IoLoop::default();
    let app = Application::new(vec![Route::websocket("/ws", || Echo)]);
    let addr = ([127, 0, 0, 1], 80).into();
    let (_server, listener) = app.listen(&mut io, addr, ListenOptions::default());
    io.handle_listening(listener, Ok(addr));
    let mut conns = Vec::with_capacity(SESSIONS + 1);
    // One session first, so one-time costs (pools, the first task) are not counted.
    conns.push(open_session(&mut io));
    let before = LIVE.load(Ordering::Relaxed);
    for _ in 0..SESSIONS {
        conns.push(open_session(&mut io));
    }
    let per_session = (LIVE.load(Ordering::Relaxed) - before) as f64 / SESSIONS as f64;
    println!("{per_session:.0} heap bytes per idle WebSocket session ({SESSIONS} sessions)");
    assert_eq!(
        io.open_streams(),
        SESSIONS + 1,
        "every session is still open"
    );
    assert!(
        per_session <= IDLE_SESSION_BUDGET,
        "{per_session:.0} bytes per idle session, budget {IDLE_SESSION_BUDGET}"
    );
    // And the sessions work: a masked "Hi" on the last one is echoed.
    let last = conns.last_mut().expect("sessions");
    let frame = [0x81, 0x82, 1, 2, 3, 4, b'H' ^ 1, b'i' ^ 2];
    let mut echoed = last.exchange(&mut io, &frame);
    for _ in 0..3 {
        echoed += last.exchange(&mut io, b"");
    }
    assert_eq!(echoed, 4, "the echo frame \\x81\\x02Hi");
}
