//! Scenario `chat`: N clients, each on its own host, chat through one `eddy::chat` server
//! over WebSocket while faults run; each reconnects whenever its session ends.
//!
//! Safety, checked as messages arrive: every message is one a client sent, uncorrupted (its
//! text is a function of its id); what one receiving session gets from one sending session
//! is a gap-free run of that sender's messages, in order, each once, and it starts no later
//! than the first message sent after the receiver connected (so nothing sent while both were
//! connected was skipped). A broken connection is seen as a close (1006 or a code) on the
//! client. Liveness: once the world heals, every client has an open session, the server's
//! room holds exactly those, and every message sent by an open session after another opened
//! has reached it.

use super::ScenarioOptions;
use crate::core::task::{self, sleep};
use crate::core::{Duration, ListenOptions};
use crate::web::websocket::{seeded_mask_source, websocket_connect_with, Message, WsConnect};
use eddy_sim::{RunReport, Sim, SimError};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::rc::Rc;

/// Messages each client sends over the run.
pub const MESSAGES: u32 = 20;

/// One session of one client: (client, session number).
type SessionId = (usize, u32);

/// A point in the world's order of events. Host clocks jump apart under faults, so times
/// from two hosts do not compare; all hosts run on one thread, so a shared counter does.
type Tick = u64;

/// What one session did.
struct Session {
    opened: Tick,
    open: bool,
    /// When it sent each of its messages, by sequence number (0, 1, …).
    sent: Vec<Tick>,
    /// From each sending session: the last sequence number received.
    last_from: BTreeMap<SessionId, u32>,
}

/// Everything the clients saw, shared by the checks.
#[derive(Default)]
struct World {
    sessions: BTreeMap<SessionId, Session>,
    /// Clients that sent all their messages.
    finished: usize,
    violation: Option<String>,
    closes: u64,
    clock: Tick,
}

impl World {
    fn tick(&mut self) -> Tick {
        self.clock += 1;
        self.clock
    }

    /// Checks one received message against what was sent (see the module docs).
    fn received(&mut self, at: SessionId, text: &str) {
        let Some((from, seq)) = parse(text) else {
            self.violation = Some(format!("{at:?} got a message nobody sent: {text:?}"));
            return;
        };
        let sent_at = match self.sessions.get(&from) {
            Some(s) if (seq as usize) < s.sent.len() => s.sent.clone(),
            _ => {
                self.violation = Some(format!("{at:?} got {text:?}, which {from:?} never sent"));
                return;
            }
        };
        let me = self.sessions.get_mut(&at).expect("receiving session");
        match me.last_from.get(&from) {
            Some(&last) if seq != last + 1 => {
                self.violation = Some(format!(
                    "{at:?} got {from:?}#{seq} after #{last}: lost, repeated or reordered"
                ));
                return;
            }
            Some(_) => {}
            None if seq > 0 && sent_at[seq as usize - 1] > me.opened => {
                self.violation = Some(format!(
                    "{at:?} (open at tick {}) first got {from:?}#{seq}, but #{} was sent later, at tick {}",
                    me.opened,
                    seq - 1,
                    sent_at[seq as usize - 1]
                ));
                return;
            }
            None => {}
        }
        me.last_from.insert(from, seq);
    }

    /// Liveness: every client open, the room holds them, every pair of open sessions has
    /// delivered what was sent since both were open.
    fn settled(&self, clients: usize, room: usize) -> bool {
        let open: Vec<_> = self.sessions.iter().filter(|(_, s)| s.open).collect();
        if self.finished < clients || open.len() != clients || room != clients {
            return false;
        }
        open.iter().all(|(_, r)| {
            open.iter().all(|(sid, s)| {
                // The last message the sender sent after the receiver opened, if any.
                match s.sent.iter().rposition(|&t| t > r.opened) {
                    None => true,
                    Some(last) => r.last_from.get(sid) == Some(&(last as u32)),
                }
            })
        })
    }
}

/// The text of message `seq` of session `id`: its id, then a body derived from it.
fn text_of(id: SessionId, seq: u32) -> String {
    let body: String = (0..(seq as usize % 7) * 40 + 3)
        .map(|i| char::from(b'a' + ((id.0 + id.1 as usize + seq as usize + i) % 26) as u8))
        .collect();
    format!("{}:{}:{}:{}", id.0, id.1, seq, body)
}

