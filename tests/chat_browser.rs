//! The chat example in a real browser: two headless Chromium pages (plain JS) connect to
//! `eddy::chat` over WebSocket; page A, connected first, sees its own message and B's; B
//! sees its own. Read from the DOM over the DevTools protocol (tests/chat_browser.py).
//! Skips itself, with a message, without chromium or Python's `websockets`.

use eddy::core::ListenOptions;
use eddy::drivers::{spawn_threads, DriverConfig, DriverKind};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

fn chromium() -> Option<String> {
    for name in ["chromium", "chromium-browser"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {name}")])
            .output()
            .is_ok_and(|o| o.status.success());
        if found {
            return Some(name.to_owned());
        }
    }
    None
}

#[test]
fn two_chromium_pages_exchange_messages_through_the_chat_server() {
    let Some(browser) = chromium() else {
        eprintln!("skipping: chromium not installed (apt-get install chromium)");
        return;
    };
    let server = spawn_threads(
        &DriverConfig::with_kind(DriverKind::Mio),
        1,
        ([127, 0, 0, 1], 0).into(),
        |io, addr| {
            let options = ListenOptions {
                reuse_port: true,
                ..ListenOptions::default()
            };
            eddy::chat::app(None).listen(io, addr, options);
        },
    )
    .unwrap();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/chat_browser.py");
    let base = format!("http://{}", server.local_addr());
    let out = Command::new("timeout")
        .args(["120", "python3", script.to_str().unwrap(), &browser, &base])
        .output()
        .expect("python3 runs");
    server.shutdown(Duration::from_secs(1));
    server.join().unwrap();
    if out.status.code() == Some(3) {
        eprintln!("skipping: {}", String::from_utf8_lossy(&out.stderr).trim());
        return;
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "browser script failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pages: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON line");
    assert_eq!(
        pages["a"],
        serde_json::json!(["from-a", "from-b"]),
        "page A's DOM"
    );
    assert_eq!(pages["b"], serde_json::json!(["from-b"]), "page B's DOM");
}
