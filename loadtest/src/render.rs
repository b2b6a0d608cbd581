//! Renders the Envoy config templates in `envoy/` for one environment.
//!
//! Each gateway is one template, `envoy/<gateway>.yaml`: a complete Envoy v3
//! bootstrap with `${NAME}` placeholders (see [`Topology::variables`]). The
//! same template serves a native run (everything on 127.0.0.1) and a docker
//! compose run (service hostnames); only the [`Topology`] differs.
//!
//! A template may instead be a declared variant of another one. Its leading
//! comment block then holds directives and it has no YAML body of its own:
//!
//! ```text
//! # tokengate-extends: jwt.yaml
//! # tokengate-plugin-patch: {"claims_to_verify":["nbf"]}
//! ```
//!
//! `extends` renders the named template of the same directory; `plugin-patch`
//! is an RFC 7386 JSON merge patch for the tokengate plugin configuration (the
//! JSON string in the wasm filter's `configuration.value`). A template with a
//! body of its own may carry a `plugin-patch` too; it then patches its own
//! plugin configuration. The rendered text is always a complete bootstrap.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde_json::{Map, Value};

/// File extension of templates in the envoy directory.
const TEMPLATE_EXT: &str = "yaml";
/// Start of a directive line in a template's leading comment block.
const DIRECTIVE_PREFIX: &str = "# tokengate-";
/// Type URL of Envoy's HTTP Wasm filter config.
pub const WASM_FILTER_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm";
/// Type URL the plugin configuration is packed in.
const STRING_VALUE_TYPE: &str = "type.googleapis.com/google.protobuf.StringValue";
/// `root_id` that marks a wasm filter as tokengate.
pub const PLUGIN_ROOT_ID: &str = "tokengate";
/// Envoy's V8 Wasm runtime, the one the official builds ship.
pub const DEFAULT_WASM_RUNTIME: &str = "envoy.wasm.runtime.v8";

/// Where the pieces of one environment live; fills the template placeholders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    /// Listener and admin bind address.
    pub bind_address: String,
    pub listen_port: u16,
    pub admin_port: u16,
    /// Upstream API.
    pub backend_host: String,
    pub backend_port: u16,
    /// Identity provider (Keycloak, or a local JWKS server); realm `tokengate`.
    pub idp_host: String,
    pub idp_port: u16,
    /// The tokengate filter, as Envoy sees the path.
    pub wasm_path: String,
    /// Envoy Wasm runtime, e.g. [`DEFAULT_WASM_RUNTIME`].
    pub wasm_runtime: String,
    /// The listener only the IdP reaches, for back-channel logout (`jwt-bcl`); 0: any free
    /// port the kernel picks (a rendering nobody posts logouts to).
    pub logout_port: u16,
    /// The other gateway replica every received logout is relayed to (`jwt-bcl`): its host
    /// and its logout listener's port.
    pub peer_host: String,
    pub peer_logout_port: u16,
}

/// Port 9 (discard): a native rendering without a second replica relays to a port where
/// nothing listens, so the relay fails fast and is counted.
pub const NO_PEER_PORT: u16 = 9;

impl Topology {
    /// The docker compose stack: Envoy listens on all interfaces, upstreams
    /// are reached by service name.
    pub fn compose() -> Self {
        Self {
            bind_address: "0.0.0.0".to_string(),
            listen_port: 10000,
            admin_port: 9901,
            backend_host: "backend".to_string(),
            backend_port: 8081,
            idp_host: "keycloak".to_string(),
            idp_port: 8080,
            wasm_path: "/etc/envoy/tokengate.wasm".to_string(),
            wasm_runtime: DEFAULT_WASM_RUNTIME.to_string(),
            logout_port: 10001,
            peer_host: "gateway-peer".to_string(),
            peer_logout_port: 10001,
        }
    }

