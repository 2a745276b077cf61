//! `ferry-bridge`: parses the configuration, wires SIGTERM/Ctrl-C to a drain and SIGHUP to a
//! key reload, runs the bridge. `ferry-bridge token ...` prints a development token instead,
//! `ferry-bridge call ...` makes one request, `ferry-bridge config ...` prints the effective
//! configuration (flags, env, `--config` file), `ferry-bridge check ...` checks it against
//! the broker. The bridge's runtime gets `--worker-threads` workers.

use clap::Parser;
use ferry_bridge::auth::mint::{MintArgs, mint};
use ferry_bridge::cli::call::{CallArgs, call};
use ferry_bridge::cli::check::check;
use ferry_bridge::{Bridge, Config, Reloader, config_file};
use tokio_util::sync::CancellationToken;

/// mimalloc: fewer cycles per request than glibc's allocator, whose frees across lapin's and
/// tokio's threads showed in the profile (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    if std::env::args_os().nth(1).is_some_and(|a| a == "token") {
        let args = MintArgs::parse_from(std::env::args_os().skip(1));
        return match mint(&args) {
            Ok(token) => {
                println!("{token}");
                std::process::ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("ferry-bridge token: {e}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    if std::env::args_os().nth(1).is_some_and(|a| a == "call") {
        let args = CallArgs::parse_from(std::env::args_os().skip(1));
        let Some(rt) = runtime(None) else {
            return std::process::ExitCode::FAILURE;
        };
        return match rt.block_on(call(&args)) {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("ferry-bridge call: {e}");
                std::process::ExitCode::from(e.exit_code())
            }
        };
    }
    let mut argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // `config` and `check` take the bridge's own flags (and `--config` file).
    let command = argv
        .get(1)
        .and_then(|a| a.to_str())
        .filter(|a| matches!(*a, "config" | "check"))
        .map(str::to_owned);
    if command.is_some() {
        argv.remove(1);
    }
    let argv = match config_file::with_file(argv, |name| std::env::var(name).ok()) {
        Ok(argv) => argv,
        Err(e) => {
            eprintln!("ferry-bridge: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    if command.as_deref() == Some("config") {
        return match config_file::effective(argv) {
            Ok(text) => {
                print!("{text}");
                std::process::ExitCode::SUCCESS
            }
            Err(e) => e.exit(),
        };
    }
    let config = Config::parse_from(argv);
    let workers = command.is_none().then(|| config.workers());
    let Some(rt) = runtime(workers) else {
        return std::process::ExitCode::FAILURE;
    };
    if command.as_deref() == Some("check") {
        let report = rt.block_on(check(&config));
        print!("{}", report.text);
        return std::process::ExitCode::from(u8::from(report.failures > 0));
    }
    rt.block_on(serve(config))
}

/// A multi-threaded runtime with `workers` workers (tokio's default: one per core), or `None`
/// after saying why it could not start.
fn runtime(workers: Option<usize>) -> Option<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = workers {
        builder.worker_threads(n);
    }
    match builder.enable_all().build() {
        Ok(rt) => Some(rt),
        Err(e) => {
            eprintln!("ferry-bridge: cannot start the runtime: {e}");
            None
        }
    }
}

/// Runs the bridge until SIGTERM or Ctrl-C has drained it.
async fn serve(config: Config) -> std::process::ExitCode {
    ferry_bridge::logging::init(config.log_format);
    let bridge = match Bridge::bind(config).await {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(error = %e, "cannot start");
            return std::process::ExitCode::FAILURE;
        }
    };
    let addr = bridge.local_addr();
    let (http, ws) = if bridge.tls() {
        ("https", "wss")
    } else {
        ("http", "ws")
    };
    println!("ferry-bridge listening on {http}://{addr} (socket {ws}://{addr}/ws)");
    let admin = bridge.admin_addr();
    println!("ferry-bridge admin on http://{admin} (/metrics, /healthz, /readyz)");
    let shutdown = CancellationToken::new();
    tokio::spawn(signals(shutdown.clone()));
    tokio::spawn(reloads(bridge.reloader()));
    bridge.run(shutdown).await;
    std::process::ExitCode::SUCCESS
}

/// Cancels `token` on SIGTERM or Ctrl-C.
async fn signals(token: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return token.cancel();
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutdown signal received; draining");
    token.cancel();
}

/// Re-reads the key files on every SIGHUP.
async fn reloads(reloader: Reloader) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            return;
        };
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading keys");
            reloader.reload();
        }
    }
    #[cfg(not(unix))]
    let _ = reloader;
}
