use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::testing::{Ca, Server, self_signed};
use super::*;

fn limits() -> Limits {
    Limits {
        connect: Duration::from_secs(2),
        read: None,
        total: Some(Duration::from_secs(5)),
    }
}

/// A fresh folder for one test's files.
fn folder(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("maestro-http-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn get(url: &str) -> Request<'_> {
    Request {
        method: "get",
        url,
        headers: &[],
        auth: None,
        json: None,
        body_limit: 1 << 20,
    }
}

fn no_env(_: &str) -> Option<String> {
    None
}

#[tokio::test]
async fn https_with_the_ca_given_sends_headers_and_basic_auth() {
    let ca = Ca::new();
    let server = Server::start(Some(ca.issue(&["127.0.0.1"])), |_| (200, "ok".into()));
    let dir = folder("ca-given");
    std::fs::write(dir.join("ca.pem"), &ca.pem).unwrap();
    // Relative to the environment file's folder.
    let settings = Settings::new(dir.clone(), no_env);
    let client = Client::new(&settings, &Verify::Bundle("ca.pem".into()), true, limits()).unwrap();
    let url = format!("https://127.0.0.1:{}/health?x=1", server.port);
    let headers = [("X-Probe".to_owned(), "maestro".to_owned())];
    let auth = ("alice".to_owned(), Secret::new("s3cret".into()));
    let answer = client
        .send(Request {
            headers: &headers,
            auth: Some(&auth),
            ..get(&url)
        })
        .await
        .unwrap();
    assert_eq!((answer.status, answer.body.as_str()), (200, "ok"));
    let seen = server.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].method, "GET");
    assert_eq!(seen[0].path, "/health?x=1");
    assert_eq!(seen[0].header("x-probe"), Some("maestro"));
    // base64("alice:s3cret")
    assert_eq!(
        seen[0].header("authorization"),
        Some("Basic YWxpY2U6czNjcmV0")
    );
}

#[tokio::test]
async fn verify_false_accepts_a_self_signed_certificate() {
    let server = Server::start(Some(self_signed(&["127.0.0.1"])), |_| (200, "ok".into()));
    let client = Client::new(&Settings::default(), &Verify::Off, true, limits()).unwrap();
    let url = format!("https://127.0.0.1:{}/", server.port);
    assert_eq!(client.send(get(&url)).await.unwrap().status, 200);
}

#[tokio::test]
async fn an_untrusted_certificate_is_a_tls_error_naming_the_host() {
    let server = Server::start(Some(self_signed(&["localhost"])), |_| (200, "ok".into()));
    let client = Client::new(&Settings::default(), &Verify::Default, true, limits()).unwrap();
    let url = format!("https://localhost:{}/", server.port);
    let e = client.send(get(&url)).await.unwrap_err();
    assert!(e.certificate, "{e:?}");
    assert!(
        e.message.starts_with(
            "TLS: the certificate of localhost is not signed by a CA maestro trusts (UnknownIssuer; trusted: the system's CA certificates"
        ),
        "{}",
        e.message
    );
    assert!(server.requests().is_empty());

    // Signed by a CA maestro trusts, but for another name.
    let ca = Ca::new();
    let server = Server::start(Some(ca.issue(&["other.example"])), |_| (200, "ok".into()));
    let dir = folder("wrong-name");
    std::fs::write(dir.join("ca.pem"), &ca.pem).unwrap();
    let client = Client::new(
        &Settings::default(),
        &Verify::Bundle(dir.join("ca.pem").display().to_string()),
        true,
        limits(),
    )
    .unwrap();
    let url = format!("https://127.0.0.1:{}/", server.port);
    let e = client.send(get(&url)).await.unwrap_err();
    assert_eq!(
        e.message,
        "TLS: the certificate of 127.0.0.1 is not valid for the name 127.0.0.1 (NotValidForName)"
    );
}

#[tokio::test]
async fn the_environment_names_the_ca_bundle_as_for_requests() {
    let ca = Ca::new();
    let server = Server::start(Some(ca.issue(&["127.0.0.1"])), |_| (200, "ok".into()));
    let dir = folder("env-bundle");
    let bundle = dir.join("bundle.pem");
    std::fs::write(&bundle, &ca.pem).unwrap();
    let url = format!("https://127.0.0.1:{}/", server.port);
    let bundle_text = bundle.display().to_string();
    for variable in ["REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"] {
        let settings = Settings::new(PathBuf::from("/nowhere"), |name| {
            (name == variable).then(|| bundle_text.clone())
        });
        let client = Client::new(&settings, &Verify::Default, true, limits()).unwrap();
        assert_eq!(
            client.send(get(&url)).await.unwrap().status,
            200,
            "{variable}"
        );
    }
    // REQUESTS_CA_BUNDLE wins over CURL_CA_BUNDLE; an empty value is unset.
    let settings = Settings::new(PathBuf::new(), |name| match name {
        "REQUESTS_CA_BUNDLE" => Some("/no/such/bundle.pem".into()),
        _ => Some(bundle_text.clone()),
    });
    let e = Client::new(&settings, &Verify::Default, true, limits())
        .err()
        .unwrap();
    assert!(
        e.starts_with("REQUESTS_CA_BUNDLE: /no/such/bundle.pem: "),
        "{e}"
    );
    let settings = Settings::new(PathBuf::new(), |name| match name {
        "REQUESTS_CA_BUNDLE" => Some(String::new()),
        _ => Some(bundle_text.clone()),
    });
    let client = Client::new(&settings, &Verify::Default, true, limits()).unwrap();
    assert_eq!(client.send(get(&url)).await.unwrap().status, 200);

    // A check's own `verify` wins over the environment, either way.
    let other = folder("env-bundle-other");
    std::fs::write(other.join("ca.pem"), Ca::new().pem).unwrap();
    let settings = Settings::new(other.clone(), |name| {
        (name == "REQUESTS_CA_BUNDLE").then(|| bundle_text.clone())
    });
    let client = Client::new(&settings, &Verify::Bundle("ca.pem".into()), true, limits()).unwrap();
    let e = client.send(get(&url)).await.unwrap_err();
    assert!(e.message.contains("UnknownIssuer"), "{}", e.message);
    assert!(
        e.message.contains(&format!(
            "trusted: the CA bundle {}",
            other.join("ca.pem").display()
        )),
        "{}",
        e.message
    );
    let client = Client::new(&settings, &Verify::Off, true, limits()).unwrap();
    assert_eq!(client.send(get(&url)).await.unwrap().status, 200);

    // A folder of certificates is a bundle too.
    let client = Client::new(
        &Settings::default(),
        &Verify::Bundle(dir.display().to_string()),
        true,
        limits(),
    )
    .unwrap();
    assert_eq!(client.send(get(&url)).await.unwrap().status, 200);
}

