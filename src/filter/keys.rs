//! Remote JWKS: one copy in shared data for all workers, fetched on a shared schedule.
//!
//! Shared data holds two records per key source: the key set (fetch time + JWKS document) and
//! the [`FetchState`]. A worker claims a fetch by updating the state with compare-and-swap;
//! it receives the answer, installs the keys locally and publishes them; the other workers
//! pick them up on their next tick (or at once, when a request of theirs meets an unknown
//! `kid`). A third record remembers the `kid`s a refetch did not find (see
//! [`crate::jwks_refresh`]). A discovery provider's fetch starts with the issuer's
//! OpenID Connect Discovery document, which names the JWKS (`jwks_uri`).

use serde::Deserialize;

use crate::config::Origin;
use crate::config::{JwksSource, Provider};
use crate::engine::Engine;
use crate::introspection::HttpCall;
use crate::jwks::MAX_JWKS_BYTES;
use crate::jwks_refresh::{
    FetchState, MissingKids, Schedule, decode_key_record, encode_key_record,
};
use crate::metrics::Counter;

use super::calls::CallResponse;
use super::host::{Host, HostError};
use super::{Now, Worker};

/// Compare-and-swap attempts before a state update gives up (another worker keeps winning).
const CAS_ATTEMPTS: usize = 4;

/// Where a provider's key set is fetched from.
enum Source {
    /// A fixed place.
    Fixed,
    /// The issuer's discovery document names it (`jwks_uri`).
    Discovery {
        authority: String,
        path: String,
        issuer: String,
        allowed_origins: Vec<String>,
    },
}

/// The fields of an OpenID Connect Discovery document the gateway reads.
#[derive(Deserialize)]
struct DiscoveryDocument {
    issuer: String,
    jwks_uri: String,
}

pub struct RemoteKeys {
    cluster: String,
    timeout_ms: u64,
    source: Source,
    /// `:authority` and `:path` of the JWKS, once known (for discovery, from its document).
    target: Option<(String, String)>,
    schedule: Schedule,
    keys_key: String,
    state_key: String,
    missing_key: String,
    /// CAS of the shared key record this worker last looked at.
    seen_cas: Option<u32>,
}

impl RemoteKeys {
    /// The fetched key set of `provider`, if its keys are fetched.
    pub fn for_provider(provider: &Provider) -> Option<RemoteKeys> {
        let (cluster, authority, path, refresh, timeout_ms, source) =
            match provider.jwks.as_ref()? {
                JwksSource::Inline(_) => return None,
                JwksSource::Remote(remote) => (
                    &remote.cluster,
                    &remote.authority,
                    &remote.path,
                    remote.refresh_seconds,
                    remote.timeout_ms,
                    Source::Fixed,
                ),
                JwksSource::Discovery(discovery) => (
                    &discovery.cluster,
                    &discovery.authority,
                    &discovery.path,
                    discovery.refresh_seconds,
                    discovery.timeout_ms,
                    Source::Discovery {
                        authority: discovery.authority.clone(),
                        path: discovery.path.clone(),
                        issuer: provider.issuer.clone(),
                        allowed_origins: discovery.allowed_jwks_origins.clone(),
                    },
                ),
            };
        let key = format!("{cluster}|{authority}|{path}");
        let target = match source {
            Source::Fixed => Some((authority.clone(), path.clone())),
            Source::Discovery { .. } => None,
        };
        Some(RemoteKeys {
            cluster: cluster.clone(),
            timeout_ms,
            source,
            target,
            schedule: Schedule::new(refresh, timeout_ms),
            keys_key: format!("tokengate.jwks.keys|{key}"),
            state_key: format!("tokengate.jwks.state|{key}"),
            missing_key: format!("tokengate.jwks.missing|{key}"),
            seen_cas: None,
        })
    }

    /// Whether a fetch starts with the discovery document: every scheduled refresh of a
    /// discovery provider (the document may have moved the keys), and any fetch before its
    /// `jwks_uri` is known.
    pub fn starts_with_discovery(&self, scheduled: bool) -> bool {
        matches!(self.source, Source::Discovery { .. }) && (scheduled || self.target.is_none())
    }

