//! The command table and the discovery commands: each row names a command, declares its
//! arguments and points at the handler that answers it from guestutils' queries. `render`,
//! `run`, `health` and `notify` are rows too; their work is in their own modules, which
//! this layer calls and which never call it (shared helpers such as `addr` sit below).

use guestutils::discovery;

use crate::addr::{first_ipv4, resolve_ipv4};
use crate::args::{Invocation, Kind, Opt, Spec};
use crate::env::ProcessEnv;
use crate::format::{self, Format};
use crate::output;
use crate::render::{self, Change};

/// Exit statuses: the command failed; the command line is unusable.
pub const FAILED: u8 = 1;
pub const USAGE: u8 = 2;

/// A command's answer, one entry per output line, or the message of its failure.
pub type Outcome = Result<Vec<String>, String>;

/// What a command does.
#[derive(Clone, Copy)]
pub enum Handler {
    /// Answers a question: lines on stdout, or a message and exit status 1.
    Query(fn(&Invocation, &ProcessEnv) -> Outcome),
    /// Runs to an exit status of its own, printing what it must itself.
    Process(fn(&Invocation, &ProcessEnv) -> u8),
}

/// What `--help` says the program is.
pub const ABOUT: &str = "maestro-guest: the in-container agent of maestro.\n\
The discovery commands answer from the variables maestro gives every container,\n\
with the defaults and messages of MaestroNG's guestutils; render fills templates with
them, and run is the container's entry point: init, readiness, sd_notify.";

const DEFAULT: Opt = Opt {
    name: "default",
    kind: Kind::Int("N"),
    repeat: false,
    help: "answer N when the port variable is unset",
};

pub const COMMANDS: &[Spec<Handler>] = &[
    Spec {
        name: "env-name",
        args: &[],
        opts: &[],
        about: "the environment's name (MAESTRO_ENVIRONMENT_NAME, else 'local')",
        handler: Handler::Query(env_name),
    },
    Spec {
        name: "service",
        args: &[],
        opts: &[],
        about: "this container's service (SERVICE_NAME)",
        handler: Handler::Query(service),
    },
    Spec {
        name: "container",
        args: &[],
        opts: &[],
        about: "this container's name (CONTAINER_NAME)",
        handler: Handler::Query(container),
    },
    Spec {
        name: "host-address",
        args: &[],
        opts: &[Opt {
            name: "ip",
            kind: Kind::Switch,
            repeat: false,
            help: "resolve it to its first IPv4 address",
        }],
        about: "the address of this container's ship (CONTAINER_HOST_ADDRESS)",
        handler: Handler::Query(host_address),
    },
    Spec {
        name: "internal-address",
        args: &[],
        opts: &[Opt {
            name: "interface",
            kind: Kind::Text("IF"),
            repeat: false,
            help: "read interface IF instead of eth0",
        }],
        about: "this container's own IPv4 address (the first one of eth0)",
        handler: Handler::Query(internal_address),
    },
    Spec {
        name: "port",
        args: &["NAME"],
        opts: &[DEFAULT],
        about: "the container-side number of this container's port NAME",
        handler: Handler::Query(port),
    },
    Spec {
        name: "host",
        args: &["SERVICE", "INSTANCE"],
        opts: &[],
        about: "the ship address of an instance of a service",
        handler: Handler::Query(host),
    },
    Spec {
        name: "specific-port",
        args: &["SERVICE", "INSTANCE", "PORT"],
        opts: &[DEFAULT],
        about: "the external (ship-side) number of a port of an instance",
        handler: Handler::Query(specific_port),
    },
    Spec {
        name: "exposed-port",
        args: &["SERVICE", "INSTANCE", "PORT"],
        opts: &[DEFAULT],
        about: "the container-side number of a port of an instance (own service only)",
        handler: Handler::Query(exposed_port),
    },
    Spec {
        name: "nodes",
        args: &["SERVICE"],
        opts: &[
            Opt {
                name: "port",
                kind: Kind::Text("NAME"),
                repeat: true,
                help: "append :NUMBER, the external number of port NAME",
            },
            Opt {
                name: "min",
                kind: Kind::Count("N"),
                repeat: false,
                help: "fail unless SERVICE has at least N instances (default 1)",
            },
            Opt {
                name: "format",
                kind: Kind::Choice(Format::NAMES),
                repeat: false,
                help: "one node per line (default), one CSV record or a JSON array",
            },
        ],
        about: "host[:port...] of every instance of SERVICE, in instance order",
        handler: Handler::Query(nodes),
    },
    Spec {
        name: "render",
        args: &["SPEC..."],
        opts: &[],
        about: render::HELP,
        handler: Handler::Query(render),
    },
    Spec {
        name: "run",
        args: &["COMMAND..."],
        opts: RUN_OPTIONS,
        about: "the entry point: wait, render, run COMMAND as init, report readiness\n\
Waits for the --wait services, renders the --render templates (all or nothing), then\n\
runs COMMAND (after --) as a proper init: every catchable signal is forwarded, a stop\n\
signal (TERM, INT, QUIT) starts the grace period after which everything left is\n\
killed, orphans are reaped, and the exit status is COMMAND's (128+N for signal N).\n\
COMMAND gets a NOTIFY_SOCKET speaking sd_notify (READY=1, STATUS=..., STOPPING=1).\n\
Inside a maestro play the app's states go to the controller the moment they change.",
        handler: Handler::Process(run),
    },
    Spec {
        name: "health",
        args: &[],
        opts: &[],
        about: "exit 0 when 'run' reports the app ready, else 1 (for a Docker HEALTHCHECK)",
        handler: Handler::Process(health),
    },
    Spec {
        name: "notify",
        args: &["ASSIGNMENT..."],
        opts: &[],
        about: "send sd_notify assignments (READY=1, STATUS=text ...) to NOTIFY_SOCKET",
        handler: Handler::Process(notify),
    },
];

