//! The probe health state machine of one backend: `rise` consecutive
//! successes bring it up, `fall` consecutive failures take it down (HAProxy's
//! model, which none of the IPVS managers has). Pure: no clock, no I/O.

/// Probe health of one backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Health {
    up: bool,
    /// Consecutive results against the current state (successes while down,
    /// failures while up).
    streak: u32,
}

impl Health {
    /// A backend starts in the state the kernel shows (adoption): a dest found
    /// with weight above 0 starts up, anything else starts down.
    pub fn new(up: bool) -> Health {
        Health { up, streak: 0 }
    }

    pub fn is_up(&self) -> bool {
        self.up
    }

    /// Results seen so far towards the next transition.
    pub fn streak(&self) -> u32 {
        self.streak
    }

    /// Records one probe result. Returns the new state when it changed.
    pub fn observe(&mut self, success: bool, rise: u32, fall: u32) -> Option<bool> {
        if success == self.up {
            self.streak = 0;
            return None;
        }
        self.streak += 1;
        let needed = if self.up { fall } else { rise };
        if self.streak < needed.max(1) {
            return None;
        }
        self.up = success;
        self.streak = 0;
        Some(self.up)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(start: bool, results: &str, rise: u32, fall: u32) -> (bool, Vec<usize>) {
        let mut h = Health::new(start);
        let mut flips = Vec::new();
        for (i, c) in results.chars().enumerate() {
            if h.observe(c == '+', rise, fall).is_some() {
                flips.push(i);
            }
        }
        (h.is_up(), flips)
    }

    #[test]
    fn rise_needs_consecutive_successes() {
        assert_eq!(run(false, "+", 2, 3), (false, vec![]));
        assert_eq!(run(false, "++", 2, 3), (true, vec![1]));
        assert_eq!(run(false, "+-+", 2, 3), (false, vec![]));
        assert_eq!(run(false, "+-++", 2, 3), (true, vec![3]));
    }

    #[test]
    fn fall_needs_consecutive_failures() {
        assert_eq!(run(true, "--", 2, 3), (true, vec![]));
        assert_eq!(run(true, "---", 2, 3), (false, vec![2]));
        assert_eq!(run(true, "--+--", 2, 3), (true, vec![]));
    }

    #[test]
    fn flapping_backend_stays_put_until_a_streak_completes() {
        assert_eq!(run(true, "-+-+-+-+", 2, 2), (true, vec![]));
        assert_eq!(run(true, "---++", 2, 3), (true, vec![2, 4]));
    }

    #[test]
    fn rise_and_fall_of_one_act_on_a_single_result() {
        assert_eq!(run(false, "+", 1, 1), (true, vec![0]));
        assert_eq!(run(true, "-", 1, 1), (false, vec![0]));
    }

    #[test]
    fn streak_counts_towards_the_next_transition() {
        let mut h = Health::new(false);
        h.observe(true, 3, 3);
        h.observe(true, 3, 3);
        assert_eq!(h.streak(), 2);
        h.observe(false, 3, 3);
        assert_eq!(h.streak(), 0);
    }
}