    fn get(&self, authority: &str, path: &str) -> HttpCall {
        HttpCall {
            cluster: self.cluster.clone(),
            headers: vec![
                (":method".to_owned(), "GET".to_owned()),
                (":path".to_owned(), path.to_owned()),
                (":authority".to_owned(), authority.to_owned()),
                ("accept".to_owned(), "application/json".to_owned()),
                ("user-agent".to_owned(), "tokengate".to_owned()),
            ],
            body: Vec::new(),
            timeout_ms: self.timeout_ms,
        }
    }

    /// The JWKS request, once its place is known.
    pub fn fetch_call(&self) -> Option<HttpCall> {
        let (authority, path) = self.target.as_ref()?;
        Some(self.get(authority, path))
    }

    /// The discovery document's request, for a discovery provider.
    pub fn discovery_call(&self) -> Option<HttpCall> {
        match &self.source {
            Source::Discovery {
                authority, path, ..
            } => Some(self.get(authority, path)),
            Source::Fixed => None,
        }
    }

    /// Reads a discovery document: its `issuer` must be the provider's (OpenID Connect
    /// Discovery 1.0 §4.3) and its `jwks_uri` under the issuer's origin or an allowed one.
    fn learn(&mut self, document: &[u8]) -> Result<(), String> {
        let Source::Discovery {
            issuer,
            allowed_origins,
            ..
        } = &self.source
        else {
            return Ok(());
        };
        let parsed: DiscoveryDocument = serde_json::from_slice(document)
            .map_err(|err| format!("not a discovery document: {err}"))?;
        if parsed.issuer != *issuer {
            return Err("its `issuer` is not the provider's".to_owned());
        }
        let origin = Origin::parse(&parsed.jwks_uri)
            .ok_or_else(|| "its `jwks_uri` is not an http(s) URL".to_owned())?;
        if !allowed_origins.contains(&origin.origin()) {
            return Err(format!(
                "its `jwks_uri` is on {}, not the issuer's origin or an allowed one",
                origin.origin()
            ));
        }
        let after_authority = parsed
            .jwks_uri
            .split_once("://")
            .and_then(|(_, rest)| rest.find('/').map(|at| &rest[at..]))
            .unwrap_or("/");
        let path = after_authority.split('#').next().unwrap_or("/");
        self.target = Some((origin.authority, path.to_owned()));
        Ok(())
    }

    fn missing(&self, host: &impl Host) -> (MissingKids, Option<u32>) {
        match host.shared_get(&self.missing_key) {
            Ok((Some(bytes), cas)) => (MissingKids::decode(&bytes).unwrap_or_default(), cas),
            _ => (MissingKids::default(), None),
        }
    }

    /// Whether a refetch recently looked for `kid` and did not find it.
    pub fn known_missing(&self, host: &impl Host, kid: &str, now: Now) -> bool {
        self.missing(host)
            .0
            .contains(kid, now.millis, self.schedule.refresh_ms)
    }

    /// Remembers `kids` as missing from the fetch that just ended.
    fn remember_missing(&self, host: &mut impl Host, kids: &[String], now: Now) {
        for _ in 0..CAS_ATTEMPTS {
            let (mut missing, cas) = self.missing(host);
            let mut changed = false;
            for kid in kids {
                changed |= missing.insert(kid, now.millis, self.schedule.refresh_ms);
            }
            if !changed {
                return;
            }
            match host.shared_set(&self.missing_key, &missing.encode(), cas) {
                Err(HostError::CasMismatch) => continue,
                _ => return,
            }
        }
    }

    /// Whether some worker's fetch of these keys is on its way (the shared fetch state).
    pub fn fetch_in_flight(&self, host: &impl Host, now: Now) -> bool {
        host.shared_get(&self.state_key)
            .ok()
            .and_then(|(bytes, _)| bytes)
            .as_deref()
            .and_then(FetchState::decode)
            .is_some_and(|state| self.schedule.fetch_in_flight(&state, now.millis))
    }

