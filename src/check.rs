//! `warden check`: one verdict for a described launch, a live process, or a batch file.

use anyhow::{Context, Result, bail};
use clap::Args;
use std::io::{BufRead, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use warden_policy::{Exception, Policy, ProcessFacts, Verdict, evaluate};

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Print JSON (one object per verdict) instead of a readable line.
    #[arg(long)]
    json: bool,
    /// The resolved executable of the launch.
    #[arg(long, value_name = "PATH", conflicts_with_all = ["pid", "batch"], required_unless_present_any = ["pid", "batch"])]
    exe: Option<String>,
    /// Working directory of the launch.
    #[arg(long, value_name = "DIR")]
    cwd: Option<String>,
    /// User the launch runs as.
    #[arg(long, value_name = "NAME")]
    user: Option<String>,
    /// The account that user is bound to on the device (exceptions are granted to accounts).
    #[arg(long, value_name = "ACCOUNT")]
    account: Option<String>,
    /// An environment marker of the launch (repeatable).
    #[arg(long = "env", value_name = "KEY=VALUE", value_parser = parse_env)]
    env: Vec<(String, String)>,
    /// Check a live process instead.
    #[arg(long, value_name = "PID", conflicts_with = "batch")]
    pid: Option<u32>,
    /// Check every JSON line of FILE (`{"exe":…,"argv":[…],"env":{…},"cwd":…}`), in order; `-` is stdin.
    #[arg(long, value_name = "FILE")]
    batch: Option<PathBuf>,
    /// Approved exceptions to apply (a JSON array, as delivered by the server).
    #[arg(long, value_name = "FILE")]
    exceptions: Option<PathBuf>,
    /// The full argv of the launch, argv[0] included.
    #[arg(last = true, value_name = "ARGV")]
    argv: Vec<String>,
}

fn parse_env(text: &str) -> Result<(String, String), String> {
    text.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())).ok_or_else(|| format!("{text:?} is not KEY=VALUE"))
}

pub fn run(policy: &Policy, args: CheckArgs) -> Result<ExitCode> {
    let catalog = policy.catalog();
    let exceptions = match &args.exceptions {
        Some(path) => read_exceptions(path)?,
        None => Vec::new(),
    };
    // A file the policy has no rule by hash for needs no hash once a fingerprint decides.
    let mut identity =
        warden_monitor::identity::ContentIdentity::default().hash_after_fingerprint(!policy.binaries.is_empty());
    let mut judge = |facts: &mut ProcessFacts| {
        resolve_script(facts);
        // What the program file is (a renamed copy, the loader's program; its SHA-256 for
        // admin rules by hash) and which npm package or Python distribution the script
        // belongs to, read from the files when they exist here; facts given in a batch line
        // keep what they say.
        if facts.content.is_none() {
            let program = warden_monitor::identity::program_path(facts);
            facts.content =
                identity.identify(&program, catalog.content(), 0).filter(|c| c.tool.is_some() || c.sha256.is_some());
            // A renamed copy of the loader, known by its content, runs its first argument.
            if facts.content.as_ref().is_some_and(|c| c.loader) {
                facts.exe_is_loader = true;
                let program = warden_monitor::identity::program_path(facts);
                facts.content = identity
                    .identify(&program, catalog.content(), 0)
                    .filter(|c| c.tool.is_some() || c.sha256.is_some());
            }
        }
        if facts.packages.is_empty() {
            facts.packages = warden_monitor::identity::packages(facts);
        }
        if facts.distributions.is_empty() {
            facts.distributions = identity.distributions(facts);
        }
        warden_monitor::facts::read_settings_files(&catalog, facts);
        evaluate(policy, &catalog, &exceptions, facts, crate::now())
    };
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    if let Some(batch) = &args.batch {
        return run_batch(batch, args.json, &mut out, judge);
    }
    let mut facts = match args.pid {
        Some(pid) => live_facts(pid)?,
        None => ProcessFacts {
            exe: args.exe.clone().unwrap_or_default(),
            argv: if args.argv.is_empty() { vec![args.exe.clone().unwrap_or_default()] } else { args.argv.clone() },
            env: args.env.iter().cloned().collect(),
            cwd: args.cwd.clone(),
            user: args.user.clone(),
            account: args.account.clone(),
            ..ProcessFacts::default()
        },
    };
    let verdict = judge(&mut facts);
    print_verdict(&mut out, &verdict, args.json)?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

fn read_exceptions(path: &PathBuf) -> Result<Vec<Exception>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading exceptions {}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("{}:{}:{}: {e}", path.display(), e.line(), e.column()))
}

/// Follows the symlink an interpreter was given (`node /usr/local/bin/claude`), as the
/// monitor does for live processes; paths that do not exist here are left as written.
fn resolve_script(facts: &mut ProcessFacts) {
    if facts.script.is_none() {
        facts.script = warden_monitor::facts::resolve_script(&facts.exe, &facts.argv, facts.cwd.as_deref());
    }
}

