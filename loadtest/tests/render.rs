//! The Envoy config templates in `envoy/` and their renderer.
//!
//! Every rendered config is checked with the real Envoy (`envoy --mode
//! validate`); these tests fail, not skip, when Envoy is missing.

// A failed expectation in a test panics: that is how the test fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};

use loadtest::render::{
    Topology, gateways, merge_patch, plugin_config, render_all, render_gateway, write_rendered,
};
use serde_json::{Value, json};

fn envoy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../envoy")
}

/// A fresh, empty scratch directory for one test.
fn scratch(test: &str) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "tokengate-render-{}-{test}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The smallest module Envoy's `--mode validate` accepts as a proxy-wasm
/// plugin. Validate really loads the module: it needs a Proxy-Wasm ABI
/// version export, and it runs `proxy_on_vm_start` and `proxy_on_configure`
/// (both must return true). So the 8-byte empty module is not enough.
fn stub_plugin_module() -> Vec<u8> {
    fn leb(mut n: usize, out: &mut Vec<u8>) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }
    fn vector(items: &[Vec<u8>]) -> Vec<u8> {
        let mut out = Vec::new();
        leb(items.len(), &mut out);
        items.iter().for_each(|item| out.extend(item));
        out
    }
    fn section(id: u8, payload: Vec<u8>, module: &mut Vec<u8>) {
        module.push(id);
        leb(payload.len(), module);
        module.extend(payload);
    }
    const I32: u8 = 0x7f;
    const FUNC: u8 = 0x60;
    let types = [
        vec![FUNC, 1, I32, 1, I32],      // 0: (i32) -> i32
        vec![FUNC, 2, I32, I32, 1, I32], // 1: (i32, i32) -> i32
        vec![FUNC, 0, 0],                // 2: () -> ()
        vec![FUNC, 2, I32, I32, 0],      // 3: (i32, i32) -> ()
        vec![FUNC, 1, I32, 0],           // 4: (i32) -> ()
    ];
    const RETURN_TRUE: &[u8] = &[0x41, 0x01]; // i32.const 1
    const ALLOC_AT_1K: &[u8] = &[0x41, 0x80, 0x08]; // i32.const 1024
    let functions: [(&str, u8, &[u8]); 7] = [
        ("proxy_abi_version_0_2_1", 2, &[]),
        ("proxy_on_memory_allocate", 0, ALLOC_AT_1K),
        ("proxy_on_context_create", 3, &[]),
        ("proxy_on_vm_start", 1, RETURN_TRUE),
        ("proxy_on_configure", 1, RETURN_TRUE),
        ("proxy_on_done", 0, RETURN_TRUE),
        ("proxy_on_delete", 4, &[]),
    ];
    let name = |s: &str| {
        let mut out = Vec::new();
        leb(s.len(), &mut out);
        out.extend(s.as_bytes());
        out
    };

    let mut module = b"\0asm\x01\0\0\0".to_vec();
    section(1, vector(&types), &mut module);
    let signatures: Vec<Vec<u8>> = functions.iter().map(|f| vec![f.1]).collect();
    section(3, vector(&signatures), &mut module);
    // One memory of 4 pages (256 KiB): room for any plugin configuration.
    section(5, vector(&[vec![0x00, 4]]), &mut module);
    let mut exports = vec![[name("memory"), vec![0x02, 0]].concat()];
    for (index, (export, _, _)) in functions.iter().enumerate() {
        exports.push([name(export), vec![0x00, index as u8]].concat());
    }
    section(7, vector(&exports), &mut module);
    let bodies: Vec<Vec<u8>> = functions
        .iter()
        .map(|(_, _, code)| {
            let body = [&[0u8][..], code, &[0x0b]].concat(); // no locals, code, end
            let mut out = Vec::new();
            leb(body.len(), &mut out);
            out.extend(body);
            out
        })
        .collect();
    section(10, vector(&bodies), &mut module);
    module
}

fn write_stub_module(dir: &Path) -> String {
    let path = dir.join("stub-plugin.wasm");
    std::fs::write(&path, stub_plugin_module()).unwrap();
    path.to_str().unwrap().to_string()
}

fn native(wasm_path: &str) -> Topology {
    Topology::native(18000, 18001, 18081, 18080, wasm_path)
}

/// Compose topology, except that the wasm file is one that exists here.
fn compose(wasm_path: &str) -> Topology {
    Topology {
        wasm_path: wasm_path.to_string(),
        ..Topology::compose()
    }
}

/// Runs `envoy --mode validate` on `config`: Ok, or Err with Envoy's output.
/// Panics if Envoy is missing.
fn try_envoy_validate(config: &Path) -> Result<(), String> {
    let envoy = loadtest::paths::envoy_binary()
        .unwrap_or_else(|e| panic!("Envoy is required for these tests: {e:#}"));
    let output = Command::new(&envoy)
        .args(["--mode", "validate", "--log-level", "warning", "-c"])
        .arg(config)
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", envoy.display()));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    if output.status.success() && stdout.contains("OK") {
        Ok(())
    } else {
        Err(format!("{stdout}\n{stderr}"))
    }
}