    /// How long a fetch can take before it counts as lost (the call's timeout, and a margin).
    pub fn fetch_deadline_ms(&self) -> u64 {
        self.timeout_ms + 1_000
    }

    /// Read-modify-write of the shared fetch state with compare-and-swap. `change` returns
    /// false to leave the state alone; the result is the state written, if any.
    fn update_state(
        &self,
        host: &mut impl Host,
        mut change: impl FnMut(&mut FetchState) -> bool,
    ) -> Option<FetchState> {
        for _ in 0..CAS_ATTEMPTS {
            let (bytes, cas) = host.shared_get(&self.state_key).ok()?;
            let mut state = bytes
                .as_deref()
                .and_then(FetchState::decode)
                .unwrap_or_default();
            if !change(&mut state) {
                return None;
            }
            match host.shared_set(&self.state_key, &state.encode(), cas) {
                Ok(()) => return Some(state),
                Err(HostError::CasMismatch) => continue,
                Err(_) => return None,
            }
        }
        None
    }
}

impl Worker {
    /// Installs `provider`'s shared key set if it changed since this worker last looked.
    /// Returns whether new keys were installed.
    pub(super) fn sync_keys_from_shared(&mut self, host: &mut impl Host, provider: usize) -> bool {
        let Some(Some(remote)) = self.remotes.get_mut(provider) else {
            return false;
        };
        let Ok((Some(record), Some(cas))) = host.shared_get(&remote.keys_key) else {
            return false;
        };
        if remote.seen_cas == Some(cas) {
            return false;
        }
        remote.seen_cas = Some(cas);
        let Some((_fetched_at, jwks)) = decode_key_record(&record) else {
            return false;
        };
        match self.engine.install_keys(provider, jwks) {
            Ok(_) => {
                let count = self.engine.key_count(provider);
                self.metrics.record_keys(host, provider, count);
                true
            }
            Err(err) => {
                log::warn!("tokengate: shared key set is unusable: {err}");
                false
            }
        }
    }

    /// A judgement that lacked a key of `provider`: judged again if another worker published
    /// newer keys in shared data since this worker last looked, else kept.
    pub(super) fn judge_again_with_shared_keys<T>(
        &mut self,
        host: &mut impl Host,
        provider: usize,
        judged: T,
        judge: impl FnOnce(&mut Engine) -> T,
    ) -> T {
        if self.sync_keys_from_shared(host, provider) {
            judge(&mut self.engine)
        } else {
            judged
        }
    }

    /// Claims `provider`'s periodic fetch if it is due and no other worker claimed it first.
    pub(super) fn claim_periodic_fetch(
        &self,
        host: &mut impl Host,
        provider: usize,
        now: Now,
    ) -> bool {
        let Some(Some(remote)) = self.remotes.get(provider) else {
            return false;
        };
        let have_keys = self.engine.key_count(provider) > 0;
        let schedule = remote.schedule;
        remote
            .update_state(host, |state| {
                let due = schedule.periodic_fetch_due(state, have_keys, now.millis);
                if due {
                    state.last_attempt_ms = now.millis;
                }
                due
            })
            .is_some()
    }

    /// For a token with an unknown `kid`: claims a refetch of `provider`'s keys if the shared
    /// rate limit allows one.
    pub(super) fn claim_kid_refetch(
        &self,
        host: &mut impl Host,
        provider: usize,
        now: Now,
    ) -> bool {
        let Some(Some(remote)) = self.remotes.get(provider) else {
            return false;
        };
        let schedule = remote.schedule;
        let claimed = remote.update_state(host, |state| {
            let allowed = schedule.kid_refetch_allowed(state, now.millis);
            if allowed {
                state.last_kid_refetch_ms = now.millis;
                state.last_attempt_ms = now.millis;
            }
            allowed
        });
        if claimed.is_some() {
            self.metrics
                .increment_for(host, Counter::JwksKidRefetch, provider);
        }
        claimed.is_some()
    }

