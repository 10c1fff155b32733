//! Floats and numerics in PostgreSQL's text and binary formats.
//!
//! Floats print as `float4out` / `float8out` do: with `extra_float_digits > 0` (the default) the
//! shortest text that reads back as the same value, in fixed notation for decimal exponents from
//! -4 up to 5 (float4) or 14 (float8) and `1.5e+20` style outside; otherwise `%.Ng` with
//! `N = 6 / 15 + extra_float_digits`. `NaN`, `Infinity`, `-Infinity`, `-0` as PostgreSQL writes them.
//!
//! Numerics are written exactly, whatever their size (Decimal128 up to 38 digits, numeric text of
//! any length), in text and in the base-10000 binary format.

/// `float8` text.
pub(super) fn float8_text(v: f64, extra_float_digits: i8) -> String {
    float_text(v, extra_float_digits, 15, format!("{v:e}"))
}

/// `float4` text.
pub(super) fn float4_text(v: f32, extra_float_digits: i8) -> String {
    float_text(f64::from(v), extra_float_digits, 6, format!("{v:e}"))
}

/// `digits` (DBL_DIG or FLT_DIG) is also the exponent where shortest output turns exponential;
/// `shortest` is Rust's shortest round-trip `{:e}` text of the value in its own width.
fn float_text(v: f64, extra_float_digits: i8, digits: i32, shortest: String) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    if extra_float_digits > 0 {
        let (mantissa, exp) = split_exp(&shortest);
        return if (-4..digits).contains(&exp) {
            fixed(mantissa, exp)
        } else {
            exponential(mantissa, exp)
        };
    }
    // %.Pg
    let precision = (digits + i32::from(extra_float_digits)).max(1);
    let sci = format!("{:.*e}", (precision - 1) as usize, v);
    let (mantissa, exp) = split_exp(&sci);
    if exp < -4 || exp >= precision {
        exponential(&trim_fraction(mantissa.to_string()), exp)
    } else {
        trim_fraction(format!("{:.*}", (precision - 1 - exp) as usize, v))
    }
}

/// `-1.5e-5` as (`-1.5`, -5).
fn split_exp(sci: &str) -> (&str, i32) {
    match sci.split_once('e') {
        Some((m, e)) => (m, e.parse().unwrap_or(0)),
        None => (sci, 0),
    }
}