fn parse(text: &str) -> Option<(SessionId, u32)> {
    let mut parts = text.splitn(4, ':');
    let c = parts.next()?.parse().ok()?;
    let k = parts.next()?.parse().ok()?;
    let seq = parts.next()?.parse().ok()?;
    (text_of((c, k), seq) == text).then_some(((c, k), seq))
}

/// Runs one seed.
pub fn run(seed: u64, opts: &ScenarioOptions) -> Result<RunReport, SimError> {
    let mut sim = match &opts.faults {
        Some(f) => Sim::with_faults(seed, f.clone()),
        None => Sim::new(seed),
    };
    sim.record_trace(opts.trace);
    let addr = SocketAddr::new(Sim::ip_of_nth_host(0), 80);
    let room = Rc::new(Cell::new(0usize));
    let observer = room.clone();
    sim.host("chat", move |io| {
        observer.set(0); // a restarted server starts with an empty room
        crate::chat::app(Some(observer.clone())).listen(io, addr, ListenOptions::default());
    });
    let clients = opts.clients.max(1);
    let world = Rc::new(RefCell::new(World::default()));
    for c in 0..clients {
        let w = world.clone();
        let h = sim.host(&format!("client{c}"), move |io| {
            io.spawn_detached(client(addr, c, seed, w.clone()));
        });
        sim.set_crashable(h, false);
    }
    let w = world.clone();
    let r = room.clone();
    sim.run_faults_then_heal(
        Duration::from_secs(60),
        Duration::from_secs(3600),
        move |_| {
            let w = w.borrow();
            w.violation.is_some() || w.settled(clients, r.get())
        },
    )?;
    let w = world.borrow();
    if let Some(v) = &w.violation {
        return Err(SimError::Invariant {
            seed,
            message: v.clone(),
        });
    }
    Ok(sim.report())
}

/// One client: connect, send its share of messages at random moments while reading
/// everything, reconnect when a session ends; after the last message, stay connected.
async fn client(addr: SocketAddr, c: usize, seed: u64, world: Rc<RefCell<World>>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ ((c as u64 + 1) * 0x9E37_79B9));
    let next_seq = Rc::new(Cell::new(0u32));
    // Bounded: each round is a connect attempt; the world heals long before this runs out.
    for k in 0..10_000u32 {
        let mut request = WsConnect::new(&format!("ws://{addr}/chat"));
        request.connect_timeout = Duration::from_secs(5);
        request.request_timeout = Duration::from_secs(10);
        let keys = seeded_mask_source(seed ^ ((c as u64) << 32) ^ u64::from(k));
        let Ok(mut ws) = websocket_connect_with(request, keys).await else {
            sleep(Duration::from_millis(rng.gen_range(50..500))).await;
            continue;
        };
        let id = (c, k);
        let opened = world.borrow_mut().tick();
        world.borrow_mut().sessions.insert(
            id,
            Session {
                opened,
                open: true,
                sent: Vec::new(),
                last_from: BTreeMap::new(),
            },
        );
        let sender = ws.sender();
        let (w, next, pause_seed) = (world.clone(), next_seq.clone(), rng.gen::<u64>());
        let writer = task::spawn(async move {
            let mut rng = ChaCha8Rng::seed_from_u64(pause_seed);
            // A session numbers its own messages from 0; the client's total goes on.
            let mut seq = 0u32;
            while next.get() < MESSAGES {
                sleep(Duration::from_millis(rng.gen_range(0..3000))).await;
                // Record the send before it can be echoed back.
                {
                    let mut world = w.borrow_mut();
                    let now = world.tick();
                    world.sessions.get_mut(&id).expect("ours").sent.push(now);
                }
                if sender.send(text_of(id, seq)).await.is_err() {
                    return; // the session ended; the message may be lost with it
                }
                seq += 1;
                next.set(next.get() + 1);
                if next.get() == MESSAGES {
                    w.borrow_mut().finished += 1;
                }
            }
        });
        while let Some(message) = ws.recv().await {
            match message {
                Message::Text(text) => world.borrow_mut().received(id, &text),
                Message::Binary(_) => {
                    world.borrow_mut().violation = Some(format!("{id:?} got a binary message"))
                }
            }
        }
        writer.abort();
        {
            let mut w = world.borrow_mut();
            w.closes += 1;
            if ws.close_status().is_none() {
                w.violation = Some(format!("{id:?} ended without a close status"));
            }
            w.sessions.get_mut(&id).expect("ours").open = false;
        }
        sleep(Duration::from_millis(rng.gen_range(50..500))).await;
    }
}
