//! Static files (Tornado's `StaticFileHandler`): [`StaticFiles`] serves one directory of a
//! [`FileSystem`] the driver or the simulator supplies, through [`StaticFileHandler`].
//!
//! What a response carries: `Content-Type` from the extension (with a charset for text),
//! `Content-Length`, `Last-Modified`, a strong `ETag` made of the modification time and the
//! length (as nginx's), `Accept-Ranges: bytes`, and `Cache-Control` (one year and
//! `immutable` for a versioned URL from [`StaticFiles::static_url`]). Conditional requests
//! are answered in RFC 9110 §13.2.2's order: `If-Match`/`If-Unmodified-Since` (412), then
//! `If-None-Match`/`If-Modified-Since` (304), then `If-Range` and `Range` (206, 416, or a
//! multipart/byteranges body for several ranges). Compressible files go out gzip-encoded to
//! clients that accept it, from a `FILE.gz` beside the file when there is one, else
//! compressed on the fly in bounded pieces; ranges always come from the identity bytes.
//!
//! A file's bytes are never copied into the response: the body is a file range on the
//! stream's write queue, which the OS driver sends with `sendfile(2)` in bounded pieces and
//! the simulator reads through its file system, so memory stays flat for any file size.
//!
//! No request reads outside the root: paths are [`RelPath`]s (no `..`, no absolute paths, no
//! NUL or backslash; percent-decoding happens once, in routing, so `%252e` stays a literal
//! name), and the file system itself refuses symlinks that leave the root. Hidden names
//! (a component starting with `.`, other than `.well-known`) are neither listed nor served
//! unless [`StaticFiles::serve_hidden`] says so.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use eddy_core::file::{FileSystem, OpenFile, Opened, PathError, RelPath};
use eddy_core::http::{parse_http_date, HttpDate};
use http::header::{
    HeaderValue, ACCEPT_RANGES, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_RANGE, CONTENT_TYPE, ETAG,
    EXPIRES, LAST_MODIFIED, LOCATION,
};
use http::Method;

use crate::application::Route;
use crate::compress::{self, GzipStream};
use crate::directory::directory_page;
use crate::error::{error_page, reason_phrase, HttpError};
use crate::escape::url_escape;
use crate::exchange::Exchange;
use crate::handler::RequestHandler;
use crate::range::{RangeRequest, Resolved};

/// `Cache-Control` for a URL with `v=` (its content hash): a year, never revalidated.
const VERSIONED_CACHE_CONTROL: &str = "public, max-age=31536000, immutable";
/// Files up to this size are hashed for [`StaticFiles::version`]; larger ones are
/// versioned by their length and modification time (hashing them would hold the loop).
pub const VERSION_HASH_MAX: u64 = 16 * 1024 * 1024;
/// Bytes read and compressed per piece when gzipping on the fly.
const GZIP_PIECE: usize = 64 * 1024;

/// One served directory and how it is served; cheap to clone (shared).
#[derive(Clone)]
pub struct StaticFiles {
    config: Arc<StaticConfig>,
}

struct StaticConfig {
    fs: Arc<dyn FileSystem>,
    default_filename: Option<String>,
    list_directories: bool,
    serve_hidden: bool,
    gzip: bool,
    cache_control: Option<HeaderValue>,
    /// Remember computed versions (off in debug mode, so edits show at once).
    cache_versions: bool,
    versions: Mutex<HashMap<String, String>>,
    /// `Content-Type` and compressibility by lower-case extension, looked up once each.
    types: Mutex<HashMap<String, MediaType>>,
}

/// What a file extension says about a file.
#[derive(Clone)]
struct MediaType {
    content_type: HeaderValue,
    compressible: bool,
}

/// Most extensions remembered (a hostile client cannot grow the table further).
const MAX_CACHED_TYPES: usize = 256;

impl std::fmt::Debug for StaticFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let c = &self.config;
        f.debug_struct("StaticFiles")
            .field("default_filename", &c.default_filename)
            .field("list_directories", &c.list_directories)
            .field("serve_hidden", &c.serve_hidden)
            .field("gzip", &c.gzip)
            .finish_non_exhaustive()
    }
}

