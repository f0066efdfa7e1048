//! Simulation benchmark of the membership layer: how many probe periods a join and a death take
//! to be known by every node, and what each node sends per period, next to what SWIM predicts.
//!
//! ```text
//! cargo run --release -p rover-membership --example sim_bench -- \
//!     [--nodes 1000,10000] [--seed S] [--runs R] [--events E] [--quick] [--max-minutes M]
//! ```
//!
//! Prints one JSON object per line on stdout, one per measurement, and progress on stderr.
//! Each size is run `--runs` times (default 3) with seeds S, S+1, ... (default S = 1); each run
//! starts N nodes already converged (`SimNetwork::add_converged_nodes`), measures the idle
//! traffic, then makes `--events` (default 5) nodes join one after the other, each through a
//! random member, then kills as many random members one after the other. A figure is the
//! median over every event of every run. `--quick` is N = 1000, one run. The theory and how
//! it is derived from foca's configuration are in `theory.rs`.
//!
//! A size is skipped, with a `sim_skipped` line saying why, when it would not fit in memory or
//! in `--max-minutes`: every node holds every other, so memory grows as N² (about 95 bytes per
//! node and member it knows: a 16-byte shared identity, foca's entry and its index), and
//! building the cluster costs N² (each node learns the roster in one O(N) call on foca's
//! indexed member list).

#![cfg_attr(test, allow(clippy::unwrap_used))]

mod report;
mod run;
mod theory;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use rover_membership::{NodeIdentity, Profile, Tunables};
use serde_json::{json, Value};
use thiserror::Error;

use report::summarize;
use run::{run_once, RunFigures};
use theory::Theory;

/// The `tool` field of every line.
pub const TOOL: &str = "rover-agent-sim";
/// Resident memory per (node, member it knows) pair, measured on x86-64 with this build:
/// 843 MB for N = 3000, 119 MB for N = 1000 (the fixed cost per node weighs more there).
const BYTES_PER_KNOWN_MEMBER: f64 = 100.0;
/// Wall time per N² to build a converged cluster and check it, measured on a 2-core EPYC:
/// 9.6 s for N = 3000. Used only when no smaller size ran before in the same invocation.
const BOOTSTRAP_SECONDS_PER_N2: f64 = 1.1e-6;
/// Wall time per N^1.5 of the rest of a run with 5 joins and 5 deaths (datagrams grow with N;
/// the random choices of gossip scan the member list): 27 s for N = 3000. Same use.
const MEASURING_SECONDS_PER_N1_5: f64 = 1.6e-4;

/// The wall times of the first run of a size, to extrapolate to larger ones.
#[derive(Debug, Clone, Copy)]
struct RunCost {
    n: usize,
    bootstrap: Duration,
    total: Duration,
}

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq)]
struct Options {
    sizes: Vec<usize>,
    seed: u64,
    runs: u64,
    events: usize,
    max_minutes: f64,
}

/// Why the command line was refused.
/// Nothing runs after any of these.
#[derive(Debug, Error, PartialEq)]
enum UsageError {
    /// A flag that takes a value came last.
    #[error("{0} needs a value")]
    MissingValue(String),
    /// A flag's value did not parse.
    #[error("{flag}: cannot read {value:?}")]
    BadValue { flag: String, value: String },
    /// Not a flag this benchmark knows.
    #[error("unknown argument {0:?}")]
    Unknown(String),
    /// SWIM needs someone to probe and someone to ask for an indirect probe.
    #[error("cluster sizes must be at least 3")]
    TooSmall,
}

fn main() -> ExitCode {
    let options = match parse_options(std::env::args().skip(1)) {
        Ok(Some(options)) => options,
        Ok(None) => {
            println!("{}", usage());
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("sim_bench: {e}\n{}", usage());
            return ExitCode::from(2);
        }
    };
    let started = Instant::now();
    let mut last_cost: Option<RunCost> = None;
    let mut failed = false;
    for &n in &options.sizes {
        if let Some(reason) = skip_reason(n, &options, last_cost) {
            print_line(reason);
            continue;
        }
        match bench_size(n, &options) {
            Ok(runs) => {
                last_cost = runs.first().map(|r| RunCost {
                    n,
                    bootstrap: r.bootstrap_wall,
                    total: r.total_wall,
                });
                for line in summarize(n, options.seed, options.events, &runs) {
                    print_line(line);
                }
            }
            Err(e) => {
                eprintln!("sim_bench: N={n}: {e}");
                failed = true;
            }
        }
    }
    eprintln!(
        "sim_bench: done in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn usage() -> &'static str {
    "usage: sim_bench [--nodes 1000,10000] [--seed S] [--runs R] [--events E] [--quick] \
     [--max-minutes M]"
}

/// The options, or `None` for `--help`.
fn parse_options(args: impl IntoIterator<Item = String>) -> Result<Option<Options>, UsageError> {
    let mut options = Options {
        sizes: vec![1_000, 10_000],
        seed: 1,
        runs: 3,
        events: 5,
        max_minutes: 30.0,
    };
    let mut args = args.into_iter();
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(UsageError::MissingValue(flag.clone()));
        match flag.as_str() {
            "--nodes" => {
                let text = value()?;
                options.sizes = text
                    .split(',')
                    .map(|n| n.trim().parse())
                    .collect::<Result<_, _>>()
                    .map_err(|_| bad_value(&flag, &text))?;
            }
            "--seed" => options.seed = parse_value(&flag, &value()?)?,
            "--runs" => options.runs = parse_value::<u64>(&flag, &value()?)?.max(1),
            "--events" => options.events = parse_value::<usize>(&flag, &value()?)?.max(1),
            "--max-minutes" => options.max_minutes = parse_value(&flag, &value()?)?,
            "--quick" => {
                options.sizes = vec![1_000];
                options.runs = 1;
            }
            "--help" | "-h" => return Ok(None),
            _ => return Err(UsageError::Unknown(flag)),
        }
    }
    if options.sizes.iter().any(|n| *n < 3) {
        return Err(UsageError::TooSmall);
    }
    Ok(Some(options))
}