#[tokio::test]
async fn bundles_that_cannot_be_read_are_named() {
    let dir = folder("bad-bundles");
    std::fs::write(dir.join("empty.pem"), "not a certificate\n").unwrap();
    let settings = Settings::new(dir.clone(), no_env);
    for (verify, want) in [
        (
            "empty.pem",
            format!(
                "requests_options.verify: {}: no PEM certificate in it",
                dir.join("empty.pem").display()
            ),
        ),
        (
            "missing.pem",
            format!(
                "requests_options.verify: {}: No such file or directory (os error 2)",
                dir.join("missing.pem").display()
            ),
        ),
    ] {
        let e = Client::new(&settings, &Verify::Bundle(verify.into()), true, limits())
            .err()
            .unwrap();
        assert_eq!(e, want);
    }
}

#[tokio::test]
async fn bodies_are_read_up_to_the_limit() {
    let server = Server::start(None, |_| (200, "x".repeat(100_000)));
    let client = Client::new(&Settings::default(), &Verify::Default, true, limits()).unwrap();
    let url = format!("http://127.0.0.1:{}/", server.port);
    let answer = client
        .send(Request {
            body_limit: 1000,
            ..get(&url)
        })
        .await
        .unwrap();
    assert_eq!(answer.body.len(), 1000);
}

#[tokio::test]
async fn a_silent_server_times_out_within_the_limit() {
    // Accepts, never answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let client = Client::new(
        &Settings::default(),
        &Verify::Default,
        true,
        Limits {
            connect: Duration::from_secs(1),
            read: None,
            total: Some(Duration::from_millis(300)),
        },
    )
    .unwrap();
    let began = Instant::now();
    let url = format!("http://127.0.0.1:{port}/");
    let e = client.send(get(&url)).await.unwrap_err();
    assert!(began.elapsed() < Duration::from_secs(2));
    assert_eq!(e.message, "timed out");
    drop(listener);
}

#[tokio::test]
async fn errors_never_show_paths_queries_header_values_or_passwords() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let client = Client::new(&Settings::default(), &Verify::Default, true, limits()).unwrap();
    let url =
        format!("https://user:pw-in-url@127.0.0.1:{port}/services/T0/B0/secret-path?token=tok");
    let headers = [(
        "Authorization".to_owned(),
        "Bearer header-secret".to_owned(),
    )];
    let auth = ("alice".to_owned(), Secret::new("basic-secret".into()));
    let e = client
        .send(Request {
            headers: &headers,
            auth: Some(&auth),
            ..get(&url)
        })
        .await
        .unwrap_err();
    assert!(e.message.starts_with("Connection refused"), "{}", e.message);
    for secret in [
        "pw-in-url",
        "secret-path",
        "tok",
        "header-secret",
        "basic-secret",
    ] {
        assert!(!e.message.contains(secret), "{}", e.message);
    }
    // A header value that HTTP cannot carry is refused without being shown.
    let headers = [("X-Key".to_owned(), "bad\nvalue-secret".to_owned())];
    let e = client
        .send(Request {
            headers: &headers,
            ..get(&url)
        })
        .await
        .unwrap_err();
    assert_eq!(e.message, "the value of header x-key is not valid in HTTP");
}

#[tokio::test]
async fn redirects_are_followed_unless_allow_redirects_is_false() {
    let target = Server::start(None, |_| (200, "here".into()));
    let location = format!("http://127.0.0.1:{}/there", target.port);
    // The test server cannot add a Location header, so the redirecting one is made here.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for stream in listener.incoming().take(2) {
            let mut stream = stream.unwrap();
            let mut buffer = [0u8; 4096];
            let _ = stream.read(&mut buffer);
            let _ = stream.write_all(
                format!("HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            );
        }
    });
    let url = format!("http://127.0.0.1:{port}/");
    let follow = Client::new(&Settings::default(), &Verify::Default, true, limits()).unwrap();
    let answer = follow.send(get(&url)).await.unwrap();
    assert_eq!((answer.status, answer.body.as_str()), (200, "here"));
    let stay = Client::new(&Settings::default(), &Verify::Default, false, limits()).unwrap();
    assert_eq!(stay.send(get(&url)).await.unwrap().status, 302);
}
