//! The first page a person sees: `eddy serve`'s directory listing opened in a real browser
//! (headless Chromium), its screenshot read back with OCR (tesseract) for the listed names,
//! and its DOM checked for escaped, linked names. Chromium and tesseract come from Debian's
//! packages (`.ci/run` installs them); without them the test says so and skips.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use eddy::drivers::{DriverConfig, DriverKind, OsFiles};
use eddy::serve::{serve_files, spawn_file_server};

fn found(program: &str) -> Option<String> {
    for dir in ["/usr/bin", "/usr/local/bin", "/bin"] {
        let p = Path::new(dir).join(program);
        if p.exists() {
            return Some(p.to_string_lossy().into_owned());
        }
    }
    None
}

/// Runs Chromium headless with `args` against `url`, bounded in time.
fn chromium(bin: &str, args: &[&str], url: &str) -> std::process::Output {
    let profile = tempfile::tempdir().unwrap();
    let profile_arg = format!("--user-data-dir={}", profile.path().display());
    let child = Command::new("timeout")
        .arg("60")
        .arg(bin)
        .args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--hide-scrollbars",
            "--window-size=900,600",
            &profile_arg,
        ])
        .args(args)
        .arg(url)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("chromium starts");
    child.wait_with_output().unwrap()
}

#[test]
fn the_directory_page_shows_its_names_in_a_real_browser() {
    let Some(browser) = found("chromium").or_else(|| found("chromium-browser")) else {
        eprintln!("skipped: chromium is not installed (apt-get install chromium)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("photos")).unwrap();
    std::fs::write(dir.path().join("report 2026.txt"), "r").unwrap();
    std::fs::write(dir.path().join("<script>x.html"), "s").unwrap();
    std::fs::write(dir.path().join("data.bin"), vec![7u8; 5000]).unwrap();
    std::fs::write(dir.path().join(".private"), "p").unwrap();
    let files = serve_files(Arc::new(OsFiles::new(dir.path()).unwrap()), false);
    let server = spawn_file_server(&DriverConfig::with_kind(DriverKind::Mio), files).unwrap();
    let url = format!("http://{}/", server.local_addr());

    let dom = chromium(&browser, &["--dump-dom"], &url);
    let dom = String::from_utf8_lossy(&dom.stdout);
    assert!(dom.contains("Directory listing for /"), "{dom}");
    for link in [
        "href=\"./photos/\"",
        "href=\"./report%202026.txt\"",
        "href=\"./%3Cscript%3Ex.html\"",
        "href=\"./data.bin\"",
    ] {
        assert!(dom.contains(link), "{link} in {dom}");
    }
    assert!(
        dom.contains("&lt;script&gt;x.html"),
        "the name is text, not markup"
    );
    assert!(!dom.contains(".private"), "hidden names are not listed");

    let shot_dir = tempfile::tempdir().unwrap();
    let shot = shot_dir.path().join("listing.png");
    let shot_arg = format!("--screenshot={}", shot.display());
    chromium(&browser, &[&shot_arg], &url);
    let png = std::fs::read(&shot).expect("a screenshot");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 5_000);
    let Some(ocr) = found("tesseract") else {
        eprintln!(
            "screenshot not read: tesseract is not installed (apt-get install tesseract-ocr)"
        );
        return;
    };
    let text = Command::new("timeout")
        .args(["60", &ocr])
        .arg(&shot)
        .arg("-")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    for name in [
        "Directory listing for /",
        "photos/",
        "report 2026.txt",
        "data.bin",
        "4.9 KiB",
    ] {
        assert!(text.contains(name), "{name:?} not on the screen: {text}");
    }
}
