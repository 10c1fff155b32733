//! Dates, times, timestamps and intervals in PostgreSQL's text (`DateStyle = ISO`,
//! `IntervalStyle = postgres`) and binary formats, written from Arrow's integers without chrono, so
//! every value PostgreSQL can hold prints as PostgreSQL prints it (BC years, years past 9999,
//! `24:00:00`, trailing fractional zeros dropped).

use std::io::Write;

/// Days from 1970-01-01 to 2000-01-01 (PostgreSQL's epoch).
const PG_EPOCH_DAYS: i64 = 10_957;
/// Microseconds in a day.
const DAY_MICROS: i64 = 86_400_000_000;

/// The proleptic Gregorian date of `days` since 1970-01-01, as (astronomical year, month, day).
pub(super) fn civil(days: i64) -> (i64, u32, u32) {
    // Howard Hinnant's days_from_civil inverse; exact for the whole i64 range used here.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month as u32, day as u32)
}

/// `YYYY-MM-DD`, with the year as PostgreSQL writes it; returns whether the date is BC.
fn push_date(out: &mut Vec<u8>, days: i64) -> bool {
    let (year, month, day) = civil(days);
    let (year, bc) = if year <= 0 {
        (1 - year, true)
    } else {
        (year, false)
    };
    if year <= 9999 {
        // The usual case, without the formatting machinery (a COPY of dates writes millions).
        let y = year as u32;
        out.extend_from_slice(&[
            b'0' + (y / 1000) as u8,
            b'0' + (y / 100 % 10) as u8,
            b'0' + (y / 10 % 10) as u8,
            b'0' + (y % 10) as u8,
            b'-',
            b'0' + (month / 10) as u8,
            b'0' + (month % 10) as u8,
            b'-',
            b'0' + (day / 10) as u8,
            b'0' + (day % 10) as u8,
        ]);
    } else {
        let _ = write!(out, "{year:04}-{month:02}-{day:02}");
    }
    bc
}

