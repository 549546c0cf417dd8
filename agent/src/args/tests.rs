//! Table-driven tests of the argument grammar against a small command table.

use super::*;

const TABLE: &[Spec<()>] = &[
    Spec {
        name: "plain",
        args: &[],
        opts: &[],
        about: "No arguments.",
        handler: (),
    },
    Spec {
        name: "pair",
        args: &["A", "B"],
        opts: &[
            Opt {
                name: "flag",
                kind: Kind::Switch,
                repeat: false,
                help: "a switch",
            },
            Opt {
                name: "text",
                kind: Kind::Text("T"),
                repeat: true,
                help: "any text",
            },
            Opt {
                name: "int",
                kind: Kind::Int("N"),
                repeat: false,
                help: "an integer",
            },
            Opt {
                name: "count",
                kind: Kind::Count("N"),
                repeat: false,
                help: "a count",
            },
            Opt {
                name: "pick",
                kind: Kind::Choice(&["x", "y"]),
                repeat: false,
                help: "x or y",
            },
        ],
        about: "Two arguments and every kind of option.",
        handler: (),
    },
    Spec {
        name: "many",
        args: &["FIRST", "REST..."],
        opts: &[Opt {
            name: "flag",
            kind: Kind::Switch,
            repeat: false,
            help: "a switch",
        }],
        about: "One argument, then one or more.\nMore about it, shown in its own help only.",
        handler: (),
    },
];

/// What a command line parses to, flattened for comparison.
#[derive(Debug, PartialEq, Eq)]
enum Got {
    Help(Option<&'static str>),
    Version,
    Run(&'static str, Vec<String>, Vec<(&'static str, String)>),
}

/// The command table row's name and the message of a usage error.
type Refused = (Option<&'static str>, String);

fn run(name: &'static str, args: &[&str], opts: &[(&'static str, &str)]) -> Got {
    let args = args.iter().map(|a| (*a).to_owned()).collect();
    let opts = opts.iter().map(|(n, v)| (*n, (*v).to_owned())).collect();
    Got::Run(name, args, opts)
}

fn got(argv: &[&str]) -> Result<Got, Refused> {
    let argv: Vec<String> = argv.iter().map(|s| (*s).to_owned()).collect();
    match parse(TABLE, &argv) {
        Ok(Parsed::Help(spec)) => Ok(Got::Help(spec.map(|s| s.name))),
        Ok(Parsed::Version) => Ok(Got::Version),
        Ok(Parsed::Run(spec, inv)) => Ok(Got::Run(spec.name, inv.args, inv.opts)),
        Err(err) => Err((err.spec.map(|s| s.name), err.message)),
    }
}

#[test]
fn accepted_command_lines() {
    let cases: Vec<(&[&str], Got)> = vec![
        (&["plain"], run("plain", &[], &[])),
        (&["pair", "a", "b"], run("pair", &["a", "b"], &[])),
        (
            &["pair", "--flag", "a", "b"],
            run("pair", &["a", "b"], &[("flag", "")]),
        ),
        (
            &["pair", "a", "--int", "-3", "b"],
            run("pair", &["a", "b"], &[("int", "-3")]),
        ),
        (
            &["pair", "a", "b", "--int=1_000"],
            run("pair", &["a", "b"], &[("int", "1_000")]),
        ),
        (
            &[
                "pair",
                "--text",
                "t1",
                "a",
                "--text=t2",
                "b",
                "--text",
                "--flag",
            ],
            run(
                "pair",
                &["a", "b"],
                &[("text", "t1"), ("text", "t2"), ("text", "--flag")],
            ),
        ),
        (
            &["pair", "--count", "0", "--pick", "y", "a", "b"],
            run("pair", &["a", "b"], &[("count", "0"), ("pick", "y")]),
        ),
        (
            &["pair", "--", "-a", "--flag"],
            run("pair", &["-a", "--flag"], &[]),
        ),
        (&["pair", "-", "b"], run("pair", &["-", "b"], &[])),
        (
            &["pair", "a", "--", "--help"],
            run("pair", &["a", "--help"], &[]),
        ),
        (
            &["pair", "--text=", "a", "b"],
            run("pair", &["a", "b"], &[("text", "")]),
        ),
        (
            &["pair", "--text=x=y", "a", "b"],
            run("pair", &["a", "b"], &[("text", "x=y")]),
        ),
        (&["many", "a", "b"], run("many", &["a", "b"], &[])),
        (
            &["many", "a", "b", "--flag", "c", "-", "--", "--d"],
            run("many", &["a", "b", "c", "-", "--d"], &[("flag", "")]),
        ),
        (&["--help"], Got::Help(None)),
        (&["-h", "whatever"], Got::Help(None)),
        (&["--version"], Got::Version),
        (&["plain", "--help"], Got::Help(Some("plain"))),
        (&["pair", "-h"], Got::Help(Some("pair"))),
        // Help wins over the problems around it.
        (
            &["pair", "--int", "x", "--nope", "-h"],
            Got::Help(Some("pair")),
        ),
    ];
    for (argv, want) in cases {
        assert_eq!(got(argv), Ok(want), "{argv:?}");
    }
}

