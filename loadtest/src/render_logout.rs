//! A gateway rendered with the back-channel logout listener of `envoy/jwt-bcl.yaml` added:
//! how the matrix's `jwt` and `hybrid` gateways (and the compose stack's, with `loadtest
//! render --backchannel-logout`) are told of ended sessions, with their templates unchanged.
//!
//! `jwt-bcl.yaml` stays the one source of the listener: its `logout` listener and `peers`
//! cluster are copied into the gateway's bootstrap; the listener's tokengate filter gets the
//! gateway's own plugin configuration plus jwt-bcl's `backchannel_logout` with the `path`, and
//! the gateway's API filter gets jwt-bcl's API-side `backchannel_logout` (no `path`). The
//! listener's filter gets the API filter's `vm_config`, so both run in one VM and share the
//! log of ended sessions. A caller's plugin patch is merged into both configurations last (so
//! `{"backchannel_logout": null}` removes the endpoint again: the listener then answers 404).

use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use serde_json::Value;

use crate::render::{self, Topology, find_plugin_configs, merge_patch, yaml_pointer_mut};

/// The template the listener comes from.
pub const LOGOUT_TEMPLATE: &str = "jwt-bcl";
/// Where the listener answers the IdP's POSTs (`backchannel_logout.path` in jwt-bcl.yaml).
pub const LOGOUT_PATH: &str = "/backchannel-logout";

/// Renders `gateway` (a template with exactly one tokengate filter) with the logout listener
/// on `topology.logout_port`, relaying to `topology.peer_host:peer_logout_port`.
pub fn render_with_logout(
    envoy_dir: &Path,
    gateway: &str,
    topology: &Topology,
    plugin_patch: Option<&Value>,
) -> Result<String> {
    let text = render::render_gateway(envoy_dir, gateway, topology, None)?;
    let mut doc: serde_norway::Value = serde_norway::from_str(&text)
        .with_context(|| format!("gateway {gateway}: rendered text is not YAML"))?;
    let configs = find_plugin_configs(&serde_json::to_value(&doc)?)?;
    let [(api_pointer, api_config)] =
        <[(String, Value); 1]>::try_from(configs).map_err(|found| {
            anyhow!(
                "gateway {gateway}: a logout listener needs exactly one tokengate filter, found {}",
                found.len()
            )
        })?;
    if api_config.get("backchannel_logout").is_some() {
        bail!("gateway {gateway} already configures backchannel_logout");
    }

    let source_text = render::render_gateway(envoy_dir, LOGOUT_TEMPLATE, topology, None)?;
    let source: serde_norway::Value = serde_norway::from_str(&source_text)?;
    let source_json = serde_json::to_value(&source)?;
    let named = |list: &str, name: &str| -> Result<(usize, serde_norway::Value)> {
        source_json["static_resources"][list]
            .as_array()
            .and_then(|items| items.iter().position(|item| item["name"] == name))
            .and_then(|index| Some((index, source["static_resources"][list].get(index)?.clone())))
            .with_context(|| format!("{LOGOUT_TEMPLATE}.yaml has no {list} entry `{name}`"))
    };
    let (logout_index, mut listener) = named("listeners", "logout")?;
    let (_, peers) = named("clusters", "peers")?;
    let mut api_side = None;
    let mut logout_side = None;
    for (pointer, config) in find_plugin_configs(&source_json)? {
        let bcl = config["backchannel_logout"].clone();
        let prefix = format!("/static_resources/listeners/{logout_index}/");
        match pointer.strip_prefix(&prefix) {
            Some(rest) => logout_side = Some((rest.to_owned(), bcl)),
            None => api_side = Some(bcl),
        }
    }
    let (Some(api_bcl), Some((logout_pointer, logout_bcl))) = (api_side, logout_side) else {
        bail!("{LOGOUT_TEMPLATE}.yaml: expected an API and a logout tokengate filter");
    };
    if logout_bcl["path"] != LOGOUT_PATH {
        bail!("{LOGOUT_TEMPLATE}.yaml: the logout filter's path is not {LOGOUT_PATH}");
    }

    let mut api = api_config.clone();
    api["backchannel_logout"] = api_bcl;
    let mut logout = api_config;
    logout["backchannel_logout"] = logout_bcl;
    if let Some(patch) = plugin_patch {
        merge_patch(&mut api, patch);
        merge_patch(&mut logout, patch);
    }

    // The logout filter runs in the API filter's VM.
    let vm_pointer = api_pointer
        .strip_suffix("/configuration/value")
        .map(|config| format!("{config}/vm_config"))
        .context("unexpected plugin configuration pointer")?;
    let vm = yaml_pointer_mut(&mut doc, &vm_pointer)
        .context("the API filter has no vm_config")?
        .clone();
    let logout_vm = format!(
        "/{}",
        logout_pointer
            .strip_suffix("/configuration/value")
            .map(|config| format!("{config}/vm_config"))
            .context("unexpected logout configuration pointer")?
    );
    *yaml_pointer_mut(&mut listener, &logout_vm).context("the logout filter has no vm_config")? =
        vm;
    *yaml_pointer_mut(&mut listener, &format!("/{logout_pointer}"))
        .context("the logout filter has no configuration")? =
        serde_norway::Value::String(serde_json::to_string(&logout)?);
    *yaml_pointer_mut(&mut doc, &api_pointer).context("the API filter vanished")? =
        serde_norway::Value::String(serde_json::to_string(&api)?);
    for (list, entry) in [("listeners", listener), ("clusters", peers)] {
        match yaml_pointer_mut(&mut doc, &format!("/static_resources/{list}")) {
            Some(serde_norway::Value::Sequence(items)) => items.push(entry),
            _ => bail!("gateway {gateway} has no static_resources.{list}"),
        }
    }

    let mut out = format!(
        "# Gateway \"{gateway}\" with the back-channel logout listener `logout` (port {}) and \
         the `peers` cluster of {LOGOUT_TEMPLATE}.yaml.\n# Generated by \
         loadtest::render_logout; edit the templates, not this file.\n",
        topology.logout_port
    );
    if let Some(patch) = plugin_patch {
        out.push_str(&format!(
            "# Plugin configurations merge-patched with: {patch}\n"
        ));
    }
    out.push_str(&serde_norway::to_string(&doc).context("emitting rendered YAML")?);
    Ok(out)
}