    /// A native run: everything on 127.0.0.1, on the given ports, with the
    /// V8 runtime (set `wasm_runtime` afterwards for another one).
    pub fn native(
        listen_port: u16,
        admin_port: u16,
        backend_port: u16,
        idp_port: u16,
        wasm_path: impl Into<String>,
    ) -> Self {
        Self {
            bind_address: "127.0.0.1".to_string(),
            listen_port,
            admin_port,
            backend_host: "127.0.0.1".to_string(),
            backend_port,
            idp_host: "127.0.0.1".to_string(),
            idp_port,
            wasm_path: wasm_path.into(),
            wasm_runtime: DEFAULT_WASM_RUNTIME.to_string(),
            logout_port: 0,
            peer_host: "127.0.0.1".to_string(),
            peer_logout_port: NO_PEER_PORT,
        }
    }

    /// Placeholder name to value, for every placeholder templates may use.
    pub fn variables(&self) -> BTreeMap<&'static str, String> {
        BTreeMap::from([
            ("BIND_ADDRESS", self.bind_address.clone()),
            ("LISTEN_PORT", self.listen_port.to_string()),
            ("ADMIN_PORT", self.admin_port.to_string()),
            ("BACKEND_HOST", self.backend_host.clone()),
            ("BACKEND_PORT", self.backend_port.to_string()),
            ("IDP_HOST", self.idp_host.clone()),
            ("IDP_PORT", self.idp_port.to_string()),
            ("WASM_PATH", self.wasm_path.clone()),
            ("WASM_RUNTIME", self.wasm_runtime.clone()),
            ("LOGOUT_PORT", self.logout_port.to_string()),
            ("PEER_HOST", self.peer_host.clone()),
            ("PEER_LOGOUT_PORT", self.peer_logout_port.to_string()),
        ])
    }
}

/// Names of the gateway templates in `envoy_dir` (file names without
/// `.yaml`), sorted.
pub fn gateways(envoy_dir: &Path) -> Result<Vec<String>> {
    let entries = std::fs::read_dir(envoy_dir)
        .with_context(|| format!("reading template directory {}", envoy_dir.display()))?;
    let mut names = Vec::new();
    for entry in entries {
        let path = entry
            .with_context(|| format!("reading template directory {}", envoy_dir.display()))?
            .path();
        if !path.is_file() || path.extension().and_then(|e| e.to_str()) != Some(TEMPLATE_EXT) {
            continue;
        }
        if let Some(stem) = path.file_stem().and_then(|s| s.to_str())
            && !stem.starts_with('.')
        {
            names.push(stem.to_string());
        }
    }
    names.sort();
    Ok(names)
}

/// Renders gateway `gateway` (a template name, with or without `.yaml`) of
/// `envoy_dir` for `topology`.
///
/// Every `${NAME}` is substituted; an unknown name, or a `${` that is not a
/// well-formed placeholder, is an error naming the template. Declared
/// `extends`/`plugin-patch` directives are resolved, then `plugin_patch`, if
/// given, is merge-patched (RFC 7386) into the tokengate plugin configuration;
/// it is an error if the gateway has no tokengate filter.
///
/// Returns YAML. A template rendered without any patch keeps its text and
/// comments; a patched or extending one is re-emitted from the parsed
/// document, under the extending template's header comment.
pub fn render_gateway(
    envoy_dir: &Path,
    gateway: &str,
    topology: &Topology,
    plugin_patch: Option<&Value>,
) -> Result<String> {
    let variables = topology.variables();
    check_values(&variables)?;
    let name = gateway_name(gateway)?;
    let mut chain = Vec::new();
    let resolved = resolve(envoy_dir, name, &variables, &mut chain)?;
    let leaf = &resolved.leaf;

    let mut patches: Vec<&Value> = resolved.patches.iter().collect();
    if let Some(patch) = plugin_patch {
        patches.push(patch);
    }

    // The document is kept as YAML values so that a re-emitted config keeps
    // the template's key order; the plugin search works on a JSON view of it.
    let mut doc: serde_norway::Value =
        serde_norway::from_str(&resolved.body).with_context(|| {
            format!(
                "template {}: rendered text is not valid YAML",
                template_file(&resolved.root)
            )
        })?;
    // Parse the plugin configuration even when nothing patches it, so a
    // template whose JSON is broken fails here rather than in Envoy.
    let plugins = find_plugin_configs(&serde_json::to_value(&doc)?)
        .with_context(|| format!("gateway {name}: reading the tokengate plugin configuration"))?;

    if patches.is_empty() && chain.len() == 1 {
        return Ok(resolved.body);
    }

    if !patches.is_empty() {
        if plugins.is_empty() {
            bail!(
                "gateway {name}: a plugin patch was given but the gateway has no tokengate \
                 filter ({WASM_FILTER_TYPE} with root_id {PLUGIN_ROOT_ID:?})"
            );
        }
        // Every tokengate filter of the gateway gets the patches (a gateway with a logout
        // listener has two, which must agree on the provider).
        for (pointer, mut config) in plugins {
            for patch in &patches {
                merge_patch(&mut config, patch);
            }
            if !config.is_object() {
                bail!("gateway {name}: the patched plugin configuration is not a JSON object");
            }
            let slot = yaml_pointer_mut(&mut doc, &pointer)
                .context("plugin configuration vanished while patching")?;
            *slot = serde_norway::Value::String(serde_json::to_string(&config)?);
        }
    }

    let mut out = String::new();
    for line in &leaf.header {
        out.push_str(line);
        out.push('\n');
    }
    let sources = chain
        .iter()
        .rev()
        .map(|n| template_file(n))
        .collect::<Vec<_>>()
        .join(" <- ");
    let _ = writeln!(
        out,
        "# Generated by loadtest::render from {sources}; edit the templates, not this file."
    );
    for patch in &patches {
        let _ = writeln!(out, "# Plugin configuration merge-patched with: {patch}");
    }
    out.push_str(&serde_norway::to_string(&doc).context("emitting rendered YAML")?);
    Ok(out)
}