/// Removes trailing fractional zeros and a bare trailing point: `1.500` -> `1.5`, `2.000` -> `2`.
fn trim_fraction(s: String) -> String {
    if !s.contains('.') {
        return s;
    }
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// `mantissa` (`-d.ddd`) times 10^`exp` in fixed notation.
fn fixed(mantissa: &str, exp: i32) -> String {
    let (sign, unsigned) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = unsigned.chars().filter(|c| *c != '.').collect();
    let mut out = String::from(sign);
    if exp >= 0 {
        let int_len = exp as usize + 1;
        if digits.len() <= int_len {
            out.push_str(&digits);
            out.extend(std::iter::repeat_n('0', int_len - digits.len()));
        } else {
            out.push_str(&digits[..int_len]);
            out.push('.');
            out.push_str(&digits[int_len..]);
        }
    } else {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', (-exp - 1) as usize));
        out.push_str(&digits);
    }
    out
}

/// `1.5e+20`, `1e-05`: at least two exponent digits, always signed.
fn exponential(mantissa: &str, exp: i32) -> String {
    let sign = if exp < 0 { '-' } else { '+' };
    format!("{mantissa}e{sign}{:02}", exp.unsigned_abs())
}

/// A Decimal128 value with scale `scale` as numeric text (`12.50`, `-0.05`, `1200` for scale -2),
/// appended to `out` (no allocation: a COPY of decimals writes millions).
pub(super) fn decimal_text(value: i128, scale: i8, out: &mut Vec<u8>) {
    let mut buffer = itoa::Buffer::new();
    let digits = buffer.format(value.unsigned_abs()).as_bytes();
    if value < 0 {
        out.push(b'-');
    }
    if scale <= 0 {
        if value == 0 {
            out.push(b'0');
            return;
        }
        out.extend_from_slice(digits);
        out.resize(out.len() + usize::from(scale.unsigned_abs()), b'0');
        return;
    }
    let scale = usize::from(scale.unsigned_abs());
    if digits.len() <= scale {
        out.extend_from_slice(b"0.");
        out.resize(out.len() + scale - digits.len(), b'0');
        out.extend_from_slice(digits);
    } else {
        let (int, frac) = digits.split_at(digits.len() - scale);
        out.extend_from_slice(int);
        out.push(b'.');
        out.extend_from_slice(frac);
    }
}

/// A Decimal128 value with scale `scale` in numeric's binary format (as [`numeric_text_binary`]
/// of its text), its base-10000 digits taken from the integer itself.
pub(super) fn decimal_binary(value: i128, scale: i8, out: &mut Vec<u8>) {
    let dscale = u16::try_from(scale.max(0)).unwrap_or(0);
    if value == 0 {
        for v in [0u16, 0, NUMERIC_POS, dscale] {
            out.extend_from_slice(&v.to_be_bytes());
        }
        return;
    }
    // Fractional digits padded to whole base-10000 digits.
    let pad = (4 - i32::from(scale).rem_euclid(4)) % 4;
    let padded = if scale < 0 {
        None
    } else {
        10u128
            .checked_pow(pad as u32)
            .and_then(|f| value.unsigned_abs().checked_mul(f))
    };
    let Some(mut rest) = padded else {
        // A negative scale, or past u128 once padded: through the text.
        let mut text = Vec::with_capacity(48);
        decimal_text(value, scale, &mut text);
        let text = std::str::from_utf8(&text).unwrap_or("0");
        let (int, frac) = text
            .trim_start_matches('-')
            .split_once('.')
            .unwrap_or((text.trim_start_matches('-'), ""));
        numeric_binary(value < 0, int, frac, out);
        return;
    };
    let frac_groups = (i32::from(scale) + pad) / 4;
    // Base-10000 digits, least significant first (at most 11 for 41 decimal digits).
    let mut groups = [0u16; 11];
    let mut n = 0;
    while rest > 0 {
        if let Ok(small) = u64::try_from(rest) {
            let mut small = small;
            while small > 0 {
                groups[n] = (small % 10_000) as u16;
                small /= 10_000;
                n += 1;
            }
            break;
        }
        groups[n] = (rest % 10_000) as u16;
        rest /= 10_000;
        n += 1;
    }
    let zeros = groups[..n].iter().take_while(|g| **g == 0).count();
    let weight = n as i32 - 1 - frac_groups;
    let sign = if value < 0 { NUMERIC_NEG } else { NUMERIC_POS };
    for v in [(n - zeros) as u16, weight as u16, sign, dscale] {
        out.extend_from_slice(&v.to_be_bytes());
    }
    for g in groups[zeros..n].iter().rev() {
        out.extend_from_slice(&g.to_be_bytes());
    }
}

const NUMERIC_POS: u16 = 0x0000;
const NUMERIC_NEG: u16 = 0x4000;
const NUMERIC_NAN: u16 = 0xC000;
const NUMERIC_PINF: u16 = 0xD000;
const NUMERIC_NINF: u16 = 0xF000;

/// Numeric text (`-12.340`, `NaN`, `Infinity`) in numeric's binary format.
pub(super) fn numeric_text_binary(text: &str, out: &mut Vec<u8>) -> Result<(), String> {
    // PostgreSQL sends the display scale bits of its special-value header: 0 for NaN, 32 for the
    // infinities.
    let special = |sign: u16, out: &mut Vec<u8>| {
        let dscale = if sign == NUMERIC_NAN { 0 } else { 32 };
        for v in [0u16, 0, sign, dscale] {
            out.extend_from_slice(&v.to_be_bytes());
        }
    };
    let trimmed = text.trim();
    if trimmed.eq_ignore_ascii_case("nan") {
        special(NUMERIC_NAN, out);
        return Ok(());
    }
    if trimmed.eq_ignore_ascii_case("infinity") || trimmed.eq_ignore_ascii_case("+infinity") {
        special(NUMERIC_PINF, out);
        return Ok(());
    }
    if trimmed.eq_ignore_ascii_case("-infinity") {
        special(NUMERIC_NINF, out);
        return Ok(());
    }
    let (negative, unsigned) = match trimmed.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, trimmed.strip_prefix('+').unwrap_or(trimmed)),
    };
    let (int, frac) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    let valid = !(int.is_empty() && frac.is_empty())
        && int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit());
    if !valid {
        return Err(format!("invalid numeric value {text:?}"));
    }
    numeric_binary(negative, int, frac, out);
    Ok(())
}

