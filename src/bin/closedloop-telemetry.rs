//! The `closedloop-telemetry` command-line tool.
//!
//! ```text
//! closedloop-telemetry collect [--bind 127.0.0.1:4318] [--json] [--token T] [--max-seconds N] [--ui]
//! closedloop-telemetry schema [relay|datadog|posthog]
//! closedloop-telemetry audit [--ndjson FILE|-] [--verbose]
//! ```

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use closedloop_telemetry::collector::{format_arrival, Collector, PrintFormat, Stream};

const USAGE: &str = "\
usage: closedloop-telemetry <command> [options]

commands:
  collect   run a local collector on loopback that accepts PostHog /batch/, relay and
            Datadog logs-intake posts, validates them like the real services, and prints
            one line per received event
              --bind ADDR        loopback address to listen on (default 127.0.0.1:4318)
              --json             print NDJSON (one JSON object per line) instead of text
              --token T          require 'Authorization: Bearer T' on the relay endpoint
              --max-seconds N    stop after N seconds, at most 31536000 (one year)
                                 (default: run until Ctrl-C)
              --ui               also serve the local view page of what arrives and print
                                 'ui: <url>' (needs the `view` cargo feature)
  verify    send a probe connection.established through the real pipeline to CL_RELAY_URL
            (or to a local collector it starts) and confirm within 60 s that the request
            carrying the probe's own id was accepted; uses its own temporary spool
  schema    print the published v1 wire schemas (JSON Schema draft 2020-12)
              [relay|datadog|posthog]   just one (default: all three, separated by blank lines)
  audit     dry run, no network: play a session through the pipeline configured by the
            environment (CL_* / DD_* variables) and print, per stream, exactly what would be
            sent, and which fields were dropped or redacted and why
              --ndjson FILE|-    the session as NDJSON lines, one JSON object each;
                                 default: the desktop_client example's scripted session
              --verbose          as with CL_TELEMETRY_VERBOSE=1 (redacted log tails)
  help      print this help
";

/// The default `--bind` address.
const DEFAULT_BIND: &str = "127.0.0.1:4318";

/// The largest `--max-seconds` accepted: one year.
const MAX_SECONDS: u64 = 365 * 24 * 3600;

fn main() -> ExitCode {
    let mut args = Vec::new();
    for (i, arg) in std::env::args_os().skip(1).enumerate() {
        match arg.into_string() {
            Ok(a) => args.push(a),
            Err(raw) => {
                eprintln!(
                    "closedloop-telemetry: argument {} ({}) is not valid UTF-8",
                    i + 1,
                    raw.to_string_lossy()
                );
                return ExitCode::from(2);
            }
        }
    }
    let Some(command) = args.first() else {
        eprint!("{USAGE}");
        return ExitCode::from(2);
    };
    let rest = &args[1..];
    match command.as_str() {
        "collect" => collect(rest),
        "verify" => verify(),
        "schema" => schema(rest),
        "audit" => audit(rest),
        "help" | "-h" | "--help" => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        other => {
            eprintln!("closedloop-telemetry: unknown command `{other}`\n");
            eprint!("{USAGE}");
            ExitCode::from(2)
        }
    }
}

/// Options of `collect`.
#[derive(Debug)]
struct CollectArgs {
    bind: SocketAddr,
    json: bool,
    token: Option<String>,
    max_seconds: Option<u64>,
    ui: bool,
}

fn parse_collect(args: &[String]) -> Result<CollectArgs, String> {
    let mut out = CollectArgs {
        bind: DEFAULT_BIND.parse().expect("the default address parses"),
        json: false,
        token: None,
        max_seconds: None,
        ui: false,
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_string())),
            _ => (arg.as_str(), None),
        };
        let mut value = |name: &str| {
            inline
                .clone()
                .or_else(|| it.next().cloned())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match flag {
            "--bind" => {
                let v = value("--bind")?;
                out.bind = v
                    .parse()
                    .map_err(|_| format!("--bind: `{v}` is not an address like 127.0.0.1:4318"))?;
            }
            "--json" => out.json = true,
            "--ui" => out.ui = true,
            "--token" => out.token = Some(value("--token")?),
            "--max-seconds" => {
                let v = value("--max-seconds")?;
                let n: u64 = v
                    .parse()
                    .map_err(|_| format!("--max-seconds: `{v}` is not a whole number"))?;
                if n > MAX_SECONDS {
                    return Err(format!(
                        "--max-seconds: {n} is more than {MAX_SECONDS} (one year)"
                    ));
                }
                out.max_seconds = Some(n);
            }
            other => return Err(format!("unknown option `{other}`")),
        }
    }
    Ok(out)
}

fn collect(args: &[String]) -> ExitCode {
    let opts = match parse_collect(args) {
        Ok(opts) => opts,
        Err(e) => {
            eprintln!("closedloop-telemetry collect: {e}\n");
            eprint!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    if !opts.bind.ip().is_loopback() {
        eprintln!(
            "closedloop-telemetry collect: --bind {}: not a loopback address; the collector \
             only listens on loopback (127.0.0.1 or ::1)",
            opts.bind
        );
        return ExitCode::from(2);
    }
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
        .then(|| closedloop_telemetry::collector_ui::start_ui(&collector))
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

    // At most a year away (checked in `parse_collect`), so this cannot overflow.
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
        c.get(Stream::Posthog),
        c.get(Stream::Relay),
        c.get(Stream::Datadog),
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

/// `verify`: the runbook, automated (see `closedloop_telemetry::verify`).
fn verify() -> ExitCode {
    match closedloop_telemetry::verify::run() {
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
/// `schema [relay|datadog|posthog]`: prints the embedded schema files.
fn schema(args: &[String]) -> ExitCode {
    use closedloop_telemetry::schema;
    match args {
        [] => {
            for (i, (_, _, text)) in schema::ALL.iter().enumerate() {
                if i > 0 {
                    println!();
                }
                print!("{text}");
            }
            ExitCode::SUCCESS
        }
        [name] => match schema::get(name) {
            Some(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            None => {
                eprintln!(
                    "closedloop-telemetry schema: unknown schema `{name}` (relay, datadog or posthog)"
                );
                ExitCode::from(2)
            }
        },
        _ => {
            eprintln!("closedloop-telemetry schema: at most one name\n");
            eprint!("{USAGE}");
            ExitCode::from(2)
        }
    }
}

/// `audit [--ndjson FILE|-] [--verbose]`: the dry-run audit view.
fn audit(args: &[String]) -> ExitCode {
    use closedloop_telemetry::audit;
    let fail = |e: String| {
        eprintln!("closedloop-telemetry audit: {e}\n");
        eprint!("{USAGE}");
        ExitCode::from(2)
    };
    let (mut ndjson, mut verbose) = (None, false);
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--verbose" => verbose = true,
            "--ndjson" => match it.next() {
                Some(v) => ndjson = Some(v.clone()),
                None => return fail("--ndjson needs a file name or -".into()),
            },
            other => match other.strip_prefix("--ndjson=") {
                Some(v) => ndjson = Some(v.to_string()),
                None => return fail(format!("unknown option `{other}`")),
            },
        }
    }
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
    let report = match ndjson.as_deref() {
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
