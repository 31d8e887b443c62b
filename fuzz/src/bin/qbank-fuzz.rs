//! `qbank-fuzz`: a fuzzer for the core parsers that runs on stable Rust (no libFuzzer, no
//! nightly). Coverage-less but not blind: each execution is a structure-aware generated input,
//! a mutation of an input already kept (the seed corpus, plus every input that reached an
//! outcome not seen before: a new error message, a new shape of success), or random bytes.
//! Panics are caught; a crashing input is shrunk and written to `fuzz/artifacts/<target>/`.
//!
//! ```text
//! qbank-fuzz [--seconds N] [--iterations N] [--targets a,b] [--seed N]
//!            [--corpus DIR] [--artifacts DIR] [--summary FILE] [--save-kept DIR]
//! qbank-fuzz replay <target> <file>...     run files through one target, report each
//! qbank-fuzz list                          the targets
//! ```
//!
//! Exit status: 0 with no crash, 1 if any target crashed, 2 on bad usage, 3 on a hang.

use std::cell::RefCell;
use std::collections::HashSet;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use qbank_connect_fuzz::mutate::{self, MAX_LEN};
use qbank_connect_fuzz::rng::{fnv1a, Rng};
use qbank_connect_fuzz::{all_targets, Target};

/// An execution taking longer than this is reported as a hang and ends the run.
const HANG_SECS: u64 = 10;
/// Most inputs kept per target for mutation.
const MAX_POOL: usize = 4096;
/// Most distinct crashes recorded per target (one artifact each).
const MAX_CRASHES: usize = 16;

struct Options {
    seconds: f64,
    iterations: Option<u64>,
    targets: Option<Vec<String>>,
    seed: u64,
    corpus: PathBuf,
    artifacts: PathBuf,
    summary: PathBuf,
    /// Where to write the inputs kept for mutation (seeds and new outcomes), one folder per
    /// target, e.g. to measure their coverage with the libFuzzer build.
    save_kept: Option<PathBuf>,
}

thread_local! {
    /// Where and why the last panic happened, recorded by the silent panic hook.
    static LAST_PANIC: RefCell<Option<(String, String)>> = const { RefCell::new(None) };
}

fn usage() -> ! {
    eprintln!(
        "usage: qbank-fuzz [--seconds N] [--iterations N] [--targets a,b] [--seed N] \
         [--corpus DIR] [--artifacts DIR] [--summary FILE] [--save-kept DIR]\n       qbank-fuzz replay <target> <file>...\n       qbank-fuzz list"
    );
    std::process::exit(2)
}

fn main() {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut opts = Options {
        seconds: 20.0,
        iterations: None,
        targets: None,
        seed: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64),
        corpus: here.join("corpus"),
        artifacts: here.join("artifacts"),
        summary: here.join("../target/fuzz-summary.json"),
        save_kept: None,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("list") => {
            for t in all_targets() {
                println!("{}", t.name);
            }
            return;
        }
        Some("replay") => replay(&args[1..]),
        _ => {}
    }
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || it.next().cloned().unwrap_or_else(|| usage());
        match a.as_str() {
            "--seconds" => opts.seconds = val().parse().unwrap_or_else(|_| usage()),
            "--iterations" => opts.iterations = Some(val().parse().unwrap_or_else(|_| usage())),
            "--targets" => opts.targets = Some(val().split(',').map(String::from).collect()),
            "--seed" => opts.seed = val().parse().unwrap_or_else(|_| usage()),
            "--corpus" => opts.corpus = val().into(),
            "--artifacts" => opts.artifacts = val().into(),
            "--summary" => opts.summary = val().into(),
            "--save-kept" => opts.save_kept = Some(val().into()),
            _ => usage(),
        }
    }
    let targets: Vec<Target> = all_targets()
        .into_iter()
        .filter(|t| {
            opts.targets
                .as_ref()
                .is_none_or(|names| names.iter().any(|n| n == t.name))
        })
        .collect();
    if targets.is_empty() {
        eprintln!("no such target; `qbank-fuzz list` names them");
        std::process::exit(2);
    }
    install_panic_hook();
    let watch = Watchdog::start(opts.artifacts.clone());

    println!(
        "qbank-fuzz: {} targets, {} each, seed {}",
        targets.len(),
        match opts.iterations {
            Some(n) => format!("{n} executions"),
            None => format!("{} s", opts.seconds),
        },
        opts.seed
    );
    let mut reports = Vec::new();
    for (k, t) in targets.iter().enumerate() {
        let report = fuzz_target(t, &opts, opts.seed.wrapping_add(k as u64), &watch);
        println!(
            "  {:<17} {:>10} executions in {:>5.1} s ({:>7.0}/s), {} outcomes, {} seeds, slowest {} us ({} bytes), {} crashes",
            t.name,
            report.executions,
            report.seconds,
            report.executions as f64 / report.seconds.max(1e-9),
            report.outcomes,
            report.seeds,
            report.slowest_us,
            report.slowest_len,
            report.crashes.len()
        );
        for c in &report.crashes {
            println!(
                "    CRASH at {}: {}\n      input written to {}",
                c.location,
                c.message,
                c.artifact.display()
            );
        }
        reports.push(report);
    }
    watch.stop();

    let total: u64 = reports.iter().map(|r| r.executions).sum();
    let crashes: usize = reports.iter().map(|r| r.crashes.len()).sum();
    write_summary(&opts, &reports);
    println!(
        "qbank-fuzz: {total} executions, {crashes} crashes; summary in {}",
        opts.summary.display()
    );
    if crashes > 0 {
        std::process::exit(1);
    }
}

