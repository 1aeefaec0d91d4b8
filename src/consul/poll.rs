//! When to poll one Consul-backed service and what an answer means.
//!
//! Input: each fetch result with the [`ServiceConfig`] it is for, and `now`;
//! output: an [`Outcome`] (new backends, nothing new, or failed) and the
//! instant the next poll is due. A pure state machine apart from `log` lines;
//! the daemon loop owns the clock and the [`ConsulClient`](super::client::ConsulClient).
//!
//! Safety rule: nothing that looks like an error ever changes the table. On
//! [`Outcome::Failed`] the caller keeps the last good backends; in particular an
//! empty list hidden by ACLs never empties a service.

use super::client::{FetchError, Response};
use super::parse::{parse_health, ParseError, Parsed};
use super::Backend;
use crate::config::{ServiceConfig, Source};
use std::fmt;
use std::time::{Duration, Instant};

/// Longest wait between polls while Consul keeps failing, unless the normal
/// interval is longer. 30 s: a load balancer should pick up Consul's recovery
/// within half a minute, and our polls are cheap non-blocking reads of the
/// local agent, so a longer cap (consul-template uses 1 min, Consul's own
/// `api/watch` 180 s for blocking watches) buys little. A cap of 30 × interval
/// was rejected: with a 60 s interval it would mean half an hour of blindness.
pub const BACKOFF_CAP: Duration = Duration::from_secs(30);

/// What one poll means for the table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The backends differ from the last good answer (or this is the first).
    /// `skipped` holds every current warning; the poller has already logged
    /// the ones that are new, so the caller need not.
    Changed(Parsed),
    /// A good answer with the same backends as before.
    Unchanged,
    /// No usable answer; keep the last good backends. Already logged.
    Failed,
}

/// Why a poll failed.
#[derive(Debug)]
enum Failure {
    Fetch(FetchError),
    Parse(ParseError),
    /// `[]` (after parsing) with `X-Consul-Results-Filtered-By-ACLs: true`.
    FilteredEmpty,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Fetch(e) => e.fmt(f),
            Failure::Parse(e) => e.fmt(f),
            Failure::FilteredEmpty => f.write_str(
                "empty answer filtered by ACLs (the token lacks service:read or node:read)",
            ),
        }
    }
}

/// Polling state of one Consul-backed service.
#[derive(Clone, Debug)]
pub struct Poller {
    interval: Duration,
    due: Instant,
    /// `X-Consul-Index` of the last good answer.
    index: Option<u64>,
    /// The config the last good answer was judged against: a reload must
    /// re-parse even if Consul's index did not move.
    judged_for: Option<ServiceConfig>,
    /// Backends of the last good answer; `None` until the first.
    last: Option<Vec<Backend>>,
    /// Skip warnings of the last good answer, so each is logged once.
    skipped: Vec<String>,
    /// Whether the last good answer was ACL-filtered, so that is logged once.
    filtered: bool,
    streak: u32,
}

impl Poller {
    /// A poller whose first poll is due at `now`.
    pub fn new(interval: Duration, now: Instant) -> Poller {
        Poller {
            interval,
            due: now,
            index: None,
            judged_for: None,
            last: None,
            skipped: Vec::new(),
            filtered: false,
            streak: 0,
        }
    }

    /// When the next fetch should start.
    pub fn due(&self) -> Instant {
        self.due
    }

    /// Whether a first good answer has arrived (until then the service's
    /// backends are unknown, which is not the same as none).
    pub fn has_answer(&self) -> bool {
        self.last.is_some()
    }

    /// Failed polls in a row (0 after a good one).
    pub fn error_streak(&self) -> u32 {
        self.streak
    }

    /// Judges one fetch result and schedules the next poll.
    pub fn on_response(
        &mut self,
        resp: Result<Response, FetchError>,
        svc: &ServiceConfig,
        now: Instant,
    ) -> Outcome {
        match self.judge(resp, svc) {
            Ok(outcome) => {
                if let Some(msg) = self.record_success(now) {
                    log::info!("{}: {msg}", label(svc));
                }
                outcome
            }
            Err(why) => {
                let first = self.record_failure(now);
                if first {
                    log::warn!(
                        "{}: poll failed: {why}; {}, retrying in {:?}",
                        label(svc),
                        self.keeping(),
                        self.due - now
                    );
                } else {
                    log::debug!("{}: poll {} failed: {why}", label(svc), self.streak);
                }
                Outcome::Failed
            }
        }
    }

