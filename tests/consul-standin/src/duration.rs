//! Go's `time.ParseDuration`, which Consul uses for `?wait=` (agent/http.go
//! `parseWait`). The point of copying it exactly is the rejection of bare numbers:
//! `wait=60` is a 400 on real Consul, and a client that sends it must find out here.
//! Pure; no I/O.

use std::time::Duration;

/// Parses `300ms`, `1.5s`, `1m30s`, `-2h`, or the lone `0`. Negative durations are
/// returned as zero, because every caller here treats `<= 0` as "use the default".
pub fn parse_go_duration(s: &str) -> Option<Duration> {
    let (negative, mut rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    // Go special-cases "0" as the only unit-less duration it accepts.
    if rest == "0" {
        return Some(Duration::ZERO);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total_ns: f64 = 0.0;
    while !rest.is_empty() {
        let (value, after_number) = leading_number(rest)?;
        let (unit_ns, after_unit) = leading_unit(after_number)?;
        total_ns += value * unit_ns;
        rest = after_unit;
    }
    if negative || total_ns > u64::MAX as f64 {
        return if negative { Some(Duration::ZERO) } else { None };
    }
    Some(Duration::from_nanos(total_ns.round() as u64))
}

/// Splits off `123` or `1.5` or `.5`; at least one digit is required.
fn leading_number(s: &str) -> Option<(f64, &str)> {
    let end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let number = &s[..end];
    if !number.bytes().any(|b| b.is_ascii_digit()) || number.matches('.').count() > 1 {
        return None;
    }
    Some((number.parse().ok()?, &s[end..]))
}

/// Splits off a unit and returns its length in nanoseconds; a missing unit is the
/// error Go reports as "missing unit in duration".
fn leading_unit(s: &str) -> Option<(f64, &str)> {
    let end = s
        .find(|c: char| c.is_ascii_digit() || c == '.')
        .unwrap_or(s.len());
    let ns = match &s[..end] {
        "ns" => 1.0,
        "us" | "µs" | "μs" => 1e3,
        "ms" => 1e6,
        "s" => 1e9,
        "m" => 60e9,
        "h" => 3600e9,
        _ => return None,
    };
    Some((ns, &s[end..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_go_forms() {
        let cases = [
            ("10s", 10_000),
            ("60000ms", 60_000),
            ("5m", 300_000),
            ("1m30s", 90_000),
            ("1.5s", 1_500),
            (".5s", 500),
            ("1h", 3_600_000),
            ("2000us", 2),
            ("2000000ns", 2),
            ("+1s", 1_000),
            ("0", 0),
        ];
        for (text, ms) in cases {
            assert_eq!(
                parse_go_duration(text),
                Some(Duration::from_millis(ms)),
                "{text}"
            );
        }
    }

    #[test]
    fn negative_is_zero() {
        assert_eq!(parse_go_duration("-5s"), Some(Duration::ZERO));
    }

    #[test]
    fn rejects_bare_numbers_and_junk() {
        for text in [
            "60", "", "s", "1.2.3s", "10 s", "10sec", "1m30", "abc", "-", "1d",
        ] {
            assert_eq!(parse_go_duration(text), None, "{text:?}");
        }
    }
}
