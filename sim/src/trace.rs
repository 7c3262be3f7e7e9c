//! The trace of a run: every delivered event, folded into a running hash, optionally recorded.
//!
//! It owns the event vocabulary, the hash (fixed, platform-independent) and the two export
//! formats (JSON lines, Chrome trace-event JSON). It never decides anything about the run.

use eddy_core::{Instant, StreamId};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// What happened, in one word.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum TraceKind {
    /// A host's loops were built (setup ran).
    Start,
    /// A listener was bound (`n` = port).
    Listen,
    /// A listener could not be bound.
    ListenFailed,
    /// A listener was closed.
    CloseListener,
    /// A connect was started (`n` = destination port).
    Connect,
    /// A connection was accepted.
    Accept,
    /// A connect completed.
    Connected,
    /// A connect was refused.
    Refused,
    /// The loop wrote `n` bytes.
    Write,
    /// The loop read `n` bytes.
    Read,
    /// The loop read end of file.
    Eof,
    /// The loop shut down its write side.
    ShutdownWrite,
    /// The loop closed a stream (`n` = 1 if the peer is reset).
    Close,
    /// A reset was delivered to the loop.
    Reset,
    /// The connection timed out: its packets were held longer than TCP retransmits.
    TimedOut,
    /// The loop called `stop`.
    Stop,
    /// Fault: a partition in both directions began (`n` = the other host).
    Partition,
    /// Fault: a one-way partition began (`n` = the host that can no longer be reached).
    PartitionOneWay,
    /// Fault: partitions healed.
    Heal,
    /// Fault: the host crashed.
    Crash,
    /// The host restarted (its setup ran again).
    Restart,
    /// Fault: the host's clock jumped forward by `n` nanoseconds.
    ClockJump,
    /// Fault: a connection was reset by the network.
    InjectReset,
    /// Fault: a connect was refused by the network.
    InjectRefuse,
}

impl TraceKind {
    /// The name used in exports.
    pub fn as_str(self) -> &'static str {
        match self {
            TraceKind::Start => "start",
            TraceKind::Listen => "listen",
            TraceKind::ListenFailed => "listen_failed",
            TraceKind::CloseListener => "close_listener",
            TraceKind::Connect => "connect",
            TraceKind::Accept => "accept",
            TraceKind::Connected => "connected",
            TraceKind::Refused => "refused",
            TraceKind::Write => "write",
            TraceKind::Read => "read",
            TraceKind::Eof => "eof",
            TraceKind::ShutdownWrite => "shutdown_write",
            TraceKind::Close => "close",
            TraceKind::Reset => "reset",
            TraceKind::TimedOut => "timed_out",
            TraceKind::Stop => "stop",
            TraceKind::Partition => "partition",
            TraceKind::PartitionOneWay => "partition_one_way",
            TraceKind::Heal => "heal",
            TraceKind::Crash => "crash",
            TraceKind::Restart => "restart",
            TraceKind::ClockJump => "clock_jump",
            TraceKind::InjectReset => "inject_reset",
            TraceKind::InjectRefuse => "inject_refuse",
        }
    }

    /// True for faults (marked as such in the Chrome export).
    pub fn is_fault(self) -> bool {
        matches!(
            self,
            TraceKind::Partition
                | TraceKind::PartitionOneWay
                | TraceKind::Heal
                | TraceKind::Crash
                | TraceKind::Restart
                | TraceKind::ClockJump
                | TraceKind::InjectReset
                | TraceKind::InjectRefuse
        )
    }
}

/// One delivered event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceEvent {
    /// Virtual time (the world's clock, not the host's possibly jumped one).
    pub time: Instant,
    /// Host index.
    pub host: u32,
    /// Loop index on the host.
    pub lp: u32,
    /// The stream, if the event concerns one.
    pub stream: Option<StreamId>,
    /// What happened.
    pub kind: TraceKind,
    /// A number whose meaning depends on `kind` (bytes, port, nanoseconds...).
    pub n: u64,
}

/// The running hash of a trace: word-wise FNV-1a with an xor-shift, fixed on every platform.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceHash(u64);

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

impl Default for TraceHash {
    fn default() -> Self {
        TraceHash(FNV_OFFSET)
    }
}

impl TraceHash {
    /// Folds one word in.
    #[inline]
    pub fn mix(&mut self, word: u64) {
        let h = (self.0 ^ word).wrapping_mul(FNV_PRIME);
        self.0 = h ^ (h >> 29);
    }

    /// Folds one event in.
    #[inline]
    pub fn event(&mut self, e: &TraceEvent) {
        self.mix(e.time.as_nanos());
        let stream = e.stream.map_or(u64::MAX, |s| {
            (u64::from(s.generation()) << 32) | u64::from(s.index())
        });
        self.mix((u64::from(e.host) << 40) | (u64::from(e.lp) << 8) | e.kind as u64);
        self.mix(stream);
        self.mix(e.n);
    }