impl StaticFiles {
    /// Serves the root of `fs` (Tornado's defaults: no default file, no listing, gzip on).
    pub fn new(fs: Arc<dyn FileSystem>) -> StaticFiles {
        StaticFiles {
            config: Arc::new(StaticConfig {
                fs,
                default_filename: None,
                list_directories: false,
                serve_hidden: false,
                gzip: true,
                cache_control: None,
                cache_versions: true,
                versions: Mutex::new(HashMap::new()),
                types: Mutex::new(HashMap::new()),
            }),
        }
    }

    fn config_mut(&mut self) -> &mut StaticConfig {
        Arc::get_mut(&mut self.config).expect("StaticFiles is configured before it is shared")
    }

    /// The file served for a directory's URL (`index.html`, say).
    pub fn default_filename(mut self, name: &str) -> StaticFiles {
        self.config_mut().default_filename = Some(name.to_owned());
        self
    }

    /// Lists a directory that has no default file as an HTML page (else 403).
    pub fn list_directories(mut self, on: bool) -> StaticFiles {
        self.config_mut().list_directories = on;
        self
    }

    /// Serves (but still never lists) names starting with a dot.
    pub fn serve_hidden(mut self, on: bool) -> StaticFiles {
        self.config_mut().serve_hidden = on;
        self
    }

    /// Sends compressible files gzip-encoded to clients that accept it (on by default).
    pub fn gzip(mut self, on: bool) -> StaticFiles {
        self.config_mut().gzip = on;
        self
    }

    /// `Cache-Control` for requests without a version (none by default).
    ///
    /// # Panics
    /// If `value` is not a valid header value.
    pub fn cache_control(mut self, value: &str) -> StaticFiles {
        let value = HeaderValue::from_str(value).expect("a valid Cache-Control value");
        self.config_mut().cache_control = Some(value);
        self
    }

    /// Recomputes versions on every call instead of remembering them (debug mode).
    pub fn cache_versions(mut self, on: bool) -> StaticFiles {
        self.config_mut().cache_versions = on;
        self
    }

    /// A route serving these files at `prefix` (`/static/`): the rest of the path is the
    /// file's path below the root.
    pub fn route(&self, prefix: &str) -> Route {
        let files = self.clone();
        let pattern = format!("{}(.*)", regex::escape(prefix));
        Route::new(&pattern, move || StaticFileHandler {
            files: files.clone(),
        })
    }

    /// The version of the file at `path` (a content hash), or `None` if it cannot be read
    /// now: what [`StaticFiles::static_url`] appends as `v=`.
    pub fn version(&self, path: &str) -> Option<String> {
        let rel = RelPath::new(path).ok()?;
        if let Some(v) = self.lock_versions().get(rel.as_str()) {
            return Some(v.clone());
        }
        // Versions are computed synchronously (templates call this); a slow disk's answer
        // is not waited for, and the URL simply goes out without a version.
        let Ok(Ok(Opened::File(file))) = self.config.fs.open(&rel).now() else {
            return None;
        };
        let meta = file.metadata;
        let version = if meta.len <= VERSION_HASH_MAX {
            let bytes = file.read_to_vec(VERSION_HASH_MAX).ok()?;
            sha1_hex(&bytes)[..32].to_owned()
        } else {
            let stamp = format!(
                "{}-{}-{}",
                meta.len, meta.modified_secs, meta.modified_nanos
            );
            sha1_hex(stamp.as_bytes())[..32].to_owned()
        };
        if self.config.cache_versions {
            self.lock_versions()
                .insert(rel.as_str().to_owned(), version.clone());
        }
        Some(version)
    }

