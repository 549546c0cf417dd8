//! Data-driven tests of the discovery queries against MaestroNG's documented answers.

use std::collections::BTreeMap;

use super::*;

/// The variables MaestroNG gives `kafka-2` in its zookeeper+kafka example.
fn kafka_2() -> BTreeMap<String, String> {
    [
        ("MAESTRO_ENVIRONMENT_NAME", "zk-kafka"),
        ("SERVICE_NAME", "kafka"),
        ("CONTAINER_NAME", "kafka-2"),
        ("CONTAINER_HOST_ADDRESS", "192.168.10.2"),
        ("KAFKA_INSTANCES", "kafka-1,kafka-2,kafka-3"),
        ("KAFKA_KAFKA_2_HOST", "192.168.10.2"),
        ("KAFKA_KAFKA_2_BROKER_PORT", "9093"),
        ("KAFKA_KAFKA_2_BROKER_INTERNAL_PORT", "9093"),
        ("ZOOKEEPER_INSTANCES", "zk-node-1,zk-node-2,zk-node-3"),
        ("ZOOKEEPER_ZK_NODE_1_HOST", "192.168.10.2"),
        ("ZOOKEEPER_ZK_NODE_1_CLIENT_PORT", "2181"),
        ("ZOOKEEPER_ZK_NODE_1_PEER_PORT", "2888"),
        ("ZOOKEEPER_ZK_NODE_2_HOST", "192.168.10.2"),
        ("ZOOKEEPER_ZK_NODE_2_CLIENT_PORT", "2182"),
        ("ZOOKEEPER_ZK_NODE_2_PEER_PORT", "2889"),
        ("ZOOKEEPER_ZK_NODE_3_HOST", "192.168.10.2"),
        ("ZOOKEEPER_ZK_NODE_3_CLIENT_PORT", "2183"),
        ("ZOOKEEPER_ZK_NODE_3_PEER_PORT", "2890"),
        ("EMPTY_INSTANCES", ""),
        ("RANGE_INSTANCES", "r-1"),
        ("RANGE_R_1_HOST", "h"),
        ("RANGE_R_1_P_PORT", "1234-1236"),
        ("RANGE_R_1_P_INTERNAL_PORT", "1234-1236"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

#[test]
fn node_lists() {
    let vars = kafka_2();
    type Case<'a> = (
        &'a str,
        &'a [&'a str],
        usize,
        Result<&'a [&'a str], &'a str>,
    );
    let cases: &[Case] = &[
        (
            "zookeeper",
            &["client", "peer"],
            1,
            Ok(&[
                "192.168.10.2:2181:2888",
                "192.168.10.2:2182:2889",
                "192.168.10.2:2183:2890",
            ]),
        ),
        (
            "zookeeper",
            &[],
            1,
            Ok(&["192.168.10.2", "192.168.10.2", "192.168.10.2"]),
        ),
        (
            "zookeeper",
            &[],
            4,
            Err("No or not enough zookeeper nodes configured"),
        ),
        (
            "nothing",
            &[],
            1,
            Err("No or not enough nothing nodes configured"),
        ),
        ("nothing", &[], 0, Ok(&[])),
        (
            "empty",
            &[],
            0,
            Err("No host defined for container  of service empty"),
        ),
        (
            "zookeeper",
            &["admin"],
            1,
            Err("No port admin defined for container zk-node-1 of service zookeeper"),
        ),
        (
            "range",
            &["p"],
            1,
            Err("No port p defined for container r-1 of service range"),
        ),
    ];
    for (service, ports, minimum, want) in cases {
        let got = node_list(&vars, service, ports, *minimum);
        match want {
            Ok(nodes) => assert_eq!(got.unwrap(), *nodes, "{service} {ports:?}"),
            Err(message) => {
                assert_eq!(
                    got.unwrap_err().to_string(),
                    *message,
                    "{service} {ports:?}"
                )
            }
        }
    }
}

#[test]
fn own_and_specific_ports() {
    let vars = kafka_2();
    assert_eq!(port(&vars, "broker", None), Ok(9093));
    assert_eq!(port(&vars, "missing", Some("7")), Ok(7));
    assert_eq!(
        port(&vars, "missing", None).unwrap_err().to_string(),
        "No internal port missing defined for container kafka-2 of service kafka"
    );
    assert_eq!(
        specific_port(&vars, "zookeeper", "zk-node-2", "client", None),
        Ok(2182)
    );
    assert_eq!(
        specific_port(&vars, "zookeeper", "zk-node-2", "admin", Some("12")),
        Ok(12)
    );
    // Dependencies never receive INTERNAL_PORT variables.
    assert_eq!(
        specific_exposed_port(&vars, "zookeeper", "zk-node-2", "client", None)
            .unwrap_err()
            .to_string(),
        "No internal port client defined for container zk-node-2 of service zookeeper"
    );
    assert_eq!(
        specific_host(&vars, "zookeeper", "zk-node-9")
            .unwrap_err()
            .to_string(),
        "No host defined for container zk-node-9 of service zookeeper"
    );
}

#[test]
fn identity_and_its_errors() {
    let vars = kafka_2();
    assert_eq!(environment_name(&vars), "zk-kafka");
    assert_eq!(service_name(&vars).as_deref(), Ok("kafka"));
    assert_eq!(container_name(&vars).as_deref(), Ok("kafka-2"));
    assert_eq!(container_host_address(&vars).as_deref(), Ok("192.168.10.2"));

    let mut empty = BTreeMap::new();
    assert_eq!(environment_name(&empty), "local");
    assert_eq!(
        service_name(&empty).unwrap_err().to_string(),
        "Service name was not defined"
    );
    assert_eq!(
        container_name(&empty).unwrap_err().to_string(),
        "Container name was not defined"
    );
    assert_eq!(
        container_host_address(&empty).unwrap_err().to_string(),
        "Container host address was not defined"
    );
    // The service name is checked before the container name.
    assert_eq!(
        port(&empty, "x", None).unwrap_err(),
        DiscoveryError::ServiceNameUndefined
    );
    empty.insert("MAESTRO_ENVIRONMENT_NAME".into(), String::new());
    empty.insert("SERVICE_NAME".into(), String::new());
    assert_eq!(environment_name(&empty), "");
    assert_eq!(
        service_name(&empty).unwrap_err(),
        DiscoveryError::ServiceNameUndefined
    );
}

#[test]
fn python_int_rules() {
    let cases = [
        ("12", Some(12)),
        (" 12 ", Some(12)),
        ("+3", Some(3)),
        ("-3", Some(-3)),
        ("1_000", Some(1000)),
        ("0090", Some(90)),
        ("", None),
        ("1__0", None),
        ("_1", None),
        ("1234-1236", None),
        ("1.5", None),
        ("99999999999999999999", None),
    ];
    for (text, want) in cases {
        assert_eq!(python_int(text), want, "{text:?}");
    }
}
