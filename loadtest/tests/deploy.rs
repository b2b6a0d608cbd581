//! The deployment manifests of `deploy/`, checked without a cluster: every object against the
//! OpenAPI schema of its kind's CRD (pinned in `testdata/crds/`, Kubernetes' `x-kubernetes-*`
//! extensions left out, unknown fields refused as `kubectl apply` refuses them), the plugin
//! configuration against the `jwt` gateway's (envoy/jwt.yaml), the image against the workspace
//! version. Broken manifests must be caught.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};
use loadtest::render::{self, Topology};
use serde::Deserialize;
use serde_json::{Value, json};

const ISTIO: &str = "deploy/istio/wasmplugin.yaml";
const ENVOY_GATEWAY: &str = "deploy/envoy-gateway/envoyextensionpolicy.yaml";
/// The CRDs of the kinds the manifests hold.
const CRDS: [&str; 2] = [
    "testdata/crds/istio-wasmplugin-crd.yaml",
    "testdata/crds/envoy-gateway-envoyextensionpolicy-crd.yaml",
];
/// The root_id of the tokengate filter in envoy/jwt.yaml.
const ROOT_ID: &str = "tokengate";

fn root() -> PathBuf {
    loadtest::paths::repo_root()
}

/// Every YAML document of a file, as JSON (empty documents, e.g. a leading comment, skipped).
fn documents(path: &Path) -> Result<Vec<Value>> {
    let text = std::fs::read_to_string(path).with_context(|| path.display().to_string())?;
    let mut out = Vec::new();
    for document in serde_norway::Deserializer::from_str(&text) {
        let value = Value::deserialize(document).with_context(|| path.display().to_string())?;
        if !value.is_null() {
            out.push(value);
        }
    }
    Ok(out)
}

