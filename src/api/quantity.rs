//! Kubernetes resource quantities (`resource.Quantity`): `100m`, `1.5Gi`,
//! `2e3`.
//!
//! A quantity is held exactly as a count of nano-units in an `i128`, which
//! covers everything up to well past `1Ei` with nano precision: that is the
//! finest scale upstream keeps (smaller non-zero amounts round up to `1n`,
//! "if you want some resources you should get some"). The suffix style the
//! user wrote (decimal SI, binary SI, or exponent) is kept so the canonical
//! string can be written back the way upstream serializes it.

use std::cmp::Ordering;
use std::fmt;

use serde_json::Value;

/// Upstream's `ErrFormatWrong` text.
pub const ERR_FORMAT: &str =
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";
const ERR_NUMERIC: &str = "unable to parse numeric part of quantity";
const ERR_SUFFIX: &str = "unable to parse quantity's suffix";

const NANOS_PER_UNIT: i128 = 1_000_000_000;

/// How the quantity was written; decides its canonical spelling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `k`, `M`, `m`, or no suffix.
    DecimalSI,
    /// `Ki`, `Mi`, ...
    BinarySI,
    /// `1e3`.
    DecimalExponent,
}

#[derive(Debug, Clone, Copy)]
pub struct Quantity {
    nanos: i128,
    format: Format,
}

impl PartialEq for Quantity {
    fn eq(&self, other: &Self) -> bool {
        self.nanos == other.nanos
    }
}
impl Eq for Quantity {}
impl PartialOrd for Quantity {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Quantity {
    fn cmp(&self, other: &Self) -> Ordering {
        self.nanos.cmp(&other.nanos)
    }
}

/// Parse a quantity string the way `resource.ParseQuantity` does.
pub fn parse_quantity(s: &str) -> Result<Quantity, String> {
    if s.is_empty() {
        return Err(ERR_FORMAT.to_string());
    }
    let (negative, int_digits, frac_digits, suffix) = split(s)?;
    let (format, pow10, pow2) = interpret_suffix(suffix).ok_or_else(|| ERR_SUFFIX.to_string())?;

    // mantissa * 10^(pow10 - frac_len) * 2^pow2, in nano-units.
    let digits = format!("{int_digits}{frac_digits}");
    let digits = digits.trim_start_matches('0');
    let mut mantissa: i128 = if digits.is_empty() {
        0
    } else if digits.len() > 36 {
        return Err(ERR_NUMERIC.to_string());
    } else {
        digits.parse().map_err(|_| ERR_NUMERIC.to_string())?
    };
    mantissa = mantissa
        .checked_mul(1i128 << pow2)
        .ok_or_else(|| ERR_NUMERIC.to_string())?;
    let scale = pow10 - frac_digits.len() as i64 + 9;
    let nanos = if scale >= 0 {
        let factor = pow10_i128(scale).ok_or_else(|| ERR_NUMERIC.to_string())?;
        mantissa
            .checked_mul(factor)
            .ok_or_else(|| ERR_NUMERIC.to_string())?
    } else {
        // Finer than a nano: round the magnitude up, as upstream does.
        match pow10_i128(-scale) {
            Some(div) => (mantissa + div - 1) / div,
            None => i128::from(mantissa != 0),
        }
    };
    Ok(Quantity {
        nanos: if negative { -nanos } else { nanos },
        format,
    })
}

/// A quantity from JSON: a string, or a bare number as upstream also accepts.
pub fn parse_quantity_value(v: &Value) -> Result<Quantity, String> {
    match v {
        Value::String(s) => parse_quantity(s),
        Value::Number(n) => parse_quantity(&n.to_string()),
        _ => Err(ERR_FORMAT.to_string()),
    }
}

/// Sign, integer digits, fraction digits and suffix: the scanner of
/// upstream's `parseQuantityString`, which is looser than its documented
/// regex (it accepts `1.` and `.5`).
fn split(s: &str) -> Result<(bool, &str, &str, &str), String> {
    let b = s.as_bytes();
    let mut pos = 0;
    let mut negative = false;
    match b.first() {
        Some(b'-') => {
            negative = true;
            pos = 1;
        }
        Some(b'+') => pos = 1,
        _ => {}
    }
    let int_start = pos;
    while pos < b.len() && b[pos].is_ascii_digit() {
        pos += 1;
    }
    let int_digits = &s[int_start..pos];
    let mut frac_digits = "";
    if pos < b.len() && b[pos] == b'.' {
        pos += 1;
        let frac_start = pos;
        while pos < b.len() && b[pos].is_ascii_digit() {
            pos += 1;
        }
        frac_digits = &s[frac_start..pos];
    }
    if int_digits.is_empty() && frac_digits.is_empty() && pos == int_start {
        return Err(ERR_FORMAT.to_string());
    }
    let suffix_start = pos;
    while pos < b.len() && b"eEinumkKMGTP".contains(&b[pos]) {
        pos += 1;
    }
    if pos < b.len() && (b[pos] == b'-' || b[pos] == b'+') {
        pos += 1;
    }
    while pos < b.len() && b[pos].is_ascii_digit() {
        pos += 1;
    }
    if pos != b.len() {
        return Err(ERR_FORMAT.to_string());
    }
    Ok((negative, int_digits, frac_digits, &s[suffix_start..]))
}

/// The suffix as (format, power of ten, power of two).
fn interpret_suffix(suffix: &str) -> Option<(Format, i64, u32)> {
    let decimal = |p| Some((Format::DecimalSI, p, 0));
    let binary = |p| Some((Format::BinarySI, 0, p));
    match suffix {
        "" => decimal(0),
        "n" => decimal(-9),
        "u" => decimal(-6),
        "m" => decimal(-3),
        "k" => decimal(3),
        "M" => decimal(6),
        "G" => decimal(9),
        "T" => decimal(12),
        "P" => decimal(15),
        "E" => decimal(18),
        "Ki" => binary(10),
        "Mi" => binary(20),
        "Gi" => binary(30),
        "Ti" => binary(40),
        "Pi" => binary(50),
        "Ei" => binary(60),
        _ => {
            let rest = suffix.strip_prefix(['e', 'E'])?;
            let exp: i64 = rest.parse().ok()?;
            // Anything beyond this cannot be held anyway.
            if !(-60..=60).contains(&exp) {
                return None;
            }
            Some((Format::DecimalExponent, exp, 0))
        }
    }
}

fn pow10_i128(p: i64) -> Option<i128> {
    let p = u32::try_from(p).ok()?;
    10i128.checked_pow(p)
}

impl Quantity {
    pub fn zero() -> Quantity {
        Quantity {
            nanos: 0,
            format: Format::DecimalSI,
        }
    }