    fn lock_versions(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.config
            .versions
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// `prefix` + `path` (percent-encoded) + `?v=VERSION` when the file can be read.
    pub fn static_url(&self, prefix: &str, path: &str) -> String {
        let encoded: Vec<String> = path.split('/').map(|s| url_escape(s, false)).collect();
        let mut url = format!("{prefix}{}", encoded.join("/"));
        if let Some(v) = self.version(path) {
            url.push_str("?v=");
            url.push_str(&v);
        }
        url
    }

    /// The media type of `name`, from the table or worked out and remembered.
    fn media_type(&self, name: &str) -> MediaType {
        let ext = name.rsplit_once('.').map_or("", |(_, e)| e);
        let mut types = self
            .config
            .types
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // Most extensions are written in lower case: look them up without a new string.
        if !ext.bytes().any(|b| b.is_ascii_uppercase()) {
            if let Some(t) = types.get(ext) {
                return t.clone();
            }
        }
        let key = ext.to_ascii_lowercase();
        if let Some(t) = types.get(&key) {
            return t.clone();
        }
        let text = content_type_for(name);
        let media = MediaType {
            compressible: compress::is_compressible(&text),
            content_type: header_value(&text),
        };
        if types.len() < MAX_CACHED_TYPES {
            types.insert(key, media.clone());
        }
        media
    }

    /// Answers `ex` with the file or directory at `raw` (the decoded path below the root).
    pub async fn serve(&self, ex: &mut Exchange, raw: &str) -> Result<(), HttpError> {
        self.serve_owned(ex, raw.to_owned()).await
    }

    async fn serve_owned(&self, ex: &mut Exchange, raw: String) -> Result<(), HttpError> {
        let trailing_slash = raw.is_empty() || raw.ends_with('/');
        let path = RelPath::from_string(raw).map_err(|e| match e {
            PathError::ForbiddenChar => HttpError::new(404),
            PathError::ParentDir | PathError::Absolute => HttpError::new(403).with_log_message(
                format!("{:?} is not in the served directory", ex.request().path()),
            ),
        })?;
        if !self.config.serve_hidden && is_hidden(&path) {
            return Err(HttpError::new(404));
        }
        match self.config.fs.open(&path).await {
            Ok(Opened::File(file)) => self.send_file(ex, &path, file).await,
            Ok(Opened::Dir(_)) => self.serve_directory(ex, trailing_slash, &path).await,
            Err(e) => Err(open_error(&e, path.as_str())),
        }
    }

    async fn serve_directory(
        &self,
        ex: &mut Exchange,
        trailing_slash: bool,
        path: &RelPath,
    ) -> Result<(), HttpError> {
        if !trailing_slash {
            return redirect_to_directory(ex);
        }
        if let Some(index) = &self.config.default_filename {
            let index_path = path
                .join(index)
                .map_err(|_| HttpError::new(500).with_log_message("bad default_filename"))?;
            match self.config.fs.open(&index_path).await {
                Ok(Opened::File(file)) => return self.send_file(ex, &index_path, file).await,
                Ok(Opened::Dir(_)) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(open_error(&e, index_path.as_str())),
            }
        }
        if !self.config.list_directories {
            return Err(
                HttpError::new(403).with_log_message(format!("{:?} is not a file", path.as_str()))
            );
        }
        let entries = self
            .config
            .fs
            .read_dir(path)
            .await
            .map_err(|e| open_error(&e, path.as_str()))?;
        let title = ex.request().decoded_path().into_owned();
        let page = directory_page(&title, &entries);
        ex.set_header("Cache-Control", "no-cache")?;
        ex.write(page);
        Ok(())
    }

    async fn send_file(
        &self,
        ex: &mut Exchange,
        path: &RelPath,
        file: OpenFile,
    ) -> Result<(), HttpError> {
        let meta = file.metadata;
        let media = self.media_type(path.file_name().unwrap_or(""));
        let compressible = self.config.gzip && media.compressible;
        let identity_tag = entity_tag(meta.modified_secs, meta.len, "");
        let last_modified = HttpDate::from_unix_secs(meta.modified_secs);

        // Ranges come from the identity bytes, so a range request is never compressed.
        let head_or_get = matches!(*ex.method(), Method::GET | Method::HEAD);
        let range = ex
            .request()
            .header("range")
            .filter(|_| head_or_get)
            .map(RangeRequest::parse)
            .filter(|r| *r != RangeRequest::Ignored)
            .filter(|_| if_range_holds(ex, tag_text(&identity_tag), meta.modified_secs));
        let gzip_accepted = compressible
            && range.is_none()
            && compress::accepts_gzip(ex.request().header_all("accept-encoding"));
        let body = if gzip_accepted {
            self.gzip_body(path, &file).await
        } else {
            Body::Identity
        };
        let tag = match &body {
            Body::Identity => identity_tag.clone(),
            Body::Precompressed(gz) => {
                entity_tag(gz.metadata.modified_secs, gz.metadata.len, "-gz")
            }
            Body::OnTheFly => entity_tag(meta.modified_secs, meta.len, "-gzip"),
        };

        ex.set_status(200);
        let headers = ex.response_headers_mut();
        headers.insert(CONTENT_TYPE, media.content_type.clone());
        headers.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        headers.insert(ETAG, tag.clone());
        headers.insert(
            LAST_MODIFIED,
            HeaderValue::from_bytes(last_modified.as_bytes()).expect("an HTTP date is ASCII"),
        );
        if compressible {
            compress::add_vary(headers);
        }
        if ex
            .query_arguments("v")
            .is_ok_and(|v| v.iter().any(|v| !v.is_empty()))
        {
            let expires = HttpDate::from_unix_secs(ex_unix_now() + 365 * 86_400);
            let headers = ex.response_headers_mut();
            headers.insert(
                CACHE_CONTROL,
                HeaderValue::from_static(VERSIONED_CACHE_CONTROL),
            );
            headers.insert(EXPIRES, header_value(expires.as_str()));
        } else if let Some(cc) = &self.config.cache_control {
            ex.response_headers_mut().insert(CACHE_CONTROL, cc.clone());
        }

        match preconditions(ex, tag_text(&tag), meta.modified_secs) {
            Precondition::Proceed => {}
            Precondition::Failed => {
                ex.set_status(412);
                let page = error_page(412, reason_phrase(412), None);
                ex.response_headers_mut().insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static("text/html; charset=UTF-8"),
                );
                ex.write(page);
                return Ok(());
            }
            Precondition::NotModified => {
                ex.set_status(304);
                ex.response_headers_mut().remove(CONTENT_TYPE);
                return Ok(());
            }
        }
        let include_body = *ex.method() != Method::HEAD;
        match body {
            Body::Precompressed(gz) => {
                ex.response_headers_mut()
                    .insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
                ex.set_content_length(gz.metadata.len);
                ex.send_head()?;
                if include_body {
                    ex.write_file(gz.range(0, gz.metadata.len))?;
                }
                Ok(())
            }
            Body::OnTheFly => {
                ex.response_headers_mut()
                    .insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
                ex.send_head()?;
                if include_body {
                    send_gzipped(ex, &file).await?;
                }
                Ok(())
            }
            Body::Identity => {
                let resolved = range.map_or(Resolved::Whole, |r| r.resolve(meta.len));
                let content_type = media.content_type.to_str().unwrap_or("");
                send_identity(ex, &file, resolved, content_type, include_body)
            }
        }
    }

