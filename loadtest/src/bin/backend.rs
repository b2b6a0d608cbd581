//! The load-test upstream: `backend [--listen 127.0.0.1:PORT] [--threads N]`.

use std::io::Write;
use std::net::SocketAddr;

use anyhow::{Context, Result, bail};
use tokio::signal::unix::{SignalKind, signal};

const USAGE: &str = "usage: backend [--listen 127.0.0.1:PORT] [--threads N]";

struct Args {
    listen: SocketAddr,
    threads: usize,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        threads: 1,
    };
    let mut iter = std::env::args().skip(1);
    while let Some(arg) = iter.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) => (f.to_string(), Some(v.to_string())),
            None => (arg.clone(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| iter.next())
                .with_context(|| format!("{flag} needs a value\n{USAGE}"))
        };
        match flag.as_str() {
            "--listen" => {
                let v = value()?;
                args.listen = v.parse().with_context(|| {
                    format!("--listen {v:?} is not an address like 127.0.0.1:8080")
                })?;
            }
            "--threads" => {
                let v = value()?;
                args.threads = v
                    .parse()
                    .with_context(|| format!("--threads {v:?} is not a number"))?;
                if args.threads == 0 {
                    bail!("--threads must be at least 1");
                }
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?}\n{USAGE}"),
        }
    }
    Ok(args)
}

fn main() -> Result<()> {
    let args = parse_args()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads)
        .enable_all()
        .build()
        .context("building the tokio runtime")?;
    runtime.block_on(run(args))
}

async fn run(args: Args) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let addr = listener.local_addr().context("reading the bound address")?;
    let mut terminate = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;

    // Callers wait for this exact line before sending traffic.
    let mut stdout = std::io::stdout();
    writeln!(stdout, "listening on {addr}").context("writing to stdout")?;
    stdout.flush().context("flushing stdout")?;

    tokio::select! {
        result = loadtest::backend::serve(listener) => result,
        _ = terminate.recv() => Ok(()),
        _ = interrupt.recv() => Ok(()),
    }
}
