//! Built-in checks (load, memory, disk, process, TCP, HTTP) and the host readings the status
//! sampler shares with them.
//!
//! Each check is split in three: a reader (`/proc`, `statvfs`, a socket), a pure parser of the
//! text read, and a pure evaluator turning the reading and thresholds into a [`CheckOutcome`]
//! with a Nagios-like summary, e.g. `LOAD OK - load average: 0.10, 0.20, 0.30`. A value above a
//! threshold (strictly, as in Nagios) is WARNING or CRITICAL; a reading that fails is UNKNOWN.
//! The `check_*` functions for load, memory, disk and processes block; run them off the runtime.

use std::io;
use std::path::Path;
use std::time::{Duration, Instant};

use reqwest::StatusCode;

use super::outcome::{CheckOutcome, CheckState};

const LOADAVG: &str = "/proc/loadavg";
const MEMINFO: &str = "/proc/meminfo";
const UPTIME: &str = "/proc/uptime";

/// Text from `/proc` that does not have the expected shape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProcParseError {
    /// A field is absent.
    #[error("{file}: no {field}")]
    Missing {
        /// The file the text came from.
        file: &'static str,
        /// The field looked for.
        field: &'static str,
    },
    /// A field is not a number.
    #[error("{file}: {field} is {text:?}, not a number")]
    NotANumber {
        /// The file the text came from.
        file: &'static str,
        /// The field.
        field: &'static str,
        /// What it holds instead.
        text: String,
    },
    /// `MemTotal` is zero, so no percentage can be computed.
    #[error("{MEMINFO}: MemTotal is 0")]
    NoMemory,
}

impl From<ProcParseError> for io::Error {
    fn from(error: ProcParseError) -> Self {
        io::Error::new(io::ErrorKind::InvalidData, error)
    }
}

// ---------------------------------------------------------------------------------------------
// Readings, shared with the status sampler.

/// The 1-, 5- and 15-minute load averages from `/proc/loadavg`.
pub fn read_load() -> io::Result<[f64; 3]> {
    Ok(parse_loadavg(&std::fs::read_to_string(LOADAVG)?)?)
}

/// Used memory in percent, `100 * (MemTotal - MemAvailable) / MemTotal`, from `/proc/meminfo`.
pub fn read_memory_used_pct() -> io::Result<f64> {
    Ok(parse_meminfo(&std::fs::read_to_string(MEMINFO)?)?.used_pct())
}

/// Used space of the file system holding `path`, in percent, as `df` counts it.
pub fn disk_used_pct(path: &Path) -> io::Result<f64> {
    let stat = nix::sys::statvfs::statvfs(path).map_err(io::Error::from)?;
    Ok(used_pct(
        stat.blocks(),
        stat.blocks_free(),
        stat.blocks_available(),
    ))
}

/// Whole seconds since boot, from `/proc/uptime`.
pub fn uptime_secs() -> io::Result<u64> {
    Ok(parse_uptime(&std::fs::read_to_string(UPTIME)?)?)
}

/// How many processes have `name` as their `/proc/PID/comm`.
pub fn count_processes(name: &str) -> io::Result<u32> {
    let mut count = 0u32;
    for entry in std::fs::read_dir("/proc")? {
        let entry = entry?;
        let is_pid = entry
            .file_name()
            .to_str()
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        if !is_pid {
            continue;
        }
        // A process may exit between listing and reading: skip it.
        if let Ok(comm) = std::fs::read_to_string(entry.path().join("comm")) {
            if comm.strip_suffix('\n').unwrap_or(&comm) == name {
                count = count.saturating_add(1);
            }
        }
    }
    Ok(count)
}

// ---------------------------------------------------------------------------------------------
// Parsers of `/proc` text.

