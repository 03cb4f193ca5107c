//! A simulated load: a worker layout's measured costs, a talk mix and a user count in, end-of-speech-to-final latencies out.
//!
//! A discrete-time model (10 ms steps) of what the pool does with live
//! sessions: each user alternates an utterance and a pause; while one
//! speaks, a partial is due every `partial_interval_s`, run only while no
//! final waits and another worker idles (as the lanes do); once an
//! utterance ends, its final is queued `early_tail_s` into the pause (early
//! finals) and goes before any partial; a final that starts while every
//! other worker idles borrows their cores (the lone cost), one beside
//! partials gets them once the partials' encoder passes end (half-way
//! between the lone and the busy cost), one beside finals the busy cost. A final cannot
//! arrive before the hangover has confirmed the end. The model is
//! deterministic for a seed, so a recommendation can be repeated.

use super::bench::LayoutCosts;

/// Simulation step.
const STEP_S: f64 = 0.01;
/// Audio kept before the speech starts (`vad.pre_roll_ms`).
const PRE_ROLL_S: f64 = 0.2;

/// How users talk: utterance and pause lengths, uniform in these ranges.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Mix {
    pub name: &'static str,
    pub utterance_s: (f64, f64),
    pub pause_s: (f64, f64),
}

impl Mix {
    /// The load generator's mix as the server sees it: the shared
    /// recordings, cut where their own pauses pass the hangover (at 24
    /// users the sweep's server counted 187 utterances of 4.4 s of speech
    /// on average for 162 sent), 2 to 5 s of listening between them.
    pub const CONVERSATIONAL: Mix = Mix {
        name: "conversational",
        utterance_s: (1.5, 7.5),
        pause_s: (2.0, 5.0),
    };
    /// Short turns: 1 to 5 s, 1 to 3 s pauses (issue 16's second mix).
    pub const SHORT_TURNS: Mix = Mix {
        name: "short-turns",
        utterance_s: (1.0, 5.0),
        pause_s: (1.0, 3.0),
    };

    /// Seconds of speech per second per user.
    pub fn speaking_share(&self) -> f64 {
        let mean = |r: (f64, f64)| (r.0 + r.1) / 2.0;
        mean(self.utterance_s) / (mean(self.utterance_s) + mean(self.pause_s))
    }
}

/// The session timing the model follows (from the server's config).
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    pub hangover_s: f64,
    /// 0 when early finals are off (the final waits for the hangover).
    pub early_tail_s: f64,
    pub partial_interval_s: f64,
    /// Fixed cost outside the model: VAD framing, network, the session.
    pub overhead_s: f64,
}

/// One simulated run.
#[derive(Clone, Copy, Debug)]
pub struct Load {
    pub users: usize,
    pub seconds: f64,
    pub ramp_up_s: f64,
    pub seed: u64,
}

/// Latency figures of a run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Outcome {
    pub finals: usize,
    pub p50_s: f64,
    pub p95_s: f64,
    /// Share of worker time spent on finals.
    pub busy_on_finals: f64,
}

#[derive(Clone, Copy)]
enum Work {
    Idle,
    Final,
    Partial,
}

struct Worker {
    work: Work,
    until: f64,
    /// The user and end of speech of the final it runs.
    job: Option<(usize, f64)>,
}

struct User {
    speaking: bool,
    /// When the current utterance or pause ends.
    until: f64,
    next_partial: f64,
    started: f64,
}

/// xorshift: enough randomness for utterance lengths, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
    fn within(&mut self, range: (f64, f64)) -> f64 {
        range.0 + (range.1 - range.0) * self.next()
    }
}

