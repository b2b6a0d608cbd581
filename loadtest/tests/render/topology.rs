//! What the rendered gateways share and where they differ: the compose topology, the HTTP
//! filters, Envoy's own JWT filter, the wasm runtime, the back-channel logout listener.

use super::*;

#[test]
fn compose_topology_fills_the_shared_pieces() {
    let rendered = render_gateway(&envoy_dir(), "jwt", &Topology::compose(), None).unwrap();
    let doc = parse(&rendered);
    let listener = &doc["static_resources"]["listeners"][0];
    assert_eq!(
        listener["address"]["socket_address"],
        json!({"address": "0.0.0.0", "port_value": 10000})
    );
    assert_eq!(
        doc["admin"]["address"]["socket_address"],
        json!({"address": "0.0.0.0", "port_value": 9901})
    );
    let clusters = doc["static_resources"]["clusters"].as_array().unwrap();
    let endpoint = |name: &str| {
        let cluster = clusters.iter().find(|c| c["name"] == name).unwrap();
        assert_eq!(cluster["type"], "STRICT_DNS");
        assert_eq!(cluster["connect_timeout"], "1s");
        assert_eq!(
            cluster["circuit_breakers"]["thresholds"][0]["max_requests"],
            100000
        );
        cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
            ["socket_address"]
            .clone()
    };
    assert_eq!(
        endpoint("backend"),
        json!({"address": "backend", "port_value": 8081})
    );
    assert_eq!(
        endpoint("idp"),
        json!({"address": "keycloak", "port_value": 8080})
    );
    let wasm = &listener["filter_chains"][0]["filters"][0]["typed_config"]["http_filters"][0]["typed_config"]
        ["config"]["vm_config"];
    assert_eq!(wasm["runtime"], "envoy.wasm.runtime.v8");
    assert_eq!(
        wasm["code"]["local"]["filename"],
        "/etc/envoy/tokengate.wasm"
    );
    assert_eq!(
        plugin_config(&rendered).unwrap().unwrap(),
        expected_jwt_plugin("keycloak:8080")
    );

    // Load-tested configs: no access log anywhere, in any gateway.
    for gateway in gateways(&envoy_dir()).unwrap() {
        let text = render_gateway(&envoy_dir(), &gateway, &Topology::compose(), None).unwrap();
        assert!(!text.contains("access_log"), "{gateway} has an access log");
        assert!(!text.contains("${"), "{gateway} has a leftover placeholder");
    }
}

/// The gateways are compared against each other under load, so apart from
/// their HTTP filters (and comments) they must be the same config. The policy gateway names
/// its routes (its rules refer to them) and matches one on a forwarded header, but every route
/// still goes to the same backend.
#[test]
fn gateways_differ_only_in_their_http_filters() {
    let hcm = "/static_resources/listeners/0/filter_chains/0/filters/0/typed_config";
    let mut rest = Vec::new();
    for gateway in gateways(&envoy_dir()).unwrap() {
        let text = render_gateway(&envoy_dir(), &gateway, &native("/x.wasm"), None).unwrap();
        let mut doc = parse(&text);
        let filters = doc
            .pointer_mut(&format!("{hcm}/http_filters"))
            .map(Value::take)
            .unwrap();
        let filters = filters.as_array().unwrap();
        assert_eq!(
            filters.last().unwrap()["name"],
            "envoy.filters.http.router",
            "{gateway}"
        );
        let routes = doc
            .pointer_mut(&format!("{hcm}/route_config/virtual_hosts/0/routes"))
            .map(Value::take)
            .unwrap();
        for route in routes.as_array().unwrap() {
            assert_eq!(route["route"]["cluster"], "backend", "{gateway}: {route}");
        }
        if gateway == "jwt-bcl" {
            // Its logout listener (only the IdP reaches it) and the cluster of its peer
            // replicas come on top of what every gateway has.
            let listeners = doc["static_resources"]["listeners"].as_array_mut().unwrap();
            let logout = listeners.pop().unwrap();
            assert_eq!(logout["name"], "logout");
            let clusters = doc["static_resources"]["clusters"].as_array_mut().unwrap();
            let peers = clusters.pop().unwrap();
            assert_eq!(peers["name"], "peers");
        }
        rest.push((gateway, doc));
    }
    for (gateway, doc) in &rest[1..] {
        assert_eq!(doc, &rest[0].1, "{gateway} vs {}", rest[0].0);
    }
}