fn one(answer: impl ToString) -> Outcome {
    Ok(vec![answer.to_string()])
}

fn discovered<T: ToString>(result: Result<T, discovery::DiscoveryError>) -> Outcome {
    result.map_err(|err| err.to_string()).and_then(one)
}

fn env_name(_: &Invocation, vars: &ProcessEnv) -> Outcome {
    one(discovery::environment_name(vars))
}

fn service(_: &Invocation, vars: &ProcessEnv) -> Outcome {
    discovered(discovery::service_name(vars))
}

fn container(_: &Invocation, vars: &ProcessEnv) -> Outcome {
    discovered(discovery::container_name(vars))
}

fn host_address(inv: &Invocation, vars: &ProcessEnv) -> Outcome {
    // MaestroNG resolved before checking, so with `as_ip_address` an unset variable
    // became gethostbyname('') = '0.0.0.0' instead of an error. An unset address is
    // unset whether or not it is to be resolved: check first.
    let address = discovery::container_host_address(vars).map_err(|err| err.to_string())?;
    if !inv.flag("ip") {
        return one(address);
    }
    one(resolve_ipv4(&address)?)
}

fn internal_address(inv: &Invocation, _: &ProcessEnv) -> Outcome {
    let interface = inv.value("interface").unwrap_or("eth0");
    first_ipv4(interface)
        .map_err(|err| err.to_string())
        .and_then(one)
}

fn port(inv: &Invocation, vars: &ProcessEnv) -> Outcome {
    discovered(discovery::port(vars, inv.arg(0), inv.value("default")))
}

fn host(inv: &Invocation, vars: &ProcessEnv) -> Outcome {
    discovered(discovery::specific_host(vars, inv.arg(0), inv.arg(1)))
}

fn specific_port(inv: &Invocation, vars: &ProcessEnv) -> Outcome {
    let (service, instance, port) = (inv.arg(0), inv.arg(1), inv.arg(2));
    discovered(discovery::specific_port(
        vars,
        service,
        instance,
        port,
        inv.value("default"),
    ))
}

fn exposed_port(inv: &Invocation, vars: &ProcessEnv) -> Outcome {
    let (service, instance, port) = (inv.arg(0), inv.arg(1), inv.arg(2));
    discovered(discovery::specific_exposed_port(
        vars,
        service,
        instance,
        port,
        inv.value("default"),
    ))
}

fn nodes(inv: &Invocation, vars: &ProcessEnv) -> Outcome {
    let ports: Vec<&str> = inv.values("port").collect();
    let minimum = inv.count("min").unwrap_or(1);
    let format = inv
        .value("format")
        .and_then(Format::from_name)
        .unwrap_or(Format::Lines);
    let nodes =
        discovery::node_list(vars, inv.arg(0), &ports, minimum).map_err(|err| err.to_string())?;
    Ok(format::nodes(format, &nodes))
}

