//! Redaction: the one place that decides what of a value maestro may show. Everything
//! maestro prints, logs, audits or puts in an error goes through these functions when it
//! may hold a credential (URLs, source lines of the environment file, secret values).
//!
//! URLs keep their scheme, host, port and path; what may be a credential is replaced by
//! [`REDACTED`]: a userinfo's password (a userinfo without one is a token, redacted
//! whole; one holding `/`, `?` or `#` unencoded, everything up to the last `@`), the
//! query and the fragment. Two kinds of URLs carry their credential in the
//! path, and lose it too:
//! - webhooks of known hosts (`https://hooks.slack.com/services/T/B/SECRET`): the path
//!   after its first segment ([`url`]);
//! - auditors' endpoints, which are webhooks of any host: the whole path ([`endpoint`]).

use std::borrow::Cow;

/// What a secret value is shown as.
pub const SECRET: &str = "<secret>";

/// What a redacted part of a URL is shown as.
pub const REDACTED: &str = "<redacted>";

/// Hosts whose webhook URLs hold their credential in the path (exact names, then
/// suffixes).
const WEBHOOK_HOSTS: [&str; 5] = [
    "hooks.slack.com",
    "discord.com",
    "discordapp.com",
    "outlook.office.com",
    "hooks.zapier.com",
];
const WEBHOOK_HOST_SUFFIXES: [&str; 1] = [".webhook.office.com"];

/// Keys of the environment file whose value is a credential whatever its name says.
const SECRET_FIELDS: [&str; 5] = ["password", "token", "auth", "headers", "secret"];

/// Whether a variable's name says its value is a secret (then messages do not show it).
pub fn looks_secret(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    [
        "PASS",
        "SECRET",
        "TOKEN",
        "KEY",
        "CREDENTIAL",
        "AUTH",
        "PRIVATE",
    ]
    .iter()
    .any(|word| upper.contains(word))
}

/// A URL (or a registry's `host[:port][/path]`) for messages: see the module's rules.
pub fn url(text: &str) -> String {
    redact_url(text, false)
}

/// An auditor's endpoint for messages: as [`url`], and the whole path redacted.
pub fn endpoint(text: &str) -> String {
    redact_url(text, true)
}