/// Parses `/proc/loadavg` (`0.10 0.20 0.30 1/123 4567`) into the three load averages.
pub fn parse_loadavg(text: &str) -> Result<[f64; 3], ProcParseError> {
    let mut fields = text.split_whitespace();
    let mut load = [0.0; 3];
    for (slot, field) in load
        .iter_mut()
        .zip(["1-minute load", "5-minute load", "15-minute load"])
    {
        *slot = parse_number(LOADAVG, field, fields.next())?;
    }
    Ok(load)
}

/// The two `/proc/meminfo` fields used-memory is computed from, in KiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemInfo {
    /// `MemTotal`.
    pub total_kib: u64,
    /// `MemAvailable`: what can be allocated without swapping.
    pub available_kib: u64,
}

impl MemInfo {
    /// `100 * (total - available) / total`.
    pub fn used_pct(&self) -> f64 {
        let used = self.total_kib.saturating_sub(self.available_kib);
        percent(used, self.total_kib)
    }
}

/// Parses `/proc/meminfo` (`MemTotal:  16307956 kB` lines) into [`MemInfo`].
pub fn parse_meminfo(text: &str) -> Result<MemInfo, ProcParseError> {
    let field = |name: &'static str| {
        let value = text
            .lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
            .map(|rest| rest.trim().trim_end_matches("kB").trim());
        parse_number::<u64>(MEMINFO, name, value)
    };
    let info = MemInfo {
        total_kib: field("MemTotal")?,
        available_kib: field("MemAvailable")?,
    };
    if info.total_kib == 0 {
        return Err(ProcParseError::NoMemory);
    }
    Ok(info)
}

/// Parses `/proc/uptime` (`12345.67 23456.78`) into whole seconds since boot.
pub fn parse_uptime(text: &str) -> Result<u64, ProcParseError> {
    let field = text.split_whitespace().next();
    // Whole seconds only: "12345.67" -> 12345.
    let whole = field.map(|f| f.split('.').next().unwrap_or(f));
    parse_number(UPTIME, "uptime", whole)
}

/// Used space in percent from `statvfs` block counts, as `df` does:
/// `used / (used + available to unprivileged users)`, where `used = blocks - free`.
pub fn used_pct(blocks: u64, free: u64, available: u64) -> f64 {
    let used = blocks.saturating_sub(free);
    percent(used, used.saturating_add(available))
}

fn parse_number<T: std::str::FromStr>(
    file: &'static str,
    field: &'static str,
    text: Option<&str>,
) -> Result<T, ProcParseError> {
    let text = text.ok_or(ProcParseError::Missing { file, field })?;
    text.parse().map_err(|_| ProcParseError::NotANumber {
        file,
        field,
        text: text.to_owned(),
    })
}

/// `100 * part / whole`, 0 when `whole` is 0.
#[allow(clippy::cast_precision_loss)] // Exact enough for a percentage.
fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        return 0.0;
    }
    100.0 * part as f64 / whole as f64
}

// ---------------------------------------------------------------------------------------------
// Evaluators: reading + thresholds -> outcome.

/// CRITICAL above `crit`, else WARNING above `warn`, else OK.
fn state_above(value: f64, warn: f64, crit: f64) -> CheckState {
    if value > crit {
        CheckState::Critical
    } else if value > warn {
        CheckState::Warning
    } else {
        CheckState::Ok
    }
}

/// Judges the 1-minute load average.
pub fn evaluate_load(load: [f64; 3], warn: f64, crit: f64) -> CheckOutcome {
    let state = state_above(load[0], warn, crit);
    let [one, five, fifteen] = load;
    CheckOutcome::new(
        state,
        format!("LOAD {state} - load average: {one:.2}, {five:.2}, {fifteen:.2}"),
    )
}

/// Judges used memory in percent.
pub fn evaluate_memory(used_pct: f64, warn: f64, crit: f64) -> CheckOutcome {
    let state = state_above(used_pct, warn, crit);
    CheckOutcome::new(state, format!("MEMORY {state} - {used_pct:.1}% used"))
}