    /// Handles the answer to a fetch of `provider`'s keys: install and publish them, or keep
    /// the last good ones.
    pub(super) fn finish_fetch(
        &mut self,
        host: &mut impl Host,
        provider: usize,
        response: &CallResponse,
        now: Now,
    ) {
        let Some(Some(remote)) = self.remotes.get(provider) else {
            return;
        };
        let source = match &remote.target {
            Some((authority, path)) => format!("{authority}{path}"),
            None => "(unknown)".to_owned(),
        };
        let body = match (response.status, &response.body) {
            (Some(200), Some(body)) if body.len() <= MAX_JWKS_BYTES => body,
            (status, _) => {
                let status = status.map_or("no response".to_owned(), |s| format!("status {s}"));
                log::warn!(
                    "tokengate: JWKS fetch from {source} failed ({status}); keeping the current keys"
                );
                self.record_fetch_failure(host, provider, now);
                return;
            }
        };
        match self.engine.install_keys(provider, body) {
            Ok(skipped) => {
                for skip in skipped {
                    log::info!("tokengate: JWKS from {source}: skipped {skip}");
                }
                self.publish_keys(host, provider, now, body);
                self.metrics
                    .increment_for(host, Counter::JwksFetchSuccess, provider);
                let count = self.engine.key_count(provider);
                self.metrics.record_keys(host, provider, count);
            }
            Err(err) => {
                log::warn!(
                    "tokengate: JWKS from {source} rejected: {err}; keeping the current keys"
                );
                self.record_fetch_failure(host, provider, now);
            }
        }
    }

    fn publish_keys(&mut self, host: &mut impl Host, provider: usize, now: Now, jwks: &[u8]) {
        let Some(Some(remote)) = self.remotes.get_mut(provider) else {
            return;
        };
        let record = encode_key_record(now.millis, jwks);
        if host.shared_set(&remote.keys_key, &record, None).is_ok() {
            // This worker already runs these keys: remember the record so a tick skips it.
            remote.seen_cas = host
                .shared_get(&remote.keys_key)
                .ok()
                .and_then(|(_, cas)| cas);
        }
        remote.update_state(host, |state| {
            state.record_success(now.millis);
            true
        });
    }

    /// Handles the answer for `provider`'s discovery document: returns whether the JWKS
    /// fetch can follow (its place is known); a failure is a failed fetch.
    pub(super) fn finish_discovery(
        &mut self,
        host: &mut impl Host,
        provider: usize,
        response: &CallResponse,
        now: Now,
    ) -> bool {
        let Some(Some(remote)) = self.remotes.get_mut(provider) else {
            return false;
        };
        let learned = match (response.status, &response.body) {
            (Some(200), Some(body)) => remote.learn(body),
            (status, _) => Err(status.map_or("no response".to_owned(), |s| format!("status {s}"))),
        };
        match learned {
            Ok(()) => true,
            Err(problem) => {
                log::warn!(
                    "tokengate: discovery document of provider {provider} unusable ({problem}); keeping the current keys"
                );
                self.record_fetch_failure(host, provider, now);
                false
            }
        }
    }

    /// Whether a refetch of `provider`'s keys recently looked for `kid` and did not find it.
    pub(super) fn kid_known_missing(
        &self,
        host: &impl Host,
        provider: usize,
        kid: &str,
        now: Now,
    ) -> bool {
        match self.remotes.get(provider) {
            Some(Some(remote)) => remote.known_missing(host, kid, now),
            _ => false,
        }
    }

    /// Remembers `kids` as missing from `provider`'s refetch that just ended.
    pub(super) fn remember_missing_kids(
        &self,
        host: &mut impl Host,
        provider: usize,
        kids: &[String],
        now: Now,
    ) {
        if let (false, Some(Some(remote))) = (kids.is_empty(), self.remotes.get(provider)) {
            remote.remember_missing(host, kids, now);
        }
    }

    pub(super) fn record_fetch_failure(&mut self, host: &mut impl Host, provider: usize, now: Now) {
        self.metrics
            .increment_for(host, Counter::JwksFetchFailure, provider);
        if let Some(Some(remote)) = self.remotes.get(provider) {
            remote.update_state(host, |state| {
                state.record_failure(now.millis);
                true
            });
        }
    }
}