fn redact_url(text: &str, whole_path: bool) -> String {
    // A userinfo holding `/`, `?` or `#` unencoded: the splits below would leave part of
    // it in view, so everything up to the last `@` goes.
    if let Some((scheme, rest)) = split_scheme(text) {
        if let Some((userinfo, after)) = rest.rsplit_once('@') {
            if userinfo.contains(['/', '?', '#']) {
                let shown = redact_url(&format!("{scheme}://{after}"), whole_path);
                let at = scheme.len() + 3;
                return format!("{}{REDACTED}@{}", &shown[..at], &shown[at..]);
            }
        }
    }
    let (text, fragment) = match text.split_once('#') {
        Some((before, _)) => (before, true),
        None => (text, false),
    };
    let (text, query) = match text.split_once('?') {
        Some((before, _)) => (before, true),
        None => (text, false),
    };
    let (scheme, rest) = match split_scheme(text) {
        Some((scheme, rest)) => (Some(scheme), rest),
        None => (None, text),
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let mut out = String::with_capacity(text.len() + 24);
    if let Some(scheme) = scheme {
        out.push_str(scheme);
        out.push_str("://");
    }
    let host_port = match authority.rsplit_once('@') {
        Some((userinfo, host_port)) => {
            // A userinfo without a password is a token (`https://TOKEN@host`): all of it
            // is redacted.
            if let Some((user, _)) = userinfo.split_once(':') {
                out.push_str(user);
                out.push(':');
            }
            out.push_str(REDACTED);
            out.push('@');
            host_port
        }
        None => authority,
    };
    out.push_str(host_port);
    let host = host_name(host_port).to_ascii_lowercase();
    let webhook = WEBHOOK_HOSTS.contains(&host.as_str())
        || WEBHOOK_HOST_SUFFIXES.iter().any(|s| host.ends_with(s));
    if whole_path && !path.is_empty() && path != "/" {
        out.push('/');
        out.push_str(REDACTED);
    } else if webhook && !path.is_empty() {
        // Keep the first segment (`/services`, `/api`): it says what the URL is for.
        let first = path[1..].split('/').next().unwrap_or_default();
        out.push('/');
        out.push_str(first);
        if path.len() > first.len() + 1 {
            out.push('/');
            out.push_str(REDACTED);
        }
    } else {
        out.push_str(path);
    }
    if query {
        out.push('?');
        out.push_str(REDACTED);
    }
    if fragment {
        out.push('#');
        out.push_str(REDACTED);
    }
    out
}

/// `scheme://rest` split at `://` when the scheme is one (`[a-zA-Z0-9+.-]+`).
fn split_scheme(text: &str) -> Option<(&str, &str)> {
    text.split_once("://").filter(|(scheme, _)| {
        !scheme.is_empty()
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    })
}

/// The host of `host[:port]` (`[v6]:port` included).
fn host_name(host_port: &str) -> &str {
    if let Some(rest) = host_port.strip_prefix('[') {
        return rest.split(']').next().unwrap_or_default();
    }
    host_port.split(':').next().unwrap_or_default()
}

/// Whether a dotted YAML path (`ships.a.registries.r.password`, `services.web.env.DB_PASS`)
/// names a value that is a credential: under a secret field (a registry's `password`, an
/// auditor's `token`, a check's `auth` or `headers`, a `{secret: …}` source), or a
/// variable whose name looks secret.
pub fn path_is_secret(path: &str) -> bool {
    let segments: Vec<&str> = path
        .split('.')
        .map(|s| s.split('[').next().unwrap_or_default())
        .collect();
    if segments.iter().any(|s| SECRET_FIELDS.contains(s)) {
        return true;
    }
    match segments.as_slice() {
        [.., parent, name] => matches!(*parent, "env" | "envfile") && looks_secret(name),
        _ => false,
    }
}

/// A line of the environment file for a diagnostic's snippet, with every value that may
/// be a credential replaced by [`SECRET`]: the value of a secret field, of a variable
/// whose (upper-case) name looks secret, or, when `secret` (the diagnostic's path says
/// so, see [`path_is_secret`]), the value of the line's first key (or list item).
/// Works on block lines (`password: s3cret`, `- s3cret`) and flow collections written on
/// one line (`{username: u, password: p}`).
pub fn yaml_line(line: &str, secret: bool) -> Cow<'_, str> {
    let spans = secret_spans(line, secret);
    if spans.is_empty() {
        return Cow::Borrowed(line);
    }
    let mut out = String::with_capacity(line.len());
    let mut at = 0;
    for (start, end) in spans {
        out.push_str(&line[at..start]);
        out.push_str(SECRET);
        at = end;
    }
    out.push_str(&line[at..]);
    Cow::Owned(out)
}

/// Whether a key's value is a credential: a secret field, or a variable name in the
/// environment's convention (no lower-case letter) that looks secret. (Names of services
/// or ships such as `keycloak` are not taken for secrets.)
fn key_is_secret(key: &str) -> bool {
    let key = key.trim().trim_matches(|c| c == '"' || c == '\'');
    SECRET_FIELDS.contains(&key)
        || (looks_secret(key) && !key.chars().any(|c| c.is_ascii_lowercase()))
}