/// A CRD's schema for one version, made a plain JSON Schema: `x-kubernetes-*` keys removed;
/// objects that list their properties and do not preserve unknown fields get
/// `additionalProperties: false` (the API server with strict field validation, kubectl's
/// default, refuses unknown fields).
fn json_schema(schema: &Value) -> Value {
    match schema {
        Value::Object(map) => {
            let preserve = map.get("x-kubernetes-preserve-unknown-fields") == Some(&json!(true));
            let mut out: serde_json::Map<String, Value> = map
                .iter()
                .filter(|(key, _)| !key.starts_with("x-kubernetes-"))
                .map(|(key, value)| (key.clone(), json_schema(value)))
                .collect();
            if map.contains_key("properties")
                && !preserve
                && !map.contains_key("additionalProperties")
            {
                out.insert("additionalProperties".to_owned(), json!(false));
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(json_schema).collect()),
        other => other.clone(),
    }
}

struct Crd {
    api_versions: Vec<(String, jsonschema::Validator)>,
    kind: String,
}

fn crds() -> Result<Vec<Crd>> {
    let mut out = Vec::new();
    for file in CRDS {
        let path = root().join(file);
        let crd = documents(&path)?
            .into_iter()
            .find(|doc| doc["kind"] == "CustomResourceDefinition")
            .with_context(|| format!("{file} holds no CustomResourceDefinition"))?;
        let group = crd["spec"]["group"].as_str().unwrap_or_default();
        let mut api_versions = Vec::new();
        for version in crd["spec"]["versions"].as_array().into_iter().flatten() {
            if version["served"] != true {
                continue;
            }
            let mut schema = json_schema(&version["schema"]["openAPIV3Schema"]);
            // Every object has these, whether its CRD's schema lists them or not (the API
            // server checks metadata itself).
            if let Some(properties) = schema["properties"].as_object_mut() {
                for (field, kind) in [
                    ("apiVersion", "string"),
                    ("kind", "string"),
                    ("metadata", "object"),
                ] {
                    properties
                        .entry(field)
                        .or_insert_with(|| json!({ "type": kind }));
                }
            }
            let validator = jsonschema::validator_for(&schema)
                .map_err(|err| anyhow::anyhow!("{file}: schema: {err}"))?;
            let name = version["name"].as_str().unwrap_or_default();
            api_versions.push((format!("{group}/{name}"), validator));
        }
        out.push(Crd {
            api_versions,
            kind: crd["spec"]["names"]["kind"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        });
    }
    Ok(out)
}

/// Schema problems of one object: none when its kind's CRD accepts it.
fn schema_problems(crds: &[Crd], object: &Value) -> Vec<String> {
    let kind = object["kind"].as_str().unwrap_or_default();
    let api_version = object["apiVersion"].as_str().unwrap_or_default();
    let Some(crd) = crds.iter().find(|crd| crd.kind == kind) else {
        return vec![format!("{kind}: no pinned CRD for this kind")];
    };
    let Some((_, validator)) = crd.api_versions.iter().find(|(v, _)| v == api_version) else {
        return vec![format!("{kind}: the CRD serves no {api_version}")];
    };
    validator
        .iter_errors(object)
        .map(|e| format!("{kind} {}: {e}", e.instance_path()))
        .collect()
}

/// The `jwt` gateway's plugin configuration, rendered for Keycloak at `authority`.
fn jwt_config(authority: &str) -> Result<Value> {
    let (host, port) = authority
        .rsplit_once(':')
        .with_context(|| format!("authority {authority} has no port"))?;
    let mut topology = Topology::compose();
    topology.idp_host = host.to_owned();
    topology.idp_port = port.parse()?;
    let text = render::render_gateway(&root().join("envoy"), "jwt", &topology, None)?;
    render::plugin_config(&text)?.context("envoy/jwt.yaml has no tokengate configuration")
}

/// Differences between a manifest's plugin configuration and the `jwt` gateway's, once the
/// one deployment-specific field, the cluster the keys are fetched through, is `cluster`.
fn config_problems(config: &Value, cluster: &str) -> Result<Vec<String>> {
    let authority = config["jwks"]["remote"]["authority"]
        .as_str()
        .context("the configuration has no jwks.remote.authority")?;
    let mut expected = jwt_config(authority)?;
    expected["jwks"]["remote"]["cluster"] = json!(cluster);
    if *config == expected {
        return Ok(Vec::new());
    }
    Ok(vec![format!(
        "the plugin configuration is not the jwt gateway's:\n  manifest: {config}\n  jwt.yaml: {expected}"
    )])
}

fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

/// Problems of the Istio manifest's objects.
fn istio_problems(crds: &[Crd], objects: &[Value]) -> Result<Vec<String>> {
    let mut problems = Vec::new();
    ensure!(objects.len() == 1, "{ISTIO}: one WasmPlugin expected");
    let plugin = &objects[0];
    problems.extend(schema_problems(crds, plugin));
    let spec = &plugin["spec"];
    let url = spec["url"].as_str().unwrap_or_default();
    if !(url.starts_with("oci://") && url.ends_with(&format!("/tokengate:{}", version()))) {
        problems.push(format!("url {url} is not oci://…/tokengate:{}", version()));
    }
    if spec["pluginName"] != ROOT_ID || spec["failStrategy"] != "FAIL_CLOSE" {
        problems
            .push("pluginName must be the filter's root_id, failStrategy FAIL_CLOSE".to_owned());
    }
    // Istio's cluster for a Service port: outbound|<port>||<host>.
    let config = &spec["pluginConfig"];
    let authority = config["jwks"]["remote"]["authority"]
        .as_str()
        .unwrap_or_default();
    let (host, port) = authority.rsplit_once(':').unwrap_or((authority, ""));
    problems.extend(config_problems(
        config,
        &format!("outbound|{port}||{host}"),
    )?);
    Ok(problems)
}

/// Problems of the Envoy Gateway manifest's objects.
fn envoy_gateway_problems(crds: &[Crd], objects: &[Value]) -> Result<Vec<String>> {
    let mut problems = Vec::new();
    let policy = objects
        .iter()
        .find(|o| o["kind"] == "EnvoyExtensionPolicy")
        .context("no EnvoyExtensionPolicy")?;
    problems.extend(schema_problems(crds, policy));
    let wasm = &policy["spec"]["wasm"][0];
    let url = wasm["code"]["image"]["url"].as_str().unwrap_or_default();
    if !url.ends_with(&format!("/tokengate:{}", version())) || url.contains("://") {
        problems.push(format!(
            "image url {url} is not <registry>/tokengate:{}",
            version()
        ));
    }
    if wasm["rootID"] != ROOT_ID || wasm["failOpen"] != false {
        problems.push("rootID must be the filter's root_id, failOpen false".to_owned());
    }

    // The keys are fetched through the cluster of the HTTPRoute next to the policy: Envoy
    // Gateway names it httproute/<namespace>/<name>/rule/<index>. No CRD of Gateway API's is
    // pinned here: the route is checked for what the filter relies on.
    let config = &wasm["config"];
    let authority = config["jwks"]["remote"]["authority"]
        .as_str()
        .unwrap_or_default();
    let (host, port) = authority.rsplit_once(':').unwrap_or((authority, ""));
    let service = host.split('.').next().unwrap_or_default();
    let route = objects.iter().find(|o| o["kind"] == "HTTPRoute");
    let cluster = match route {
        Some(route) => {
            let backend = &route["spec"]["rules"][0]["backendRefs"][0];
            if route["apiVersion"] != "gateway.networking.k8s.io/v1"
                || backend["name"] != service
                || backend["port"].as_u64().map(|p| p.to_string()).as_deref() != Some(port)
            {
                problems.push(format!(
                    "the HTTPRoute does not lead to Keycloak at {authority}: {route}"
                ));
            }
            format!(
                "httproute/{}/{}/rule/0",
                route["metadata"]["namespace"].as_str().unwrap_or("default"),
                route["metadata"]["name"].as_str().unwrap_or_default()
            )
        }
        None => {
            problems.push("no HTTPRoute gives the filter a cluster for the JWKS".to_owned());
            String::new()
        }
    };
    problems.extend(config_problems(config, &cluster)?);
    for other in objects {
        let kind = other["kind"].as_str().unwrap_or_default();
        if kind != "EnvoyExtensionPolicy" && kind != "HTTPRoute" {
            problems.push(format!("unexpected object of kind {kind}"));
        }
    }
    Ok(problems)
}

#[test]
fn the_manifests_match_the_crds_and_the_jwt_gateway() -> Result<()> {
    let crds = crds()?;
    let mut problems = Vec::new();
    for problem in istio_problems(&crds, &documents(&root().join(ISTIO))?)? {
        problems.push(format!("{ISTIO}: {problem}"));
    }
    for problem in envoy_gateway_problems(&crds, &documents(&root().join(ENVOY_GATEWAY))?)? {
        problems.push(format!("{ENVOY_GATEWAY}: {problem}"));
    }
    ensure!(problems.is_empty(), "{}", problems.join("\n"));
    Ok(())
}

/// Sets (or, with `None`, removes) the value at a JSON pointer.
fn edit(object: &mut Value, pointer: &str, value: Option<Value>) -> Result<()> {
    let (parent, key) = pointer.rsplit_once('/').context("pointer")?;
    let parent = object
        .pointer_mut(parent)
        .with_context(|| format!("no {parent}"))?;
    match (parent, value) {
        (Value::Object(map), Some(value)) => {
            map.insert(key.to_owned(), value);
        }
        (Value::Object(map), None) => {
            map.remove(key).with_context(|| format!("no {pointer}"))?;
        }
        (Value::Array(items), Some(value)) => items[key.parse::<usize>()?] = value,
        _ => bail!("cannot edit {pointer}"),
    }
    Ok(())
}

/// One way to break a manifest, and the problem its check must report.
struct Case {
    file: &'static str,
    /// The object of the file to break.
    index: usize,
    pointer: &'static str,
    /// The new value; `None` removes the field.
    value: Option<Value>,
    expected: &'static str,
}

fn case(
    file: &'static str,
    index: usize,
    pointer: &'static str,
    value: Option<Value>,
    expected: &'static str,
) -> Case {
    Case {
        file,
        index,
        pointer,
        value,
        expected,
    }
}

#[test]
fn broken_manifests_are_caught() -> Result<()> {
    let crds = crds()?;
    let cases = [
        case(
            ISTIO,
            0,
            "/spec/phase",
            Some(json!("AUTHENTICATE")),
            "/spec/phase",
        ),
        case(
            ISTIO,
            0,
            "/spec/url",
            None,
            "\"url\" is a required property",
        ),
        case(
            ISTIO,
            0,
            "/spec/imagePullPolicyy",
            Some(json!("Always")),
            "imagePullPolicyy",
        ),
        case(
            ISTIO,
            0,
            "/apiVersion",
            Some(json!("extensions.istio.io/v1")),
            "serves no",
        ),
        case(
            ISTIO,
            0,
            "/spec/url",
            Some(json!("oci://r.example/tokengate:0.0.9")),
            "is not oci://",
        ),
        case(
            ISTIO,
            0,
            "/spec/pluginConfig/claims_to_verify",
            Some(json!(["nbf"])),
            "not the jwt gateway's",
        ),
        case(
            ENVOY_GATEWAY,
            0,
            "/spec/wasm/0/code/type",
            Some(json!("OCI")),
            "/spec/wasm/0/code/type",
        ),
        case(
            ENVOY_GATEWAY,
            0,
            "/spec/targetRefs/0/group",
            None,
            "\"group\" is a required property",
        ),
        case(
            ENVOY_GATEWAY,
            0,
            "/spec/wasm/0/config/jwks/remote/cluster",
            Some(json!("keycloak")),
            "not the jwt gateway's",
        ),
        case(
            ENVOY_GATEWAY,
            1,
            "/spec/rules/0/backendRefs/0/port",
            Some(json!(9000)),
            "does not lead to Keycloak",
        ),
    ];
    for Case {
        file,
        index,
        pointer,
        value,
        expected,
    } in cases
    {
        let mut objects = documents(&root().join(file))?;
        edit(&mut objects[index], pointer, value)?;
        let problems = if file == ISTIO {
            istio_problems(&crds, &objects)?
        } else {
            envoy_gateway_problems(&crds, &objects)?
        };
        ensure!(
            problems.iter().any(|p| p.contains(expected)),
            "{file}: {pointer} broken, expected a problem containing {expected:?}, got {problems:#?}"
        );
    }
    Ok(())
}
