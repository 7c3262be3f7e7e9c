//! Scenario `web_chaos`: clients, each on its own host, browse the demo web application
//! (`eddy::web_demo`) as tasks while faults run — JSON pages, a signed counter cookie they
//! send back, timers, flushed streams.
//!
//! Safety, checked as answers arrive: every request ends with exactly one result; an answer
//! is the right one for its request (the user id, the stream's lines, the greeting); a
//! client's signed counter only goes up, one per answered visit it made (the secret is
//! fixed, so server restarts do not reset it). Liveness: once the world heals, every
//! client's script finishes within bounded virtual time.

use super::ScenarioOptions;
use crate::core::http::{ClientConfig, HttpClient, HttpRequest};
use crate::core::{task, Duration, ListenOptions};
use eddy_sim::{RunReport, Sim, SimError};
use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;

/// Visits each client makes.
pub const VISITS: usize = 30;

/// What a page's body must be.
type BodyCheck = Box<dyn Fn(&str) -> bool>;

/// What one client saw.
#[derive(Default)]
struct ClientLog {
    done: bool,
    violation: Option<String>,
    answered: usize,
}

/// Runs one seed.
pub fn run(seed: u64, opts: &ScenarioOptions) -> Result<RunReport, SimError> {
    run_counted(seed, opts).map(|(report, _)| report)
}

/// Runs one seed and says how many visits, over all clients, got an answer.
pub fn run_counted(seed: u64, opts: &ScenarioOptions) -> Result<(RunReport, usize), SimError> {
    let mut sim = match &opts.faults {
        Some(f) => Sim::with_faults(seed, f.clone()),
        None => Sim::new(seed),
    };
    sim.record_trace(opts.trace);
    let addr = SocketAddr::new(Sim::ip_of_nth_host(0), 80);
    sim.host("web", move |io| {
        crate::web_demo::app(b"web chaos secret").listen(io, addr, ListenOptions::default());
    });
    let clients = opts.clients.max(1);
    let mut logs = Vec::new();
    for c in 0..clients {
        let log = Rc::new(RefCell::new(ClientLog::default()));
        logs.push(log.clone());
        let h = sim.host(&format!("client{c}"), move |io| {
            io.spawn_detached(browse(addr, c, log.clone()));
        });
        sim.set_crashable(h, false);
    }
    let all = logs.clone();
    sim.run_faults_then_heal(
        Duration::from_secs(60),
        Duration::from_secs(3600),
        move |_| all.iter().all(|l| l.borrow().done),
    )?;
    let mut answered = 0;
    for (c, log) in logs.iter().enumerate() {
        let log = log.borrow();
        if let Some(v) = &log.violation {
            return Err(SimError::Invariant {
                seed,
                message: format!("client{c}: {v}"),
            });
        }
        answered += log.answered;
    }
    Ok((sim.report(), answered))
}

/// One client's script: a cycle of pages, each checked against what it must say.
async fn browse(addr: SocketAddr, c: usize, log: Rc<RefCell<ClientLog>>) {
    let client = HttpClient::new(ClientConfig::default());
    let mut cookie: Option<String> = None;
    let mut count = 0u64;
    for visit in 0..VISITS {
        let (path, expect): (String, BodyCheck) = match visit % 4 {
            0 => {
                let id = c * 1000 + visit;
                let want = format!("{{\"id\": {id}, \"name\": \"user {id}\"}}");
                (format!("/user/{id}"), Box::new(move |b| b == want))
            }
            1 => ("/counter".into(), Box::new(|_| true)),
            2 => {
                let want: String = (0..3).map(|i| format!("chunk {i}\n")).collect();
                ("/stream?n=3".into(), Box::new(move |b| b == want))
            }
            _ => ("/sleep?ms=200".into(), Box::new(|b| b == "slept 200")),
        };
        let mut request = HttpRequest::get(format!("http://{addr}{path}"));
        request.request_timeout = Some(Duration::from_secs(10));
        request.connect_timeout = Some(Duration::from_secs(5));
        if let Some(cookie) = &cookie {
            request = request.header("cookie", cookie);
        }
        let Ok(response) = client.fetch_async(request).await else {
            task::sleep(Duration::from_millis(100)).await;
            continue; // a fault cut it: a typed error is a fine outcome
        };
        let body = String::from_utf8_lossy(&response.body).into_owned();
        let mut log_mut = log.borrow_mut();
        log_mut.answered += 1;
        if response.status != 200 || !expect(&body) {
            log_mut.violation = Some(format!("{path}: {} {body:?}", response.status));
            break;
        }
        if path == "/counter" {
            let n: u64 = body.parse().unwrap_or(0);
            // Lost answers may have counted visits we never saw, so it can jump; never fall.
            if n <= count {
                log_mut.violation = Some(format!("counter went from {count} to {n}"));
                break;
            }
            count = n;
            cookie = response
                .headers
                .get_all("set-cookie")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .find_map(|v| v.split(';').next().filter(|p| p.starts_with("count=")))
                .map(str::to_owned)
                .or(cookie.take());
        }
    }
    log.borrow_mut().done = true;
}