/// The byte ranges of the values to hide, in order, without overlaps.
fn secret_spans(line: &str, secret: bool) -> Vec<(usize, usize)> {
    let bytes = line.as_bytes();
    let mut spans = Vec::new();
    // Where the current key started, and the flow depth.
    let mut depth = 0usize;
    let mut key_start = item_start(line, 0);
    let mut first = true;
    if secret && !line[key_start..].contains(": ") && !line.trim_end().ends_with(':') {
        // A list item or a bare scalar: all of it after the dash.
        let value = line[key_start..].trim_end();
        if !value.is_empty() && !value.starts_with('#') {
            return vec![(key_start, key_start + value.len())];
        }
        return spans;
    }
    // By flow depth: whether the mapping is an `env` (its keys are variable names, whose
    // look decides whatever their case: `{db_password: …}`), and the last key seen.
    let mut env_maps: Vec<bool> = Vec::new();
    let mut last_key = "";
    let mut i = key_start;
    while i < bytes.len() {
        match bytes[i] {
            b'"' | b'\'' => i = skip_quoted(bytes, i),
            b'#' if i == 0 || bytes[i - 1] == b' ' => break,
            b'{' | b'[' => {
                env_maps.push(bytes[i] == b'{' && matches!(last_key, "env" | "envfile"));
                last_key = "";
                depth += 1;
                i += 1;
                key_start = i;
            }
            b'}' | b']' => {
                env_maps.pop();
                depth = depth.saturating_sub(1);
                i += 1;
            }
            b',' => {
                i += 1;
                key_start = i;
            }
            b':' if bytes.get(i + 1).is_none_or(|b| *b == b' ') => {
                let key = &line[key_start..i];
                last_key = key.trim().trim_matches(|c| c == '"' || c == '\'');
                let value_start = i + 1;
                let in_env = env_maps.last() == Some(&true);
                let hide =
                    key_is_secret(key) || (in_env && looks_secret(last_key)) || (secret && first);
                first = false;
                if hide {
                    let end = value_end(bytes, value_start, depth);
                    let start = value_start
                        + (line[value_start..end].len()
                            - line[value_start..end].trim_start().len());
                    let end = start + line[start..end].trim_end().len();
                    if end > start {
                        spans.push((start, end));
                    }
                    i = end.max(value_start);
                    key_start = i;
                } else {
                    i += 1;
                    key_start = i;
                }
            }
            _ => i += 1,
        }
    }
    spans
}

/// Where a line's first key (or list item) starts: after the indentation and `- `.
fn item_start(line: &str, mut at: usize) -> usize {
    loop {
        let rest = &line[at..];
        let trimmed = rest.trim_start_matches(' ');
        at += rest.len() - trimmed.len();
        match trimmed.strip_prefix('-') {
            Some(after) if after.starts_with(' ') => at += 1,
            _ => return at,
        }
    }
}

/// Past a quoted scalar starting at `i` (the line's end if it is not closed).
fn skip_quoted(bytes: &[u8], i: usize) -> usize {
    let quote = bytes[i];
    let mut j = i + 1;
    while j < bytes.len() {
        if quote == b'"' && bytes[j] == b'\\' {
            j += 2;
            continue;
        }
        if bytes[j] == quote {
            // '' is a quote inside a single-quoted scalar.
            if quote == b'\'' && bytes.get(j + 1) == Some(&b'\'') {
                j += 2;
                continue;
            }
            return j + 1;
        }
        j += 1;
    }
    bytes.len()
}