    /// The gzip body to send: `FILE.gz` if it is there, else compression on the fly for
    /// files worth it.
    async fn gzip_body(&self, path: &RelPath, file: &OpenFile) -> Body {
        if let Ok(gz_path) = RelPath::new(&format!("{}.gz", path.as_str())) {
            if let Ok(Opened::File(gz)) = self.config.fs.open(&gz_path).await {
                return Body::Precompressed(gz);
            }
        }
        if file.metadata.len >= compress::MIN_LENGTH as u64 {
            Body::OnTheFly
        } else {
            Body::Identity
        }
    }
}

/// Which bytes answer a GET.
enum Body {
    Identity,
    Precompressed(OpenFile),
    OnTheFly,
}

enum Precondition {
    Proceed,
    Failed,
    NotModified,
}

/// Serves the files of a [`StaticFiles`]; the route's first capture is the path.
pub struct StaticFileHandler {
    files: StaticFiles,
}

impl StaticFileHandler {
    /// A handler for `files` (for a route of your own; see [`StaticFiles::route`]).
    pub fn new(files: StaticFiles) -> StaticFileHandler {
        StaticFileHandler { files }
    }
}

impl RequestHandler for StaticFileHandler {
    async fn get(&mut self, ex: &mut Exchange) -> Result<(), HttpError> {
        let raw = ex.take_path_arg(0).unwrap_or_default();
        self.files.serve_owned(ex, raw).await
    }
}

fn ex_unix_now() -> u64 {
    eddy_core::task::with_loop(|io| io.unix_time_secs())
}

fn is_hidden(path: &RelPath) -> bool {
    path.names()
        .any(|n| n.starts_with('.') && n != ".well-known")
}