/// Runs `load` against `costs` and says what the users would see.
pub fn simulate(costs: &LayoutCosts, mix: &Mix, timing: &Timing, load: &Load) -> Outcome {
    let mut rng = Rng(load.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut users: Vec<User> = (0..load.users)
        .map(|_| {
            let start = rng.within((0.0, load.ramp_up_s.max(STEP_S)));
            User {
                speaking: false,
                until: start,
                next_partial: f64::INFINITY,
                started: start,
            }
        })
        .collect();
    let mut workers: Vec<Worker> = (0..costs.layout.workers)
        .map(|_| Worker {
            work: Work::Idle,
            until: 0.0,
            job: None,
        })
        .collect();
    // Finals waiting: (ready at, user, end of speech, audio seconds).
    let mut waiting: Vec<(f64, usize, f64, f64)> = Vec::new();
    let mut latencies = Vec::new();
    let mut final_time = 0.0;
    let end_of_talk = load.ramp_up_s + load.seconds;
    let mut t = 0.0;
    // Run on after the talk until every final is out (bounded).
    while t < end_of_talk + 120.0 {
        for (i, u) in users.iter_mut().enumerate() {
            if t < u.until {
                continue;
            }
            if u.speaking {
                // The job holds the pre-roll and the hangover too.
                let audio_s = u.until - u.started + timing.hangover_s + PRE_ROLL_S;
                waiting.push((u.until + timing.early_tail_s, i, u.until, audio_s));
                u.speaking = false;
                u.next_partial = f64::INFINITY;
                u.until += rng.within(mix.pause_s);
            } else if t < end_of_talk {
                u.speaking = true;
                u.started = u.until;
                u.next_partial = u.until + timing.partial_interval_s;
                u.until += rng.within(mix.utterance_s);
            } else {
                u.until = f64::INFINITY;
            }
        }
        for w in workers.iter_mut() {
            if !matches!(w.work, Work::Idle) && t >= w.until {
                if let Some((_, eos)) = w.job.take() {
                    let out = w.until.max(eos + timing.hangover_s) + timing.overhead_s;
                    latencies.push(out - eos);
                }
                w.work = Work::Idle;
            }
        }
        for k in 0..workers.len() {
            if !matches!(workers[k].work, Work::Idle) {
                continue;
            }
            let others_idle = workers
                .iter()
                .enumerate()
                .all(|(j, w)| j == k || matches!(w.work, Work::Idle));
            // A partial gives its cores to a final (`worker::cores`), but
            // only once its encoder pass is over: the final runs half-way
            // between alone and beside another.
            let others_partial = workers
                .iter()
                .enumerate()
                .all(|(j, w)| j == k || !matches!(w.work, Work::Final));
            let ready = waiting
                .iter()
                .enumerate()
                .filter(|(_, f)| f.0 <= t)
                .min_by(|a, b| a.1.0.total_cmp(&b.1.0))
                .map(|(at, _)| at);
            if let Some(at) = ready {
                let (_, user, eos, audio_s) = waiting.remove(at);
                let cost = if others_idle {
                    costs.lone.of(audio_s)
                } else if others_partial {
                    (costs.lone.of(audio_s) + costs.busy.of(audio_s)) / 2.0
                } else {
                    costs.busy.of(audio_s)
                };
                final_time += cost;
                workers[k] = Worker {
                    work: Work::Final,
                    until: t + cost,
                    job: Some((user, eos)),
                };
                continue;
            }
            let another_idle = workers.len() == 1
                || workers
                    .iter()
                    .enumerate()
                    .any(|(j, w)| j != k && matches!(w.work, Work::Idle));
            if !another_idle || waiting.iter().any(|f| f.0 <= t + STEP_S) {
                continue;
            }
            let due = users
                .iter_mut()
                .filter(|u| u.speaking && u.next_partial <= t)
                .min_by(|a, b| a.next_partial.total_cmp(&b.next_partial));
            if let Some(u) = due {
                u.next_partial = t + timing.partial_interval_s;
                workers[k] = Worker {
                    work: Work::Partial,
                    until: t + costs.busy.of(t - u.started),
                    job: None,
                };
            }
        }
        if t >= end_of_talk
            && waiting.is_empty()
            && workers.iter().all(|w| matches!(w.work, Work::Idle))
        {
            break;
        }
        t += STEP_S;
    }
    // Finals still waiting at the bound count as that late.
    for (_, _, eos, _) in waiting {
        latencies.push(t - eos);
    }
    latencies.sort_by(f64::total_cmp);
    let at = |q: f64| {
        if latencies.is_empty() {
            return 0.0;
        }
        latencies[((latencies.len() - 1) as f64 * q).round() as usize]
    };
    Outcome {
        finals: latencies.len(),
        p50_s: at(0.5),
        p95_s: at(0.95),
        busy_on_finals: final_time / (t.max(STEP_S) * costs.layout.workers as f64),
    }
}

#[cfg(test)]
mod tests {
    use super::super::bench::{Cost, Layout};
    use super::*;

    fn costs(fixed_s: f64) -> LayoutCosts {
        let cost = Cost {
            fixed_s,
            per_audio_s: 0.01,
        };
        LayoutCosts {
            layout: Layout {
                workers: 2,
                threads: 1,
            },
            lone: cost,
            busy: cost,
        }
    }

    const TIMING: Timing = Timing {
        hangover_s: 0.4,
        early_tail_s: 0.2,
        partial_interval_s: 0.75,
        overhead_s: 0.05,
    };

    fn run(users: usize, fixed_s: f64) -> Outcome {
        let load = Load {
            users,
            seconds: 60.0,
            ramp_up_s: 5.0,
            seed: 1,
        };
        simulate(&costs(fixed_s), &Mix::CONVERSATIONAL, &TIMING, &load)
    }

    #[test]
    fn a_free_model_leaves_the_hangover_and_the_overhead() {
        let o = run(1, 0.0);
        assert!(o.finals >= 5, "{o:?}");
        assert!((o.p50_s - 0.45).abs() < 0.02, "{o:?}");
    }

    #[test]
    fn latency_grows_with_users_and_runs_away_past_the_pool() {
        let light = run(4, 0.5);
        let heavy = run(24, 0.5);
        let over = run(64, 0.5);
        assert!(light.p95_s < heavy.p95_s, "{light:?} {heavy:?}");
        assert!(heavy.p95_s < over.p95_s, "{heavy:?} {over:?}");
        // 64 users want ~6.8 finals/s; two workers serve ~3.4: it queues.
        assert!(over.p95_s > 10.0, "{over:?}");
        assert!(over.busy_on_finals > 0.9, "{over:?}");
    }

    #[test]
    fn the_same_seed_gives_the_same_figures() {
        assert_eq!(run(16, 0.5), run(16, 0.5));
    }

    #[test]
    fn short_turns_bring_more_finals_for_the_same_speech() {
        assert!((Mix::CONVERSATIONAL.speaking_share() - 0.5625).abs() < 0.01);
        assert!((Mix::SHORT_TURNS.speaking_share() - 0.6).abs() < 0.01);
        let load = Load {
            users: 8,
            seconds: 60.0,
            ramp_up_s: 5.0,
            seed: 1,
        };
        let short = simulate(&costs(0.5), &Mix::SHORT_TURNS, &TIMING, &load);
        let long = simulate(&costs(0.5), &Mix::CONVERSATIONAL, &TIMING, &load);
        assert!(
            short.finals as f64 > 1.3 * long.finals as f64,
            "{short:?} {long:?}"
        );
    }
}
