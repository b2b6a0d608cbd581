//! Plugin patches (RFC 7386 merge patches of the filter's configuration): `jwt-no-exp`, round
//! trips, where they apply.

use super::*;

#[test]
fn jwt_no_exp_is_jwt_plus_its_declared_patch() {
    let topology = native("/x.wasm");
    let jwt = render_gateway(&envoy_dir(), "jwt", &topology, None).unwrap();
    let no_exp = render_gateway(&envoy_dir(), "jwt-no-exp", &topology, None).unwrap();

    // The patch as the template declares it, read independently of the renderer.
    let template = std::fs::read_to_string(envoy_dir().join("jwt-no-exp.yaml")).unwrap();
    let declared = template
        .lines()
        .find_map(|l| l.strip_prefix("# tokengate-plugin-patch:"))
        .map(|json| serde_json::from_str::<Value>(json.trim()).unwrap())
        .unwrap();
    assert_eq!(declared, json!({"claims_to_verify": ["nbf"]}));
    assert!(template.contains("# tokengate-extends: jwt.yaml"));

    let mut expected = plugin_config(&jwt).unwrap().unwrap();
    merge_patch(&mut expected, &declared);
    assert_eq!(plugin_config(&no_exp).unwrap().unwrap(), expected);

    // Everything but the plugin configuration is identical.
    let pointer = "/static_resources/listeners/0/filter_chains/0/filters/0/typed_config/\
                   http_filters/0/typed_config/config/configuration/value";
    let (mut a, mut b) = (parse(&jwt), parse(&no_exp));
    *a.pointer_mut(pointer).unwrap() = Value::Null;
    *b.pointer_mut(pointer).unwrap() = Value::Null;
    assert_eq!(a, b);

    // It says what it is, and keeps the template's key order.
    assert!(no_exp.starts_with("# Gateway \"jwt-no-exp\""));
    assert!(no_exp.contains(
        "\n# Plugin configuration merge-patched with: {\"claims_to_verify\":[\"nbf\"]}\n"
    ));
    assert!(!no_exp.contains("tokengate-extends"));
    let position = |s: &str| no_exp.find(s).unwrap();
    assert!(position("\nadmin:") < position("\nstatic_resources:"));
    assert!(position("listeners:") < position("clusters:"));
}

#[test]
fn plugin_patch_round_trips() {
    let topology = native("/x.wasm");
    let base = plugin_config(&render_gateway(&envoy_dir(), "jwt", &topology, None).unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(base, expected_jwt_plugin("127.0.0.1:18080"));

    let patch = json!({"required_scopes": ["admin"]});
    let patched = render_gateway(&envoy_dir(), "jwt", &topology, Some(&patch)).unwrap();
    let mut expected = base.clone();
    expected["required_scopes"] = json!(["admin"]);
    assert_eq!(plugin_config(&patched).unwrap().unwrap(), expected);

    // Remote JWKS swapped for inline keys.
    let keys = json!({"keys": [{"kty": "RSA", "kid": "a", "n": "xyz", "e": "AQAB"}]});
    let patch = json!({"jwks": {"remote": null, "inline": keys}});
    let patched = render_gateway(&envoy_dir(), "jwt", &topology, Some(&patch)).unwrap();
    let config = plugin_config(&patched).unwrap().unwrap();
    assert_eq!(config["jwks"], json!({"inline": keys}));
    assert_eq!(config["issuer"], base["issuer"]);

    // A caller patch stacks on top of a declared one.
    let patch = json!({"claims_to_verify": ["nbf", "iat"], "realm": null});
    let patched = render_gateway(&envoy_dir(), "jwt-no-exp", &topology, Some(&patch)).unwrap();
    let config = plugin_config(&patched).unwrap().unwrap();
    assert_eq!(config["claims_to_verify"], json!(["nbf", "iat"]));
    assert!(config.get("realm").is_none());
}

#[test]
fn plugin_patch_needs_a_tokengate_filter() {
    for gateway in ["no-auth", "native-jwt"] {
        let err = render_gateway(
            &envoy_dir(),
            gateway,
            &native("/x.wasm"),
            Some(&json!({"a": 1})),
        )
        .unwrap_err();
        assert!(
            format!("{err:#}").contains("no tokengate filter"),
            "{gateway}: {err:#}"
        );
    }
}

#[test]
fn merge_patch_follows_rfc_7386() {
    let cases = [
        // Objects merge key-wise; null removes.
        (
            json!({"a": "b", "c": {"d": "e", "f": "g"}}),
            json!({"a": "z", "c": {"f": null}}),
            json!({"a": "z", "c": {"d": "e"}}),
        ),
        // Arrays replace, never merge.
        (
            json!({"a": [1, 2, 3]}),
            json!({"a": [4]}),
            json!({"a": [4]}),
        ),
        (
            json!({"a": [{"b": "c"}]}),
            json!({"a": [1]}),
            json!({"a": [1]}),
        ),
        // New keys are added; nested nulls in added objects are dropped.
        (
            json!({"e": null}),
            json!({"a": 1}),
            json!({"e": null, "a": 1}),
        ),
        (
            json!({}),
            json!({"a": {"bb": {"ccc": null}}}),
            json!({"a": {"bb": {}}}),
        ),
        // A non-object target is replaced by an object patch.
        (
            json!({"a": "foo"}),
            json!({"a": {"b": 1}}),
            json!({"a": {"b": 1}}),
        ),
        (json!(["a", "b"]), json!({"a": "b"}), json!({"a": "b"})),
        // A non-object patch replaces the whole target.
        (json!({"a": "foo"}), json!("bar"), json!("bar")),
        (json!({"a": "foo"}), json!(null), json!(null)),
        // Removing a missing key is a no-op.
        (json!({"a": 1}), json!({"x": null}), json!({"a": 1})),
    ];
    for (mut target, patch, expected) in cases {
        merge_patch(&mut target, &patch);
        assert_eq!(target, expected, "patch {patch}");
    }
}