    fn judge(
        &mut self,
        resp: Result<Response, FetchError>,
        svc: &ServiceConfig,
    ) -> Result<Outcome, Failure> {
        let resp = resp.map_err(Failure::Fetch)?;
        if self.same_index(&resp, svc) {
            return Ok(Outcome::Unchanged);
        }
        let parsed = parse_health(&resp.body, svc).map_err(Failure::Parse)?;
        if resp.filtered_by_acls && parsed.backends.is_empty() {
            return Err(Failure::FilteredEmpty);
        }
        self.note_index(resp.index, svc);
        self.note_filtered(resp.filtered_by_acls, &parsed, svc);
        self.note_skipped(&parsed.skipped, svc);
        self.judged_for = Some(svc.clone());
        if self.last.as_ref() == Some(&parsed.backends) {
            return Ok(Outcome::Unchanged);
        }
        self.last = Some(parsed.backends.clone());
        Ok(Outcome::Changed(parsed))
    }

    /// Same `X-Consul-Index` as the last good answer, for the same config:
    /// nothing in the service changed, so the body need not be parsed.
    /// Filtered answers are always parsed, to catch one that became empty.
    fn same_index(&self, resp: &Response, svc: &ServiceConfig) -> bool {
        !resp.filtered_by_acls
            && resp.index.is_some()
            && resp.index == self.index
            && self.judged_for.as_ref() == Some(svc)
    }

    /// A lower index than ours means Consul's state was restored or rebuilt
    /// (blocking-query docs: "reset the index if it goes backwards"). We never
    /// send the index back, so resetting is just adopting the new one; the
    /// answer has been parsed like any new one.
    fn note_index(&mut self, index: Option<u64>, svc: &ServiceConfig) {
        if let (Some(new), Some(old)) = (index, self.index) {
            if new < old {
                log::info!(
                    "{}: Consul index went backwards ({old} -> {new}); re-read in full",
                    label(svc)
                );
            }
        }
        self.index = index;
    }

    /// A non-empty filtered answer is used, with a warning once. Refusing it
    /// would freeze the table for as long as the ACL policy stays as it is,
    /// and with it every health change of the instances the token does see
    /// (a failing backend would keep its traffic). What the token cannot see
    /// is invisible to every consumer with that token, Consul DNS included.
    fn note_filtered(&mut self, filtered: bool, parsed: &Parsed, svc: &ServiceConfig) {
        if filtered && !self.filtered {
            log::warn!(
                "{}: Consul filtered the answer by ACLs; using the {} instance(s) the token can see",
                label(svc),
                parsed.backends.len()
            );
        } else if !filtered && self.filtered {
            log::info!("{}: answers are no longer filtered by ACLs", label(svc));
        }
        self.filtered = filtered;
    }

    fn note_skipped(&mut self, skipped: &[String], svc: &ServiceConfig) {
        for s in new_warnings(&self.skipped, skipped) {
            log::warn!("{}: {s}", label(svc));
        }
        self.skipped = skipped.to_vec();
    }

    /// Ends a failure streak; returns the recovery message if there was one.
    fn record_success(&mut self, now: Instant) -> Option<String> {
        let msg = (self.streak > 0).then(|| match self.streak {
            1 => "recovered after 1 failed poll".to_string(),
            n => format!("recovered after {n} failed polls"),
        });
        self.streak = 0;
        self.due = now + self.interval;
        msg
    }

    /// Counts a failure and backs off; returns whether it starts a streak.
    fn record_failure(&mut self, now: Instant) -> bool {
        self.streak = self.streak.saturating_add(1);
        self.due = now + backoff(self.interval, self.streak);
        self.streak == 1
    }

    fn keeping(&self) -> &'static str {
        if self.has_answer() {
            "keeping the last good backends"
        } else {
            "no answer yet, the service's backends stay unknown"
        }
    }
}

/// `interval × 2^streak`, at most `max(BACKOFF_CAP, interval)`: never slower
/// than the cap, never faster than normal polling. No jitter: each load
/// balancer polls its own local agent, so there is no herd to spread out,
/// and the schedule stays predictable in tests and logs.
pub fn backoff(interval: Duration, streak: u32) -> Duration {
    let cap = BACKOFF_CAP.max(interval);
    let factor = 1u32.checked_shl(streak).unwrap_or(u32::MAX);
    interval.saturating_mul(factor).min(cap)
}

