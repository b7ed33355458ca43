//! CronJob schedules: the standard 5-field syntax plus `@hourly`-style
//! descriptors and `@every <duration>`, parsed the way upstream's
//! robfig/cron v3 `ParseStandard` does (same errors), and the next run
//! after a given time for the CronJob controller.

use chrono::{DateTime, Datelike, Duration, TimeZone, Timelike, Utc};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CronSchedule {
    Spec(Spec),
    /// `@every 1h30m`: a fixed period.
    Every(std::time::Duration),
}

/// Bit sets of allowed values per field; `dom_star`/`dow_star` record a
/// `*` (or `?`), which changes how day-of-month and day-of-week combine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    pub minute: u64,
    pub hour: u64,
    pub dom: u64,
    pub month: u64,
    pub dow: u64,
    pub dom_star: bool,
    pub dow_star: bool,
    /// A `TZ=`/`CRON_TZ=` prefix, kept so validation can refuse it.
    pub time_zone: Option<String>,
}

struct Bounds {
    min: u32,
    max: u32,
    names: &'static [(&'static str, u32)],
}

const MINUTES: Bounds = Bounds {
    min: 0,
    max: 59,
    names: &[],
};
const HOURS: Bounds = Bounds {
    min: 0,
    max: 23,
    names: &[],
};
const DOM: Bounds = Bounds {
    min: 1,
    max: 31,
    names: &[],
};
const MONTHS: Bounds = Bounds {
    min: 1,
    max: 12,
    names: &[
        ("jan", 1),
        ("feb", 2),
        ("mar", 3),
        ("apr", 4),
        ("may", 5),
        ("jun", 6),
        ("jul", 7),
        ("aug", 8),
        ("sep", 9),
        ("oct", 10),
        ("nov", 11),
        ("dec", 12),
    ],
};
const DOW: Bounds = Bounds {
    min: 0,
    max: 6,
    names: &[
        ("sun", 0),
        ("mon", 1),
        ("tue", 2),
        ("wed", 3),
        ("thu", 4),
        ("fri", 5),
        ("sat", 6),
    ],
};

impl CronSchedule {
    pub fn parse(spec: &str) -> Result<CronSchedule, String> {
        if spec.is_empty() {
            return Err("empty spec string".into());
        }
        let mut spec = spec;
        let mut time_zone = None;
        if spec.starts_with("TZ=") || spec.starts_with("CRON_TZ=") {
            let (tz, rest) = spec.split_once(' ').unwrap_or((spec, ""));
            time_zone = tz.split_once('=').map(|(_, z)| z.to_string());
            spec = rest.trim();
        }
        if spec.starts_with('@') {
            return parse_descriptor(spec, time_zone);
        }
        let fields: Vec<&str> = spec.split_whitespace().collect();
        if fields.len() != 5 {
            return Err(format!(
                "expected exactly 5 fields, found {}: [{}]",
                fields.len(),
                fields.join(" ")
            ));
        }
        let (minute, _) = get_field(fields[0], &MINUTES)?;
        let (hour, _) = get_field(fields[1], &HOURS)?;
        let (dom, dom_star) = get_field(fields[2], &DOM)?;
        let (month, _) = get_field(fields[3], &MONTHS)?;
        let (dow, dow_star) = get_field(fields[4], &DOW)?;
        Ok(CronSchedule::Spec(Spec {
            minute,
            hour,
            dom,
            month,
            dow,
            dom_star,
            dow_star,
            time_zone,
        }))
    }

    /// The first activation strictly after `after` (whole minutes for
    /// specs), in UTC. `None` if nothing matches within five years (e.g.
    /// `0 0 30 2 *`).
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            CronSchedule::Every(d) => {
                let d = Duration::from_std(*d).ok()?;
                let base = after.with_nanosecond(0)?;
                Some(base + d)
            }
            CronSchedule::Spec(s) => s.next_after(after),
        }
    }
}

impl Spec {
    fn day_matches(&self, t: &DateTime<Utc>) -> bool {
        let dom = self.dom & (1 << t.day()) != 0;
        let dow = self.dow & (1 << t.weekday().num_days_from_sunday()) != 0;
        // With a `*` in either day field both must hold; when both are
        // restricted, either one suffices (classic cron).
        if self.dom_star || self.dow_star {
            dom && dow
        } else {
            dom || dow
        }
    }

    fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let mut t = after.with_second(0)?.with_nanosecond(0)? + Duration::minutes(1);
        let limit = after + Duration::days(366 * 5);
        while t <= limit {
            if self.month & (1 << t.month()) == 0 {
                let (y, m) = if t.month() == 12 {
                    (t.year() + 1, 1)
                } else {
                    (t.year(), t.month() + 1)
                };
                t = Utc.with_ymd_and_hms(y, m, 1, 0, 0, 0).single()?;
                continue;
            }
            if !self.day_matches(&t) {
                t = Utc
                    .with_ymd_and_hms(t.year(), t.month(), t.day(), 0, 0, 0)
                    .single()?
                    + Duration::days(1);
                continue;
            }
            if self.hour & (1 << t.hour()) == 0 {
                t = t.with_minute(0)? + Duration::hours(1);
                continue;
            }
            if self.minute & (1 << t.minute()) == 0 {
                t += Duration::minutes(1);
                continue;
            }
            return Some(t);
        }
        None
    }
}

fn parse_descriptor(spec: &str, time_zone: Option<String>) -> Result<CronSchedule, String> {
    let all = |b: &Bounds| bits(b.min, b.max, 1);
    let make = |minute, hour, dom, month, dow, dom_star, dow_star| {
        Ok(CronSchedule::Spec(Spec {
            minute,
            hour,
            dom,
            month,
            dow,
            dom_star,
            dow_star,
            time_zone: time_zone.clone(),
        }))
    };
    match spec {
        "@yearly" | "@annually" => make(1, 1, 1 << 1, 1 << 1, all(&DOW), false, true),
        "@monthly" => make(1, 1, 1 << 1, all(&MONTHS), all(&DOW), false, true),
        "@weekly" => make(1, 1, all(&DOM), all(&MONTHS), 1, true, false),
        "@daily" | "@midnight" => make(1, 1, all(&DOM), all(&MONTHS), all(&DOW), true, true),
        "@hourly" => make(
            1,
            all(&HOURS),
            all(&DOM),
            all(&MONTHS),
            all(&DOW),
            true,
            true,
        ),
        _ => {
            if let Some(d) = spec.strip_prefix("@every ") {
                let dur = parse_go_duration(d)
                    .map_err(|e| format!("failed to parse duration {spec}: {e}"))?;
                // robfig rounds the period to whole seconds, at least one.
                let secs = dur.as_secs().max(1);
                return Ok(CronSchedule::Every(std::time::Duration::from_secs(secs)));
            }
            Err(format!("unrecognized descriptor: {spec}"))
        }
    }
}

fn bits(min: u32, max: u32, step: u32) -> u64 {
    let mut b = 0u64;
    let mut i = min;
    while i <= max && i < 64 {
        b |= 1 << i;
        match i.checked_add(step) {
            Some(n) => i = n,
            None => break,
        }
    }
    b
}

/// A comma-separated list of ranges; also reports whether a `*` made it
/// unrestricted.
fn get_field(field: &str, b: &Bounds) -> Result<(u64, bool), String> {
    let mut out = 0;
    let mut star = false;
    for expr in field.split(',').filter(|e| !e.is_empty()) {
        let (bits, s) = get_range(expr, b)?;
        out |= bits;
        star |= s;
    }
    Ok((out, star))
}

fn get_range(expr: &str, b: &Bounds) -> Result<(u64, bool), String> {
    let range_and_step: Vec<&str> = expr.split('/').collect();
    let low_and_high: Vec<&str> = range_and_step[0].split('-').collect();
    let single = low_and_high.len() == 1;
    let (start, mut end, mut star) = if low_and_high[0] == "*" || low_and_high[0] == "?" {
        (b.min, b.max, true)
    } else {
        let start = parse_int_or_name(low_and_high[0], b)?;
        let end = match low_and_high.len() {
            1 => start,
            2 => parse_int_or_name(low_and_high[1], b)?,
            _ => return Err(format!("too many hyphens: {expr}")),
        };
        (start, end, false)
    };
    let step = match range_and_step.len() {
        1 => 1,
        2 => {
            let step = must_parse_int(range_and_step[1])?;
            // "N/step" means "N-max/step".
            if single {
                end = b.max;
            }
            if step > 1 {
                star = false;
            }
            step
        }
        _ => return Err(format!("too many slashes: {expr}")),
    };
    if start < b.min {
        return Err(format!(
            "beginning of range ({start}) below minimum ({}): {expr}",
            b.min
        ));
    }
    if end > b.max {
        return Err(format!(
            "end of range ({end}) above maximum ({}): {expr}",
            b.max
        ));
    }
    if start > end {
        return Err(format!(
            "beginning of range ({start}) beyond end of range ({end}): {expr}"
        ));
    }
    if step == 0 {
        return Err(format!("step of range should be a positive number: {expr}"));
    }
    Ok((bits(start, end, step), star))
}

