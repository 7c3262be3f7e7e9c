//! `HttpError`: an HTTP error a handler returns (Tornado's `tornado.web.HTTPError`), and the
//! default error page.

use http::StatusCode;

use crate::escape::xhtml_escape;

/// An error that becomes a response with its status: `Err(HttpError::new(404))`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("HTTP {status}: {}", self.reason())]
pub struct HttpError {
    status: u16,
    reason: Option<String>,
    log_message: Option<String>,
}

impl HttpError {
    /// An error with status `status` (any code from 100 to 999; unknown ones are "Unknown").
    pub fn new(status: u16) -> HttpError {
        HttpError {
            status: status.clamp(100, 999),
            reason: None,
            log_message: None,
        }
    }

    /// Sets the reason phrase shown to the client.
    pub fn reason(&self) -> &str {
        self.reason
            .as_deref()
            .unwrap_or_else(|| reason_phrase(self.status))
    }

    /// Replaces the reason phrase (CR and LF are dropped: it goes into the status line).
    pub fn with_reason(mut self, reason: impl Into<String>) -> HttpError {
        let reason: String = reason.into().chars().filter(|c| !c.is_control()).collect();
        self.reason = Some(reason);
        self
    }

    /// Adds a message for the log only (never shown to the client).
    pub fn with_log_message(mut self, message: impl Into<String>) -> HttpError {
        self.log_message = Some(message.into());
        self
    }

    /// The status code.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The log message, if any.
    pub fn log_message(&self) -> Option<&str> {
        self.log_message.as_deref()
    }
}

/// The standard reason phrase of `status`, or "Unknown".
pub fn reason_phrase(status: u16) -> &'static str {
    StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Unknown")
}

/// Tornado's default error page, with an escaped traceback when one is given (debug mode).
pub fn error_page(status: u16, reason: &str, traceback: Option<&str>) -> String {
    let reason = xhtml_escape(reason);
    match traceback {
        None => {
            format!("<html><title>{status}: {reason}</title><body>{status}: {reason}</body></html>")
        }
        Some(tb) => format!(
            "<html><title>{status}: {reason}</title><body><pre>{}</pre></body></html>",
            xhtml_escape(tb)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_and_pages_match_tornado() {
        assert_eq!(HttpError::new(404).reason(), "Not Found");
        assert_eq!(HttpError::new(599).reason(), "Unknown");
        assert_eq!(
            HttpError::new(400).with_reason("Bad\r\nX: y").reason(),
            "BadX: y"
        );
        assert_eq!(
            error_page(404, "Not Found", None),
            "<html><title>404: Not Found</title><body>404: Not Found</body></html>"
        );
        assert!(error_page(500, "x", Some("<panic>")).contains("&lt;panic&gt;"));
    }
}
