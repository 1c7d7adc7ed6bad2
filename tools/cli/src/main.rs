//! The `closedloop-telemetry` command-line tool.
//!
//! ```text
//! closedloop-telemetry collect [--bind 127.0.0.1:4318] [--json] [--token T] [--max-seconds N] [--ui]
//! closedloop-telemetry verify [--local]
//! closedloop-telemetry schema [relay|datadog|posthog]
//! closedloop-telemetry audit [--ndjson FILE|-] [--verbose]
//! closedloop-telemetry help [command]      (or <command> --help)
//! ```

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::builder::PossibleValuesParser;
use clap::error::ErrorKind;
use clap::{Args, CommandFactory, Parser, Subcommand};
use closedloop_telemetry_collector::{format_arrival, Collector, Destination, PrintFormat};

/// The largest `--max-seconds` accepted: one year.
const MAX_SECONDS: u64 = 365 * 24 * 3600;

/// Local tools for closedloop-telemetry: a collector, the runbook check, the wire schemas and a
/// dry-run audit.
#[derive(Debug, Parser)]
// `bin_name`: the usage line reads `closedloop-telemetry` on every platform (clap would
// otherwise take the file name, `closedloop-telemetry.exe` on Windows).
#[command(
    name = "closedloop-telemetry",
    bin_name = "closedloop-telemetry",
    version,
    arg_required_else_help = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a local collector on loopback and print each event it receives.
    ///
    /// The collector accepts PostHog /batch/, relay and Datadog logs-intake posts, validates
    /// them like the real services, and prints one line per received event.
    Collect(CollectArgs),
    /// Check delivery end to end with a probe event.
    ///
    /// Sends a probe connection.established through the real pipeline to CL_RELAY_URL and
    /// confirms within 60 s that the request carrying the probe's own id was accepted; uses its
    /// own temporary spool. Without CL_RELAY_URL nothing upstream can be verified: it fails
    /// (exit 1) unless --local is given.
    Verify {
        /// Check only this machine's pipeline: send the probe to a local collector this command
        /// starts (CL_RELAY_URL is not used). Nothing upstream is verified.
        #[arg(long)]
        local: bool,
    },
    /// Print the published v1 wire schemas (JSON Schema draft 2020-12).
    Schema {
        /// Just this one (default: all three, separated by blank lines).
        #[arg(value_parser = PossibleValuesParser::new(
            closedloop_telemetry_collector::schema::ALL.map(|(name, _, _)| name)
        ))]
        name: Option<String>,
    },
    /// Dry run, no network: show exactly what would be sent.
    ///
    /// Plays a session through the pipeline configured by the environment (CL_* / DD_*
    /// variables) and prints, per stream, exactly what would be sent, and which fields were
    /// dropped or redacted and why.
    Audit {
        /// The session as NDJSON lines, one JSON object each, from FILE or stdin (-);
        /// default: the desktop_client example's scripted session.
        #[arg(long, value_name = "FILE|-")]
        ndjson: Option<String>,
        /// As with CL_TELEMETRY_VERBOSE=1 (redacted log tails).
        #[arg(long)]
        verbose: bool,
    },
}

/// Options of `collect`.
#[derive(Debug, Args)]
struct CollectArgs {
    /// Loopback address to listen on (127.0.0.1 or ::1 only).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:4318", value_parser = loopback)]
    bind: SocketAddr,
    /// Print NDJSON (one JSON object per line) instead of text.
    #[arg(long)]
    json: bool,
    /// Require 'Authorization: Bearer T' on the relay endpoint.
    #[arg(long, value_name = "T")]
    token: Option<String>,
    /// Stop after N seconds, at most 31536000 (one year) (default: run until Ctrl-C).
    #[arg(long, value_name = "N")]
    max_seconds: Option<u64>,
    /// Also serve the local view page of what arrives and print 'ui: <url>'.
    #[arg(long)]
    ui: bool,
}

