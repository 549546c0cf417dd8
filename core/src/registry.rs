//! Which registry an image comes from, and which `registries:` entry (if any) holds its
//! credentials, as MaestroNG matches them (reference section 10.3, LoginTask).

use crate::model::{Environment, Image, Registry};

/// The registry part of an image reference: its first path component when the
/// reference has one (`quay.io/acme/app` is `quay.io`, `reg:5000/app` is `reg:5000`,
/// `acme/app` is `acme`, a Docker Hub user); `None` for a bare name such as `busybox`.
pub fn registry_part(image: &str) -> Option<&str> {
    let repository = Image::parse(image).repository;
    if repository.starts_with('/') || !repository.contains('/') {
        return None;
    }
    image.split('/').next()
}

/// `scheme://host:port/path` to `host:port`, as Python's `urlparse(url).netloc`.
pub fn netloc(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    rest.split('/').next().unwrap_or(rest)
}

/// The `registries:` entry for an image: the entry named like the image's registry part,
/// else the first whose URL's host (with or without port) is that part.
pub fn registry_for<'e>(env: &'e Environment, image: &str) -> Option<&'e Registry> {
    let part = registry_part(image)?;
    env.registries.iter().find(|r| r.name == part).or_else(|| {
        env.registries.iter().find(|r| {
            let location = netloc(&r.registry);
            let host = location.rsplit_once(':').map_or(location, |(h, _)| h);
            location == part || host == part
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Ship;
    use crate::{NoFiles, load};

    #[test]
    fn registry_parts() {
        let cases = [
            ("busybox", None),
            ("busybox:1.36", None),
            ("quay.io/acme/app:1", Some("quay.io")),
            ("reg:5000/app", Some("reg:5000")),
            ("acme/app", Some("acme")),
            ("127.0.0.1:5000/team/app:2", Some("127.0.0.1:5000")),
        ];
        for (image, want) in cases {
            assert_eq!(registry_part(image), want, "{image}");
        }
        assert_eq!(netloc("https://quay.io:8443/v2"), "quay.io:8443");
        assert_eq!(netloc("quay.io"), "quay.io");
    }

    #[test]
    fn matching_like_maestro_ng() {
        let text = "__maestro: {schema: 2}
name: r
registries:
  library: {registry: https://index.docker.io/v1/, username: hub}
  quay: {registry: https://quay.io, username: q}
  private: {registry: \"http://reg.example.com:5000\", username: p}
ships: {s: {ip: 127.0.0.1}}
services: {}
";
        let env = load(text, &NoFiles, &Ship::new("local", "127.0.0.1"))
            .environment
            .expect("valid");
        let name = |image: &str| registry_for(&env, image).map(|r| r.name.as_str());
        assert_eq!(name("busybox"), None);
        assert_eq!(name("library/busybox"), Some("library"), "by key");
        assert_eq!(name("quay.io/acme/app"), Some("quay"), "by host");
        assert_eq!(
            name("reg.example.com:5000/app"),
            Some("private"),
            "by host and port"
        );
        assert_eq!(
            name("reg.example.com/app"),
            Some("private"),
            "by host without the port"
        );
        assert_eq!(name("other.io/app"), None);
    }
}
