//! The chat server (`examples/chat.rs`): an HTML page with plain JavaScript at `/` and a
//! WebSocket room at `/chat` that relays every text message to everyone connected. Built
//! here, in the library, so the simulator scenario `chat` and the browser test run exactly
//! the server the example serves.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;

use eddy_core::Duration;
use eddy_web::websocket::{Message, SendError, WebSocket, WsOptions, WsSender};
use eddy_web::{Application, Exchange, HttpError, RequestHandler, Route, WebSocketHandler};

/// The page browsers load.
pub const PAGE: &str = include_str!("chat/index.html");

/// Longest chat message relayed, in bytes (longer ones close the sender with 1009).
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// Who is in the room: one sender per open session, in the order they joined.
#[derive(Default)]
struct Room {
    members: BTreeMap<u64, WsSender>,
    next_id: u64,
    /// Reports the member count to an observer (the simulator scenario).
    observer: Option<Rc<Cell<usize>>>,
}

impl Room {
    fn join(&mut self, sender: WsSender) -> u64 {
        self.next_id += 1;
        self.members.insert(self.next_id, sender);
        self.report();
        self.next_id
    }

    fn leave(&mut self, id: u64) {
        self.members.remove(&id);
        self.report();
    }

    fn report(&self) {
        if let Some(observer) = &self.observer {
            observer.set(self.members.len());
        }
    }

    /// Queues `text` to every member at once (so all see one order); a member whose backlog
    /// is over its write limit is too slow to keep up and is closed (1008) instead.
    fn broadcast(&mut self, text: &str) {
        let mut slow = Vec::new();
        for (id, member) in &self.members {
            match member.try_send(text) {
                Ok(()) => {}
                Err(SendError::BufferFull { .. }) => slow.push(*id),
                Err(_) => {} // closing already; its on_close removes it
            }
        }
        for id in slow {
            if let Some(member) = self.members.remove(&id) {
                member.close(1008, "too slow to keep up");
            }
        }
        self.report();
    }
}

/// The chat application; `members`, if given, is kept equal to the room's size.
pub fn app(members: Option<Rc<Cell<usize>>>) -> Application {
    let room = Rc::new(RefCell::new(Room {
        observer: members,
        ..Room::default()
    }));
    Application::new(vec![
        Route::new("/", || Page),
        Route::websocket("/chat", move || Member {
            room: room.clone(),
            id: None,
        }),
    ])
}

struct Page;
impl RequestHandler for Page {
    async fn get(&mut self, ex: &mut Exchange) -> Result<(), HttpError> {
        ex.write(PAGE);
        Ok(())
    }
}

/// One session in the room.
struct Member {
    room: Rc<RefCell<Room>>,
    id: Option<u64>,
}

impl WebSocketHandler for Member {
    fn options(&self) -> WsOptions {
        WsOptions {
            config: eddy_core::ws::WsConfig {
                max_message_size: MAX_MESSAGE_BYTES,
            },
            // Dead peers (a cut cable, a partition) leave the room within ~20 s.
            ping_interval: Some(Duration::from_secs(5)),
            ping_timeout: Some(Duration::from_secs(15)),
            ..WsOptions::default()
        }
    }

    async fn open(&mut self, _ex: &mut Exchange, ws: &WebSocket) {
        self.id = Some(self.room.borrow_mut().join(ws.sender()));
    }

    async fn on_message(&mut self, _ws: &WebSocket, message: Message) {
        if let Message::Text(text) = message {
            self.room.borrow_mut().broadcast(&text);
        }
    }

    async fn on_close(&mut self, _status: &eddy_web::websocket::CloseStatus) {
        if let Some(id) = self.id.take() {
            self.room.borrow_mut().leave(id);
        }
    }
}