    /// The hash value.
    pub fn value(self) -> u64 {
        self.0
    }
}

/// A recorded trace: events plus host names, exportable as JSON lines or a Chrome trace.
#[derive(Clone, Debug, Default)]
pub struct Trace {
    /// Host names by index.
    pub hosts: Vec<String>,
    /// Events in delivery order.
    pub events: Vec<TraceEvent>,
}

fn stream_label(s: Option<StreamId>) -> String {
    match s {
        Some(s) => format!("\"{}.{}\"", s.index(), s.generation()),
        None => "null".to_string(),
    }
}

impl Trace {
    fn host_name(&self, host: u32) -> &str {
        self.hosts.get(host as usize).map_or("?", String::as_str)
    }

    /// One JSON object per line: `{"t_ns":…,"host":…,"loop":…,"stream":…,"ev":…,"n":…}`.
    pub fn to_json_lines(&self) -> String {
        let mut out = String::with_capacity(self.events.len() * 80);
        for e in &self.events {
            let _ = writeln!(
                out,
                "{{\"t_ns\":{},\"host\":\"{}\",\"loop\":{},\"stream\":{},\"ev\":\"{}\",\"n\":{}}}",
                e.time.as_nanos(),
                json_escape(self.host_name(e.host)),
                e.lp,
                stream_label(e.stream),
                e.kind.as_str(),
                e.n
            );
        }
        out
    }

    /// Chrome trace-event JSON (`chrome://tracing`, Perfetto): a process per host, a thread
    /// per loop and per stream, instant events; faults are global instants in category "fault".
    pub fn to_chrome_json(&self) -> String {
        // One track per (host, loop, stream slot and generation).
        type Track = (u32, u32, Option<(u32, u32)>);
        let mut tids: BTreeMap<Track, u32> = BTreeMap::new();
        for e in &self.events {
            let key = (e.host, e.lp, e.stream.map(|s| (s.index(), s.generation())));
            let next = tids.len() as u32 + 1;
            tids.entry(key).or_insert(next);
        }
        let mut items: Vec<String> = Vec::new();
        for (i, name) in self.hosts.iter().enumerate() {
            items.push(format!(
                "{{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":{i},\"args\":{{\"name\":\"{}\"}}}}",
                json_escape(name)
            ));
        }
        for (&(host, lp, stream), tid) in &tids {
            let label = match stream {
                Some((i, g)) => format!("loop {lp} stream {i}.{g}"),
                None => format!("loop {lp}"),
            };
            items.push(format!(
                "{{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":{host},\"tid\":{tid},\"args\":{{\"name\":\"{label}\"}}}}"
            ));
        }
        for e in &self.events {
            let key = (e.host, e.lp, e.stream.map(|s| (s.index(), s.generation())));
            let tid = tids[&key];
            let ts = e.time.as_nanos() as f64 / 1000.0;
            let (cat, scope) = if e.kind.is_fault() {
                ("fault", "g")
            } else {
                ("io", "t")
            };
            items.push(format!(
                "{{\"name\":\"{}\",\"cat\":\"{cat}\",\"ph\":\"i\",\"s\":\"{scope}\",\"ts\":{ts:.3},\"pid\":{},\"tid\":{tid},\"args\":{{\"n\":{}}}}}",
                e.kind.as_str(),
                e.host,
                e.n
            ));
        }
        let mut out = String::from("{\"traceEvents\":[\n");
        out.push_str(&items.join(",\n"));
        out.push_str("\n],\"displayTimeUnit\":\"ms\"}\n");
        out
    }
}

fn json_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(n: u64) -> TraceEvent {
        TraceEvent {
            time: Instant::from_nanos(5),
            host: 1,
            lp: 0,
            stream: None,
            kind: TraceKind::Read,
            n,
        }
    }

    #[test]
    fn hash_is_fixed_and_sensitive_to_every_field() {
        let mut a = TraceHash::default();
        a.event(&ev(3));
        let mut b = TraceHash::default();
        b.event(&ev(4));
        assert_ne!(a, b);
        // The value is part of the format: a change here changes every recorded seed's hash.
        let mut c = TraceHash::default();
        c.mix(1);
        assert_eq!(c.value(), {
            let h = (FNV_OFFSET ^ 1).wrapping_mul(FNV_PRIME);
            h ^ (h >> 29)
        });
    }

    #[test]
    fn exports_are_valid_looking_json() {
        let t = Trace {
            hosts: vec!["a\"b".into(), "c".into()],
            events: vec![ev(1), ev(2)],
        };
        let lines = t.to_json_lines();
        assert_eq!(lines.lines().count(), 2);
        assert!(lines.contains("\"host\":\"c\""));
        let chrome = t.to_chrome_json();
        assert!(chrome.starts_with("{\"traceEvents\":["));
        assert!(chrome.contains("a\\\"b"));
    }
}