fn new_warnings<'a>(old: &'a [String], new: &'a [String]) -> impl Iterator<Item = &'a String> {
    new.iter().filter(move |s| !old.contains(s))
}

/// `consul: service rabbitmq`, plus the config's name when it differs.
fn label(svc: &ServiceConfig) -> String {
    match &svc.source {
        Source::Consul { service, .. } if *service != svc.name => {
            format!("consul: service {service} (for {})", svc.name)
        }
        Source::Consul { service, .. } => format!("consul: service {service}"),
        Source::Static(_) => format!("consul: {}", svc.name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Cidr;
    use crate::consul::SourceHealth;
    use crate::model::{Forward, Protocol, ServiceKey, ServiceSpec};

    const SEC: Duration = Duration::from_secs(1);

    fn svc() -> ServiceConfig {
        ServiceConfig {
            name: "rabbitmq".into(),
            key: ServiceKey {
                protocol: Protocol::Tcp,
                vip: "192.0.2.10:5672".parse().unwrap(),
            },
            spec: ServiceSpec {
                scheduler: "wlc".into(),
                persistence_s: 0,
            },
            forward: Forward::Nat,
            drain_timeout: None,
            source: Source::Consul {
                service: "rabbitmq".into(),
                tags: vec![],
            },
            check: None,
            allowed_backends: vec![],
        }
    }

    /// A health body with one passing instance per address.
    fn body(addrs: &[&str]) -> Vec<u8> {
        let items: Vec<String> = addrs
            .iter()
            .enumerate()
            .map(|(i, a)| {
                format!(
                    r#"{{"Node":{{"Node":"n{i}","Address":"{a}"}},"Service":{{"ID":"r{i}","Service":"rabbitmq","Address":"","Port":5672,"Tags":[],"Weights":{{"Passing":1,"Warning":1}}}},"Checks":[{{"CheckID":"serfHealth","Status":"passing"}}]}}"#
                )
            })
            .collect();
        format!("[{}]", items.join(",")).into_bytes()
    }

    fn ok(index: Option<u64>, addrs: &[&str]) -> Result<Response, FetchError> {
        Ok(Response {
            index,
            filtered_by_acls: false,
            body: body(addrs),
        })
    }

    fn raw(index: Option<u64>, body: &[u8], filtered: bool) -> Result<Response, FetchError> {
        Ok(Response {
            index,
            filtered_by_acls: filtered,
            body: body.to_vec(),
        })
    }

    fn err500() -> Result<Response, FetchError> {
        Err(FetchError::Status {
            code: 500,
            body: "No cluster leader".into(),
        })
    }

    fn addrs(o: &Outcome) -> Vec<String> {
        match o {
            Outcome::Changed(p) => p.backends.iter().map(|b| b.addr.to_string()).collect(),
            other => panic!("expected Changed, got {other:?}"),
        }
    }

    #[test]
    fn first_poll_is_due_at_once_and_success_waits_one_interval() {
        let t0 = Instant::now();
        let mut p = Poller::new(SEC, t0);
        assert_eq!(p.due(), t0);
        assert!(!p.has_answer());
        let o = p.on_response(ok(Some(5), &["10.0.0.1"]), &svc(), t0);
        assert_eq!(addrs(&o), ["10.0.0.1:5672"]);
        assert!(p.has_answer());
        assert_eq!(p.due(), t0 + SEC);
    }

    #[test]
    fn first_empty_answer_is_a_change_to_no_backends() {
        let t0 = Instant::now();
        let mut p = Poller::new(SEC, t0);
        assert_eq!(
            addrs(&p.on_response(ok(Some(1), &[]), &svc(), t0)),
            Vec::<String>::new()
        );
        assert!(p.has_answer());
    }

    #[test]
    fn unchanged_index_is_unchanged_without_parsing() {
        let t0 = Instant::now();
        let mut p = Poller::new(SEC, t0);
        p.on_response(ok(Some(7), &["10.0.0.1"]), &svc(), t0);
        // Same index with a body that would not even parse: never looked at.
        let o = p.on_response(raw(Some(7), b"garbage", false), &svc(), t0 + SEC);
        assert_eq!(o, Outcome::Unchanged);
        assert_eq!(p.error_streak(), 0);
        assert_eq!(p.due(), t0 + 2 * SEC);
    }

    #[test]
    fn new_index_with_same_backends_is_unchanged() {
        let t0 = Instant::now();
        let mut p = Poller::new(SEC, t0);
        p.on_response(ok(Some(7), &["10.0.0.1", "10.0.0.2"]), &svc(), t0);
        let o = p.on_response(ok(Some(8), &["10.0.0.2", "10.0.0.1"]), &svc(), t0);
        assert_eq!(o, Outcome::Unchanged);
        let o = p.on_response(ok(Some(9), &["10.0.0.2"]), &svc(), t0);
        assert_eq!(addrs(&o), ["10.0.0.2:5672"]);
    }

    #[test]
    fn missing_index_always_parses() {
        let t0 = Instant::now();
        let mut p = Poller::new(SEC, t0);
        p.on_response(ok(None, &["10.0.0.1"]), &svc(), t0);
        let o = p.on_response(ok(None, &["10.0.0.3"]), &svc(), t0);
        assert_eq!(addrs(&o), ["10.0.0.3:5672"]);
    }

    #[test]
    fn backwards_index_is_parsed_and_adopted() {
        let t0 = Instant::now();
        let mut p = Poller::new(SEC, t0);
        p.on_response(ok(Some(100), &["10.0.0.1"]), &svc(), t0);
        let o = p.on_response(ok(Some(3), &["10.0.0.2"]), &svc(), t0);
        assert_eq!(addrs(&o), ["10.0.0.2:5672"]);
        // Index 3 is now ours: the same index again is no change.
        let o = p.on_response(raw(Some(3), b"garbage", false), &svc(), t0);
        assert_eq!(o, Outcome::Unchanged);
    }

    #[test]
    fn config_change_reparses_despite_same_index() {
        let t0 = Instant::now();
        let mut p = Poller::new(SEC, t0);
        p.on_response(ok(Some(7), &["10.0.0.1", "10.9.0.1"]), &svc(), t0);
        let mut narrowed = svc();
        narrowed.allowed_backends = vec![Cidr::parse("10.0.0.0/24").unwrap()];
        let o = p.on_response(ok(Some(7), &["10.0.0.1", "10.9.0.1"]), &narrowed, t0);
        assert_eq!(addrs(&o), ["10.0.0.1:5672"]);
    }

    #[test]
    fn failures_keep_the_answer_and_back_off_exponentially_to_the_cap() {
        let t0 = Instant::now();
        let mut p = Poller::new(SEC, t0);
        p.on_response(ok(Some(7), &["10.0.0.1"]), &svc(), t0);
        let waits: Vec<u64> = (1..=7)
            .map(|n| {
                assert_eq!(p.on_response(err500(), &svc(), t0), Outcome::Failed);
                assert_eq!(p.error_streak(), n);
                assert!(p.has_answer());
                (p.due() - t0).as_secs()
            })
            .collect();
        assert_eq!(waits, [2, 4, 8, 16, 30, 30, 30]);
    }

    #[test]
    fn backoff_never_polls_faster_than_the_interval() {
        let minute = Duration::from_secs(60);
        assert_eq!(backoff(minute, 1), minute);
        assert_eq!(backoff(minute, 5), minute);
        assert_eq!(backoff(SEC, 200), BACKOFF_CAP);
        assert_eq!(backoff(Duration::from_millis(250), 2), SEC);
    }

    #[test]
    fn every_kind_of_failure_is_failed() {
        let t0 = Instant::now();
        let failures = vec![
            err500(),
            Err(FetchError::Timeout { after: SEC }),
            Err(FetchError::TooLarge { limit: 10 }),
            raw(Some(9), b"<html>oops</html>", false),
            raw(Some(9), b"{\"error\":1}", false),
        ];
        for f in failures {
            let mut p = Poller::new(SEC, t0);
            p.on_response(ok(Some(7), &["10.0.0.1"]), &svc(), t0);
            assert_eq!(p.on_response(f, &svc(), t0), Outcome::Failed);
            assert_eq!(p.error_streak(), 1);
        }
    }

    #[test]
    fn failure_before_any_answer_leaves_has_answer_false() {
        let t0 = Instant::now();
        let mut p = Poller::new(SEC, t0);
        assert_eq!(p.on_response(err500(), &svc(), t0), Outcome::Failed);
        assert!(!p.has_answer());
        assert_eq!(p.due(), t0 + 2 * SEC);
    }

    #[test]
    fn filtered_empty_answer_fails_and_never_empties() {
        let t0 = Instant::now();
        let mut p = Poller::new(SEC, t0);
        p.on_response(ok(Some(7), &["10.0.0.1"]), &svc(), t0);
        let o = p.on_response(raw(Some(8), b"[]", true), &svc(), t0);
        assert_eq!(o, Outcome::Failed);
        assert_eq!(p.error_streak(), 1);
        // Even at the very start: no answer, not an empty one.
        let mut fresh = Poller::new(SEC, t0);
        assert_eq!(
            fresh.on_response(raw(Some(8), b"[]", true), &svc(), t0),
            Outcome::Failed
        );
        assert!(!fresh.has_answer());
    }

    #[test]
    fn unfiltered_empty_answer_empties() {
        let t0 = Instant::now();
        let mut p = Poller::new(SEC, t0);
        p.on_response(ok(Some(7), &["10.0.0.1"]), &svc(), t0);
        let o = p.on_response(raw(Some(8), b"[]", false), &svc(), t0);
        assert_eq!(addrs(&o), Vec::<String>::new());
    }

    #[test]
    fn filtered_non_empty_answer_is_used() {
        let t0 = Instant::now();
        let mut p = Poller::new(SEC, t0);
        p.on_response(ok(Some(7), &["10.0.0.1", "10.0.0.2"]), &svc(), t0);
        let mut r = ok(Some(8), &["10.0.0.2"]).unwrap();
        r.filtered_by_acls = true;
        assert_eq!(
            addrs(&p.on_response(Ok(r.clone()), &svc(), t0)),
            ["10.0.0.2:5672"]
        );
        // Filtered answers are re-parsed even with the same index.
        r.body = b"[]".to_vec();
        assert_eq!(p.on_response(Ok(r), &svc(), t0), Outcome::Failed);
    }

    #[test]
    fn failed_answer_does_not_advance_the_index() {
        let t0 = Instant::now();
        let mut p = Poller::new(SEC, t0);
        p.on_response(ok(Some(7), &["10.0.0.1"]), &svc(), t0);
        assert_eq!(
            p.on_response(raw(Some(8), b"[", false), &svc(), t0),
            Outcome::Failed
        );
        let o = p.on_response(ok(Some(8), &["10.0.0.2"]), &svc(), t0);
        assert_eq!(addrs(&o), ["10.0.0.2:5672"]);
    }

    #[test]
    fn recovery_resets_streak_and_schedule() {
        let t0 = Instant::now();
        let mut p = Poller::new(SEC, t0);
        for _ in 0..3 {
            p.on_response(err500(), &svc(), t0);
        }
        let t1 = t0 + Duration::from_secs(20);
        let o = p.on_response(ok(Some(1), &["10.0.0.1"]), &svc(), t1);
        assert_eq!(addrs(&o), ["10.0.0.1:5672"]);
        assert_eq!(p.error_streak(), 0);
        assert_eq!(p.due(), t1 + SEC);
    }

    #[test]
    fn a_streak_is_announced_once_and_its_end_counted() {
        let t0 = Instant::now();
        let mut p = Poller::new(SEC, t0);
        let starts: Vec<bool> = (0..7).map(|_| p.record_failure(t0)).collect();
        assert_eq!(starts, [true, false, false, false, false, false, false]);
        assert_eq!(
            p.record_success(t0).as_deref(),
            Some("recovered after 7 failed polls")
        );
        assert_eq!(p.record_success(t0), None);
        p.record_failure(t0);
        assert_eq!(
            p.record_success(t0).as_deref(),
            Some("recovered after 1 failed poll")
        );
    }

    #[test]
    fn only_new_skip_warnings_are_reported() {
        let old = vec!["a".to_string(), "b".to_string()];
        let new = vec!["b".to_string(), "c".to_string()];
        assert_eq!(new_warnings(&old, &new).collect::<Vec<_>>(), ["c"]);
    }

    #[test]
    fn changed_carries_health_and_weight() {
        let t0 = Instant::now();
        let mut p = Poller::new(SEC, t0);
        let o = p.on_response(ok(Some(1), &["10.0.0.1"]), &svc(), t0);
        let Outcome::Changed(parsed) = o else {
            panic!("expected Changed")
        };
        assert_eq!(parsed.backends[0].health, SourceHealth::Passing);
        assert_eq!(parsed.backends[0].weight, 1);
    }

    #[test]
    fn label_names_the_consul_service_and_the_config_when_they_differ() {
        let mut s = svc();
        assert_eq!(label(&s), "consul: service rabbitmq");
        s.name = "lb-amqp".into();
        assert_eq!(label(&s), "consul: service rabbitmq (for lb-amqp)");
    }
}
