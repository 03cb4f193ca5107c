//! The report `steno calibrate` prints: a calibration in, the recommendation and the figures behind it out as text.

use std::fmt::Write as _;

use super::{Calibration, SHOWN};

impl Calibration {
    /// The report `steno calibrate` prints.
    pub fn report(&self) -> String {
        let mut out = String::new();
        let t = &self.targets;
        let _ = writeln!(
            out,
            "machine: {} cores; mix: {} (utterances {:.1}-{:.1} s, pauses {:.1}-{:.1} s, speaking {:.0}% of the time)",
            self.cores,
            self.mix.name,
            self.mix.utterance_s.0,
            self.mix.utterance_s.1,
            self.mix.pause_s.0,
            self.mix.pause_s.1,
            self.mix.speaking_share() * 100.0
        );
        let p50 = t
            .p50_s
            .map(|p| format!(", p50 <= {p:.2} s"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "targets: end of speech to final p95 <= {:.2} s{p50}; headroom {:.0}%",
            t.p95_s,
            t.headroom * 100.0
        );
        for l in &self.layouts {
            let c = &l.costs;
            let _ = writeln!(
                out,
                "\nworkers {} x {} threads: one final alone {:.0} ms + {:.1} ms per s of audio; all busy {:.0} ms + {:.1} ms/s",
                c.layout.workers,
                c.layout.threads,
                c.lone.fixed_s * 1000.0,
                c.lone.per_audio_s * 1000.0,
                c.busy.fixed_s * 1000.0,
                c.busy.per_audio_s * 1000.0
            );
            let _ = writeln!(out, "  users  p50     p95     finals busy");
            let shown = l
                .steps
                .iter()
                .filter(|(u, _)| SHOWN.contains(u) || *u == l.max_users || *u == l.max_users + 1);
            for (users, o) in shown {
                let _ = writeln!(
                    out,
                    "  {:>5}  {:>5.2} s {:>5.2} s {:>6} {:>3.0}%",
                    users,
                    o.p50_s,
                    o.p95_s,
                    o.finals,
                    o.busy_on_finals * 100.0
                );
            }
            let _ = writeln!(out, "  most users within the targets: {}", l.max_users);
        }
        let _ = writeln!(
            out,
            "\nrecommended:\n  [workers]\n  count = {}\n  threads_per_worker = {}\n  [admission]\n  max_sessions = {}",
            self.workers, self.threads_per_worker, self.max_sessions
        );
        out
    }
}