/// The status for a failed open: missing → 404, refused (or outside the root) → 403,
/// anything else is the server's failure.
fn open_error(e: &io::Error, raw: &str) -> HttpError {
    match e.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::InvalidInput => HttpError::new(404),
        io::ErrorKind::PermissionDenied => {
            HttpError::new(403).with_log_message(format!("{raw:?}: {e}"))
        }
        // `NotADirectory` (a file used as a directory) and `InvalidFilename` are newer than
        // the supported compiler; their names still tell them apart.
        kind if matches!(
            format!("{kind:?}").as_str(),
            "NotADirectory" | "InvalidFilename" | "FilesystemLoop"
        ) =>
        {
            HttpError::new(404)
        }
        _ => HttpError::new(500).with_log_message(format!("opening {raw:?}: {e}")),
    }
}

/// `301` to the directory URL with a trailing slash, written relative (`./name/`) so that a
/// path such as `//evil.example` can never become an off-site redirect.
fn redirect_to_directory(ex: &mut Exchange) -> Result<(), HttpError> {
    let path = ex.request().path();
    let last = path.rsplit('/').next().unwrap_or("");
    let mut location = format!("./{last}/");
    let query = ex.request().query();
    if !query.is_empty() {
        location.push('?');
        location.push_str(query);
    }
    let location = HeaderValue::from_str(&location)
        .map_err(|_| HttpError::new(400).with_log_message("unprintable path"))?;
    ex.set_status(301);
    ex.response_headers_mut().insert(LOCATION, location);
    Ok(())
}

/// `Content-Type` from the file name; text types say UTF-8.
pub fn content_type_for(name: &str) -> String {
    let mime = mime_guess::from_path(name)
        .first_raw()
        .unwrap_or("application/octet-stream");
    let texty = mime.starts_with("text/")
        || matches!(
            mime,
            "application/javascript" | "application/json" | "application/xml" | "image/svg+xml"
        );
    if texty {
        format!("{mime}; charset=utf-8")
    } else {
        mime.to_owned()
    }
}

/// `"MTIME-LEN"` in hex (nginx's form), plus `suffix` for an encoded variant.
fn entity_tag(modified_secs: u64, len: u64, suffix: &str) -> HeaderValue {
    let mut tag = Vec::with_capacity(40);
    tag.push(b'"');
    push_hex(&mut tag, modified_secs);
    tag.push(b'-');
    push_hex(&mut tag, len);
    tag.extend_from_slice(suffix.as_bytes());
    tag.push(b'"');
    HeaderValue::from_maybe_shared(Bytes::from(tag)).expect("an entity tag is ASCII")
}

fn tag_text(tag: &HeaderValue) -> &str {
    tag.to_str().unwrap_or("")
}

fn push_hex(out: &mut Vec<u8>, n: u64) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let digits = (64 - n.leading_zeros()).div_ceil(4).max(1);
    for i in (0..digits).rev() {
        out.push(DIGITS[((n >> (i * 4)) & 0xf) as usize]);
    }
}

fn header_value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).expect("generated header values are printable ASCII")
}