    /// A whole number of units (bytes, cores, pods).
    pub fn from_units(units: i64, format: Format) -> Quantity {
        Quantity {
            nanos: i128::from(units) * NANOS_PER_UNIT,
            format,
        }
    }

    /// An exact amount in billionths of a unit, spelled in `format`.
    pub fn from_nanos(nanos: i128, format: Format) -> Quantity {
        Quantity { nanos, format }
    }

    /// Thousandths of a unit (CPU millicores).
    pub fn from_milli(milli: i64) -> Quantity {
        Quantity {
            nanos: i128::from(milli) * 1_000_000,
            format: Format::DecimalSI,
        }
    }

    pub fn format(&self) -> Format {
        self.format
    }

    pub fn nanos(&self) -> i128 {
        self.nanos
    }

    pub fn is_zero(&self) -> bool {
        self.nanos == 0
    }

    pub fn is_negative(&self) -> bool {
        self.nanos < 0
    }

    /// Whole units, rounded up like upstream's `Value()`.
    pub fn value(&self) -> i128 {
        ceil_div(self.nanos, NANOS_PER_UNIT)
    }

    /// Thousandths, rounded up like upstream's `MilliValue()`.
    pub fn milli_value(&self) -> i128 {
        ceil_div(self.nanos, 1_000_000)
    }

    pub fn as_f64(&self) -> f64 {
        self.nanos as f64 / NANOS_PER_UNIT as f64
    }

    /// Sum keeping the left side's format, like upstream's `Add`.
    pub fn add(&self, other: &Quantity) -> Quantity {
        Quantity {
            nanos: self.nanos.saturating_add(other.nanos),
            format: self.format,
        }
    }

    pub fn sub(&self, other: &Quantity) -> Quantity {
        Quantity {
            nanos: self.nanos.saturating_sub(other.nanos),
            format: self.format,
        }
    }

