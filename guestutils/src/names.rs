//! Variable names: the fixed ones and the per-service, per-instance, per-port ones.
//!
//! Every name derived from a service, instance or port name goes through
//! [`env_var_name`], MaestroNG's `re.sub(r'[^\w]', '_', x).upper()`.

/// The environment's `name`.
pub const ENVIRONMENT_NAME: &str = "MAESTRO_ENVIRONMENT_NAME";
/// The service's key in the environment file.
pub const SERVICE_NAME: &str = "SERVICE_NAME";
/// The instance's key, which is also its Docker container name.
pub const CONTAINER_NAME: &str = "CONTAINER_NAME";
/// The `ip` of the ship the instance runs on.
pub const CONTAINER_HOST_ADDRESS: &str = "CONTAINER_HOST_ADDRESS";
/// The image the instance is created from, as written in the file.
pub const DOCKER_IMAGE: &str = "DOCKER_IMAGE";
/// The tag of that image (`latest` when none is given).
pub const DOCKER_TAG: &str = "DOCKER_TAG";

/// MaestroNG's name normalisation: every character that is not a Unicode word character
/// (letter, digit or `_`) becomes `_`, then the whole name is upper-cased with full
/// Unicode case mapping (`straße` becomes `STRASSE`). Nothing is collapsed or trimmed.
pub fn env_var_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if c.is_ascii() {
            out.push(if c.is_ascii_alphanumeric() || c == '_' {
                c.to_ascii_uppercase()
            } else {
                '_'
            });
        } else if c.is_alphanumeric() {
            out.extend(c.to_uppercase());
        } else {
            out.push('_');
        }
    }
    out
}

/// `{SERVICE}_INSTANCES`: the comma-separated, sorted instance names of a service.
pub fn instances_var(service: &str) -> String {
    format!("{}_INSTANCES", env_var_name(service))
}

/// `{SERVICE}_{INSTANCE}_HOST`: the ship address of an instance.
pub fn host_var(service: &str, instance: &str) -> String {
    InstanceVars::new(service, instance).host()
}

/// `{SERVICE}_{INSTANCE}_{PORT}_PORT`: the external (host-side) port of an instance.
pub fn port_var(service: &str, instance: &str, port: &str) -> String {
    InstanceVars::new(service, instance).port(port)
}

/// `{SERVICE}_{INSTANCE}_{PORT}_INTERNAL_PORT`: the container-side port of an instance.
/// Only an instance's own service receives these.
pub fn internal_port_var(service: &str, instance: &str, port: &str) -> String {
    InstanceVars::new(service, instance).internal_port(port)
}

/// The names of one instance's variables, with the service and instance names
/// normalised once (the controller builds thousands of these).
pub struct InstanceVars {
    prefix: String,
}

impl InstanceVars {
    pub fn new(service: &str, instance: &str) -> Self {
        let mut prefix = env_var_name(service);
        prefix.push('_');
        prefix.push_str(&env_var_name(instance));
        InstanceVars { prefix }
    }

    /// `{SERVICE}_{INSTANCE}_HOST`.
    pub fn host(&self) -> String {
        format!("{}_HOST", self.prefix)
    }

    /// `{SERVICE}_{INSTANCE}_{PORT}_PORT`.
    pub fn port(&self, port: &str) -> String {
        format!("{}_{}_PORT", self.prefix, env_var_name(port))
    }

    /// `{SERVICE}_{INSTANCE}_{PORT}_INTERNAL_PORT`.
    pub fn internal_port(&self, port: &str) -> String {
        format!("{}_{}_INTERNAL_PORT", self.prefix, env_var_name(port))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation_matches_maestro_ng() {
        let cases = [
            ("my-svc.v2", "MY_SVC_V2"),
            ("with space", "WITH_SPACE"),
            ("café", "CAFÉ"),
            ("straße-1", "STRASSE_1"),
            ("ñ", "Ñ"),
            ("a--b", "A__B"),
            ("inst_1_a", "INST_1_A"),
            ("inst-1.a", "INST_1_A"),
            ("Mixed-Case", "MIXED_CASE"),
            ("", ""),
            ("x/y:z@1", "X_Y_Z_1"),
            ("٣", "٣"),
        ];
        for (input, want) in cases {
            assert_eq!(env_var_name(input), want, "N({input:?})");
        }
    }

    #[test]
    fn derived_names() {
        assert_eq!(instances_var("zoo-keeper"), "ZOO_KEEPER_INSTANCES");
        assert_eq!(host_var("zk", "zk-1"), "ZK_ZK_1_HOST");
        assert_eq!(port_var("zk", "zk-1", "client"), "ZK_ZK_1_CLIENT_PORT");
        assert_eq!(
            internal_port_var("kafka", "kafka-2", "broker"),
            "KAFKA_KAFKA_2_BROKER_INTERNAL_PORT"
        );
    }
}