/// Each entity tag in a list such as `"a", W/"b"` (`*` included as is).
fn tags(values: &[u8]) -> impl Iterator<Item = &str> {
    std::str::from_utf8(values)
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// RFC 9110 §13.2.2 steps 1-4 for a GET or HEAD of an existing file.
fn preconditions(ex: &Exchange, tag: &str, modified_secs: u64) -> Precondition {
    let request = ex.request();
    let mut if_match = request.header_all("if-match").peekable();
    if if_match.peek().is_some() {
        // Strong comparison: a weak tag never matches.
        let matched = if_match.any(|v| tags(v).any(|t| t == "*" || t == tag));
        if !matched {
            return Precondition::Failed;
        }
    } else if let Some(since) = request
        .header("if-unmodified-since")
        .and_then(parse_http_date)
    {
        if modified_secs > since {
            return Precondition::Failed;
        }
    }
    let mut if_none_match = request.header_all("if-none-match").peekable();
    if if_none_match.peek().is_some() {
        let ours = tag.trim_start_matches("W/");
        let matched =
            if_none_match.any(|v| tags(v).any(|t| t == "*" || t.trim_start_matches("W/") == ours));
        return if matched {
            Precondition::NotModified
        } else {
            Precondition::Proceed
        };
    }
    if let Some(since) = request
        .header("if-modified-since")
        .and_then(parse_http_date)
    {
        if modified_secs <= since {
            return Precondition::NotModified;
        }
    }
    Precondition::Proceed
}

/// `If-Range` (RFC 9110 §13.1.5): the range applies only to the representation named by a
/// strong entity tag or the exact `Last-Modified` date; absent, it always applies.
fn if_range_holds(ex: &Exchange, identity_tag: &str, modified_secs: u64) -> bool {
    let Some(value) = ex.request().header("if-range") else {
        return true;
    };
    let value = std::str::from_utf8(value).unwrap_or("").trim();
    if value.starts_with('"') || value.starts_with("W/") {
        return value == identity_tag;
    }
    parse_http_date(value.as_bytes()) == Some(modified_secs)
}

fn send_identity(
    ex: &mut Exchange,
    file: &OpenFile,
    resolved: Resolved,
    content_type: &str,
    include_body: bool,
) -> Result<(), HttpError> {
    let len = file.metadata.len;
    match resolved {
        Resolved::Whole => {
            ex.set_content_length(len);
            ex.send_head()?;
            if include_body && len > 0 {
                ex.write_file(file.range(0, len))?;
            }
            Ok(())
        }
        Resolved::Unsatisfiable => {
            ex.set_status(416);
            let headers = ex.response_headers_mut();
            headers.insert(CONTENT_RANGE, header_value(&format!("bytes */{len}")));
            headers.insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=UTF-8"),
            );
            headers.remove(ETAG);
            ex.write(error_page(416, reason_phrase(416), None));
            Ok(())
        }
        Resolved::Parts(parts) if parts.len() == 1 => {
            let r = &parts[0];
            ex.set_status(206);
            let headers = ex.response_headers_mut();
            let content_range = format!("bytes {}-{}/{len}", r.start, r.end - 1);
            headers.insert(CONTENT_RANGE, header_value(&content_range));
            ex.set_content_length(r.end - r.start);
            ex.send_head()?;
            if include_body {
                ex.write_file(file.range(r.start, r.end - r.start))?;
            }
            Ok(())
        }
        Resolved::Parts(parts) => {
            let mut token = [0u8; 12];
            ex.random_bytes(&mut token);
            let boundary: String = token.iter().map(|b| format!("{b:02x}")).collect();
            let heads: Vec<Bytes> = parts
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    let lead = if i == 0 { "" } else { "\r\n" };
                    Bytes::from(format!(
                        "{lead}--{boundary}\r\nContent-Type: {content_type}\r\n\
                         Content-Range: bytes {}-{}/{len}\r\n\r\n",
                        r.start,
                        r.end - 1
                    ))
                })
                .collect();
            let tail = Bytes::from(format!("\r\n--{boundary}--\r\n"));
            let total: u64 = heads.iter().map(|h| h.len() as u64).sum::<u64>()
                + parts.iter().map(|r| r.end - r.start).sum::<u64>()
                + tail.len() as u64;
            ex.set_status(206);
            let headers = ex.response_headers_mut();
            let multipart = format!("multipart/byteranges; boundary={boundary}");
            headers.insert(CONTENT_TYPE, header_value(&multipart));
            ex.set_content_length(total);
            ex.send_head()?;
            if include_body {
                for (head, r) in heads.into_iter().zip(&parts) {
                    ex.write_bytes(head)?;
                    ex.write_file(file.range(r.start, r.end - r.start))?;
                }
                ex.write_bytes(tail)?;
            }
            Ok(())
        }
    }
}

/// Compresses `file` into the response in bounded pieces, each handed to the socket before
/// the next is read (back-pressure: memory stays one piece deep whatever the file's size).
async fn send_gzipped(ex: &mut Exchange, file: &OpenFile) -> Result<(), HttpError> {
    let mut gz = GzipStream::default();
    let mut range = file.range(0, file.metadata.len);
    let mut buf = vec![0u8; GZIP_PIECE];
    while !range.is_empty() {
        let n = range.read_front(&mut buf).map_err(|e| {
            HttpError::new(500).with_log_message(format!("reading a file to compress: {e}"))
        })?;
        range.advance(n as u64);
        let piece = gz.piece(&buf[..n]);
        if !piece.is_empty() {
            ex.write_bytes(Bytes::from(piece))?;
            ex.flush().await?;
        }
    }
    ex.write_bytes(Bytes::from(gz.finish(&[])))
}

/// The SHA-1 of `data` in lowercase hex.
fn sha1_hex(data: &[u8]) -> String {
    use sha1::Digest;
    sha1::Sha1::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