/// numeric's binary format: ndigits, weight, sign, dscale (int2 each), then base-10000 digits,
/// with leading and trailing zero digits dropped as PostgreSQL stores them.
fn numeric_binary(negative: bool, int: &str, frac: &str, out: &mut Vec<u8>) {
    let int = int.trim_start_matches('0');
    let dscale = u16::try_from(frac.len()).unwrap_or(u16::MAX);
    let mut groups: Vec<u16> = Vec::with_capacity((int.len() + frac.len()) / 4 + 2);
    let lead = (4 - int.len() % 4) % 4;
    let padded_int = format!("{}{int}", "0".repeat(lead));
    let tail = (4 - frac.len() % 4) % 4;
    let padded_frac = format!("{frac}{}", "0".repeat(tail));
    for chunk in padded_int
        .as_bytes()
        .chunks(4)
        .chain(padded_frac.as_bytes().chunks(4))
    {
        groups.push(
            chunk
                .iter()
                .fold(0u16, |acc, d| acc * 10 + u16::from(d - b'0')),
        );
    }
    let mut weight = i32::try_from(padded_int.len() / 4).unwrap_or(i32::MAX) - 1;
    let leading = groups.iter().take_while(|g| **g == 0).count();
    groups.drain(..leading);
    weight -= i32::try_from(leading).unwrap_or(0);
    while groups.last() == Some(&0) {
        groups.pop();
    }
    let (sign, weight) = if groups.is_empty() {
        (NUMERIC_POS, 0)
    } else if negative {
        (NUMERIC_NEG, weight)
    } else {
        (NUMERIC_POS, weight)
    };
    let ndigits = u16::try_from(groups.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&ndigits.to_be_bytes());
    out.extend_from_slice(&(weight as i16).to_be_bytes());
    out.extend_from_slice(&sign.to_be_bytes());
    out.extend_from_slice(&dscale.to_be_bytes());
    for g in groups {
        out.extend_from_slice(&g.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float8_shortest() {
        let t = |v: f64| float8_text(v, 1);
        assert_eq!(t(1.0), "1");
        assert_eq!(t(0.1), "0.1");
        assert_eq!(t(-0.0), "-0");
        assert_eq!(t(0.0), "0");
        assert_eq!(t(1.5e-5), "1.5e-05");
        assert_eq!(t(0.0001), "0.0001");
        assert_eq!(t(1e15), "1e+15");
        assert_eq!(t(123_456_789_012_345.0), "123456789012345");
        assert_eq!(t(f64::MAX), "1.7976931348623157e+308");
        assert_eq!(t(-1e-300), "-1e-300");
        assert_eq!(t(f64::NAN), "NaN");
        assert_eq!(t(f64::NEG_INFINITY), "-Infinity");
    }

    #[test]
    fn float4_shortest_and_g() {
        assert_eq!(float4_text(1.5, 1), "1.5");
        assert_eq!(float4_text(123_456.0, 1), "123456");
        assert_eq!(float4_text(1_234_567.0, 1), "1.234567e+06");
        assert_eq!(float4_text(f32::MAX, 1), "3.4028235e+38");
        assert_eq!(float4_text(0.1, 0), "0.1");
        assert_eq!(float4_text(f32::MAX, 0), "3.40282e+38");
        assert_eq!(float8_text(0.1, 0), "0.1");
        assert_eq!(float8_text(1.0 / 3.0, 0), "0.333333333333333");
        assert_eq!(float8_text(1e20, -15), "1e+20");
        assert_eq!(float8_text(100.0, 0), "100");
    }

    fn bin(f: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
        let mut out = Vec::new();
        f(&mut out);
        out
    }

    fn text(value: i128, scale: i8) -> String {
        String::from_utf8(bin(|o| decimal_text(value, scale, o))).unwrap()
    }

    #[test]
    fn decimal_binary_is_its_texts_binary() {
        let mut values = vec![
            0i128,
            1,
            -1,
            9999,
            10_000,
            123_456_789,
            i128::MAX,
            i128::MIN + 1,
        ];
        values.extend((0..38).map(|e| 10i128.pow(e)));
        values.extend((1..38).map(|e| -(10i128.pow(e) - 1)));
        values.extend((0..36).map(|e| 7 * 10i128.pow(e) + 3));
        for value in values {
            for scale in [-3i8, -1, 0, 1, 2, 3, 4, 5, 8, 10, 16, 37, 38] {
                let by_text = bin(|o| numeric_text_binary(&text(value, scale), o).unwrap());
                assert_eq!(
                    bin(|o| decimal_binary(value, scale, o)),
                    by_text,
                    "{value} at {scale}"
                );
            }
        }
    }

    #[test]
    fn decimals() {
        assert_eq!(text(1250, 2), "12.50");
        assert_eq!(text(-5, 2), "-0.05");
        assert_eq!(text(0, 2), "0.00");
        assert_eq!(text(12, -2), "1200");
        assert_eq!(text(7, 0), "7");
        assert_eq!(text(-123, 5), "-0.00123");
        assert_eq!(
            text(i128::MIN + 1, 38),
            "-1.70141183460469231731687303715884105727"
        );
        // 1.5 at scale 2: ndigits 2, weight 0, +, dscale 2, digits [1, 5000].
        assert_eq!(
            bin(|o| decimal_binary(150, 2, o)),
            [0, 2, 0, 0, 0, 0, 0, 2, 0, 1, 0x13, 0x88]
        );
        // -12345.678: digits [1, 2345, 6780], weight 1.
        assert_eq!(
            bin(|o| decimal_binary(-12_345_678, 3, o)),
            [0, 3, 0, 1, 0x40, 0, 0, 3, 0, 1, 0x09, 0x29, 0x1a, 0x7c]
        );
        // 0.00: no digits, weight 0, dscale 2.
        assert_eq!(bin(|o| decimal_binary(0, 2, o)), [0, 0, 0, 0, 0, 0, 0, 2]);
        // 0.5: one digit 5000 at weight -1.
        assert_eq!(
            bin(|o| numeric_text_binary("-0.5", o).unwrap()),
            [0, 1, 0xff, 0xff, 0x40, 0, 0, 1, 0x13, 0x88]
        );
        // 10000: one digit 1 at weight 1.
        assert_eq!(
            bin(|o| numeric_text_binary("10000", o).unwrap()),
            [0, 1, 0, 1, 0, 0, 0, 0, 0, 1]
        );
        assert_eq!(
            bin(|o| numeric_text_binary("NaN", o).unwrap()),
            [0, 0, 0, 0, 0xC0, 0, 0, 0]
        );
        assert!(numeric_text_binary("1e5", &mut Vec::new()).is_err());
    }
}