#[test]
fn usage_errors() {
    let cases: &[(&[&str], Option<&str>, &str)] = &[
        (&[], None, "missing command"),
        (&["nope"], None, "unknown command 'nope'"),
        (&["--nope"], None, "unknown option '--nope'"),
        (&["-x"], None, "unknown option '-x'"),
        (
            &["plain", "extra"],
            Some("plain"),
            "unexpected argument 'extra'",
        ),
        (&["pair"], Some("pair"), "missing argument A"),
        (&["pair", "a"], Some("pair"), "missing argument B"),
        (
            &["pair", "a", "b", "c"],
            Some("pair"),
            "unexpected argument 'c'",
        ),
        (&["many"], Some("many"), "missing argument FIRST"),
        (&["many", "a"], Some("many"), "missing argument REST"),
        (
            &["many", "a", "--flag"],
            Some("many"),
            "missing argument REST",
        ),
        (
            &["pair", "a", "b", "--nope"],
            Some("pair"),
            "unknown option '--nope'",
        ),
        (
            &["pair", "a", "b", "--nope=1"],
            Some("pair"),
            "unknown option '--nope'",
        ),
        (
            &["pair", "a", "b", "-f"],
            Some("pair"),
            "unknown option '-f'",
        ),
        (
            &["pair", "a", "b", "--flag=yes"],
            Some("pair"),
            "option --flag takes no value",
        ),
        (
            &["pair", "a", "b", "--flag", "--flag"],
            Some("pair"),
            "option --flag given more than once",
        ),
        (
            &["pair", "a", "b", "--int", "1", "--int=2"],
            Some("pair"),
            "option --int given more than once",
        ),
        (
            &["pair", "a", "b", "--int"],
            Some("pair"),
            "option --int needs a value N",
        ),
        (
            &["pair", "a", "b", "--pick"],
            Some("pair"),
            "option --pick needs a value x|y",
        ),
        (
            &["pair", "a", "b", "--int", "x"],
            Some("pair"),
            "invalid value 'x' for --int: expected an integer",
        ),
        (
            &["pair", "a", "b", "--int", "1.5"],
            Some("pair"),
            "invalid value '1.5' for --int: expected an integer",
        ),
        (
            &["pair", "a", "b", "--count", "-1"],
            Some("pair"),
            "invalid value '-1' for --count: expected a non-negative integer",
        ),
        (
            &["pair", "a", "b", "--count="],
            Some("pair"),
            "invalid value '' for --count: expected a non-negative integer",
        ),
        (
            &["pair", "a", "b", "--pick", "z"],
            Some("pair"),
            "invalid value 'z' for --pick: expected one of x, y",
        ),
    ];
    for (argv, spec, message) in cases {
        assert_eq!(got(argv), Err((*spec, (*message).to_owned())), "{argv:?}");
    }
}

#[test]
fn invocation_accessors() {
    let argv: Vec<String> = [
        "pair", "a", "b", "--text", "1", "--text", "2", "--count", "7",
    ]
    .map(String::from)
    .to_vec();
    let Ok(Parsed::Run(_, inv)) = parse(TABLE, &argv) else {
        panic!("should parse")
    };
    assert_eq!((inv.arg(0), inv.arg(1), inv.arg(2)), ("a", "b", ""));
    assert_eq!(inv.values("text").collect::<Vec<_>>(), ["1", "2"]);
    assert_eq!(inv.value("text"), Some("1"));
    assert_eq!(inv.value("int"), None);
    assert_eq!(inv.count("count"), Some(7));
    assert!(inv.flag("count"));
    assert!(!inv.flag("flag"));
}

#[test]
fn usage_and_help_texts() {
    assert_eq!(
        usage_line(&TABLE[1]),
        "maestro-guest pair A B [--flag] [--text T]... [--int N] [--count N] [--pick x|y]"
    );
    assert_eq!(usage_hint(Some(&TABLE[0])), "usage: maestro-guest plain");
    assert_eq!(
        usage_hint::<()>(None),
        "usage: maestro-guest COMMAND [ARGS]... (see 'maestro-guest --help')"
    );
    assert_eq!(
        command_help(&TABLE[1]),
        "usage: maestro-guest pair A B [--flag] [--text T]... [--int N] [--count N] [--pick x|y]\n\
         \n\
         Two arguments and every kind of option.\n\
         \n\
         options:\n\
         \x20 --flag      a switch\n\
         \x20 --text T    any text\n\
         \x20 --int N     an integer\n\
         \x20 --count N   a count\n\
         \x20 --pick x|y  x or y\n\
         \x20 -h, --help  show this help\n"
    );
    assert_eq!(
        command_help(&TABLE[0]),
        "usage: maestro-guest plain\n\nNo arguments.\n\noptions:\n  -h, --help  show this help\n"
    );
    assert_eq!(
        command_help(&TABLE[2]),
        "usage: maestro-guest many FIRST [--flag] [--] REST...\n\n\
         One argument, then one or more.\nMore about it, shown in its own help only.\n\n\
         options:\n  --flag      a switch\n  -h, --help  show this help\n"
    );
    let help = program_help("About.", TABLE);
    assert!(help.starts_with("About.\n\nusage: maestro-guest COMMAND [ARGS]...\n\ncommands:\n  plain  No arguments.\n  pair   Two"), "{help}");
    assert!(
        help.contains("\n  many   One argument, then one or more.\n\noptions:"),
        "{help}"
    );
}