fn parse_value<T: std::str::FromStr>(flag: &str, text: &str) -> Result<T, UsageError> {
    text.parse().map_err(|_| bad_value(flag, text))
}

fn bad_value(flag: &str, text: &str) -> UsageError {
    UsageError::BadValue {
        flag: flag.to_owned(),
        value: text.to_owned(),
    }
}

/// A `sim_skipped` line if `n` would not fit in the available memory or in `--max-minutes`.
fn skip_reason(n: usize, options: &Options, last_cost: Option<RunCost>) -> Option<Value> {
    let nodes = n as f64;
    let memory = BYTES_PER_KNOWN_MEMBER * nodes * nodes;
    let (bootstrap_s, measuring_s) = match last_cost {
        Some(cost) => {
            let scale = nodes / cost.n as f64;
            let bootstrap = cost.bootstrap.as_secs_f64();
            (
                bootstrap * scale.powi(2),
                (cost.total.as_secs_f64() - bootstrap) * scale.powf(1.5),
            )
        }
        None => (
            BOOTSTRAP_SECONDS_PER_N2 * nodes.powi(2),
            MEASURING_SECONDS_PER_N1_5 * nodes.powf(1.5) * options.events as f64 / 5.0,
        ),
    };
    let total_minutes = (bootstrap_s + measuring_s) * options.runs as f64 / 60.0;
    let available = available_memory_bytes();
    let reason = if available.is_some_and(|a| memory > a as f64) {
        "estimated memory exceeds MemAvailable"
    } else if total_minutes > options.max_minutes {
        "estimated time exceeds --max-minutes"
    } else {
        return None;
    };
    Some(json!({
        "scenario": "sim_skipped", "n": n, "tool": TOOL, "reason": reason,
        "estimated_memory_gb": memory / 1e9,
        "available_memory_gb": available.map(|a| a as f64 / 1e9),
        "estimated_bootstrap_s_per_run": bootstrap_s,
        "estimated_run_s": bootstrap_s + measuring_s,
        "runs": options.runs, "max_minutes": options.max_minutes,
        "why": "every node holds all N members (memory ~N^2, about 100 bytes per node and \
                member) and each node learns the roster in O(N), so building a converged \
                cluster costs ~N^2",
        "theory": Theory::new(n, &Tunables::from(Profile::Lan), &identity_like_the_sim(n))
            .predictions(),
    }))
}

/// An identity shaped like the simulation's members (`n<index>`, team `sim`, an address in
/// 127.0.0.0/8, first generation), to size datagrams for a cluster that was not built.
fn identity_like_the_sim(n: usize) -> NodeIdentity {
    NodeIdentity {
        name: format!("n{}", n / 2),
        team: "sim".into(),
        addr: SocketAddr::from(([127, 0, 19, 137], 7900)),
        generation: 1_000,
        tags: Default::default(),
    }
}

/// MemAvailable from /proc/meminfo, if readable.
fn available_memory_bytes() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// `--runs` runs of size `n`.
fn bench_size(n: usize, options: &Options) -> Result<Vec<RunFigures>, run::RunError> {
    (0..options.runs)
        .map(|i| {
            let seed = options.seed.wrapping_add(i);
            eprintln!("sim_bench: N={n} seed={seed} ...");
            let figures = run_once(n, seed, options.events)?;
            eprintln!(
                "sim_bench: N={n} seed={seed}: cluster built in {:.1} s, run took {:.1} s",
                figures.bootstrap_wall.as_secs_f64(),
                figures.total_wall.as_secs_f64()
            );
            Ok(figures)
        })
        .collect()
}

fn print_line(line: Value) {
    println!("{line}");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(text: &str) -> Vec<String> {
        text.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn quick_means_one_thousand_nodes_once() {
        let options = parse_options(args("--quick --seed 7")).unwrap().unwrap();
        assert_eq!(options.sizes, vec![1_000]);
        assert_eq!((options.runs, options.seed), (1, 7));
    }

    #[test]
    fn a_bad_size_list_is_refused_with_its_text() {
        assert_eq!(
            parse_options(args("--nodes 10,x")).unwrap_err(),
            bad_value("--nodes", "10,x")
        );
    }
}