/// Renders every gateway of `envoy_dir` for `topology` into `out_dir`,
/// returning the written paths in gateway order.
pub fn render_all(envoy_dir: &Path, topology: &Topology, out_dir: &Path) -> Result<Vec<PathBuf>> {
    gateways(envoy_dir)?
        .iter()
        .map(|gateway| {
            let text = render_gateway(envoy_dir, gateway, topology, None)?;
            write_rendered(out_dir, gateway, &text)
        })
        .collect()
}

/// The tokengate plugin configuration (the parsed JSON of the wasm filter's
/// `configuration.value`) of a rendered config, YAML or JSON; `None` if it
/// has no tokengate filter. With several (a logout listener's), the first
/// listener's: the API's.
pub fn plugin_config(rendered: &str) -> Result<Option<Value>> {
    Ok(plugin_configs(rendered)?.into_iter().next())
}

/// Every tokengate plugin configuration of a rendered config, in document order.
pub fn plugin_configs(rendered: &str) -> Result<Vec<Value>> {
    let doc: Value =
        serde_norway::from_str(rendered).context("rendered config is not YAML/JSON")?;
    Ok(find_plugin_configs(&doc)?
        .into_iter()
        .map(|(_, config)| config)
        .collect())
}

/// Writes a rendered config to `dir/<gateway>.yaml` (`.json` if the text is
/// JSON), creating `dir`, and returns the path.
pub fn write_rendered(dir: &Path, gateway: &str, text: &str) -> Result<PathBuf> {
    let name = gateway_name(gateway)?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let ext = if text.trim_start().starts_with('{') {
        "json"
    } else {
        "yaml"
    };
    let path = dir.join(format!("{name}.{ext}"));
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// Applies `patch` to `target` as an RFC 7386 JSON merge patch: objects merge
/// key-wise, `null` removes a key, anything else (arrays included) replaces.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(target) = target else {
        return;
    };
    for (key, value) in patch {
        if value.is_null() {
            target.remove(key);
        } else {
            merge_patch(target.entry(key.clone()).or_insert(Value::Null), value);
        }
    }
}

/// A template after substitution, split into header and body.
struct Template {
    /// Leading comment lines (directives excluded), for rendered headers.
    header: Vec<String>,
    extends: Option<String>,
    plugin_patch: Option<Value>,
    /// The whole substituted text (header included).
    text: String,
    /// Whether anything but comments and blank lines follows the header.
    has_body: bool,
}

/// A gateway with its `extends` chain resolved.
struct Resolved {
    /// The template that has the body.
    root: String,
    /// The gateway's own template.
    leaf: Template,
    /// Substituted text of `root`.
    body: String,
    /// Declared plugin patches, root first.
    patches: Vec<Value>,
}