#[test]
fn native_jwt_uses_envoys_own_filter() {
    let rendered = render_gateway(&envoy_dir(), "native-jwt", &native("/x.wasm"), None).unwrap();
    assert_eq!(plugin_config(&rendered).unwrap(), None);
    let doc = parse(&rendered);
    let filter = &doc["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
        ["http_filters"][0];
    assert_eq!(filter["name"], "envoy.filters.http.jwt_authn");
    let provider = &filter["typed_config"]["providers"]["tokengate"];
    assert_eq!(
        provider["issuer"],
        "http://127.0.0.1:18080/realms/tokengate"
    );
    assert_eq!(
        provider["remote_jwks"]["http_uri"]["uri"],
        "http://127.0.0.1:18080/realms/tokengate/protocol/openid-connect/certs"
    );
    assert_eq!(provider["remote_jwks"]["http_uri"]["cluster"], "idp");
}

#[test]
fn runtime_is_a_parameter() {
    let topology = Topology {
        wasm_runtime: "envoy.wasm.runtime.wamr".to_string(),
        ..native("/x.wasm")
    };
    for gateway in ["jwt", "jwt-no-exp"] {
        let rendered = render_gateway(&envoy_dir(), gateway, &topology, None).unwrap();
        assert!(rendered.contains("envoy.wasm.runtime.wamr"), "{gateway}");
        assert!(!rendered.contains("runtime.v8"), "{gateway}");
    }
}

/// `jwt-bcl`: the API listener refuses ended sessions but takes no logout; the logout listener
/// takes them and relays them to the peer; both filters are one VM (same `vm_id` and code),
/// so they share the log of ended sessions; a plugin patch reaches both.
#[test]
fn jwt_bcl_takes_logouts_on_its_own_listener() {
    let topology = Topology {
        logout_port: 18002,
        peer_logout_port: 18003,
        ..native("/x.wasm")
    };
    let patch = json!({"backchannel_logout": {"max_entries": 5000}});
    let rendered = render_gateway(&envoy_dir(), "jwt-bcl", &topology, Some(&patch)).unwrap();
    let doc = parse(&rendered);
    let listeners = doc["static_resources"]["listeners"].as_array().unwrap();
    assert_eq!(listeners[1]["name"], "logout");
    assert_eq!(
        listeners[1]["address"]["socket_address"],
        json!({"address": "127.0.0.1", "port_value": 18002})
    );
    let vm = |listener: &Value| {
        listener["filter_chains"][0]["filters"][0]["typed_config"]["http_filters"][0]
            ["typed_config"]["config"]["vm_config"]
            .clone()
    };
    assert_eq!(vm(&listeners[0]), vm(&listeners[1]));
    let [api, logout] =
        <[Value; 2]>::try_from(loadtest::render::plugin_configs(&rendered).unwrap()).unwrap();
    assert_eq!(api["issuer"], logout["issuer"]);
    assert_eq!(api["backchannel_logout"]["path"], Value::Null);
    assert_eq!(logout["backchannel_logout"]["path"], "/backchannel-logout");
    assert_eq!(
        api["backchannel_logout"]["audiences"],
        logout["backchannel_logout"]["audiences"]
    );
    for config in [&api, &logout] {
        assert_eq!(config["backchannel_logout"]["max_entries"], 5000);
    }
    assert_eq!(
        logout["backchannel_logout"]["peers"],
        json!([{"cluster": "peers", "authority": "127.0.0.1:18003"}])
    );
    let clusters = doc["static_resources"]["clusters"].as_array().unwrap();
    let peers = clusters.iter().find(|c| c["name"] == "peers").unwrap();
    assert_eq!(
        peers["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"],
        json!({"address": "127.0.0.1", "port_value": 18003})
    );
}