/// `--bind`: a socket address on loopback.
fn loopback(v: &str) -> Result<SocketAddr, String> {
    let addr: SocketAddr = v
        .parse()
        .map_err(|_| format!("`{v}` is not an address like 127.0.0.1:4318"))?;
    if !addr.ip().is_loopback() {
        return Err(format!(
            "{addr} is not a loopback address; the collector only listens on loopback \
             (127.0.0.1 or ::1)"
        ));
    }
    Ok(addr)
}

fn main() -> ExitCode {
    // clap would refuse these too, but without saying which argument it was.
    let mut args = Vec::new();
    for (i, arg) in std::env::args_os().enumerate() {
        match arg.into_string() {
            Ok(a) => args.push(a),
            Err(raw) => {
                eprintln!(
                    "closedloop-telemetry: argument {i} ({}) is not valid UTF-8",
                    raw.to_string_lossy()
                );
                return ExitCode::from(2);
            }
        }
    }
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => return clap_exit(e),
    };
    match cli.command {
        Command::Collect(opts) => match opts.max_seconds {
            Some(n) if n > MAX_SECONDS => {
                let why = format!("--max-seconds: {n} is more than {MAX_SECONDS} (one year)");
                let mut cli = Cli::command();
                cli.build(); // gives the subcommand its full name for the usage line
                clap_exit(match cli.find_subcommand_mut("collect") {
                    Some(collect) => collect.error(ErrorKind::ValueValidation, why),
                    None => cli.error(ErrorKind::ValueValidation, why),
                })
            }
            _ => collect(opts),
        },
        Command::Verify { local } => verify(local),
        Command::Schema { name } => schema(name.as_deref()),
        Command::Audit { ndjson, verbose } => audit(ndjson.as_deref(), verbose),
    }
}

/// Prints a clap error or help text (help and --version to stdout, exit 0; usage errors to
/// stderr, exit 2). Without the `color` feature the text is plain, so the heading can be
/// written the way the rest of the tool writes its messages.
fn clap_exit(e: clap::Error) -> ExitCode {
    let text = e.render().to_string().replacen("Usage:", "usage:", 1);
    if e.use_stderr() {
        eprint!("{text}");
    } else {
        print!("{text}");
    }
    ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2))
}

