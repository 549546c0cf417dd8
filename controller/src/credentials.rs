//! Registry credentials for pulls: the matching `registries:` entry, else the user's
//! Docker config (`$DOCKER_CONFIG/config.json` or `~/.docker/config.json`, `auths`).
//! Passwords never appear in output: `Credentials` has no `Display` and its `Debug`
//! hides the password.

use std::collections::HashMap;
use std::path::PathBuf;

use base64::Engine as _;

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

/// `auths` of the user's Docker config, by registry address (user, password).
#[derive(Default)]
pub struct DockerConfig {
    auths: HashMap<String, (String, String)>,
}

impl DockerConfig {
    /// Reads the user's Docker config; a missing or unreadable one is empty.
    pub fn load(process_env: &std::collections::BTreeMap<String, String>) -> DockerConfig {
        let path = match (process_env.get("DOCKER_CONFIG"), process_env.get("HOME")) {
            (Some(dir), _) => PathBuf::from(dir).join("config.json"),
            (None, Some(home)) => PathBuf::from(home).join(".docker/config.json"),
            (None, None) => return DockerConfig::default(),
        };
        std::fs::read_to_string(path)
            .map(|text| DockerConfig::parse(&text))
            .unwrap_or_default()
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
        DockerConfig { auths }
    }

    fn find(&self, registry: &str) -> Option<&(String, String)> {
        let host = |s: &str| s.rsplit_once(':').map_or(s, |(h, _)| h).to_owned();
        self.auths.get(registry).or_else(|| {
            self.auths
                .iter()
                .find(|(k, _)| host(k) == host(registry))
                .map(|(_, v)| v)
        })
    }
}

/// The credentials to pull `image` with, if any. `Err` when a `registries:` entry names a
/// user but no password can be found for it.
pub fn for_image(
    env: &Environment,
    image: &str,
    config: &DockerConfig,
) -> Result<Option<Credentials>, String> {
    if let Some(registry) = registry_for(env, image) {
        let address = netloc(&registry.registry).to_owned();
        let from_config = config.find(&address);
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
            label: format!("{} ({})", registry.name, registry.registry),
            retry_attempts: registry.retry_attempts.max(1),
            retry_when: registry.retry_when.clone(),
        }));
    }
    let Some(part) = registry_part(image) else {
        return Ok(None);
    };
    Ok(config.find(part).map(|(username, password)| Credentials {
        username: username.clone(),
        password: password.clone(),
        server: part.to_owned(),
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

    #[test]
    fn from_the_environment_then_the_docker_config() {
        let config = DockerConfig::parse(CONFIG);
        let e = env("{mine: {registry: \"http://127.0.0.1:5000\", username: alice, password: pw}}");
        let c = for_image(&e, "127.0.0.1:5000/app:1", &config)
            .unwrap()
            .unwrap();
        assert_eq!((c.username.as_str(), c.password.as_str()), ("alice", "pw"));
        assert_eq!(c.label, "mine (http://127.0.0.1:5000)");
        // No entry: the Docker config's.
        let e = env("{}");
        let c = for_image(&e, "127.0.0.1:5000/app:1", &config)
            .unwrap()
            .unwrap();
        assert_eq!(
            (c.username.as_str(), c.password.as_str()),
            ("bob", "secret")
        );
        let c = for_image(&e, "quay.io/acme/app", &config).unwrap().unwrap();
        assert_eq!(c.username, "q");
        assert!(for_image(&e, "busybox", &config).unwrap().is_none());
        assert!(for_image(&e, "other.io/app", &config).unwrap().is_none());
        // A user without a password takes it from the Docker config, or is an error.
        let e = env("{mine: {registry: \"http://127.0.0.1:5000\", username: bob}}");
        assert_eq!(
            for_image(&e, "127.0.0.1:5000/app", &config)
                .unwrap()
                .unwrap()
                .password,
            "secret"
        );
        let e = env("{other: {registry: \"https://other.io\", username: carol}}");
        let err = for_image(&e, "other.io/app", &config).unwrap_err();
        assert!(
            err.contains("registry other names user carol but gives no password"),
            "{err}"
        );
        // The password never shows in debug output.
        let c = for_image(&env("{}"), "127.0.0.1:5000/app", &config)
            .unwrap()
            .unwrap();
        assert!(!format!("{c:?}").contains("secret"));
    }
}
