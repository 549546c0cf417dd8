//! Registry credentials for pulls: the matching `registries:` entry, else the user's
//! Docker config (`$DOCKER_CONFIG/config.json` or `~/.docker/config.json`): a credential
//! helper named for the registry (`credHelpers`), else the default store (`credsStore`),
//! else the `auths` entries, as docker-py (and so MaestroNG) reads them. A helper is
//! `docker-credential-NAME get`, given the registry on its input; it runs at most once per
//! registry and play, within [`HELPER_TIMEOUT`]. Passwords never appear in output:
//! `Credentials` has no `Display` and its `Debug` hides the password.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use base64::Engine as _;

use guestutils::redact;
use maestro_core::model::Environment;
use maestro_core::registry::{netloc, registry_for, registry_part};

#[derive(Clone)]
pub struct Credentials {
    pub username: String,
    pub password: String,
    /// The registry's address as the engine wants it (`serveraddress`).
    pub server: String,
    /// How to name the registry in messages: its `registries:` key, or its address.
    pub label: String,
    pub retry_attempts: u32,
    pub retry_when: Vec<u16>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<hidden>")
            .field("server", &self.server)
            .finish()
    }
}

/// A user and password (or token) for a registry.
type UserSecret = (String, String);

/// What a helper said for a registry: credentials, none stored, or why it failed.
type Answer = Result<Option<UserSecret>, String>;

/// How long a credential helper may take to answer.
pub const HELPER_TIMEOUT: Duration = Duration::from_secs(10);

/// The user's Docker config: `auths` by registry address (user, password), and the
/// credential helpers it names.
#[derive(Default)]
pub struct DockerConfig {
    auths: HashMap<String, (String, String)>,
    /// `credHelpers`: a helper per registry address.
    helpers: HashMap<String, String>,
    /// `credsStore`: the helper for every other registry.
    store: Option<String>,
    /// Where it was read from, for messages.
    path: String,
    /// What each helper said, by (helper, registry): asked once per play.
    answers: tokio::sync::Mutex<HashMap<(String, String), Answer>>,
}

impl DockerConfig {
    /// Reads the user's Docker config; a missing or unreadable one is empty.
    pub fn load(process_env: &std::collections::BTreeMap<String, String>) -> DockerConfig {
        let path = match (process_env.get("DOCKER_CONFIG"), process_env.get("HOME")) {
            (Some(dir), _) => PathBuf::from(dir).join("config.json"),
            (None, Some(home)) => PathBuf::from(home).join(".docker/config.json"),
            (None, None) => return DockerConfig::default(),
        };
        let mut config = std::fs::read_to_string(&path)
            .map(|text| DockerConfig::parse(&text))
            .unwrap_or_default();
        config.path = path.display().to_string();
        config
    }