/// Panics, with Envoy's output and the config, if Envoy rejects `config`.
fn envoy_validate(config: &Path) {
    if let Err(output) = try_envoy_validate(config) {
        panic!(
            "envoy rejected {}:\n{output}\n--- config ---\n{}",
            config.display(),
            std::fs::read_to_string(config).unwrap_or_default()
        );
    }
}

fn parse(rendered: &str) -> Value {
    serde_norway::from_str(rendered).unwrap()
}

/// The plugin configuration jwt.yaml must carry, for `idp` = host:port.
fn expected_jwt_plugin(idp: &str) -> Value {
    json!({
        "mode": "jwt",
        "issuer": format!("http://{idp}/realms/tokengate"),
        "audiences": ["tokengate-api"],
        "algorithms": ["RS256", "ES256"],
        "clock_skew_seconds": 5,
        "realm": "tokengate",
        "jwks": {"remote": {
            "cluster": "idp",
            "authority": idp,
            "path": "/realms/tokengate/protocol/openid-connect/certs",
            "refresh_seconds": 300,
            "timeout_ms": 2000
        }},
        "forward": {
            "strip_authorization": false,
            "claims_to_headers": [
                {"claim": "sub", "header": "x-jwt-sub"},
                {"claim": "azp", "header": "x-jwt-client"},
                {"claim": "scope", "header": "x-jwt-scope"},
                {"claim": "realm_access.roles", "header": "x-jwt-roles"}
            ]
        }
    })
}

#[test]
fn lists_the_gateways() {
    assert_eq!(
        gateways(&envoy_dir()).unwrap(),
        [
            "hybrid",
            "introspect",
            "jwt",
            "jwt-bcl",
            "jwt-no-exp",
            "native-jwt",
            "no-auth",
            "policy"
        ]
    );
}