/// Renders every template; prints only what goes to standard output (`-`), like `cp`.
fn render(inv: &Invocation, vars: &ProcessEnv) -> Outcome {
    for rendered in render::render_all(&inv.args, vars)? {
        if let Change::Stdout(text) = rendered.change {
            output::stdout(&text)
                .map_err(|err| format!("cannot write to standard output: {err}"))?;
        }
    }
    Ok(Vec::new())
}

const RUN_OPTIONS: &[Opt] = &[
    Opt {
        name: "render",
        kind: Kind::Text("SRC[:DST[:MODE]]"),
        repeat: true,
        help: "render this template before COMMAND starts (as the render command does)",
    },
    Opt {
        name: "ready-when",
        kind: Kind::Text("PROBE"),
        repeat: false,
        help: "when the app is ready: started (default), notify, tcp:PORT, http:PORT/PATH, exec:COMMAND, file:PATH; PORT may be a port name",
    },
    Opt {
        name: "wait",
        kind: Kind::Text("service:NAME"),
        repeat: true,
        help: "before starting, wait until every instance of service NAME accepts connections on its ports",
    },
    Opt {
        name: "wait-timeout",
        kind: Kind::Count("SECONDS"),
        repeat: false,
        help: "give up waiting after SECONDS (default 60)",
    },
    Opt {
        name: "ready-timeout",
        kind: Kind::Count("SECONDS"),
        repeat: false,
        help: "report the app failed if it is not ready after SECONDS (it keeps running)",
    },
    Opt {
        name: "grace",
        kind: Kind::Count("SECONDS"),
        repeat: false,
        help: "after a stop signal, kill everything left after SECONDS (default 10)",
    },
];

fn run(inv: &Invocation, env: &ProcessEnv) -> u8 {
    let usage = |message: String| {
        crate::output::usage_error(&message, &crate::args::usage_hint(Some(run_spec())));
        USAGE
    };
    let ready_when = match inv.value("ready-when") {
        None => crate::run::ReadyWhen::Started,
        Some(text) => match crate::run::ReadyWhen::parse(text, env) {
            Ok(when) => when,
            Err(message) => return usage(message),
        },
    };
    let mut wait = Vec::new();
    for target in inv.values("wait") {
        match target.strip_prefix("service:") {
            Some(service) if !service.is_empty() => wait.push(service.to_owned()),
            _ => {
                return usage(format!("invalid --wait '{target}': expected service:NAME"));
            }
        }
    }
    // A week at most: longer is a mistake, and every deadline computed from these must be
    // representable (a huge --grace once aborted the init and killed the app at once).
    const MAX_SECONDS: u64 = 7 * 24 * 3600;
    for name in ["wait-timeout", "grace", "ready-timeout"] {
        if let Some(n) = inv.count(name).filter(|&n| n as u64 > MAX_SECONDS) {
            return usage(format!(
                "invalid --{name} {n}: at most {MAX_SECONDS} seconds (a week)"
            ));
        }
    }
    let seconds = |name: &str| {
        inv.count(name)
            .map(|n| std::time::Duration::from_secs(n as u64))
    };
    let options = crate::run::Options {
        command: inv.args.clone(),
        render: inv.values("render").map(str::to_owned).collect(),
        ready_when,
        wait,
        wait_timeout: seconds("wait-timeout").unwrap_or(std::time::Duration::from_secs(60)),
        grace: seconds("grace").unwrap_or(std::time::Duration::from_secs(10)),
        ready_timeout: seconds("ready-timeout"),
    };
    crate::run::run(options, env)
}

fn run_spec() -> &'static Spec<Handler> {
    COMMANDS
        .iter()
        .find(|s| s.name == "run")
        .unwrap_or(&COMMANDS[0])
}

fn health(_: &Invocation, env: &ProcessEnv) -> u8 {
    match crate::health::check(env) {
        Ok(state) => {
            let _ = crate::output::answer(&[state]);
            0
        }
        Err(message) => {
            crate::output::error(&message);
            FAILED
        }
    }
}

fn notify(inv: &Invocation, env: &ProcessEnv) -> u8 {
    use guestutils::Vars;
    let Some(socket) = env.var("NOTIFY_SOCKET").filter(|s| !s.is_empty()) else {
        crate::output::error(
            "NOTIFY_SOCKET is not set: not running under 'maestro-guest run' or systemd",
        );
        return FAILED;
    };
    match crate::run::notify(socket, &inv.args) {
        Ok(()) => 0,
        Err(e) => {
            crate::output::error(&format!("cannot notify {socket}: {e}"));
            FAILED
        }
    }
}
