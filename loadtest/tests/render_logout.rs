//! `render_logout`: the logout listener of `envoy/jwt-bcl.yaml` added to the gateways the
//! matrix sends logouts to, their own plugin configuration kept (hybrid stays hybrid), one VM
//! for both filters, and a patch that removes the endpoint again.

// A failed expectation in a test panics: that is how the test fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use loadtest::render::{Topology, plugin_configs, render_gateway};
use loadtest::render_logout::{LOGOUT_PATH, render_with_logout};
use serde_json::{Value, json};

fn envoy_dir() -> std::path::PathBuf {
    loadtest::paths::repo_root().join("envoy")
}

fn topology() -> Topology {
    Topology {
        logout_port: 18002,
        peer_logout_port: 18003,
        ..Topology::native(18000, 18001, 18080, 18081, "/x.wasm")
    }
}

fn listeners(text: &str) -> Vec<Value> {
    let doc: Value = serde_norway::from_str(text).unwrap();
    doc["static_resources"]["listeners"]
        .as_array()
        .unwrap()
        .clone()
}

fn vm(listener: &Value) -> Value {
    listener["filter_chains"][0]["filters"][0]["typed_config"]["http_filters"][0]["typed_config"]
        ["config"]["vm_config"]
        .clone()
}

#[test]
fn hybrid_gets_the_listener_and_keeps_its_mode() {
    let plain = render_gateway(&envoy_dir(), "hybrid", &topology(), None).unwrap();
    let [own] = <[Value; 1]>::try_from(plugin_configs(&plain).unwrap()).unwrap();
    let text = render_with_logout(&envoy_dir(), "hybrid", &topology(), None).unwrap();
    let all = listeners(&text);
    assert_eq!(all.len(), 2);
    assert_eq!(all[1]["name"], "logout");
    assert_eq!(
        all[1]["address"]["socket_address"],
        json!({"address": "127.0.0.1", "port_value": 18002})
    );
    assert_eq!(vm(&all[0]), vm(&all[1]));
    let [api, logout] = <[Value; 2]>::try_from(plugin_configs(&text).unwrap()).unwrap();
    for config in [&api, &logout] {
        assert_eq!(config["mode"], "hybrid");
        assert_eq!(config["introspection"], own["introspection"]);
    }
    assert_eq!(
        api["backchannel_logout"],
        json!({"audiences": ["tokengate-loadtest"]})
    );
    assert_eq!(logout["backchannel_logout"]["path"], LOGOUT_PATH);
    assert_eq!(
        logout["backchannel_logout"]["peers"],
        json!([{"cluster": "peers", "authority": "127.0.0.1:18003"}])
    );
    let mut without = logout.clone();
    without["backchannel_logout"] = api["backchannel_logout"].clone();
    assert_eq!(without, api, "the two differ in the endpoint only");
    let doc: Value = serde_norway::from_str(&text).unwrap();
    let clusters = doc["static_resources"]["clusters"].as_array().unwrap();
    assert!(clusters.iter().any(|c| c["name"] == "peers"));
}

/// jwt rendered this way is jwt-bcl (the listener's template) but for the header comments.
#[test]
fn jwt_with_the_listener_is_jwt_bcl() {
    let text = render_with_logout(&envoy_dir(), "jwt", &topology(), None).unwrap();
    let bcl = render_gateway(&envoy_dir(), "jwt-bcl", &topology(), None).unwrap();
    assert_eq!(
        plugin_configs(&text).unwrap(),
        plugin_configs(&bcl).unwrap()
    );
    let parse = |t: &str| serde_norway::from_str::<Value>(t).unwrap();
    let (mut ours, mut theirs) = (parse(&text), parse(&bcl));
    // The configuration strings differ in layout only (compared parsed above).
    for doc in [&mut ours, &mut theirs] {
        for listener in doc["static_resources"]["listeners"].as_array_mut().unwrap() {
            listener["filter_chains"][0]["filters"][0]["typed_config"]["http_filters"][0]["typed_config"]
                ["config"]["configuration"]["value"] = Value::Null;
        }
    }
    assert_eq!(ours, theirs);
}

/// A patch goes to both filters: `null` removes the endpoint (the listener answers 404).
#[test]
fn a_patch_can_remove_the_endpoint() {
    let patch = json!({"backchannel_logout": null});
    let text = render_with_logout(&envoy_dir(), "jwt", &topology(), Some(&patch)).unwrap();
    for config in plugin_configs(&text).unwrap() {
        assert!(config.get("backchannel_logout").is_none(), "{config}");
    }
    assert!(text.contains("merge-patched with: {\"backchannel_logout\":null}"));
    // Gateways without exactly one tokengate filter are refused.
    let error = render_with_logout(&envoy_dir(), "native-jwt", &topology(), None).unwrap_err();
    assert!(
        error.to_string().contains("exactly one tokengate filter"),
        "{error}"
    );
    let error = render_with_logout(&envoy_dir(), "jwt-bcl", &topology(), None).unwrap_err();
    assert!(error.to_string().contains("exactly one"), "{error}");
}