struct Crash {
    location: String,
    message: String,
    artifact: PathBuf,
}

struct Report {
    name: &'static str,
    executions: u64,
    seconds: f64,
    seeds: usize,
    outcomes: usize,
    pool: usize,
    slowest_us: u128,
    slowest_len: usize,
    crashes: Vec<Crash>,
}

fn install_panic_hook() {
    panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map_or_else(|| "?".to_string(), |l| format!("{}:{}", l.file(), l.line()));
        let message = if let Some(s) = info.payload().downcast_ref::<&str>() {
            (*s).to_string()
        } else if let Some(s) = info.payload().downcast_ref::<String>() {
            s.clone()
        } else {
            "panic".to_string()
        };
        LAST_PANIC.with(|p| *p.borrow_mut() = Some((location, message)));
    }));
}

/// Runs one input; `Err((location, message))` if it panicked.
fn execute(t: &Target, input: &[u8]) -> Result<u64, (String, String)> {
    panic::catch_unwind(AssertUnwindSafe(|| (t.run)(input))).map_err(|_| {
        LAST_PANIC
            .with(|p| p.borrow_mut().take())
            .unwrap_or_else(|| ("?".into(), "panic".into()))
    })
}

fn load_seeds(dir: &Path) -> Vec<Vec<u8>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files.iter().filter_map(|p| std::fs::read(p).ok()).collect()
}