    /// The string upstream writes for this quantity: no fractional digits,
    /// the largest suffix that keeps it exact (`1500m` → `1500m`,
    /// `1000m` → `1`, `1.5Gi` → `1536Mi`).
    pub fn canonical(&self) -> String {
        if self.nanos == 0 {
            return "0".to_string();
        }
        if self.format == Format::BinarySI
            && self.nanos.abs() >= 1024 * NANOS_PER_UNIT
            && self.nanos % NANOS_PER_UNIT == 0
        {
            let mut units = self.nanos / NANOS_PER_UNIT;
            let mut exp = 0;
            while exp < 6 && units % 1024 == 0 {
                units /= 1024;
                exp += 1;
            }
            let suffix = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"][exp];
            return format!("{units}{suffix}");
        }
        let mut mantissa = self.nanos;
        let mut exp: i64 = -9;
        while mantissa % 10 == 0 {
            mantissa /= 10;
            exp += 1;
        }
        match exp.rem_euclid(3) {
            1 => {
                mantissa *= 10;
                exp -= 1;
            }
            2 => {
                mantissa *= 100;
                exp -= 2;
            }
            _ => {}
        }
        let si = match exp {
            -9 => Some("n"),
            -6 => Some("u"),
            -3 => Some("m"),
            0 => Some(""),
            3 => Some("k"),
            6 => Some("M"),
            9 => Some("G"),
            12 => Some("T"),
            15 => Some("P"),
            18 => Some("E"),
            _ => None,
        };
        match (self.format, si) {
            (Format::DecimalExponent, _) | (_, None) if exp != 0 => format!("{mantissa}e{exp}"),
            (_, Some(s)) => format!("{mantissa}{s}"),
            _ => format!("{mantissa}"),
        }
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.canonical())
    }
}

fn ceil_div(a: i128, b: i128) -> i128 {
    let q = a / b;
    if a % b > 0 {
        q + 1
    } else {
        q
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Quantity {
        parse_quantity(s).unwrap()
    }

    #[test]
    fn parses_suffixes() {
        assert_eq!(q("100m").milli_value(), 100);
        assert_eq!(q("1").milli_value(), 1000);
        assert_eq!(q("0.5").milli_value(), 500);
        assert_eq!(q("1Ki").value(), 1024);
        assert_eq!(q("1.5Gi").value(), 1536 * 1024 * 1024);
        assert_eq!(q("2e3").value(), 2000);
        assert_eq!(q("1E").value(), 1_000_000_000_000_000_000);
        assert_eq!(q("1Ei").value(), 1 << 60);
        assert_eq!(q("5n").nanos(), 5);
        assert_eq!(q("-1k").value(), -1000);
        assert_eq!(q("+3").value(), 3);
        assert_eq!(q("1.").value(), 1);
        assert_eq!(q(".5").milli_value(), 500);
        assert_eq!(q("1e-3").milli_value(), 1);
    }

    #[test]
    fn rounds_up_below_nano() {
        assert_eq!(q("0.1n").nanos(), 1);
        assert_eq!(q("1e-12").nanos(), 1);
        assert_eq!(q("1m").value(), 1);
    }

    #[test]
    fn rejects_bad_syntax() {
        for bad in ["", "abc", "1x", "1Kb", "1.2.3", "Mi", "--1", "1 "] {
            assert!(parse_quantity(bad).is_err(), "{bad} should fail");
        }
        assert_eq!(parse_quantity("1x").unwrap_err(), ERR_FORMAT);
        assert_eq!(parse_quantity("1iK").unwrap_err(), ERR_SUFFIX);
    }

    #[test]
    fn compares() {
        assert!(q("500m") < q("1"));
        assert_eq!(q("1000m"), q("1"));
        assert_eq!(q("1Ki"), q("1024"));
        assert!(q("1G") < q("1Gi"));
    }

    #[test]
    fn canonical_matches_upstream() {
        for (input, want) in [
            ("1000m", "1"),
            ("1500m", "1500m"),
            ("0.5", "500m"),
            ("0.1", "100m"),
            ("1.5Gi", "1536Mi"),
            ("1024Mi", "1Gi"),
            ("128Mi", "128Mi"),
            ("100", "100"),
            ("2000", "2k"),
            ("1.5k", "1500"),
            ("1e3", "1e3"),
            ("1000e3", "1e6"),
            ("512", "512"),
            ("0.5Ki", "512"),
            ("0", "0"),
            ("0Mi", "0"),
            ("-100m", "-100m"),
            ("10", "10"),
            ("1M", "1M"),
        ] {
            assert_eq!(q(input).canonical(), want, "{input}");
        }
    }

    #[test]
    fn numbers_from_json() {
        assert_eq!(
            parse_quantity_value(&serde_json::json!(2)).unwrap().value(),
            2
        );
        assert_eq!(
            parse_quantity_value(&serde_json::json!(0.25))
                .unwrap()
                .milli_value(),
            250
        );
        assert!(parse_quantity_value(&serde_json::json!(true)).is_err());
    }
}
