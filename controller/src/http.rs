//! A minimal HTTP/1.1 client over plain TCP, for lifecycle checks and webhooks: one
//! request, `Connection: close`, the status and the body back. (TLS arrives with the
//! ships' TLS support.)

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends one request to `host:port` and returns the status code and the body.
pub async fn request(
    host: &str,
    port: u16,
    method: &str,
    path: &str,
    headers: &[(String, String)],
    body: Option<&str>,
) -> Result<(u16, String), String> {
    let mut stream = TcpStream::connect((host, port))
        .await
        .map_err(|e| e.to_string())?;
    let mut request = format!(
        "{} {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: maestro\r\nAccept: */*\r\nConnection: close\r\n",
        method.to_uppercase()
    );
    if let Some(body) = body {
        request.push_str(&format!(
            "Content-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body.unwrap_or_default());
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .await
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&response);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| "not an HTTP response".to_owned())?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

/// Splits `http://host[:port]/path` into its parts.
pub fn split_url(url: &str) -> Result<(String, u16, String), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url}: only http:// URLs are supported in this version"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) => (
            host,
            port.parse::<u16>()
                .map_err(|_| format!("{url}: bad port {port:?}"))?,
        ),
        None => (authority, 80),
    };
    Ok((host.to_owned(), port, path.to_owned()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn urls() {
        assert_eq!(
            super::split_url("http://127.0.0.1:9/hook"),
            Ok(("127.0.0.1".into(), 9, "/hook".into()))
        );
        assert_eq!(
            super::split_url("http://example.org"),
            Ok(("example.org".into(), 80, "/".into()))
        );
        assert!(super::split_url("https://example.org").is_err());
        assert!(super::split_url("http://h:x/").is_err());
    }
}