fn collect(opts: CollectArgs) -> ExitCode {
    let mut builder = Collector::builder().bind(opts.bind);
    if let Some(token) = &opts.token {
        builder = builder.relay_token(token.clone());
    }
    let collector = match builder.start() {
        Ok(c) => c,
        Err(e) => {
            eprintln!(
                "closedloop-telemetry collect: cannot listen on {}: {e}",
                opts.bind
            );
            return ExitCode::from(1);
        }
    };
    let arrivals = collector.subscribe();
    let format = if opts.json {
        PrintFormat::Ndjson
    } else {
        PrintFormat::Human
    };
    // With --json, stdout carries only NDJSON; the banner goes to stderr.
    let banner = banner(&collector, opts.token.is_some());
    if opts.json {
        eprint!("{banner}");
    } else {
        print!("{banner}");
    }
    // --ui: the view page (library code), open until the collector stops.
    let _ui = match opts
        .ui
        .then(|| closedloop_telemetry_cli::collect_ui::start_ui(&collector))
    {
        Some(Ok(ui)) => {
            match opts.json {
                true => eprintln!("{}", ui.line()),
                false => println!("{}", ui.line()),
            }
            Some(ui)
        }
        Some(Err(e)) => {
            eprintln!("closedloop-telemetry collect: --ui: {e}");
            return ExitCode::from(2);
        }
        None => None,
    };

    // At most a year away (checked in `main`), so this cannot overflow.
    let deadline = opts
        .max_seconds
        .and_then(|s| Instant::now().checked_add(Duration::from_secs(s)));
    loop {
        let wait = match deadline {
            Some(d) => d.saturating_duration_since(Instant::now()),
            None => Duration::from_secs(3600),
        };
        if wait.is_zero() {
            break;
        }
        match arrivals.recv_timeout(wait) {
            Ok(arrival) => println!("{}", format_arrival(&arrival, format)),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    // Print whatever arrived right before the deadline, then a summary.
    while let Ok(arrival) = arrivals.try_recv() {
        println!("{}", format_arrival(&arrival, format));
    }
    collector.shutdown();
    let c = collector.counts();
    let summary = format!(
        "received: posthog={} relay={} datadog={} rejected_requests={}",
        c.get(Destination::PostHog),
        c.get(Destination::Relay),
        c.get(Destination::Datadog),
        c.rejected_requests
    );
    if opts.json {
        eprintln!("{summary}");
    } else {
        println!("{summary}");
    }
    ExitCode::SUCCESS
}

fn banner(collector: &Collector, token: bool) -> String {
    let relay_token = if token {
        "  CL_RELAY_TOKEN=<the --token value>\n"
    } else {
        ""
    };
    format!(
        "closedloop-telemetry collector listening on {addr}\n\
         endpoints:\n  \
         posthog  POST {host}/batch/\n  \
         relay    POST {relay}\n  \
         datadog  POST {dd}\n\
         point a client at it with:\n  \
         CL_POSTHOG_HOST={host}\n  \
         CL_POSTHOG_API_KEY=phc_local   (any non-empty key)\n  \
         CL_RELAY_URL={relay}\n\
         {relay_token}  \
         DD_LOGS_URL={dd}\n  \
         DD_API_KEY=local   (any non-empty key; Datadog is used only when CL_RELAY_URL is unset)\n\
         waiting for events (Ctrl-C to stop)\n",
        addr = collector.addr(),
        host = collector.posthog_host(),
        relay = collector.relay_url(),
        dd = collector.datadog_url(),
    )
}

/// `verify [--local]`: the runbook, automated (see `closedloop_telemetry_cli::verify`).
fn verify(local: bool) -> ExitCode {
    let result = match local {
        true => closedloop_telemetry_cli::verify::run_local(),
        false => closedloop_telemetry_cli::verify::run(),
    };
    match result {
        Ok(report) => {
            println!("{report}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("verify: FAILED: {e}");
            ExitCode::from(1)
        }
    }
}
/// `schema [relay|datadog|posthog]`: prints the embedded schema files (the name was checked by
/// clap).
fn schema(name: Option<&str>) -> ExitCode {
    use closedloop_telemetry_collector::schema;
    match name {
        None => {
            for (i, (_, _, text)) in schema::ALL.iter().enumerate() {
                if i > 0 {
                    println!();
                }
                print!("{text}");
            }
        }
        Some(name) => print!("{}", schema::get(name).unwrap_or_default()),
    }
    ExitCode::SUCCESS
}

/// `audit [--ndjson FILE|-] [--verbose]`: the dry-run audit view.
fn audit(ndjson: Option<&str>, verbose: bool) -> ExitCode {
    use closedloop_telemetry_cli::audit;
    let mut builder = match closedloop_telemetry::builder(env!("CARGO_PKG_VERSION")).from_env() {
        Ok(b) => b,
        Err(e) => {
            eprintln!("closedloop-telemetry audit: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    if verbose {
        builder = builder.verbose(true);
    }
    let report = match ndjson {
        None => audit::run_demo(&builder),
        Some(path) => {
            let text = if path == "-" {
                let mut s = String::new();
                std::io::Read::read_to_string(&mut std::io::stdin(), &mut s).map(|_| s)
            } else {
                std::fs::read_to_string(path)
            };
            let text = match text {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("closedloop-telemetry audit: cannot read {path}: {e}");
                    return ExitCode::from(1);
                }
            };
            match audit::ndjson::parse(&text) {
                Ok(lines) => audit::run_ndjson(&builder, &lines),
                Err(e) => {
                    eprintln!("closedloop-telemetry audit: {e}");
                    return ExitCode::from(2);
                }
            }
        }
    };
    print!("{report}");
    ExitCode::SUCCESS
}