fn resolve(
    envoy_dir: &Path,
    name: &str,
    variables: &BTreeMap<&'static str, String>,
    chain: &mut Vec<String>,
) -> Result<Resolved> {
    if chain.iter().any(|n| n == name) {
        chain.push(name.to_string());
        bail!("template extends cycle: {}", chain.join(" -> "));
    }
    chain.push(name.to_string());
    let file = envoy_dir.join(template_file(name));
    let raw = std::fs::read_to_string(&file)
        .with_context(|| format!("reading template {}", file.display()))?;
    let text = substitute(&template_file(name), &raw, variables)?;
    let template = parse_template(name, text)?;

    match &template.extends {
        Some(base) => {
            if template.has_body {
                bail!(
                    "template {}: a template that extends {base} must have no YAML body, only its \
                     comment header and directives",
                    template_file(name)
                );
            }
            let base = gateway_name(base)
                .with_context(|| format!("template {}: bad extends", template_file(name)))?
                .to_string();
            let inner = resolve(envoy_dir, &base, variables, chain)
                .with_context(|| format!("template {} extends {base}", template_file(name)))?;
            let mut patches = inner.patches;
            patches.extend(template.plugin_patch.clone());
            Ok(Resolved {
                root: inner.root,
                body: inner.body,
                patches,
                leaf: template,
            })
        }
        None => {
            if !template.has_body {
                bail!(
                    "template {}: empty (no YAML body and no extends directive)",
                    template_file(name)
                );
            }
            Ok(Resolved {
                root: name.to_string(),
                body: template.text.clone(),
                patches: template.plugin_patch.clone().into_iter().collect(),
                leaf: template,
            })
        }
    }
}

/// Splits the leading comment block (with its directives) from the body.
fn parse_template(name: &str, text: String) -> Result<Template> {
    let file = template_file(name);
    let mut header = Vec::new();
    let mut extends = None;
    let mut plugin_patch = None;
    let mut in_header = true;
    let mut has_body = false;
    for (index, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        let is_comment = trimmed.starts_with('#');
        if in_header && !is_comment && !trimmed.is_empty() {
            in_header = false;
        }
        if !is_comment && !trimmed.is_empty() {
            has_body = true;
        }
        let Some(directive) = trimmed.strip_prefix(DIRECTIVE_PREFIX) else {
            if in_header && is_comment {
                header.push(line.to_string());
            }
            continue;
        };
        let line_no = index + 1;
        if !in_header {
            bail!("template {file}:{line_no}: directives belong in the leading comment block");
        }
        let Some((key, value)) = directive.split_once(':') else {
            bail!("template {file}:{line_no}: directive without `:`");
        };
        let value = value.trim();
        match key.trim() {
            "extends" => {
                if extends.replace(value.to_string()).is_some() {
                    bail!("template {file}:{line_no}: second extends directive");
                }
            }
            "plugin-patch" => {
                let patch: Value = serde_json::from_str(value).with_context(|| {
                    format!("template {file}:{line_no}: plugin-patch is not one line of JSON")
                })?;
                if plugin_patch.replace(patch).is_some() {
                    bail!("template {file}:{line_no}: second plugin-patch directive");
                }
            }
            other => bail!(
                "template {file}:{line_no}: unknown directive tokengate-{other} (known: \
                 tokengate-extends, tokengate-plugin-patch)"
            ),
        }
    }
    Ok(Template {
        header,
        extends,
        plugin_patch,
        text,
        has_body,
    })
}