/// Judges the used space, in percent, of the file system holding `path`.
pub fn evaluate_disk(path: &Path, used_pct: f64, warn: f64, crit: f64) -> CheckOutcome {
    let state = state_above(used_pct, warn, crit);
    CheckOutcome::new(
        state,
        format!("DISK {state} - {} {used_pct:.1}% used", path.display()),
    )
}

/// Judges a process count: CRITICAL below `min`.
pub fn evaluate_processes(name: &str, count: u32, min: u32) -> CheckOutcome {
    let state = if count >= min {
        CheckState::Ok
    } else {
        CheckState::Critical
    };
    let noun = if count == 1 { "process" } else { "processes" };
    CheckOutcome::new(
        state,
        format!("PROCS {state} - {count} {noun} named {name:?} (min {min})"),
    )
}

/// Judges an HTTP answer: `expect` exactly, or any 2xx/3xx without `expect`.
pub fn evaluate_http_status(
    url: &str,
    status: StatusCode,
    expect: Option<u16>,
    elapsed: Duration,
) -> CheckOutcome {
    let (fine, expected) = match expect {
        Some(code) => (status.as_u16() == code, code.to_string()),
        None => (
            status.is_success() || status.is_redirection(),
            "2xx or 3xx".to_owned(),
        ),
    };
    let secs = elapsed.as_secs_f64();
    if fine {
        return CheckOutcome::new(
            CheckState::Ok,
            format!("HTTP OK - {status} from {url} in {secs:.3}s"),
        );
    }
    CheckOutcome::new(
        CheckState::Critical,
        format!("HTTP CRITICAL - {status} from {url} (expected {expected})"),
    )
}

// ---------------------------------------------------------------------------------------------
// The checks: read, then evaluate.

/// The load check (blocks briefly on `/proc`).
pub fn check_load(warn: f64, crit: f64) -> CheckOutcome {
    match read_load() {
        Ok(load) => evaluate_load(load, warn, crit),
        Err(e) => CheckOutcome::unknown(format!("LOAD UNKNOWN - cannot read {LOADAVG}: {e}")),
    }
}

/// The memory check (blocks briefly on `/proc`).
pub fn check_memory(warn: f64, crit: f64) -> CheckOutcome {
    match read_memory_used_pct() {
        Ok(used) => evaluate_memory(used, warn, crit),
        Err(e) => CheckOutcome::unknown(format!("MEMORY UNKNOWN - cannot read {MEMINFO}: {e}")),
    }
}

/// The disk check (blocks on `statvfs`, which can hang on a dead network file system).
pub fn check_disk(path: &Path, warn: f64, crit: f64) -> CheckOutcome {
    match disk_used_pct(path) {
        Ok(used) => evaluate_disk(path, used, warn, crit),
        Err(e) => CheckOutcome::unknown(format!(
            "DISK UNKNOWN - cannot stat {}: {e}",
            path.display()
        )),
    }
}

/// The process check (blocks while it reads every `/proc/PID/comm`).
pub fn check_process(name: &str, min: u32) -> CheckOutcome {
    match count_processes(name) {
        Ok(count) => evaluate_processes(name, count, min),
        Err(e) => CheckOutcome::unknown(format!("PROCS UNKNOWN - cannot list /proc: {e}")),
    }
}

/// The TCP check: connecting to `address` (`host:port`) within `timeout` is OK, anything else
/// CRITICAL.
pub async fn check_tcp(address: &str, timeout: Duration) -> CheckOutcome {
    let started = Instant::now();
    match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(address)).await {
        Ok(Ok(_stream)) => CheckOutcome::new(
            CheckState::Ok,
            format!(
                "TCP OK - connected to {address} in {:.3}s",
                started.elapsed().as_secs_f64()
            ),
        ),
        Ok(Err(e)) => CheckOutcome::new(
            CheckState::Critical,
            format!("TCP CRITICAL - {address}: {e}"),
        ),
        Err(_) => CheckOutcome::new(
            CheckState::Critical,
            format!(
                "TCP CRITICAL - {address}: no answer within {}",
                humantime::format_duration(timeout)
            ),
        ),
    }
}

