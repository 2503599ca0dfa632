//! RFC 3339 timestamps as Kubernetes writes them: `metav1.Time` (whole seconds, `Z`) and
//! `metav1.MicroTime` (exactly six fractional digits, which the API server requires for Lease
//! `renewTime`/`acquireTime`). Parsing accepts any fraction and `Z` or `±HH:MM`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Days since 1970-01-01 to (year, month, day); Howard Hinnant's civil_from_days.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn split(t: SystemTime) -> (i64, u32) {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => (d.as_secs() as i64, d.subsec_micros()),
        Err(e) => {
            let d = e.duration();
            let micros = d.subsec_micros();
            if micros == 0 { (-(d.as_secs() as i64), 0) } else { (-(d.as_secs() as i64) - 1, 1_000_000 - micros) }
        }
    }
}

fn format_with(t: SystemTime, micros: bool) -> String {
    let (secs, us) = split(t);
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    let (h, mi, s) = (sod / 3600, (sod % 3600) / 60, sod % 60);
    if micros {
        format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{us:06}Z")
    } else {
        format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
    }
}

/// `metav1.Time`: `2006-01-02T15:04:05Z`.
pub fn format_rfc3339(t: SystemTime) -> String {
    format_with(t, false)
}

/// `metav1.MicroTime`: `2006-01-02T15:04:05.000000Z`.
pub fn format_rfc3339_micros(t: SystemTime) -> String {
    format_with(t, true)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError(pub String);

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid RFC 3339 time {:?}", self.0)
    }
}

impl std::error::Error for ParseError {}

pub fn parse_rfc3339(s: &str) -> Result<SystemTime, ParseError> {
    let err = || ParseError(s.to_string());
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't') || b[13] != b':' || b[16] != b':' {
        return Err(err());
    }
    let num = |r: std::ops::Range<usize>| -> Result<i64, ParseError> {
        let part = s.get(r).ok_or_else(err)?;
        if !part.bytes().all(|c| c.is_ascii_digit()) {
            return Err(err());
        }
        part.parse::<i64>().map_err(|_| err())
    };
    let (y, mo, d, h, mi, sec) = (num(0..4)?, num(5..7)?, num(8..10)?, num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return Err(err());
    }
    let mut i = 19;
    let mut nanos: u64 = 0;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start < 9 {
                nanos = nanos * 10 + u64::from(b[i] - b'0');
            }
            i += 1;
        }
        let digits = i - start;
        if digits == 0 {
            return Err(err());
        }
        for _ in digits.min(9)..9 {
            nanos *= 10;
        }
    }
    let offset_secs = match b.get(i) {
        Some(b'Z' | b'z') if i + 1 == b.len() => 0,
        Some(&sign @ (b'+' | b'-')) if i + 6 == b.len() && b[i + 3] == b':' => {
            let oh = num(i + 1..i + 3)?;
            let om = num(i + 4..i + 6)?;
            let off = oh * 3600 + om * 60;
            if sign == b'+' { off } else { -off }
        }
        _ => return Err(err()),
    };
    let days = days_from_civil(y, mo as u32, d as u32);
    let secs = days * 86_400 + h * 3600 + mi * 60 + sec - offset_secs;
    let t = if secs >= 0 {
        UNIX_EPOCH + Duration::from_secs(secs as u64)
    } else {
        UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
    };
    Ok(t + Duration::from_nanos(nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_metav1() {
        let t = UNIX_EPOCH + Duration::from_micros(1_735_787_045_123_456);
        assert_eq!(format_rfc3339(t), "2025-01-02T03:04:05Z");
        assert_eq!(format_rfc3339_micros(t), "2025-01-02T03:04:05.123456Z");
        assert_eq!(format_rfc3339_micros(UNIX_EPOCH), "1970-01-01T00:00:00.000000Z");
    }

    #[test]
    fn parses_fractions_and_offsets() {
        let t = parse_rfc3339("2025-01-02T03:04:05.123456Z").unwrap();
        assert_eq!(format_rfc3339_micros(t), "2025-01-02T03:04:05.123456Z");
        let t = parse_rfc3339("2025-01-02T05:04:05+02:00").unwrap();
        assert_eq!(format_rfc3339(t), "2025-01-02T03:04:05Z");
        let t = parse_rfc3339("2025-01-02T03:04:05.5-01:30").unwrap();
        assert_eq!(format_rfc3339_micros(t), "2025-01-02T04:34:05.500000Z");
        let t = parse_rfc3339("2024-02-29T23:59:59.123456789Z").unwrap();
        assert_eq!(format_rfc3339_micros(t), "2024-02-29T23:59:59.123456Z");
    }

    #[test]
    fn round_trips_many_days() {
        for day in (-1000..40_000).step_by(37) {
            let secs: i64 = 86_400 * 10_000 + day * 86_400 + 3723;
            let t = UNIX_EPOCH + Duration::from_secs(secs as u64);
            assert_eq!(parse_rfc3339(&format_rfc3339(t)).unwrap(), t);
        }
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "2025-01-02",
            "2025-01-02T03:04:05",
            "2025-13-02T03:04:05Z",
            "2025-01-02T03:04:05.Z",
            "2025-01-02T03:04:05+0200",
            "2025-01-02T03:04:05Zjunk",
            "2025-01-02T0x:04:05Z",
        ] {
            assert!(parse_rfc3339(bad).is_err(), "{bad}");
        }
    }
}