/// Replaces every `${NAME}` of `text`; errors on unknown names and on any
/// `${` that does not start a well-formed placeholder.
fn substitute(
    template: &str,
    text: &str,
    variables: &BTreeMap<&'static str, String>,
) -> Result<String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let offset = text.len() - rest.len() + start;
        let line_no = text[..offset].matches('\n').count() + 1;
        let after = &rest[start + 2..];
        let line_end = after.find('\n').unwrap_or(after.len());
        let Some(end) = after[..line_end].find('}') else {
            bail!("template {template}:{line_no}: leftover `${{` without a closing `}}`");
        };
        let name = &after[..end];
        let well_formed = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
        if !well_formed {
            bail!("template {template}:{line_no}: malformed placeholder `${{{name}}}`");
        }
        let Some(value) = variables.get(name) else {
            bail!(
                "template {template}:{line_no}: unknown placeholder `${{{name}}}` (known: {})",
                variables.keys().copied().collect::<Vec<_>>().join(", ")
            );
        };
        out.push_str(value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Refuses values that could change the structure of the YAML or JSON they
/// are pasted into; every placeholder is required, so empty is refused too.
fn check_values(variables: &BTreeMap<&'static str, String>) -> Result<()> {
    for (name, value) in variables {
        if value.is_empty() {
            bail!("placeholder {name} has an empty value");
        }
        if let Some(bad) = value
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || "._-/@+%~".contains(*c)))
        {
            bail!(
                "placeholder {name}: value {value:?} contains {bad:?}; only ASCII letters, digits \
                 and ._-/@+%~ are allowed"
            );
        }
    }
    Ok(())
}

/// `name` without a `.yaml` suffix, refusing anything that is not a plain
/// file name in the template directory.
fn gateway_name(gateway: &str) -> Result<&str> {
    let name = gateway
        .strip_suffix(&format!(".{TEMPLATE_EXT}"))
        .unwrap_or(gateway);
    if name.is_empty() || name.starts_with('.') || name.contains(['/', '\\']) {
        bail!("bad gateway name {gateway:?}");
    }
    Ok(name)
}

fn template_file(name: &str) -> String {
    format!("{name}.{TEMPLATE_EXT}")
}

/// The node at JSON pointer `pointer` of a YAML document.
pub(crate) fn yaml_pointer_mut<'a>(
    doc: &'a mut serde_norway::Value,
    pointer: &str,
) -> Option<&'a mut serde_norway::Value> {
    let mut node = doc;
    for segment in pointer.split('/').skip(1) {
        let key = segment.replace("~1", "/").replace("~0", "~");
        node = match node {
            serde_norway::Value::Mapping(map) => map.get_mut(key.as_str())?,
            serde_norway::Value::Sequence(items) => items.get_mut(key.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(node)
}

/// JSON pointer to the tokengate filter's `configuration.value` and its
/// parsed JSON; `None` if the document has no tokengate filter.
pub(crate) fn find_plugin_configs(doc: &Value) -> Result<Vec<(String, Value)>> {
    let mut found = Vec::new();
    collect_tokengate_filters(doc, String::new(), &mut found);
    found
        .into_iter()
        .map(|pointer| {
            let configuration = doc
                .pointer(&format!("{pointer}/config/configuration"))
                .with_context(|| {
                    format!("tokengate filter at {pointer} has no config.configuration")
                })?;
            if configuration.get("@type").and_then(Value::as_str) != Some(STRING_VALUE_TYPE) {
                bail!("tokengate filter at {pointer}: configuration is not a {STRING_VALUE_TYPE}");
            }
            let Some(json) = configuration.get("value").and_then(Value::as_str) else {
                bail!("tokengate filter at {pointer}: configuration.value is not a string");
            };
            let config: Value = serde_json::from_str(json).with_context(|| {
                format!("tokengate filter at {pointer}: configuration.value is not JSON")
            })?;
            Ok((format!("{pointer}/config/configuration/value"), config))
        })
        .collect()
}

/// JSON pointers of every wasm filter config object whose root_id is
/// tokengate.
fn collect_tokengate_filters(value: &Value, pointer: String, found: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            let is_wasm = map.get("@type").and_then(Value::as_str) == Some(WASM_FILTER_TYPE);
            let root_id = value.pointer("/config/root_id").and_then(Value::as_str);
            if is_wasm && root_id == Some(PLUGIN_ROOT_ID) {
                found.push(pointer.clone());
            }
            for (key, child) in map {
                let escaped = key.replace('~', "~0").replace('/', "~1");
                collect_tokengate_filters(child, format!("{pointer}/{escaped}"), found);
            }
        }
        Value::Array(items) => {
            for (index, child) in items.iter().enumerate() {
                collect_tokengate_filters(child, format!("{pointer}/{index}"), found);
            }
        }
        _ => {}
    }
}