/// The HTTP check: a GET of `url` (redirects not followed, proxies ignored) answered within
/// `timeout` with the expected status is OK; another status or no answer is CRITICAL.
pub async fn check_http(url: &str, expect: Option<u16>, timeout: Duration) -> CheckOutcome {
    // reqwest has no TLS provider of its own: without one installed, building a client panics.
    crate::install_tls_provider();
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build();
    let client = match client {
        Ok(client) => client,
        Err(e) => return CheckOutcome::unknown(format!("HTTP UNKNOWN - no HTTP client: {e}")),
    };
    let started = Instant::now();
    match client.get(url).send().await {
        Ok(response) => evaluate_http_status(url, response.status(), expect, started.elapsed()),
        Err(e) if e.is_timeout() => CheckOutcome::new(
            CheckState::Critical,
            format!(
                "HTTP CRITICAL - {url}: no answer within {}",
                humantime::format_duration(timeout)
            ),
        ),
        Err(e) => CheckOutcome::new(
            CheckState::Critical,
            format!("HTTP CRITICAL - {url}: {}", root_cause(&e)),
        ),
    }
}

/// The innermost cause of an error, e.g. `Connection refused (os error 111)`: reqwest's own
/// message only repeats the URL.
fn root_cause(error: &dyn std::error::Error) -> String {
    let mut cause = error;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause.to_string()
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    const MEMINFO_FIXTURE: &str = "MemTotal:       16000000 kB\n\
        MemFree:         1000000 kB\n\
        MemAvailable:    4000000 kB\n\
        Buffers:          500000 kB\n";

    #[test]
    fn loadavg_parses_into_three_averages() {
        assert_eq!(
            parse_loadavg("0.10 0.20 0.30 1/123 4567\n").unwrap(),
            [0.10, 0.20, 0.30]
        );
    }

    #[test]
    fn bad_loadavg_text_is_an_error() {
        assert_eq!(
            parse_loadavg("0.10 0.20").unwrap_err().to_string(),
            "/proc/loadavg: no 15-minute load"
        );
        assert_eq!(
            parse_loadavg("0.10 high 0.30").unwrap_err().to_string(),
            "/proc/loadavg: 5-minute load is \"high\", not a number"
        );
        assert!(parse_loadavg("").is_err());
    }

    #[test]
    fn meminfo_gives_used_percent_from_total_and_available() {
        let info = parse_meminfo(MEMINFO_FIXTURE).unwrap();
        assert_eq!(
            info,
            MemInfo {
                total_kib: 16_000_000,
                available_kib: 4_000_000
            }
        );
        assert_eq!(info.used_pct(), 75.0);
    }

    #[test]
    fn bad_meminfo_text_is_an_error() {
        assert_eq!(
            parse_meminfo("MemTotal: 100 kB\nMemFree: 5 kB\n").unwrap_err(),
            ProcParseError::Missing {
                file: MEMINFO,
                field: "MemAvailable"
            }
        );
        assert_eq!(
            parse_meminfo("MemTotal: 0 kB\nMemAvailable: 0 kB\n").unwrap_err(),
            ProcParseError::NoMemory
        );
        assert_eq!(
            parse_meminfo("MemTotal: lots\nMemAvailable: 0 kB\n")
                .unwrap_err()
                .to_string(),
            "/proc/meminfo: MemTotal is \"lots\", not a number"
        );
        // A prefix of another field's name is not that field.
        assert!(parse_meminfo("MemTotalX: 5 kB\nMemAvailable: 1 kB\n").is_err());
    }

    #[test]
    fn uptime_parses_into_whole_seconds() {
        assert_eq!(parse_uptime("12345.67 23456.78\n").unwrap(), 12345);
        assert_eq!(parse_uptime("7 1\n").unwrap(), 7);
        assert!(parse_uptime("").is_err());
        assert!(parse_uptime("-3.5 1").is_err());
    }

    #[test]
    fn disk_use_is_counted_like_df() {
        // 100 blocks, 30 free, of which 20 available to users: 70 used of 90 usable.
        assert_eq!(format!("{:.2}", used_pct(100, 30, 20)), "77.78");
        assert_eq!(used_pct(100, 100, 100), 0.0);
        assert_eq!(used_pct(0, 0, 0), 0.0);
        assert_eq!(used_pct(100, 0, 0), 100.0);
    }

    #[test]
    fn thresholds_trip_only_when_exceeded() {
        let state = |load: f64| evaluate_load([load, 0.0, 0.0], 2.0, 4.0).state;
        assert_eq!(state(2.0), CheckState::Ok);
        assert_eq!(state(2.01), CheckState::Warning);
        assert_eq!(state(4.0), CheckState::Warning);
        assert_eq!(state(4.01), CheckState::Critical);
    }

    #[test]
    fn evaluators_write_nagios_like_summaries() {
        assert_eq!(
            evaluate_load([0.1, 0.2, 0.3], 4.0, 8.0),
            CheckOutcome::new(CheckState::Ok, "LOAD OK - load average: 0.10, 0.20, 0.30")
        );
        assert_eq!(
            evaluate_memory(91.25, 80.0, 90.0),
            CheckOutcome::new(CheckState::Critical, "MEMORY CRITICAL - 91.2% used")
        );
        assert_eq!(
            evaluate_disk(Path::new("/var"), 85.0, 80.0, 90.0),
            CheckOutcome::new(CheckState::Warning, "DISK WARNING - /var 85.0% used")
        );
        assert_eq!(
            evaluate_processes("sshd", 1, 1),
            CheckOutcome::new(
                CheckState::Ok,
                "PROCS OK - 1 process named \"sshd\" (min 1)"
            )
        );
        assert_eq!(
            evaluate_processes("nginx", 2, 4),
            CheckOutcome::new(
                CheckState::Critical,
                "PROCS CRITICAL - 2 processes named \"nginx\" (min 4)"
            )
        );
    }

    #[test]
    fn http_statuses_are_judged_against_the_expectation() {
        let url = "http://x/";
        let ms = Duration::from_millis(12);
        assert_eq!(
            evaluate_http_status(url, StatusCode::OK, None, ms),
            CheckOutcome::new(CheckState::Ok, "HTTP OK - 200 OK from http://x/ in 0.012s")
        );
        assert_eq!(
            evaluate_http_status(url, StatusCode::FOUND, None, ms).state,
            CheckState::Ok
        );
        assert_eq!(
            evaluate_http_status(url, StatusCode::NOT_FOUND, None, ms),
            CheckOutcome::new(
                CheckState::Critical,
                "HTTP CRITICAL - 404 Not Found from http://x/ (expected 2xx or 3xx)"
            )
        );
        assert_eq!(
            evaluate_http_status(url, StatusCode::OK, Some(204), ms),
            CheckOutcome::new(
                CheckState::Critical,
                "HTTP CRITICAL - 200 OK from http://x/ (expected 204)"
            )
        );
        assert_eq!(
            evaluate_http_status(url, StatusCode::SERVICE_UNAVAILABLE, Some(503), ms).state,
            CheckState::Ok
        );
    }

    #[test]
    fn this_hosts_readings_are_plausible() {
        let load = read_load().unwrap();
        assert!(load.iter().all(|l| *l >= 0.0), "{load:?}");
        let memory = read_memory_used_pct().unwrap();
        assert!((0.0..=100.0).contains(&memory), "{memory}");
        let disk = disk_used_pct(Path::new("/")).unwrap();
        assert!((0.0..=100.0).contains(&disk), "{disk}");
        assert!(uptime_secs().unwrap() > 0);
        assert!(disk_used_pct(Path::new("/no/such/dir")).is_err());
    }

    #[test]
    fn the_process_check_finds_this_process_by_its_comm() {
        let comm = std::fs::read_to_string("/proc/self/comm").unwrap();
        let comm = comm.trim_end();
        let outcome = check_process(comm, 1);
        assert_eq!(outcome.state, CheckState::Ok, "{outcome:?}");
        assert_eq!(check_process("no-such-proc", 1).state, CheckState::Critical);
    }

    #[test]
    fn the_load_memory_and_disk_checks_read_this_host() {
        assert_eq!(check_load(1e6, 1e6).state, CheckState::Ok);
        assert_eq!(check_memory(100.0, 100.0).state, CheckState::Ok);
        assert_eq!(
            check_disk(Path::new("/"), 100.0, 100.0).state,
            CheckState::Ok
        );
        let missing = check_disk(Path::new("/no/such/dir"), 80.0, 90.0);
        assert_eq!(missing.state, CheckState::Unknown);
        assert!(
            missing
                .summary
                .starts_with("DISK UNKNOWN - cannot stat /no/such/dir:"),
            "{missing:?}"
        );
    }

    #[tokio::test]
    async fn tcp_is_ok_on_a_listener_and_critical_when_refused() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let open = check_tcp(&address, Duration::from_secs(5)).await;
        assert_eq!(open.state, CheckState::Ok, "{open:?}");
        assert!(open
            .summary
            .starts_with(&format!("TCP OK - connected to {address} in ")));
        drop(listener);
        let closed = check_tcp(&address, Duration::from_secs(5)).await;
        assert_eq!(closed.state, CheckState::Critical, "{closed:?}");
        assert!(closed.summary.contains("Connection refused"), "{closed:?}");
    }

    /// Serves every connection one response with `status_line`, or never answers if `None`.
    async fn http_server(status_line: Option<&'static str>) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/health", listener.local_addr().unwrap());
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut request = [0u8; 4096];
                    let _ = socket.read(&mut request).await;
                    match status_line {
                        Some(status) => {
                            let response = format!(
                                "HTTP/1.1 {status}\r\nLocation: /elsewhere\r\n\
                                 Content-Length: 0\r\nConnection: close\r\n\r\n"
                            );
                            let _ = socket.write_all(response.as_bytes()).await;
                        }
                        None => tokio::time::sleep(Duration::from_secs(30)).await,
                    }
                });
            }
        });
        url
    }

    #[tokio::test]
    async fn http_checks_a_real_server_status() {
        let secs = Duration::from_secs(5);
        let ok = http_server(Some("200 OK")).await;
        let outcome = check_http(&ok, None, secs).await;
        assert_eq!(outcome.state, CheckState::Ok, "{outcome:?}");
        assert!(outcome
            .summary
            .starts_with(&format!("HTTP OK - 200 OK from {ok} in ")));
        assert_eq!(
            check_http(&ok, Some(204), secs).await.state,
            CheckState::Critical
        );

        let moved = http_server(Some("301 Moved Permanently")).await;
        let outcome = check_http(&moved, Some(301), secs).await;
        assert_eq!(
            outcome.state,
            CheckState::Ok,
            "redirect not followed: {outcome:?}"
        );

        let broken = http_server(Some("500 Internal Server Error")).await;
        assert_eq!(
            check_http(&broken, None, secs).await,
            CheckOutcome::new(
                CheckState::Critical,
                format!(
                    "HTTP CRITICAL - 500 Internal Server Error from {broken} (expected 2xx or 3xx)"
                )
            )
        );
    }

    #[tokio::test]
    async fn http_without_an_answer_is_critical() {
        let silent = http_server(None).await;
        assert_eq!(
            check_http(&silent, None, Duration::from_millis(200)).await,
            CheckOutcome::new(
                CheckState::Critical,
                format!("HTTP CRITICAL - {silent}: no answer within 200ms")
            )
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let closed = format!("http://{}/", listener.local_addr().unwrap());
        drop(listener);
        let refused = check_http(&closed, None, Duration::from_secs(5)).await;
        assert_eq!(refused.state, CheckState::Critical);
        assert!(
            refused.summary.contains("Connection refused"),
            "{refused:?}"
        );
    }
}
