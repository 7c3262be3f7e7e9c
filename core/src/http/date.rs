//! HTTP dates (RFC 9110 §5.6.7): IMF-fixdate formatting from a unix timestamp, for the
//! `Date` and `Last-Modified` headers, and [`parse_http_date`], which reads all three forms
//! a recipient must accept (`If-Modified-Since`, `If-Range`).
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

/// Reads an HTTP-date as unix seconds: IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), the
/// obsolete RFC 850 form (`Sunday, 06-Nov-94 08:49:37 GMT`) and asctime
/// (`Sun Nov  6 08:49:37 1994`). Anything else, or a date before 1970, is `None`.
pub fn parse_http_date(value: &[u8]) -> Option<u64> {
    let text = core::str::from_utf8(value).ok()?.trim_matches([' ', '\t']);
    let mut words = text.split_ascii_whitespace();
    let first = words.next()?;
    let (day, month, year, time) = if let Some(weekday) = first.strip_suffix(',') {
        if weekday.len() == 3 {
            // IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT"
            let day = words.next()?;
            let month = words.next()?;
            let year = words.next()?;
            let time = words.next()?;
            if day.len() != 2 || year.len() != 4 {
                return None;
            }
            (number(day)?, month_number(month)?, number(year)?, time)
        } else {
            // RFC 850: "Sunday, 06-Nov-94 08:49:37 GMT"; two-digit years per RFC 9110 §5.6.7.
            let mut parts = words.next()?.split('-');
            let day = parts.next()?;
            let month = month_number(parts.next()?)?;
            let yy = parts.next()?;
            if parts.next().is_some() || yy.len() != 2 || day.len() != 2 {
                return None;
            }
            let yy = number(yy)?;
            let year = if yy < 70 { 2000 + yy } else { 1900 + yy };
            (number(day)?, month, year, words.next()?)
        }
    } else {
        // asctime: "Sun Nov  6 08:49:37 1994"
        let month = month_number(words.next()?)?;
        let day = words.next()?;
        let time = words.next()?;
        let year = words.next()?;
        if words.next().is_some() || year.len() != 4 || day.len() > 2 {
            return None;
        }
        return to_unix(number(year)?, month, number(day)?, time);
    };
    if words.next() != Some("GMT") || words.next().is_some() {
        return None;
    }
    to_unix(year, month, day, time)
}

fn number(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 4 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn month_number(s: &str) -> Option<u64> {
    let i = MONTHS.iter().position(|m| m.as_slice() == s.as_bytes())?;
    Some(i as u64 + 1)
}

fn to_unix(year: u64, month: u64, day: u64, time: &str) -> Option<u64> {
    let mut hms = time.split(':');
    let (h, m, s) = (hms.next()?, hms.next()?, hms.next()?);
    if hms.next().is_some() || h.len() != 2 || m.len() != 2 || s.len() != 2 {
        return None;
    }
    let (h, m, s) = (number(h)?, number(m)?, number(s)?);
    let days_in_month = match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    // A leap second (60) is read as the last second of its minute.
    if year < 1970 || day == 0 || day > days_in_month || h > 23 || m > 59 || s > 60 {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + h * 3600 + m * 60 + s.min(59))
}

/// (year ≥ 1970, month 1-12, day 1-31) to days since 1970-01-01; Howard Hinnant's
/// `days_from_civil`.
fn days_from_civil(year: u64, month: u64, day: u64) -> u64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = if month > 2 { month - 3 } else { month + 9 };
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
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
    use super::{parse_http_date, HttpDate};

    #[test]
    fn parses_the_three_date_forms_of_rfc_9110() {
        for form in [
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
        ] {
            assert_eq!(
                parse_http_date(form.as_bytes()),
                Some(784_111_777),
                "{form}"
            );
        }
        for bad in [
            "",
            "Sun, 06 Nov 1994 08:49:37",
            "Sun, 06 Nov 1994 08:49:37 UTC",
            "Sun, 31 Feb 1994 08:49:37 GMT",
            "Sun, 06 Nov 1969 08:49:37 GMT",
            "Sun, 6 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 24:00:00 GMT",
            "Sun, 06 nov 1994 08:49:37 GMT",
            "1994-11-06T08:49:37Z",
        ] {
            assert_eq!(parse_http_date(bad.as_bytes()), None, "{bad}");
        }
    }

    #[test]
    fn parsing_inverts_formatting() {
        let mut t = 0u64;
        while t < 253_402_300_799 {
            let text = HttpDate::from_unix_secs(t);
            assert_eq!(parse_http_date(text.as_bytes()), Some(t), "{text}");
            t = t * 3 + 86_399;
        }
        assert_eq!(
            parse_http_date(b"Fri, 31 Dec 9999 23:59:59 GMT"),
            Some(253_402_300_799)
        );
        assert_eq!(
            parse_http_date(b"Tue, 29 Feb 2000 00:00:00 GMT"),
            Some(951_782_400)
        );
    }

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
