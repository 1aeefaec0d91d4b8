//! Tests of the probe engine's pure decisions.

use super::*;

const MS: Duration = Duration::from_millis(1);

#[test]
fn judge_reply_cases() {
    let cases: &[(&[u8], &[u8], Verdict)] = &[
        (b"", b"RFB", Verdict::NeedMore),
        (b"RF", b"RFB", Verdict::NeedMore),
        (b"RFB", b"RFB", Verdict::Matched),
        (b"RFB 003", b"RFB", Verdict::Matched),
        (b"H", b"RFB", Verdict::Mismatch),
        (b"RFX", b"RFB", Verdict::Mismatch),
        (b"", b"", Verdict::Matched),
        (b"anything", b"", Verdict::Matched),
    ];
    for (received, expect, want) in cases {
        assert_eq!(
            judge_reply(received, expect),
            *want,
            "{received:?} vs {expect:?}"
        );
    }
}

#[test]
fn decide_waits_for_own_send_before_up() {
    assert_eq!(decide(false, b"RFB", b"RFB", false), None);
    assert_eq!(decide(true, b"RFB", b"RFB", false), Some(ProbeResult::Up));
    assert_eq!(decide(true, b"", b"", false), Some(ProbeResult::Up));
}

#[test]
fn decide_reports_mismatch_even_while_sending() {
    let got = decide(false, b"HE", b"RFB", false);
    assert_eq!(
        got,
        Some(ProbeResult::Down(
            "reply did not start with the expected bytes (got \"HE\")".into()
        ))
    );
}

#[test]
fn decide_eof_before_enough_bytes_is_down() {
    assert_eq!(decide(true, b"RF", b"RFB", false), None);
    assert_eq!(
        decide(true, b"RF", b"RFB", true),
        Some(ProbeResult::Down(
            "closed before expected reply (got 2 of 3 bytes)".into()
        ))
    );
}

#[test]
fn mismatch_reason_escapes_and_truncates() {
    let reason = mismatch_reason(&[0u8; 40]);
    assert!(
        reason.ends_with(&format!("(got \"{}\")", "\\x00".repeat(32))),
        "{reason}"
    );
}

#[test]
fn reasons_are_short_and_name_the_phase() {
    let refused = io::Error::from_raw_os_error(libc::ECONNREFUSED);
    assert_eq!(io_reason(&refused, Phase::Connecting), "connection refused");
    let reset = io::Error::from_raw_os_error(libc::ECONNRESET);
    assert_eq!(
        io_reason(&reset, Phase::Sending),
        "connection reset by peer (sending)"
    );
    assert_eq!(
        timeout_reason(1000 * MS, Phase::Connecting),
        "timeout after 1000 ms (connecting)"
    );
    assert_eq!(
        timeout_reason(300 * MS, Phase::Reading),
        "timeout after 300 ms (reading)"
    );
}

#[test]
fn prober_owns_only_tokens_from_its_base() {
    let prober = Prober::new(100);
    assert!(!prober.owns(Token(99)));
    assert!(prober.owns(Token(100)));
    assert!(prober.owns(Token(5000)));
    assert_eq!(prober.next_deadline(), None);
    assert_eq!(prober.in_flight(), 0);
}