/// Where the value starting at `start` ends: the line's end (or a comment) in block
/// context, the `,` or closing bracket of its collection in flow context.
fn value_end(bytes: &[u8], start: usize, depth: usize) -> usize {
    let mut nested = 0usize;
    let mut i = start;
    while i < bytes.len() {
        match bytes[i] {
            b'"' | b'\'' => {
                i = skip_quoted(bytes, i);
                continue;
            }
            b'#' if bytes[i - 1] == b' ' => return i,
            b'{' | b'[' => nested += 1,
            b'}' | b']' if nested > 0 => nested -= 1,
            b'}' | b']' | b',' if depth > 0 && nested == 0 => return i,
            _ => {}
        }
        i += 1;
    }
    bytes.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        for (given, shown) in [
            ("https://example.com/v2/", "https://example.com/v2/"),
            (
                "https://user:pw@example.com:8443/path?token=abc#frag",
                "https://user:<redacted>@example.com:8443/path?<redacted>#<redacted>",
            ),
            (
                "https://ghp_TOKEN@github.com/x",
                "https://<redacted>@github.com/x",
            ),
            (
                "https://hooks.slack.com/services/T0/B0/SECRET",
                "https://hooks.slack.com/services/<redacted>",
            ),
            (
                "https://Discord.com/api/webhooks/1/tok",
                "https://Discord.com/api/<redacted>",
            ),
            (
                "https://acme.webhook.office.com/webhookb2/x",
                "https://acme.webhook.office.com/webhookb2/<redacted>",
            ),
            ("quay.io", "quay.io"),
            ("u:p@registry:5000/v2", "u:<redacted>@registry:5000/v2"),
            ("http://[::1]:80/a?b", "http://[::1]:80/a?<redacted>"),
            ("", ""),
            ("https://p@ss:w@rd@host/", "https://p@ss:<redacted>@host/"),
            // A credential holding `/`, `?` or `#` unencoded (base64 tokens do): where the
            // userinfo ends cannot be told from the host's side, so all of it goes, up to
            // the last `@` (an `@` in a path is then taken for one: safe, if less clear).
            (
                "https://ab/cd+ef==@reg.example/v2",
                "https://<redacted>@reg.example/v2",
            ),
            ("https://bob:p#ss@hooks.x/h", "https://<redacted>@hooks.x/h"),
            (
                "https://u:p?x@host/a?q",
                "https://<redacted>@host/a?<redacted>",
            ),
            ("https://host/users/@me", "https://<redacted>@me"),
        ] {
            assert_eq!(url(given), shown, "{given}");
        }
        assert_eq!(
            endpoint("https://bob:p/ss@hooks.x/h"),
            "https://<redacted>@hooks.x/<redacted>"
        );
        for (given, shown) in [
            (
                "https://127.0.0.1:9/hook/secret?x=1",
                "https://127.0.0.1:9/<redacted>?<redacted>",
            ),
            ("https://example.com", "https://example.com"),
            ("https://example.com/", "https://example.com/"),
            (
                "https://a:b@example.com/api",
                "https://a:<redacted>@example.com/<redacted>",
            ),
        ] {
            assert_eq!(endpoint(given), shown, "{given}");
        }
    }

    #[test]
    fn yaml_lines() {
        for (line, secret, shown) in [
            ("    password: s3cret", false, "    password: <secret>"),
            ("    password:", false, "    password:"),
            ("  image: redis", false, "  image: redis"),
            ("  image: redis", true, "  image: <secret>"),
            ("  - s3cret", true, "  - <secret>"),
            ("  - s3cret", false, "  - s3cret"),
            (
                "  quay: {registry: \"https://quay.io\", username: u, password: p, email: e}",
                false,
                "  quay: {registry: \"https://quay.io\", username: u, password: <secret>, email: e}",
            ),
            (
                "  - {type: slack, channel: \"#ops\", token: \"xo,xb\"}",
                false,
                "  - {type: slack, channel: \"#ops\", token: <secret>}",
            ),
            (
                "      DB_PASSWORD: 0755 # a comment",
                false,
                "      DB_PASSWORD: <secret> # a comment",
            ),
            (
                "    env: {DB_PASSWORD: {secret: \"file:~/db\"}, B: x}",
                false,
                "    env: {DB_PASSWORD: <secret>, B: x}",
            ),
            (
                "    env: {db_password: hunter2, FOO: x}, keycloak: {image: k}",
                false,
                "    env: {db_password: <secret>, FOO: x}, keycloak: {image: k}",
            ),
            (
                "    requests_options: {headers: {X-Key: k1, A: b}, auth: [alice, pw]}",
                false,
                "    requests_options: {headers: <secret>, auth: <secret>}",
            ),
            ("      X-Key: k1", true, "      X-Key: <secret>"),
            ("  keycloak: {image: x}", false, "  keycloak: {image: x}"),
            ("  db_password: x", true, "  db_password: <secret>"),
            ("", true, ""),
            ("- ", true, "- "),
            ("  'pass': \"a: b\"", false, "  'pass': \"a: b\""),
            ("  \"password\": 'a'' b'", false, "  \"password\": <secret>"),
        ] {
            assert_eq!(yaml_line(line, secret), shown, "{line:?} {secret}");
        }
    }

    #[test]
    fn secret_paths() {
        for (path, secret) in [
            ("ships.a.registries.r.password", true),
            ("audit[0].token", true),
            ("services.web.env.DB_PASSWORD", true),
            ("services.web.instances.w1.env[1].API_KEY", true),
            (
                "services.web.lifecycle.running[0].requests_options.headers.X-A",
                true,
            ),
            ("services.keycloak.image", false),
            ("services.web.env.HOME", false),
            ("", false),
        ] {
            assert_eq!(path_is_secret(path), secret, "{path}");
        }
    }
}
