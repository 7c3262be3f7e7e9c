//! IMF-fixdate formatting (RFC 9110 §5.6.7) from a unix timestamp, for the `Date` header.
//!
//! Pure arithmetic: the caller supplies the time (the glue caches one value per second).

use core::fmt;

/// A formatted `Date` header value such as `Sun, 06 Nov 1994 08:49:37 GMT`.
///
/// It also holds the response lines built from it, `Date: …\r\nServer: eddy\r\n`, so a
/// response head copies them as one pre-built piece.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct HttpDate {
    lines: [u8; LINES_LEN],
    unix_secs: u64,
}

/// `Date: ` + the 29-byte value + CRLF.
const DATE_LINE_LEN: usize = 6 + 29 + 2;
const SERVER_LINE: &[u8; 14] = b"Server: eddy\r\n";
const LINES_LEN: usize = DATE_LINE_LEN + SERVER_LINE.len();

const WEEKDAYS: [&[u8; 3]; 7] = [b"Sun", b"Mon", b"Tue", b"Wed", b"Thu", b"Fri", b"Sat"];
const MONTHS: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];
/// 9999-12-31T23:59:59Z: the last instant an IMF-fixdate's four-digit year can show.
const MAX_UNIX_SECS: u64 = 253_402_300_799;

impl HttpDate {
    /// Formats `unix_secs` (seconds since 1970-01-01T00:00:00Z, clamped to year 9999).
    pub fn from_unix_secs(unix_secs: u64) -> HttpDate {
        let secs = unix_secs.min(MAX_UNIX_SECS);
        let days = secs / 86_400;
        let rem = secs % 86_400;
        let (hour, minute, second) = (rem / 3600, rem % 3600 / 60, rem % 60);
        // 1970-01-01 was a Thursday (index 4 with Sunday = 0).
        let weekday = ((days + 4) % 7) as usize;
        let (year, month, day) = civil_from_days(days);
        let mut text = *b"Thu, 01 Jan 1970 00:00:00 GMT";
        text[0..3].copy_from_slice(WEEKDAYS[weekday]);
        put2(&mut text[5..7], day);
        text[8..11].copy_from_slice(MONTHS[(month - 1) as usize]);
        put2(&mut text[12..14], year / 100);
        put2(&mut text[14..16], year % 100);
        put2(&mut text[17..19], hour);
        put2(&mut text[20..22], minute);
        put2(&mut text[23..25], second);
        let mut lines = [0u8; LINES_LEN];
        lines[..6].copy_from_slice(b"Date: ");
        lines[6..35].copy_from_slice(&text);
        lines[35..DATE_LINE_LEN].copy_from_slice(b"\r\n");
        lines[DATE_LINE_LEN..].copy_from_slice(SERVER_LINE);
        HttpDate {
            lines,
            unix_secs: secs,
        }
    }

    /// The header value bytes (always 29 ASCII bytes).
    pub fn as_bytes(&self) -> &[u8] {
        &self.lines[6..35]
    }

    /// The header value as text.
    pub fn as_str(&self) -> &str {
        // Only ASCII bytes are ever written into `lines`.
        core::str::from_utf8(self.as_bytes()).unwrap_or("Thu, 01 Jan 1970 00:00:00 GMT")
    }

    /// The response lines `Date: …\r\n` (with `server`, also `Server: eddy\r\n`), pre-built.
    pub fn response_lines(&self, server: bool) -> &[u8] {
        if server {
            &self.lines
        } else {
            &self.lines[..DATE_LINE_LEN]
        }
    }

    /// The (clamped) unix timestamp this date was made from, so a cache can tell when to refresh.
    pub fn unix_secs(&self) -> u64 {
        self.unix_secs
    }
}

impl fmt::Debug for HttpDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HttpDate({})", self.as_str())
    }
}

impl fmt::Display for HttpDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

fn put2(dst: &mut [u8], n: u64) {
    dst[0] = b'0' + (n / 10 % 10) as u8;
    dst[1] = b'0' + (n % 10) as u8;
}

/// Days since 1970-01-01 to (year, month 1-12, day 1-31); Howard Hinnant's `civil_from_days`.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::HttpDate;

    #[test]
    fn formats_rfc_9110_example_date() {
        assert_eq!(
            HttpDate::from_unix_secs(784_111_777).as_str(),
            "Sun, 06 Nov 1994 08:49:37 GMT"
        );
    }

    #[test]
    fn response_lines_are_date_then_server() {
        let d = HttpDate::from_unix_secs(784_111_777);
        assert_eq!(
            d.response_lines(true),
            b"Date: Sun, 06 Nov 1994 08:49:37 GMT\r\nServer: eddy\r\n"
        );
        assert_eq!(
            d.response_lines(false),
            b"Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
        );
    }

    #[test]
    fn formats_epoch() {
        assert_eq!(
            HttpDate::from_unix_secs(0).as_str(),
            "Thu, 01 Jan 1970 00:00:00 GMT"
        );
    }

    #[test]
    fn formats_leap_day_2000() {
        assert_eq!(
            HttpDate::from_unix_secs(951_782_400).as_str(),
            "Tue, 29 Feb 2000 00:00:00 GMT"
        );
    }

    #[test]
    fn formats_known_recent_dates() {
        assert_eq!(
            HttpDate::from_unix_secs(1_700_000_000).as_str(),
            "Tue, 14 Nov 2023 22:13:20 GMT"
        );
        assert_eq!(
            HttpDate::from_unix_secs(1_709_251_199).as_str(),
            "Thu, 29 Feb 2024 23:59:59 GMT"
        );
        assert_eq!(
            HttpDate::from_unix_secs(4_102_444_800).as_str(),
            "Fri, 01 Jan 2100 00:00:00 GMT"
        );
    }

    #[test]
    fn clamps_far_future_to_year_9999() {
        assert_eq!(
            HttpDate::from_unix_secs(u64::MAX).as_str(),
            "Fri, 31 Dec 9999 23:59:59 GMT"
        );
    }
}