#[test]
fn every_gateway_validates_natively_and_in_compose() {
    let dir = scratch("validate");
    let wasm = write_stub_module(&dir);
    for (label, topology) in [("native", native(&wasm)), ("compose", compose(&wasm))] {
        let out = dir.join(label);
        let written = render_all(&envoy_dir(), &topology, &out).unwrap();
        assert_eq!(written.len(), gateways(&envoy_dir()).unwrap().len());
        for path in written {
            envoy_validate(&path);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn patched_gateways_validate() {
    let dir = scratch("patched");
    let wasm = write_stub_module(&dir);
    let inline = json!({"jwks": {"remote": null, "inline": {"keys": [
        {"kty": "EC", "crv": "P-256", "kid": "k1", "alg": "ES256", "x": "AAAA", "y": "BBBB"}
    ]}}});
    let scopes = json!({"required_scopes": ["admin"]});
    for (gateway, patch) in [("jwt", &inline), ("jwt-no-exp", &scopes)] {
        let text = render_gateway(&envoy_dir(), gateway, &native(&wasm), Some(patch)).unwrap();
        envoy_validate(&write_rendered(&dir, gateway, &text).unwrap());
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Validate loads the module for real: a missing file, a module that is not a
/// proxy-wasm plugin, or an unknown runtime all fail; so the tests above
/// really check the wasm part of the configs.
#[test]
fn validate_loads_the_wasm_module() {
    let dir = scratch("wasm");
    let empty_module = dir.join("empty.wasm");
    std::fs::write(&empty_module, b"\0asm\x01\0\0\0").unwrap();
    let stub = write_stub_module(&dir);
    let cases = [
        (
            "missing",
            native(dir.join("missing.wasm").to_str().unwrap()),
            "Invalid path",
        ),
        (
            "empty-module",
            native(empty_module.to_str().unwrap()),
            "Unable to create Wasm plugin",
        ),
        (
            "bad-runtime",
            Topology {
                wasm_runtime: "envoy.wasm.runtime.nonexistent".to_string(),
                ..native(&stub)
            },
            "Unable to create Wasm plugin",
        ),
    ];
    for (label, topology, needle) in cases {
        let text = render_gateway(&envoy_dir(), "jwt", &topology, None).unwrap();
        let path = write_rendered(&dir.join(label), "jwt", &text).unwrap();
        let err = try_envoy_validate(&path).expect_err(label);
        assert!(err.contains(needle), "{label}: {err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

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

/// A template directory holding only `files`.
fn template_dir(test: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = scratch(test);
    for (name, text) in files {
        std::fs::write(dir.join(name), text).unwrap();
    }
    dir
}

fn render_err(dir: &Path, gateway: &str) -> String {
    let err = render_gateway(dir, gateway, &native("/x.wasm"), None).unwrap_err();
    format!("{err:#}")
}

#[test]
fn unknown_and_leftover_placeholders_are_errors() {
    let dir = template_dir(
        "placeholders",
        &[
            (
                "unknown.yaml",
                "admin:\n  x: ${LISTEN_PORT}\n  y: ${NO_SUCH_THING}\n",
            ),
            ("open.yaml", "admin:\n  x: ${LISTEN_PORT\n"),
            ("lower.yaml", "admin:\n  x: ${listen_port}\n"),
            ("empty.yaml", "admin:\n  x: ${}\n"),
            (
                "ok.yaml",
                "# ${BIND_ADDRESS}\nadmin:\n  x: $LISTEN_PORT $ {}\n",
            ),
        ],
    );
    let err = render_err(&dir, "unknown");
    assert!(
        err.contains("unknown.yaml:3") && err.contains("NO_SUCH_THING"),
        "{err}"
    );
    let err = render_err(&dir, "open");
    assert!(err.contains("open.yaml:2") && err.contains("${"), "{err}");
    let err = render_err(&dir, "lower");
    assert!(
        err.contains("lower.yaml") && err.contains("listen_port"),
        "{err}"
    );
    let err = render_err(&dir, "empty");
    assert!(err.contains("empty.yaml") && err.contains("${}"), "{err}");
    // A `$` that does not start `${` is left alone; comments are substituted.
    let ok = render_gateway(&dir, "ok", &native("/x.wasm"), None).unwrap();
    assert_eq!(ok, "# 127.0.0.1\nadmin:\n  x: $LISTEN_PORT $ {}\n");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn placeholder_values_cannot_break_the_yaml() {
    for wasm_path in [
        "/a b.wasm",
        "/a'b.wasm",
        "/a\"b.wasm",
        "/a,b.wasm",
        "x\ny",
        "",
    ] {
        let err = render_gateway(&envoy_dir(), "jwt", &native(wasm_path), None).unwrap_err();
        assert!(
            format!("{err:#}").contains("WASM_PATH"),
            "{wasm_path:?}: {err:#}"
        );
    }
}

#[test]
fn extends_directives_are_checked() {
    let base = "# base\nadmin: {}\n";
    let dir = template_dir(
        "extends",
        &[
            ("base.yaml", base),
            (
                "alias.yaml",
                "# alias of base\n# tokengate-extends: base.yaml\n",
            ),
            ("body.yaml", "# tokengate-extends: base.yaml\nadmin: {}\n"),
            ("a.yaml", "# tokengate-extends: b.yaml\n"),
            ("b.yaml", "# tokengate-extends: a\n"),
            ("missing.yaml", "# tokengate-extends: nowhere.yaml\n"),
            ("typo.yaml", "# tokengate-extend: base.yaml\n"),
            ("late.yaml", "admin: {}\n# tokengate-plugin-patch: {}\n"),
            (
                "badjson.yaml",
                "# tokengate-extends: base.yaml\n# tokengate-plugin-patch: {x\n",
            ),
            (
                "patch-no-filter.yaml",
                "# tokengate-extends: base.yaml\n# tokengate-plugin-patch: {}\n",
            ),
            ("blank.yaml", "# nothing here\n"),
        ],
    );
    // An extending template without a patch renders the base, under its own header.
    let alias = render_gateway(&dir, "alias", &native("/x.wasm"), None).unwrap();
    assert!(
        alias.starts_with(
            "# alias of base\n# Generated by loadtest::render from base.yaml <- alias.yaml;"
        ),
        "{alias}"
    );
    assert_eq!(parse(&alias), parse(base));

    for (gateway, needle) in [
        ("body", "must have no YAML body"),
        ("a", "cycle: a -> b -> a"),
        ("missing", "nowhere.yaml"),
        ("typo", "unknown directive tokengate-extend"),
        ("late", "late.yaml:2"),
        ("badjson", "badjson.yaml:2"),
        ("patch-no-filter", "no tokengate filter"),
        ("blank", "empty"),
        ("../jwt", "bad gateway name"),
    ] {
        let err = render_err(&dir, gateway);
        assert!(err.contains(needle), "{gateway}: {err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn writes_rendered_configs() {
    let dir = scratch("write");
    let text = render_gateway(&envoy_dir(), "no-auth.yaml", &native("/x.wasm"), None).unwrap();
    let path = write_rendered(&dir.join("out"), "no-auth", &text).unwrap();
    assert_eq!(path, dir.join("out/no-auth.yaml"));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
    // Unpatched templates keep their comments.
    assert!(text.starts_with("# Gateway \"no-auth\""));

    let json_text = serde_json::to_string(&parse(&text)).unwrap();
    let path = write_rendered(&dir, "no-auth", &json_text).unwrap();
    assert_eq!(path, dir.join("no-auth.json"));
    assert_eq!(plugin_config(&json_text).unwrap(), None);
    let _ = std::fs::remove_dir_all(&dir);
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