    pub fn parse(text: &str) -> DockerConfig {
        let mut auths = HashMap::new();
        let Ok(value) = serde_json::from_str::<serde_json::Value>(text) else {
            return DockerConfig::default();
        };
        if let Some(entries) = value.get("auths").and_then(|a| a.as_object()) {
            for (address, entry) in entries {
                let decoded = entry
                    .get("auth")
                    .and_then(|a| a.as_str())
                    .and_then(|a| base64::engine::general_purpose::STANDARD.decode(a).ok())
                    .and_then(|bytes| String::from_utf8(bytes).ok());
                if let Some((user, password)) = decoded.as_deref().and_then(|d| d.split_once(':')) {
                    auths.insert(
                        netloc(address).to_owned(),
                        (user.to_owned(), password.to_owned()),
                    );
                }
            }
        }
        let helpers = value
            .get("credHelpers")
            .and_then(|h| h.as_object())
            .map(|h| {
                h.iter()
                    .filter_map(|(address, name)| {
                        Some((netloc(address).to_owned(), helper_name(name.as_str()?)?))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let store = value
            .get("credsStore")
            .and_then(|s| s.as_str())
            .and_then(helper_name);
        DockerConfig {
            auths,
            helpers,
            store,
            path: String::new(),
            answers: Default::default(),
        }
    }

    fn find<'a, T>(map: &'a HashMap<String, T>, registry: &str) -> Option<&'a T> {
        let host = |s: &str| s.rsplit_once(':').map_or(s, |(h, _)| h).to_owned();
        map.get(registry).or_else(|| {
            map.iter()
                .find(|(k, _)| host(k) == host(registry))
                .map(|(_, v)| v)
        })
    }

    /// The user and password for `registry` (an address, `host[:port]`): from its helper,
    /// else the default store, else `auths`. `Err` says which helper failed and how.
    pub async fn lookup(&self, registry: &str) -> Result<Option<(String, String)>, String> {
        let (helper, why) = match (Self::find(&self.helpers, registry), &self.store) {
            (Some(helper), _) => (helper.clone(), "credHelpers"),
            (None, Some(store)) => (store.clone(), "credsStore"),
            (None, None) => return Ok(Self::find(&self.auths, registry).cloned()),
        };
        let key = (helper.clone(), registry.to_owned());
        let mut answers = self.answers.lock().await;
        if let Some(answer) = answers.get(&key) {
            return answer.clone();
        }
        let answer = ask_helper(&helper, &server_url(registry), HELPER_TIMEOUT)
            .await
            .map_err(|e| {
                let place = if self.path.is_empty() {
                    why.to_owned()
                } else {
                    format!("{why} in {}", self.path)
                };
                format!("credential helper docker-credential-{helper} ({place}): {e}")
            });
        answers.insert(key, answer.clone());
        answer
    }
}

/// A helper's name as a program suffix: letters, digits, `-`, `_` and `.` only, so that a
/// config file cannot make maestro run a path of its choosing.
fn helper_name(name: &str) -> Option<String> {
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !name.starts_with('.');
    ok.then(|| name.to_owned())
}

/// The server a helper knows a registry by: Docker Hub's legacy URL for Docker Hub,
/// the address otherwise.
fn server_url(registry: &str) -> String {
    match registry {
        "docker.io" | "index.docker.io" | "registry-1.docker.io" => {
            "https://index.docker.io/v1/".to_owned()
        }
        other => other.to_owned(),
    }
}

/// Runs `docker-credential-NAME get` with `server` on its input and reads its answer:
/// `{"Username": …, "Secret": …}`; `None` when it has no credentials for the server.
async fn ask_helper(
    name: &str,
    server: &str,
    limit: Duration,
) -> Result<Option<(String, String)>, String> {
    ask_program(
        std::path::Path::new(&format!("docker-credential-{name}")),
        server,
        limit,
    )
    .await
}

/// [`ask_helper`] with the program given (a bare name is looked up on the PATH).
async fn ask_program(
    program: &std::path::Path,
    server: &str,
    limit: Duration,
) -> Result<Option<(String, String)>, String> {
    use tokio::io::AsyncWriteExt;
    let shown = program.file_name().map_or_else(
        || program.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let mut child = tokio::process::Command::new(program)
        .arg("get")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => format!("{shown} is not on the PATH"),
            _ => format!("cannot run {shown}: {e}"),
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        // A helper that does not read its input is not an error yet: its answer tells.
        let _ = stdin.write_all(server.as_bytes()).await;
    }
    let output = match tokio::time::timeout(limit, child.wait_with_output()).await {
        Ok(Ok(output)) => output,
        Ok(Err(e)) => return Err(format!("cannot read its answer: {e}")),
        Err(_) => {
            return Err(format!(
                "gave no answer within {}s for {server}",
                limit.as_secs_f64()
            ));
        }
    };
    // Bounded: a helper's answer is a few hundred bytes.
    let stdout = String::from_utf8_lossy(&output.stdout[..output.stdout.len().min(64 * 1024)]);
    if !output.status.success() {
        // The helpers' own words for "nothing stored for this server".
        if stdout.contains("credentials not found") {
            return Ok(None);
        }
        let said = String::from_utf8_lossy(&output.stderr[..output.stderr.len().min(512)])
            .trim()
            .to_owned();
        let said = if said.is_empty() {
            stdout.trim().chars().take(512).collect()
        } else {
            said
        };
        return Err(format!(
            "failed for {server} ({}){}",
            output.status,
            if said.is_empty() {
                String::new()
            } else {
                format!(": {said}")
            }
        ));
    }
    let answer: serde_json::Value = serde_json::from_str(&stdout)
        .map_err(|_| format!("answered something other than JSON for {server}"))?;
    let field = |name: &str| answer.get(name).and_then(|v| v.as_str()).map(str::to_owned);
    match (field("Username"), field("Secret")) {
        (Some(user), Some(secret)) if !secret.is_empty() => Ok(Some((user, secret))),
        _ => Ok(None),
    }
}

/// The credentials to pull `image` with, if any. `Err` when a `registries:` entry names a
/// user but no password can be found for it.
pub async fn for_image(
    env: &Environment,
    image: &str,
    config: &DockerConfig,
) -> Result<Option<Credentials>, String> {
    if let Some(registry) = registry_for(env, image) {
        let address = netloc(&registry.registry).to_owned();
        let from_config = if registry.username.is_some() && registry.password.is_some() {
            None
        } else {
            config.lookup(&address).await?
        };
        let from_config = from_config.as_ref();
        let username = registry
            .username
            .clone()
            .or_else(|| from_config.map(|(u, _)| u.clone()));
        let Some(username) = username else {
            return Ok(None);
        };
        let password = registry.password.clone().or_else(|| from_config.map(|(_, p)| p.clone())).ok_or_else(|| {
            format!("registry {} names user {username} but gives no password (and the Docker config has none)", registry.name)
        })?;
        return Ok(Some(Credentials {
            username,
            password,
            server: registry.registry.clone(),
            // Shown in errors: the URL may carry credentials of its own.
            label: format!("{} ({})", registry.name, redact::url(&registry.registry)),
            retry_attempts: registry.retry_attempts.max(1),
            retry_when: registry.retry_when.clone(),
        }));
    }
    // An image without a registry (`busybox`, `acme/app`) comes from Docker Hub, whose
    // credentials docker-py looks up as index.docker.io.
    let part = match registry_part(image) {
        Some(part) if part.contains(['.', ':']) || part == "localhost" => part,
        _ => "index.docker.io",
    };
    Ok(config
        .lookup(part)
        .await?
        .map(|(username, password)| Credentials {
            username,
            password,
            server: server_url(part),
            label: part.to_owned(),
            retry_attempts: 1,
            retry_when: Vec::new(),
        }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use maestro_core::model::Ship;

    const CONFIG: &str = r#"{"auths": {"127.0.0.1:5000": {"auth": "Ym9iOnNlY3JldA=="}, "https://quay.io": {"auth": "cTpxcHc="}}}"#;

    fn env(registries: &str) -> Environment {
        let text = format!(
            "__maestro: {{schema: 2}}\nname: r\nregistries: {registries}\nships: {{s: {{ip: 127.0.0.1}}}}\nservices: {{}}\n"
        );
        maestro_core::load(
            &text,
            &maestro_core::NoFiles,
            &Ship::new("local", "127.0.0.1"),
        )
        .environment
        .expect("valid")
    }

    #[tokio::test]
    async fn from_the_environment_then_the_docker_config() {
        let config = DockerConfig::parse(CONFIG);
        let e = env("{mine: {registry: \"http://127.0.0.1:5000\", username: alice, password: pw}}");
        let c = for_image(&e, "127.0.0.1:5000/app:1", &config)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((c.username.as_str(), c.password.as_str()), ("alice", "pw"));
        assert_eq!(c.label, "mine (http://127.0.0.1:5000)");
        // The label is shown in errors: a registry URL's credentials are not.
        let e = env(
            "{mine: {registry: \"https://u:url-secret@reg.example/v2?key=query-secret\", username: alice, password: pw}}",
        );
        let c = for_image(&e, "mine/app", &config).await.unwrap().unwrap();
        assert_eq!(
            c.label,
            "mine (https://u:<redacted>@reg.example/v2?<redacted>)"
        );
        // No entry: the Docker config's.
        let e = env("{}");
        let c = for_image(&e, "127.0.0.1:5000/app:1", &config)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (c.username.as_str(), c.password.as_str()),
            ("bob", "secret")
        );
        let c = for_image(&e, "quay.io/acme/app", &config)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(c.username, "q");
        assert!(for_image(&e, "busybox", &config).await.unwrap().is_none());
        assert!(
            for_image(&e, "other.io/app", &config)
                .await
                .unwrap()
                .is_none()
        );
        // A user without a password takes it from the Docker config, or is an error.
        let e = env("{mine: {registry: \"http://127.0.0.1:5000\", username: bob}}");
        assert_eq!(
            for_image(&e, "127.0.0.1:5000/app", &config)
                .await
                .unwrap()
                .unwrap()
                .password,
            "secret"
        );
        let e = env("{other: {registry: \"https://other.io\", username: carol}}");
        let err = for_image(&e, "other.io/app", &config).await.unwrap_err();
        assert!(
            err.contains("registry other names user carol but gives no password"),
            "{err}"
        );
        // The password never shows in debug output.
        let c = for_image(&env("{}"), "127.0.0.1:5000/app", &config)
            .await
            .unwrap()
            .unwrap();
        assert!(!format!("{c:?}").contains("secret"));
    }

    /// A credential helper script `docker-credential-NAME` in a folder of its own, and
    /// that folder first on a PATH for it.
    fn helper(dir: &std::path::Path, name: &str, body: &str) {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join(format!("docker-credential-{name}"));
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700)).unwrap();
    }

    #[tokio::test]
    async fn credential_helpers_answer_fail_and_are_bounded() {
        let dir = std::env::temp_dir().join(format!("maestro-credhelpers-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        helper(
            &dir,
            "good",
            r#"read server; [ "$1" = get ] || exit 9; echo "{\"ServerURL\":\"$server\",\"Username\":\"u-$server\",\"Secret\":\"s3cret\"}""#,
        );
        helper(
            &dir,
            "none",
            "echo 'credentials not found in native keychain'; exit 1",
        );
        helper(&dir, "broken", "echo 'the keyring is locked' >&2; exit 3");
        helper(&dir, "slow", "sleep 30");
        helper(&dir, "garbage", "echo not json");
        let run = |name: &'static str| {
            let program = dir.join(format!("docker-credential-{name}"));
            async move {
                // As found on the PATH, without changing this process's PATH.
                ask_program(&program, "127.0.0.1:5000", Duration::from_millis(500)).await
            }
        };
        assert_eq!(
            run("good").await,
            Ok(Some(("u-127.0.0.1:5000".into(), "s3cret".into())))
        );
        assert_eq!(run("none").await, Ok(None));
        let err = run("broken").await.unwrap_err();
        assert!(
            err.contains("the keyring is locked") && err.contains("exit status: 3"),
            "{err}"
        );
        let began = std::time::Instant::now();
        let err = run("slow").await.unwrap_err();
        assert!(err.contains("gave no answer within 0.5s"), "{err}");
        assert!(began.elapsed() < Duration::from_secs(5));
        assert!(
            run("garbage")
                .await
                .unwrap_err()
                .contains("other than JSON")
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn helpers_are_read_from_the_config_and_their_names_checked() {
        let config = DockerConfig::parse(
            r#"{"credsStore": "desktop", "credHelpers": {"quay.io": "ecr-login", "evil.io": "../../bin/sh"}}"#,
        );
        assert_eq!(config.store.as_deref(), Some("desktop"));
        assert_eq!(
            DockerConfig::find(&config.helpers, "quay.io").map(String::as_str),
            Some("ecr-login")
        );
        assert!(DockerConfig::find(&config.helpers, "evil.io").is_none());
        assert_eq!(server_url("index.docker.io"), "https://index.docker.io/v1/");
        assert_eq!(server_url("127.0.0.1:5000"), "127.0.0.1:5000");
    }
}
