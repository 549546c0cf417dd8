//! `simship`: simulated ships for benchmarks (see `maestro_tests::simship`).
//!
//!     simship --ships N [--base-port P] [--latency-ms L] [--in-flight K]
//!             [--images a,b=exit:3,...] [--threads T]
//!
//! Serves N simulated Docker engines on 127.0.0.1 (ports P, P+1, ...; free ports when P
//! is 0), every request waiting L ms with at most K in flight per ship (0: no limit).
//! Prints `ports: P1,P2,...` on stdout once all listen, then serves until killed. Every
//! ship answers `GET /_simship/stats` (no latency) with its counters.

use std::io::Write;
use std::time::Duration;

use maestro_tests::simship::{ImageRule, Options, launch};

const USAGE: &str = "usage: simship --ships N [--base-port P] [--latency-ms L] [--in-flight K] [--images NAME[=exit:CODE|=unhealthy],...] [--threads T]";

fn fail(message: &str) -> ! {
    let _ = writeln!(std::io::stderr(), "simship: {message}\n{USAGE}");
    std::process::exit(2);
}

fn main() {
    let mut ships: Option<usize> = None;
    let mut options = Options::new(Duration::ZERO, 0);
    let mut threads = 0usize;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .unwrap_or_else(|| fail(&format!("{name} needs a value")))
        };
        let number = |name: &str, text: String| -> u64 {
            text.parse()
                .unwrap_or_else(|_| fail(&format!("{name}: {text:?} is not a whole number")))
        };
        match arg.as_str() {
            "--ships" => ships = Some(number("--ships", value("--ships")) as usize),
            "--base-port" => {
                let port = number("--base-port", value("--base-port"));
                options.base_port = u16::try_from(port)
                    .unwrap_or_else(|_| fail(&format!("--base-port: {port} is above 65535")));
            }
            "--latency-ms" => {
                options.latency =
                    Duration::from_millis(number("--latency-ms", value("--latency-ms")))
            }
            "--in-flight" => {
                options.in_flight = number("--in-flight", value("--in-flight")) as usize
            }
            "--threads" => threads = number("--threads", value("--threads")) as usize,
            "--images" => {
                options.images = value("--images")
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(|s| s.parse::<ImageRule>().unwrap_or_else(|e| fail(&e)))
                    .collect();
            }
            "-h" | "--help" => {
                let _ = writeln!(std::io::stdout(), "{USAGE}");
                return;
            }
            other => fail(&format!("unknown argument {other:?}")),
        }
    }
    let ships = ships.unwrap_or_else(|| fail("--ships is required"));
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if threads > 0 {
        builder.worker_threads(threads);
    }
    let runtime = builder
        .enable_all()
        .build()
        .unwrap_or_else(|e| fail(&format!("cannot start the runtime: {e}")));
    runtime.block_on(async {
        let served = launch(ships, options)
            .await
            .unwrap_or_else(|e| fail(&e.to_string()));
        let ports: Vec<String> = served.iter().map(|s| s.port.to_string()).collect();
        let mut out = std::io::stdout();
        let _ = writeln!(out, "ports: {}", ports.join(","));
        let _ = out.flush();
        let _ = tokio::signal::ctrl_c().await;
    });
    runtime.shutdown_background();
}