fn parse_int_or_name(expr: &str, b: &Bounds) -> Result<u32, String> {
    let lower = expr.to_lowercase();
    if let Some((_, v)) = b.names.iter().find(|(n, _)| *n == lower) {
        return Ok(*v);
    }
    must_parse_int(expr)
}

fn must_parse_int(expr: &str) -> Result<u32, String> {
    let num: i64 = expr.parse().map_err(|_| {
        format!("failed to parse int from {expr}: strconv.Atoi: parsing \"{expr}\": invalid syntax")
    })?;
    if num < 0 {
        return Err(format!("negative number ({num}) not allowed: {expr}"));
    }
    // Anything this large fails the range checks that follow.
    Ok(u32::try_from(num).unwrap_or(u32::MAX))
}

/// Go's `time.ParseDuration`: `1h30m`, `1.5h`, `90s`, `300ms`.
fn parse_go_duration(s: &str) -> Result<std::time::Duration, String> {
    let err = || format!("time: invalid duration \"{s}\"");
    let mut rest = s;
    if rest == "0" {
        return Ok(std::time::Duration::ZERO);
    }
    if rest.is_empty() || rest.starts_with('-') {
        return Err(err());
    }
    rest = rest.strip_prefix('+').unwrap_or(rest);
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return Err(err());
        }
        let n: f64 = rest[..num_len].parse().map_err(|_| err())?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let secs = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(err()),
        };
        rest = &rest[unit_len..];
        total += n * secs;
    }
    std::time::Duration::try_from_secs_f64(total).map_err(|_| err())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn next(spec: &str, after: &str) -> String {
        CronSchedule::parse(spec)
            .unwrap()
            .next_after(at(after))
            .unwrap()
            .to_rfc3339()
    }

    #[test]
    fn parses_and_steps() {
        assert_eq!(
            next("*/15 * * * *", "2024-01-01T00:07:30Z"),
            "2024-01-01T00:15:00+00:00"
        );
        assert_eq!(
            next("0 3 * * *", "2024-01-01T04:00:00Z"),
            "2024-01-02T03:00:00+00:00"
        );
        assert_eq!(
            next("30 9 * * mon-fri", "2024-01-06T00:00:00Z"),
            "2024-01-08T09:30:00+00:00"
        );
        assert_eq!(
            next("0 0 1 jan *", "2024-03-01T00:00:00Z"),
            "2025-01-01T00:00:00+00:00"
        );
        assert_eq!(
            next("@hourly", "2024-01-01T00:59:59Z"),
            "2024-01-01T01:00:00+00:00"
        );
        assert_eq!(
            next("@weekly", "2024-01-01T00:00:00Z"),
            "2024-01-07T00:00:00+00:00"
        );
        assert_eq!(
            next("@every 90s", "2024-01-01T00:00:00.5Z"),
            "2024-01-01T00:01:30+00:00"
        );
        // Both day fields restricted: either matches.
        assert_eq!(
            next("0 0 15 * sun", "2024-01-01T00:00:00Z"),
            "2024-01-07T00:00:00+00:00"
        );
        assert!(CronSchedule::parse("0 0 30 2 *")
            .unwrap()
            .next_after(at("2024-01-01T00:00:00Z"))
            .is_none());
    }

    #[test]
    fn errors_like_robfig() {
        let e = |s: &str| CronSchedule::parse(s).unwrap_err();
        assert_eq!(e(""), "empty spec string");
        assert_eq!(e("foo"), "expected exactly 5 fields, found 1: [foo]");
        assert_eq!(
            e("* * * *"),
            "expected exactly 5 fields, found 4: [* * * *]"
        );
        assert_eq!(
            e("x * * * *"),
            "failed to parse int from x: strconv.Atoi: parsing \"x\": invalid syntax"
        );
        assert_eq!(
            e("0-70 * * * *"),
            "end of range (70) above maximum (59): 0-70"
        );
        assert_eq!(
            e("5-1 * * * *"),
            "beginning of range (5) beyond end of range (1): 5-1"
        );
        assert_eq!(
            e("* * 0 * *"),
            "beginning of range (0) below minimum (1): 0"
        );
        assert_eq!(
            e("*/0 * * * *"),
            "step of range should be a positive number: */0"
        );
        assert_eq!(e("1-2-3 * * * *"), "too many hyphens: 1-2-3");
        assert_eq!(e("@often"), "unrecognized descriptor: @often");
        assert!(e("@every x").starts_with("failed to parse duration @every x"));
        assert!(CronSchedule::parse("TZ=UTC 0 * * * *").is_ok());
    }
}
