//! The JSON lines: one per measurement (median over every sample of every run, theory, ratio),
//! then one `sim_run` line with wall times and the inputs of the theory.

use std::time::Duration;

use rover_membership::{Profile, Tunables};
use serde_json::{json, Value};

use crate::run::{DeathFigures, JoinFigures, RunFigures};
use crate::theory::{Average, Theory};
use crate::TOOL;

/// Why the expected detection time is not bounded by round-robin probing.
const ROUND_ROBIN_NOTE: &str = "foca probes its members in shuffled round-robin order: a \
    given prober reaches the victim within 2(N-1)-1 periods at worst (SWIM's time-bounded \
    completeness); that bounds the worst case, not the expected time to the first probe by \
    anyone (about 1 period, the same as with random targets)";

/// One figure measured in every run, with what theory says of it.
struct Measurement {
    scenario: &'static str,
    metric: &'static str,
    unit: &'static str,
    samples: Vec<f64>,
    theory: f64,
    theory_model: &'static str,
    /// The expected value, where the model's distribution is skewed (`theory` is its median).
    theory_mean: Option<f64>,
    /// The continuous-time push-gossip figure, for dissemination times.
    theory_async_push: Option<f64>,
    /// What plain SWIM would take (fixed suspicion timeout, periodic gossip only).
    swim_bound: Option<f64>,
    note: Option<&'static str>,
}

