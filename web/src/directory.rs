//! The HTML page that lists a directory (`python -m http.server`'s, with sizes and times):
//! names escaped and linked, directories marked with a slash, sorted case-insensitively,
//! hidden entries left out, and a link to the parent.

use eddy_core::file::{DirEntry, EntryKind};

use crate::escape::{url_escape, xhtml_escape};

/// The listing of the directory at `url_path` (the decoded request path, shown as the
/// title) with `entries`; links are relative, so the page works under any prefix.
pub fn directory_page(url_path: &str, entries: &[DirEntry]) -> String {
    let mut shown: Vec<&DirEntry> = entries
        .iter()
        .filter(|e| !e.name.starts_with('.'))
        .collect();
    shown.sort_by(|a, b| {
        a.name
            .to_lowercase()
            .cmp(&b.name.to_lowercase())
            .then_with(|| a.name.cmp(&b.name))
    });
    let title = xhtml_escape(url_path);
    let mut page = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>Directory listing for {title}</title>\n<style>\n\
         body {{ font-family: system-ui, sans-serif; margin: 2em; }}\n\
         table {{ border-collapse: collapse; }}\n\
         td, th {{ padding: 0.2em 1.2em 0.2em 0; text-align: left; }}\n\
         td.size {{ text-align: right; }}\n</style>\n</head>\n<body>\n\
         <h1>Directory listing for {title}</h1>\n<hr>\n<table>\n\
         <tr><th>Name</th><th>Size</th><th>Last modified (UTC)</th></tr>\n"
    );
    if url_path != "/" && !url_path.is_empty() {
        page.push_str("<tr><td><a href=\"../\">../</a></td><td></td><td></td></tr>\n");
    }
    for entry in shown {
        let dir = entry.metadata.kind == EntryKind::Dir;
        let slash = if dir { "/" } else { "" };
        // `./` keeps a name with a colon from reading as a URL scheme.
        let href = format!("./{}{slash}", url_escape(&entry.name, false));
        let size = if dir {
            String::from("-")
        } else {
            human_size(entry.metadata.len)
        };
        page.push_str(&format!(
            "<tr><td><a href=\"{href}\">{}{slash}</a></td><td class=\"size\">{size}</td>\
             <td>{}</td></tr>\n",
            xhtml_escape(&entry.name),
            utc_minutes(entry.metadata.modified_secs),
        ));
    }
    page.push_str("</table>\n<hr>\n</body>\n</html>\n");
    page
}

/// `1023`, `1.0 KiB`, `4.2 MiB`, ...
fn human_size(len: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if len < 1024 {
        return len.to_string();
    }
    let mut value = len as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// `YYYY-MM-DD HH:MM` in UTC.
fn utc_minutes(unix_secs: u64) -> String {
    let date = eddy_core::http::HttpDate::from_unix_secs(unix_secs);
    // "Sun, 06 Nov 1994 08:49:37 GMT" → fields by position.
    let text = date.as_str();
    let month = match &text[8..11] {
        "Jan" => 1,
        "Feb" => 2,
        "Mar" => 3,
        "Apr" => 4,
        "May" => 5,
        "Jun" => 6,
        "Jul" => 7,
        "Aug" => 8,
        "Sep" => 9,
        "Oct" => 10,
        "Nov" => 11,
        _ => 12,
    };
    format!(
        "{}-{month:02}-{} {}",
        &text[12..16],
        &text[5..7],
        &text[17..22]
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use eddy_core::file::Metadata;

    fn entry(name: &str, kind: EntryKind, len: u64) -> DirEntry {
        DirEntry {
            name: name.to_owned(),
            metadata: Metadata {
                kind,
                len,
                modified_secs: 784_111_777,
                modified_nanos: 0,
            },
        }
    }

    #[test]
    fn lists_sorted_escaped_and_linked_without_hidden_entries() {
        let page = directory_page(
            "/docs/",
            &[
                entry("b.txt", EntryKind::File, 2048),
                entry("A dir", EntryKind::Dir, 0),
                entry(".secret", EntryKind::File, 1),
                entry("<x>&.html", EntryKind::File, 5),
            ],
        );
        assert!(page.contains("<title>Directory listing for /docs/</title>"));
        let a = page.find("A dir/</a>").unwrap();
        let b = page.find("b.txt</a>").unwrap();
        let x = page.find("&lt;x&gt;&amp;.html</a>").unwrap();
        assert!(x < a && a < b, "sorted case-insensitively");
        assert!(page.contains("href=\"./A%20dir/\""));
        assert!(page.contains("href=\"./%3Cx%3E%26.html\""));
        assert!(page.contains("<a href=\"../\">"));
        assert!(page.contains("2.0 KiB"));
        assert!(page.contains("1994-11-06 08:49"));
        assert!(!page.contains("secret"));
        assert!(!directory_page("/", &[]).contains("../"));
    }

    #[test]
    fn sizes_read_like_ls_h() {
        assert_eq!(human_size(0), "0");
        assert_eq!(human_size(1023), "1023");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(5 << 30), "5.0 GiB");
    }
}