fn fuzz_target(t: &Target, opts: &Options, seed: u64, watch: &Watchdog) -> Report {
    let mut rng = Rng::new(seed);
    let seeds = load_seeds(&opts.corpus.join(t.name));
    let seed_count = seeds.len();
    let mut pool: Vec<Vec<u8>> = seeds.clone();
    let mut seen: HashSet<u64> = HashSet::new();
    let mut crash_sites: HashSet<String> = HashSet::new();
    let mut crashes = Vec::new();
    let mut executions = 0u64;
    let mut slowest = Duration::ZERO;
    let mut slowest_input = Vec::new();
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(opts.seconds);
    let mut pending_seeds = seeds.into_iter();
    let mut input = Vec::with_capacity(MAX_LEN);
    watch.set_target(t.name);
    loop {
        if let Some(n) = opts.iterations {
            if executions >= n {
                break;
            }
        } else if executions.is_multiple_of(64) && Instant::now() >= deadline {
            break;
        }
        // The seeds first, then: 30% generated, 60% mutated, 10% random bytes.
        input.clear();
        if let Some(s) = pending_seeds.next() {
            input.extend_from_slice(&s);
        } else {
            match rng.below(10) {
                9 => input.extend(mutate::random_bytes(&mut rng, 512)),
                k if k <= 2 || pool.is_empty() => input.extend((t.generate)(&mut rng)),
                _ => {
                    input.extend_from_slice(&pool[rng.below(pool.len())]);
                    let other = &pool[rng.below(pool.len())];
                    mutate::mutate(&mut rng, &mut input, t.dict, other);
                }
            }
        }
        watch.begin(&input);
        let began = Instant::now();
        let outcome = execute(t, &input);
        let took = began.elapsed();
        watch.end();
        executions += 1;
        if took > slowest {
            slowest = took;
            slowest_input.clone_from(&input);
        }
        match outcome {
            Ok(sig) => {
                // Keep inputs that reach an outcome not seen before, and a few others; once the
                // pool is full, a new outcome replaces a kept input (never a seed).
                let new = seen.insert(sig);
                if pool.len() < MAX_POOL {
                    if new || rng.one_in(4096) {
                        pool.push(input.clone());
                    }
                } else if new && seed_count < MAX_POOL {
                    let i = seed_count + rng.below(MAX_POOL - seed_count);
                    pool[i].clone_from(&input);
                }
            }
            Err((location, message)) => {
                if crash_sites.insert(location.clone()) && crashes.len() < MAX_CRASHES {
                    let small = shrink(t, &input, &location);
                    let artifact = write_artifact(&opts.artifacts, t.name, "crash", &small);
                    let (_, message) = execute(t, &small)
                        .err()
                        .unwrap_or((location.clone(), message));
                    crashes.push(Crash {
                        location,
                        message,
                        artifact,
                    });
                }
            }
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    if let Some(dir) = &opts.save_kept {
        for input in &pool {
            write_artifact(dir, t.name, "kept", input);
        }
    }
    // The slowest execution again, best of three: a one-off stall of the machine is not the
    // parser's, a slow input is.
    let slowest = (0..3)
        .map(|_| {
            let began = Instant::now();
            let _ = execute(t, &slowest_input);
            began.elapsed()
        })
        .min()
        .unwrap_or(slowest);
    Report {
        name: t.name,
        executions,
        seconds,
        slowest_len: slowest_input.len(),
        seeds: seed_count,
        outcomes: seen.len(),
        pool: pool.len(),
        slowest_us: slowest.as_micros(),
        crashes,
    }
}

/// Removes chunks of a crashing input while it still panics at the same place.
fn shrink(t: &Target, input: &[u8], location: &str) -> Vec<u8> {
    let mut best = input.to_vec();
    let mut tries = 0;
    let mut chunk = best.len() / 2;
    while chunk >= 1 && tries < 4000 {
        let mut i = 0;
        while i + chunk <= best.len() && tries < 4000 {
            let mut candidate = best.clone();
            candidate.drain(i..i + chunk);
            tries += 1;
            match execute(t, &candidate) {
                Err((loc, _)) if loc == location => best = candidate,
                _ => i += chunk,
            }
        }
        chunk /= 2;
    }
    best
}

fn write_artifact(dir: &Path, target: &str, kind: &str, input: &[u8]) -> PathBuf {
    let dir = dir.join(target);
    let path = dir.join(format!("{kind}-{:016x}", fnv1a(input)));
    if let Err(e) = std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, input)) {
        eprintln!("qbank-fuzz: cannot write {}: {e}", path.display());
    }
    path
}

fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn write_summary(opts: &Options, reports: &[Report]) {
    let mut s = String::from("{\n");
    s.push_str("  \"tool\": \"qbank-fuzz\",\n");
    s.push_str("  \"engine\": \"stable Rust; structure-aware generators, mutations of a seed corpus, kept inputs that reach new outcomes\",\n");
    s.push_str(&format!("  \"seed\": {},\n", opts.seed));
    match opts.iterations {
        Some(n) => s.push_str(&format!("  \"iterations_per_target\": {n},\n")),
        None => s.push_str(&format!("  \"seconds_per_target\": {},\n", opts.seconds)),
    }
    s.push_str("  \"targets\": [\n");
    for (i, r) in reports.iter().enumerate() {
        let crashes: Vec<String> = r
            .crashes
            .iter()
            .map(|c| {
                format!(
                    "{{\"location\": {}, \"message\": {}, \"artifact\": {}}}",
                    json_str(&c.location),
                    json_str(&c.message),
                    json_str(&c.artifact.display().to_string())
                )
            })
            .collect();
        s.push_str(&format!(
            "    {{\"name\": {}, \"executions\": {}, \"seconds\": {:.2}, \"executions_per_second\": {:.0}, \"crashes\": {}, \"seed_inputs\": {}, \"distinct_outcomes\": {}, \"kept_inputs\": {}, \"slowest_execution_us\": {}, \"slowest_input_bytes\": {}, \"crash_details\": [{}]}}{}\n",
            json_str(r.name),
            r.executions,
            r.seconds,
            r.executions as f64 / r.seconds.max(1e-9),
            r.crashes.len(),
            r.seeds,
            r.outcomes,
            r.pool,
            r.slowest_us,
            r.slowest_len,
            crashes.join(", "),
            if i + 1 < reports.len() { "," } else { "" }
        ));
    }
    s.push_str("  ],\n");
    let total: u64 = reports.iter().map(|r| r.executions).sum();
    let crashes: usize = reports.iter().map(|r| r.crashes.len()).sum();
    let seconds: f64 = reports.iter().map(|r| r.seconds).sum();
    s.push_str(&format!("  \"total_executions\": {total},\n"));
    s.push_str(&format!("  \"total_seconds\": {seconds:.2},\n"));
    s.push_str(&format!("  \"total_crashes\": {crashes}\n}}\n"));
    if let Some(dir) = opts.summary.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    if let Err(e) = std::fs::write(&opts.summary, s) {
        eprintln!("qbank-fuzz: cannot write {}: {e}", opts.summary.display());
    }
}

fn replay(args: &[String]) -> ! {
    let Some((name, files)) = args.split_first() else {
        usage()
    };
    let Some(t) = all_targets().into_iter().find(|t| t.name == name) else {
        usage()
    };
    install_panic_hook();
    let mut failed = 0;
    for f in files {
        let data = std::fs::read(f).unwrap_or_else(|e| {
            eprintln!("{f}: {e}");
            std::process::exit(2)
        });
        match execute(&t, &data) {
            Ok(_) => println!("{f}: ok"),
            Err((loc, msg)) => {
                failed += 1;
                println!("{f}: CRASH at {loc}: {msg}");
            }
        }
    }
    std::process::exit(i32::from(failed > 0))
}

/// Notices an execution that never ends (which `catch_unwind` cannot), writes its input as a
/// `hang-…` artifact and ends the process.
struct Watchdog {
    shared: Arc<WatchShared>,
}

struct WatchShared {
    started_ms: AtomicU64,
    running: AtomicBool,
    stop: AtomicBool,
    current: Mutex<(String, Vec<u8>)>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Watchdog {
    fn start(artifacts: PathBuf) -> Self {
        let shared = Arc::new(WatchShared {
            started_ms: AtomicU64::new(0),
            running: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            current: Mutex::new((String::new(), Vec::new())),
        });
        let s = Arc::clone(&shared);
        std::thread::spawn(move || {
            while !s.stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(500));
                let began = s.started_ms.load(Ordering::Relaxed);
                if s.running.load(Ordering::Relaxed)
                    && now_ms().saturating_sub(began) > HANG_SECS * 1000
                {
                    let (name, input) = s.current.lock().map(|g| g.clone()).unwrap_or_default();
                    let path = write_artifact(&artifacts, &name, "hang", &input);
                    eprintln!("qbank-fuzz: {name}: an execution ran over {HANG_SECS} s; input written to {}", path.display());
                    std::process::exit(3);
                }
            }
        });
        Watchdog { shared }
    }

    fn set_target(&self, name: &str) {
        if let Ok(mut g) = self.shared.current.lock() {
            g.0 = name.to_string();
        }
    }

    fn begin(&self, input: &[u8]) {
        if let Ok(mut g) = self.shared.current.lock() {
            g.1.clear();
            g.1.extend_from_slice(input);
        }
        self.shared.started_ms.store(now_ms(), Ordering::Relaxed);
        self.shared.running.store(true, Ordering::Relaxed);
    }

    fn end(&self) {
        self.shared.running.store(false, Ordering::Relaxed);
    }

    fn stop(&self) {
        self.shared.stop.store(true, Ordering::Relaxed);
    }
}
