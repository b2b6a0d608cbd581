//! A bad configuration stops Envoy with the field named.

use super::*;

#[tokio::test]
async fn bad_configuration_stops_envoy_and_names_the_field() -> Result<()> {
    let dir = loadtest::paths::run_dir("e2e-bad-config");
    let cases = [
        (json!({"audiences": 5}), "field `audiences`"),
        (
            json!({"claims_to_verfy": ["exp"]}),
            "field `claims_to_verfy`",
        ),
        (json!({"mode": "introspect"}), "field `jwks`"),
        (json!({"mode": "hybrid"}), "field `introspection`"),
        (json!({"mode": "magic"}), "field `mode`"),
        (json!({"algorithms": ["none"]}), "field `algorithms[0]`"),
        (
            json!({"jwks": {"remote": {"path": "certs"}}}),
            "field `jwks.remote.path`",
        ),
    ];
    for (patch, expected) in cases {
        let spec = GatewaySpec::new("jwt").patch(patch.clone());
        let log = start_gateway_expecting_refusal(&dir, &spec, 9, 9)?;
        assert!(
            log.contains(&format!("tokengate: invalid configuration: {expected}")),
            "{patch}: log does not name the field:\n{log}"
        );
    }
    Ok(())
}