/// `.ffffff` without trailing zeros (nothing for whole seconds), as PostgreSQL's `AppendSeconds`.
fn push_fraction(out: &mut Vec<u8>, micros: u64) {
    if micros == 0 {
        return;
    }
    let mut digits = [b'0'; 6];
    let mut rest = micros % 1_000_000;
    for d in digits.iter_mut().rev() {
        *d = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
    let end = digits.iter().rposition(|&d| d != b'0').map_or(0, |i| i + 1);
    out.push(b'.');
    out.extend_from_slice(&digits[..end]);
}

/// `HH:MM:SS[.ffffff]` of `micros` into the day (`24:00:00` included).
fn push_time_of_day(out: &mut Vec<u8>, micros: i64) {
    let micros = micros.unsigned_abs();
    let secs = micros / 1_000_000;
    let _ = write!(
        out,
        "{:02}:{:02}:{:02}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    );
    push_fraction(out, micros % 1_000_000);
}

/// A `date` as text: `2024-02-29`, `4714-11-24 BC`, appended to `out`.
pub(super) fn date_text(days: i64, out: &mut Vec<u8>) {
    if push_date(out, days) {
        out.extend_from_slice(b" BC");
    }
}

/// A `time` as text: `23:59:59.5`, appended to `out`.
pub(super) fn time_text(micros: i64, out: &mut Vec<u8>) {
    push_time_of_day(out, micros);
}

/// A `timestamp` (`offset_secs: None`) or `timestamptz` shown at UTC offset `offset_secs` as text:
/// `2024-02-29 07:34:56.789`, `2024-02-29 12:34:56.789+05`, `0044-03-15 12:00:00+00 BC`, appended
/// to `out`.
pub(super) fn timestamp_text(micros: i64, offset_secs: Option<i32>, out: &mut Vec<u8>) {
    let local = i128::from(micros) + i128::from(offset_secs.unwrap_or(0)) * 1_000_000;
    let day_micros = i128::from(DAY_MICROS);
    let days = i64::try_from(local.div_euclid(day_micros)).unwrap_or(i64::MAX);
    let of_day = i64::try_from(local.rem_euclid(day_micros)).unwrap_or(0);
    let bc = push_date(out, days);
    out.push(b' ');
    push_time_of_day(out, of_day);
    if let Some(offset) = offset_secs {
        push_offset(out, offset);
    }
    if bc {
        out.extend_from_slice(b" BC");
    }
}

/// `+HH`, `-HH:MM` or `+HH:MM:SS`, as PostgreSQL's `EncodeTimezone`.
fn push_offset(out: &mut Vec<u8>, offset_secs: i32) {
    let sign = if offset_secs < 0 { '-' } else { '+' };
    let abs = offset_secs.unsigned_abs();
    let (hours, minutes, seconds) = (abs / 3600, abs / 60 % 60, abs % 60);
    let _ = write!(out, "{sign}{hours:02}");
    if minutes != 0 || seconds != 0 {
        let _ = write!(out, ":{minutes:02}");
    }
    if seconds != 0 {
        let _ = write!(out, ":{seconds:02}");
    }
}

/// An interval as text in `IntervalStyle = postgres`: `1 year 2 mons 3 days 04:05:06.789`,
/// `-1 days`, `00:00:00`, `838:59:59` (PostgreSQL's `EncodeInterval`), appended to `out`.
pub(super) fn interval_text(months: i32, days: i32, micros: i64, out: &mut Vec<u8>) {
    let mut is_zero = true;
    let mut is_before = false;
    let mut part = |out: &mut Vec<u8>, value: i64, unit: &str| {
        if value == 0 {
            return;
        }
        let _ = write!(
            out,
            "{}{}{value} {unit}{}",
            if is_zero { "" } else { " " },
            if is_before && value > 0 { "+" } else { "" },
            if value != 1 { "s" } else { "" }
        );
        is_before = value < 0;
        is_zero = false;
    };
    part(out, i64::from(months / 12), "year");
    part(out, i64::from(months % 12), "mon");
    part(out, i64::from(days), "day");
    let hours = micros / 3_600_000_000;
    let rest = micros - hours * 3_600_000_000;
    let minutes = rest / 60_000_000;
    let rest = rest - minutes * 60_000_000;
    if is_zero || micros != 0 {
        let minus = micros < 0;
        let _ = write!(
            out,
            "{}{}{:02}:{:02}:",
            if is_zero { "" } else { " " },
            if minus {
                "-"
            } else if is_before {
                "+"
            } else {
                ""
            },
            hours.unsigned_abs(),
            minutes.unsigned_abs()
        );
        let rest = rest.unsigned_abs();
        let _ = write!(out, "{:02}", rest / 1_000_000);
        push_fraction(out, rest % 1_000_000);
    }
}

/// A `date` in binary: days since 2000-01-01 as int4.
pub(super) fn date_binary(days: i64, out: &mut Vec<u8>) -> Result<(), String> {
    let pg = i32::try_from(days - PG_EPOCH_DAYS).map_err(|_| "date out of range".to_string())?;
    out.extend_from_slice(&pg.to_be_bytes());
    Ok(())
}

/// A `timestamp` / `timestamptz` in binary: microseconds since 2000-01-01 (UTC) as int8.
pub(super) fn timestamp_binary(micros: i64, out: &mut Vec<u8>) -> Result<(), String> {
    let pg = micros
        .checked_sub(PG_EPOCH_DAYS * DAY_MICROS)
        .ok_or_else(|| "timestamp out of range".to_string())?;
    out.extend_from_slice(&pg.to_be_bytes());
    Ok(())
}

/// An `interval` in binary: microseconds (int8), days (int4), months (int4).
pub(super) fn interval_binary(months: i32, days: i32, micros: i64, out: &mut Vec<u8>) {
    out.extend_from_slice(&micros.to_be_bytes());
    out.extend_from_slice(&days.to_be_bytes());
    out.extend_from_slice(&months.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(days: i64) -> String {
        let mut out = Vec::new();
        super::date_text(days, &mut out);
        String::from_utf8(out).unwrap()
    }

    fn time(micros: i64) -> String {
        let mut out = Vec::new();
        super::time_text(micros, &mut out);
        String::from_utf8(out).unwrap()
    }

    fn timestamp(micros: i64, offset_secs: Option<i32>) -> String {
        let mut out = Vec::new();
        super::timestamp_text(micros, offset_secs, &mut out);
        String::from_utf8(out).unwrap()
    }

    fn interval(months: i32, days: i32, micros: i64) -> String {
        let mut out = Vec::new();
        super::interval_text(months, days, micros, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn dates() {
        assert_eq!(date(0), "1970-01-01");
        assert_eq!(date(19_782), "2024-02-29");
        assert_eq!(date(-719_162), "0001-01-01");
        assert_eq!(date(-719_163), "0001-12-31 BC");
        // PostgreSQL's minimum date (Julian day 0).
        assert_eq!(date(-2_440_588), "4714-11-24 BC");
        assert_eq!(date(2_932_896), "9999-12-31");
        assert_eq!(date(2_147_483_493 - 2_440_588), "5874897-12-31");
    }

    #[test]
    fn times_and_timestamps() {
        assert_eq!(time(0), "00:00:00");
        assert_eq!(time(DAY_MICROS), "24:00:00");
        assert_eq!(time(86_399_999_999), "23:59:59.999999");
        assert_eq!(time(45_296_500_000), "12:34:56.5");
        assert_eq!(
            timestamp(1_709_192_096_789_000, None),
            "2024-02-29 07:34:56.789"
        );
        assert_eq!(
            timestamp(1_709_192_096_789_000, Some(0)),
            "2024-02-29 07:34:56.789+00"
        );
        assert_eq!(
            timestamp(1_709_192_096_789_000, Some(5 * 3600 + 1800)),
            "2024-02-29 13:04:56.789+05:30"
        );
        assert_eq!(timestamp(-1, Some(-3600)), "1969-12-31 22:59:59.999999-01");
        assert_eq!(
            timestamp(-62_135_596_800_000_000 - 86_400_000_000, Some(0)),
            "0001-12-31 00:00:00+00 BC"
        );
    }

    #[test]
    fn intervals() {
        assert_eq!(interval(0, 0, 0), "00:00:00");
        assert_eq!(
            interval(14, 3, 14_706_789_000),
            "1 year 2 mons 3 days 04:05:06.789"
        );
        assert_eq!(interval(0, -1, 0), "-1 days");
        assert_eq!(interval(1, 1, 0), "1 mon 1 day");
        assert_eq!(interval(0, 0, -3_020_399_000_000), "-838:59:59");
        assert_eq!(
            interval(-14, 2, -1_000_000),
            "-1 years -2 mons +2 days -00:00:01"
        );
        assert_eq!(interval(0, -2, 3_600_000_000), "-2 days +01:00:00");
    }
}
