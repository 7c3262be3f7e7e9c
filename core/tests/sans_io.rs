//! Guards the core contract: eddy-core performs no I/O and reads no clock.
//!
//! The sources are scanned for the std modules and calls that would break that promise, and the
//! manifest for dependencies that bring sockets or threads.

use std::path::Path;

const FORBIDDEN: &[&str] = &[
    "std::net",
    "std::thread",
    "std::fs",
    "Instant::now",
    "SystemTime",
    "mio::",
    "tokio",
    "std::process",
    "std::env",
];

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable source dir") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn core_sources_name_no_os_or_clock_api() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(files.len() > 5, "found the sources");
    let mut hits = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("utf-8 source");
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for word in FORBIDDEN {
                if code.contains(word) {
                    hits.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
                }
            }
        }
    }
    assert!(
        hits.is_empty(),
        "eddy-core must stay sans-IO:\n{}",
        hits.join("\n")
    );
}

#[test]
fn core_manifest_has_no_io_dependencies() {
    let manifest =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
            .expect("manifest");
    let deps = manifest
        .split("[dependencies]")
        .nth(1)
        .expect("a [dependencies] table")
        .split("\n[")
        .next()
        .unwrap_or("");
    for name in [
        "mio",
        "tokio",
        "libc",
        "rustix",
        "socket2",
        "async-std",
        "polling",
    ] {
        assert!(
            !deps.lines().any(|l| l.trim_start().starts_with(name)),
            "eddy-core depends on {name}"
        );
    }
}
