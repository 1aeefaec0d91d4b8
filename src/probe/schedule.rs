//! When each probe target is next due: a pure schedule (no I/O, no clock)
//! that spreads first probes over the interval and keeps each target's
//! cadence from drifting when the loop wakes late.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Shortest interval honoured, so a zero interval cannot make the loop spin.
const MIN_INTERVAL: Duration = Duration::from_millis(1);

/// One target's cadence.
#[derive(Debug, Clone, Copy)]
struct Slot {
    interval: Duration,
    due: Instant,
}

/// When each probe target is next due. Pure: time passed in.
#[derive(Debug, Default)]
pub struct Schedule {
    targets: HashMap<u64, Slot>,
}

/// Where in the interval target `id` first fires: Fibonacci hashing (id times
/// 2^64/φ, Knuth TAOCP 6.4) read as a fraction of the interval. Consecutive
/// ids land about 0.618 intervals apart, which spreads any number of them
/// nearly evenly; other ids are scattered like a hash. Always `< interval`.
fn spread_offset(id: u64, interval: Duration) -> Duration {
    let fraction = id.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let nanos = (u128::from(fraction) * interval.as_nanos()) >> 64;
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

/// The first `prev + k * interval` (k >= 1) after `now`: keeps the cadence
/// anchored to the original slot and skips slots a late loop missed.
fn next_slot(prev: Instant, interval: Duration, now: Instant) -> Instant {
    let behind = now.saturating_duration_since(prev).as_nanos();
    let step = interval.max(MIN_INTERVAL).as_nanos(); // never divide by zero
    let advance = (behind / step + 1) * step;
    let advance = Duration::from_nanos(u64::try_from(advance).unwrap_or(u64::MAX));
    prev.checked_add(advance).unwrap_or(now + interval)
}

impl Schedule {
    pub fn new() -> Schedule {
        Schedule::default()
    }

    /// Adds or keeps target `id` with `interval` (at least 1 ms). A new target
    /// is first due at `now` plus an id-derived offset within the interval;
    /// re-adding it keeps its slot. A changed interval keeps the slot if that
    /// comes within the new interval, else takes a new spread slot.
    pub fn upsert(&mut self, id: u64, interval: Duration, now: Instant) {
        let interval = interval.max(MIN_INTERVAL);
        let spread = now.checked_add(spread_offset(id, interval)).unwrap_or(now);
        match self.targets.get_mut(&id) {
            Some(slot) if slot.interval == interval => {}
            Some(slot) => {
                slot.interval = interval;
                slot.due = slot.due.min(spread);
            }
            None => {
                self.targets.insert(
                    id,
                    Slot {
                        interval,
                        due: spread,
                    },
                );
            }
        }
    }

    pub fn remove(&mut self, id: u64) {
        self.targets.remove(&id);
    }

    pub fn retain(&mut self, keep: impl Fn(u64) -> bool) {
        self.targets.retain(|id, _| keep(*id));
    }

    /// Ids due at `now`, earliest slot first. Each one's next due time moves on
    /// by whole intervals from its previous due time (not from `now`) to the
    /// first slot after `now`, so the cadence does not drift and a late loop
    /// probes once rather than catching up on every missed slot.
    pub fn take_due(&mut self, now: Instant) -> Vec<u64> {
        let mut due: Vec<(Instant, u64)> = Vec::new();
        for (id, slot) in self.targets.iter_mut().filter(|(_, s)| s.due <= now) {
            due.push((slot.due, *id));
            slot.due = next_slot(slot.due, slot.interval, now);
        }
        due.sort_unstable();
        due.into_iter().map(|(_, id)| id).collect()
    }

    pub fn next_due(&self) -> Option<Instant> {
        self.targets.values().map(|s| s.due).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn spread_offset_stays_within_the_interval() {
        for id in [0, 1, 7, u64::MAX, 0xDEAD_BEEF] {
            for interval in [MS, 2000 * MS, Duration::from_secs(3600)] {
                assert!(spread_offset(id, interval) < interval, "{id} {interval:?}");
            }
        }
    }

    fn first_due(ids: impl Iterator<Item = u64>, interval: Duration) -> Vec<Duration> {
        let t0 = Instant::now();
        let mut s = Schedule::new();
        let mut offsets = Vec::new();
        for id in ids {
            s.upsert(id, interval, t0);
            offsets.push(s.targets[&id].due - t0);
        }
        offsets.sort();
        offsets
    }

    #[test]
    fn schedule_spreads_consecutive_ids_over_the_interval() {
        let offsets = first_due(0..10, 2000 * MS);
        let min_gap = offsets.windows(2).map(|w| w[1] - w[0]).min();
        assert!(min_gap >= Some(100 * MS), "{offsets:?}");
        assert!(
            *offsets.last().unwrap() - offsets[0] >= 1000 * MS,
            "{offsets:?}"
        );
    }

    #[test]
    fn schedule_spreads_scattered_ids() {
        let ids = [
            3,
            1 << 20,
            1 << 40,
            0xDEAD_BEEF,
            42,
            4242,
            999_999,
            17,
            1 << 63,
            12345,
        ];
        let offsets = first_due(ids.into_iter(), 2000 * MS);
        assert!(
            *offsets.last().unwrap() - offsets[0] > 100 * MS,
            "{offsets:?}"
        );
    }

    #[test]
    fn schedule_readding_keeps_the_slot() {
        let t0 = Instant::now();
        let mut s = Schedule::new();
        s.upsert(5, 2000 * MS, t0);
        let due = s.next_due();
        s.upsert(5, 2000 * MS, t0 + 700 * MS);
        assert_eq!(s.next_due(), due);
    }

    #[test]
    fn schedule_not_due_before_its_slot() {
        let t0 = Instant::now();
        let mut s = Schedule::new();
        s.upsert(5, 2000 * MS, t0);
        let due = s.next_due().unwrap();
        assert!(s.take_due(due - Duration::from_nanos(1)).is_empty());
        assert_eq!(s.take_due(due), vec![5]);
        assert!(s.take_due(due).is_empty(), "taken once per slot");
    }

    #[test]
    fn schedule_cadence_does_not_drift_when_taken_late() {
        let t0 = Instant::now();
        let mut s = Schedule::new();
        s.upsert(1, 1000 * MS, t0);
        let first = s.next_due().unwrap();
        for k in 1..=5u32 {
            // Taken 30 ms late each time; the slots stay on the original grid.
            assert_eq!(s.take_due(s.next_due().unwrap() + 30 * MS), vec![1]);
            assert_eq!(s.next_due(), Some(first + k * 1000 * MS));
        }
    }

    #[test]
    fn schedule_late_loop_skips_missed_slots() {
        let t0 = Instant::now();
        let mut s = Schedule::new();
        s.upsert(1, 1000 * MS, t0);
        let first = s.next_due().unwrap();
        assert_eq!(s.take_due(first + 3500 * MS), vec![1]);
        assert_eq!(s.next_due(), Some(first + 4000 * MS));
        // Exactly on a missed slot: that slot counts as taken, the next is one interval on.
        assert_eq!(s.take_due(first + 5000 * MS), vec![1]);
        assert_eq!(s.next_due(), Some(first + 6000 * MS));
    }

    #[test]
    fn schedule_returns_due_ids_earliest_first() {
        let t0 = Instant::now();
        let mut s = Schedule::new();
        for id in 0..10 {
            s.upsert(id, 2000 * MS, t0);
        }
        let mut want: Vec<(Instant, u64)> =
            s.targets.iter().map(|(id, sl)| (sl.due, *id)).collect();
        want.sort();
        let want: Vec<u64> = want.into_iter().map(|(_, id)| id).collect();
        assert_eq!(s.take_due(t0 + 2000 * MS), want);
        assert!(s.next_due().unwrap() >= t0 + 2000 * MS);
    }

    #[test]
    fn schedule_remove_and_retain() {
        let t0 = Instant::now();
        let mut s = Schedule::new();
        for id in 0..4 {
            s.upsert(id, 1000 * MS, t0);
        }
        s.remove(2);
        s.retain(|id| id != 3);
        let mut got = s.take_due(t0 + 1000 * MS);
        got.sort();
        assert_eq!(got, vec![0, 1]);
        s.remove(0);
        s.remove(1);
        assert_eq!(s.next_due(), None);
        assert!(s.take_due(t0 + 10_000 * MS).is_empty());
    }

    #[test]
    fn schedule_interval_change_takes_effect_within_the_new_interval() {
        let t0 = Instant::now();
        let mut s = Schedule::new();
        s.upsert(9, 60_000 * MS, t0);
        s.upsert(9, 1000 * MS, t0);
        assert!(s.next_due().unwrap() < t0 + 1000 * MS);
        let due = s.next_due().unwrap();
        assert_eq!(s.take_due(due), vec![9]);
        assert_eq!(s.next_due(), Some(due + 1000 * MS));
    }

    #[test]
    fn schedule_zero_interval_is_clamped() {
        let t0 = Instant::now();
        let mut s = Schedule::new();
        s.upsert(1, Duration::ZERO, t0);
        let due = s.next_due().unwrap();
        assert!(due < t0 + MS);
        assert_eq!(s.take_due(due), vec![1]);
        assert_eq!(s.next_due(), Some(due + MS));
    }
}