impl Measurement {
    fn new(
        (scenario, metric, unit): (&'static str, &'static str, &'static str),
        samples: Vec<f64>,
        theory: f64,
        theory_model: &'static str,
    ) -> Self {
        Self {
            scenario,
            metric,
            unit,
            samples,
            theory,
            theory_model,
            theory_mean: None,
            theory_async_push: None,
            swim_bound: None,
            note: None,
        }
    }

    fn json(&self, n: usize, seed: u64, seeds: &[u64]) -> Value {
        let value = median(&self.samples);
        let mean = self.samples.iter().sum::<f64>() / self.samples.len().max(1) as f64;
        let mut line = json!({
            "scenario": self.scenario, "metric": self.metric, "n": n, "tool": TOOL,
            "value": round(value), "unit": self.unit,
            "theory": round(self.theory), "ratio": round(value / self.theory),
            "seed": seed, "seeds": seeds, "samples": self.samples.iter().map(|v| round(*v)).collect::<Vec<_>>(),
            "theory_model": self.theory_model, "mean": round(mean),
        });
        if let Value::Object(fields) = &mut line {
            if let Some(theory) = self.theory_mean {
                fields.insert("theory_mean".into(), json!(round(theory)));
                fields.insert("ratio_mean".into(), json!(round(mean / theory)));
            }
            if let Some(theory) = self.theory_async_push {
                fields.insert("theory_async_push".into(), json!(round(theory)));
                fields.insert("ratio_async_push".into(), json!(round(value / theory)));
            }
            if let Some(bound) = self.swim_bound {
                fields.insert("swim_bound".into(), json!(round(bound)));
                fields.insert("ratio_swim".into(), json!(round(value / bound)));
            }
            if let Some(note) = self.note {
                fields.insert("note".into(), json!(note));
            }
        }
        line
    }
}

/// The lines for size `n`, run with seeds `seed`, `seed + 1`, ... and `events` joins and
/// deaths per run.
pub fn summarize(n: usize, seed: u64, events: usize, runs: &[RunFigures]) -> Vec<Value> {
    let Some(first) = runs.first() else {
        return Vec::new();
    };
    // Joins spread to the N members; deaths to the N survivors of N + 1.
    let theory = Theory::new(n, &Tunables::from(Profile::Lan), &first.sample_identity);
    let seeds: Vec<u64> = runs.iter().map(|r| r.seed).collect();
    let mut lines: Vec<Value> = measurements(&theory, runs)
        .iter()
        .map(|m| m.json(n, seed, &seeds))
        .collect();
    let walls = |pick: fn(&RunFigures) -> Duration| {
        runs.iter()
            .map(|r| round(pick(r).as_secs_f64()))
            .collect::<Vec<_>>()
    };
    lines.push(json!({
        "scenario": "sim_run", "n": n, "tool": TOOL, "profile": "lan", "seed": seed,
        "seeds": seeds, "events_per_run": events,
        "bootstrap_wall_s": walls(|r| r.bootstrap_wall), "run_wall_s": walls(|r| r.total_wall),
        "idle_window_periods": first.idle_periods,
        "theory_derivation": theory.derivation(),
    }));
    lines
}

fn measurements(theory: &Theory, runs: &[RunFigures]) -> Vec<Measurement> {
    let idle = |pick: fn(&RunFigures) -> f64| runs.iter().map(pick).collect::<Vec<_>>();
    let joins = |pick: fn(&JoinFigures) -> f64| {
        runs.iter()
            .flat_map(|r| r.joins.iter().map(pick))
            .collect::<Vec<_>>()
    };
    let deaths = |pick: fn(&DeathFigures) -> f64| {
        runs.iter()
            .flat_map(|r| r.deaths.iter().map(pick))
            .collect::<Vec<_>>()
    };
    vec![
        Measurement::new(
            ("sim_idle_traffic", "datagrams", "datagrams/node/period"),
            idle(|r| r.idle.datagrams),
            theory.idle_datagrams(),
            "1 ping + 1 ack per period; periodic gossip sends nothing without updates; \
             Announce + Feed every periodic_announce.frequency",
        ),
        Measurement::new(
            ("sim_idle_traffic", "bytes", "B/node/period"),
            idle(|r| r.idle.bytes),
            theory.idle_bytes(),
            "2 sealed pings/acks without updates + (Announce + a full Feed) every \
             periodic_announce.frequency",
        ),
        Measurement {
            theory_async_push: Some(theory.async_push_periods),
            swim_bound: Some(theory.dissemination_periods),
            ..Measurement::new(
                ("sim_join", "all_know", "periods"),
                joins(|j| j.all_know),
                theory.all_know_join(),
                "eager gossip: log_fe(N) hops of EAGER_GOSSIP_DELAY + link delay, fe = \
                 num_indirect_probes, + 1 periodic round for the e^-fe it misses (swim_bound: \
                 log_f(N) periodic rounds, f = periodic_gossip.num_members + piggybacking)",
            )
        },
        Measurement::new(
            ("sim_join", "extra_datagrams", "datagrams/node"),
            joins(|j| j.traffic.extra_datagrams),
            theory.extra_datagrams(1),
            "each node sends the new member's update max_transmissions times (upper bound: \
             some copies ride on pings and acks)",
        ),
        Measurement {
            note: Some(ROUND_ROBIN_NOTE),
            theory_mean: Some(theory.first_suspicion(Average::Mean)),
            ..Measurement::new(
                ("sim_death", "first_suspicion", "periods"),
                deaths(|d| d.first_suspicion),
                theory.first_suspicion(Average::Median),
                "wait for a first probe, exponential with rate lambda = -(N-1) ln(1-1/(N-1)) \
                 probes/period (median ln2/lambda, mean 1/lambda), + 1 period (foca suspects \
                 at the prober's next tick)",
            )
        },
        Measurement {
            theory_mean: Some(theory.first_down(Average::Mean)),
            swim_bound: Some(theory.swim_first_down(Average::Median)),
            ..Measurement::new(
                ("sim_death", "first_down", "periods"),
                deaths(|d| d.first_down),
                theory.first_down(Average::Median),
                "first suspicion + Lifeguard's suspicion: max(min, k confirmations at \
                 (N-2)/(N-1) per period + 1 round) (swim_bound: first suspicion + the fixed \
                 timeout, memberlist's minimum)",
            )
        },
        Measurement {
            theory_mean: Some(theory.all_know_down(Average::Mean)),
            swim_bound: Some(theory.swim_all_know_down(Average::Median)),
            ..Measurement::new(
                ("sim_death", "all_know_down", "periods"),
                deaths(|d| d.all_know),
                theory.all_know_down(Average::Median),
                "first down + eager gossip (swim_bound: first suspicion + fixed timeout + \
                 log_f(N) periodic rounds)",
            )
        },
        Measurement::new(
            ("sim_death", "extra_datagrams", "datagrams/node"),
            deaths(|d| d.traffic.extra_datagrams),
            theory.extra_datagrams(2),
            "suspect then down update, each sent max_transmissions times by every node \
             (upper bound; Lifeguard's suspicion reports and eager rounds come on top)",
        ),
    ]
}

fn median(samples: &[f64]) -> f64 {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => f64::NAN,
        len if len % 2 == 1 => sorted[len / 2],
        len => (sorted[len / 2 - 1] + sorted[len / 2]) / 2.0,
    }
}

/// Three decimals are plenty and keep the lines readable.
fn round(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_of_an_even_count_is_the_mean_of_the_middle_two() {
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
    }
}