/// The facts of a live process, read the same way the monitor reads them.
#[cfg(target_os = "linux")]
fn live_facts(pid: u32) -> Result<ProcessFacts> {
    use warden_monitor::facts::{FactsError, UserNames, read};
    match read(pid, &mut UserNames::default()) {
        Ok((facts, _, _)) => Ok(facts),
        Err(FactsError::Exited(_)) => bail!("no process with pid {pid}"),
        Err(error) => Err(error).with_context(|| format!("reading process {pid}")),
    }
}

#[cfg(not(target_os = "linux"))]
fn live_facts(pid: u32) -> Result<ProcessFacts> {
    bail!("checking a live process (pid {pid}) is supported on Linux only; describe it with --exe instead")
}

fn run_batch(
    batch: &PathBuf,
    json: bool,
    out: &mut impl Write,
    mut judge: impl FnMut(&mut ProcessFacts) -> Verdict,
) -> Result<ExitCode> {
    let reader: Box<dyn BufRead> = if batch.as_os_str() == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(std::io::BufReader::new(
            std::fs::File::open(batch).with_context(|| format!("opening batch {}", batch.display()))?,
        ))
    };
    let mut failed = 0usize;
    let mut lines = BatchLines { reader, buffer: Vec::new() };
    let mut number = 0usize;
    while let Some(line) =
        lines.next_line().with_context(|| format!("reading {} line {}", batch.display(), number + 1))?
    {
        number += 1;
        // Every unreadable line gets its own error line; the batch goes on.
        let parsed = match line {
            Line::TooLong => Err(format!("{}:{number}: line longer than {MAX_LINE_BYTES} bytes", batch.display())),
            Line::Bytes(bytes) => match std::str::from_utf8(bytes) {
                Err(error) => Err(format!(
                    "{}:{number}:{}: not UTF-8 (invalid byte at offset {})",
                    batch.display(),
                    error.valid_up_to() + 1,
                    error.valid_up_to()
                )),
                Ok(text) if text.trim().is_empty() => continue,
                Ok(text) => serde_json::from_str::<ProcessFacts>(text).map_err(|error| {
                    let message = error.to_string();
                    let what = message.split(" at line ").next().unwrap_or(&message).to_owned();
                    format!("{}:{number}:{}: {what}", batch.display(), error.column())
                }),
            },
        };
        match parsed {
            Ok(mut facts) => print_verdict(out, &judge(&mut facts), json)?,
            Err(message) => {
                failed += 1;
                eprintln!("warden: {message}");
                // Keep one output line per input line, so verdicts stay aligned with the batch.
                if json {
                    writeln!(out, "{}", serde_json::json!({ "error": message, "line": number }))?;
                } else {
                    writeln!(out, "error  {message}")?;
                }
            }
        }
    }
    out.flush()?;
    Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// The longest batch line read (bytes); a longer one is reported and skipped, never buffered whole.
const MAX_LINE_BYTES: usize = 1024 * 1024;

/// One batch line: raw bytes (UTF-8 is checked by the caller), or too long to keep.
enum Line<'a> {
    Bytes(&'a [u8]),
    TooLong,
}

/// Splits a stream into lines as bytes, so a line that is not UTF-8 is one bad line rather
/// than the end of the batch (`BufRead::lines` stops there).
struct BatchLines<R> {
    reader: R,
    buffer: Vec<u8>,
}

impl<R: BufRead> BatchLines<R> {
    fn next_line(&mut self) -> std::io::Result<Option<Line<'_>>> {
        self.buffer.clear();
        let mut too_long = false;
        let mut any = false;
        loop {
            let available = self.reader.fill_buf()?;
            if available.is_empty() {
                break;
            }
            any = true;
            let (chunk, done) = match available.iter().position(|&b| b == b'\n') {
                Some(end) => (&available[..end], Some(end + 1)),
                None => (available, None),
            };
            if !too_long && self.buffer.len() + chunk.len() <= MAX_LINE_BYTES {
                self.buffer.extend_from_slice(chunk);
            } else {
                too_long = true;
                self.buffer.clear();
            }
            let consumed = done.unwrap_or(available.len());
            self.reader.consume(consumed);
            if done.is_some() {
                break;
            }
        }
        if !any {
            return Ok(None);
        }
        if self.buffer.last() == Some(&b'\r') {
            self.buffer.pop();
        }
        Ok(Some(if too_long { Line::TooLong } else { Line::Bytes(&self.buffer) }))
    }
}

fn print_verdict(out: &mut impl Write, verdict: &Verdict, json: bool) -> Result<()> {
    if json {
        serde_json::to_writer(&mut *out, verdict)?;
        writeln!(out)?;
    } else {
        let tool = verdict.tool.as_deref().unwrap_or("-");
        let monitor = if verdict.monitor { " (monitor mode: not enforced)" } else { "" };
        write!(out, "{:<5}  {tool}  {}{monitor}", verdict.action, verdict.reason)?;
        if let Some(assistant) = &verdict.assistant {
            write!(out, " Use {} instead: {}", assistant.name, assistant.url)?;
        }
        writeln!(out)?;
    }
    Ok(())
}
