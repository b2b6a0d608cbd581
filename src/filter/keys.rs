//! Remote JWKS: one copy in shared data for all workers, fetched on a shared schedule.
//!
//! Shared data holds two records per key source: the key set (fetch time + JWKS document) and
//! the [`FetchState`]. A worker claims a fetch by updating the state with compare-and-swap;
//! it receives the answer, installs the keys locally and publishes them; the other workers
//! pick them up on their next tick (or at once, when a request of theirs meets an unknown
//! `kid`).

use crate::config::RemoteJwks;
use crate::introspection::HttpCall;
use crate::jwks::MAX_JWKS_BYTES;
use crate::jwks_refresh::{FetchState, Schedule, decode_key_record, encode_key_record};
use crate::metrics::Counter;

use super::calls::CallResponse;
use super::host::{Host, HostError};
use super::{Now, Worker};

/// Compare-and-swap attempts before a state update gives up (another worker keeps winning).
const CAS_ATTEMPTS: usize = 4;

pub struct RemoteKeys {
    spec: RemoteJwks,
    schedule: Schedule,
    keys_key: String,
    state_key: String,
    /// CAS of the shared key record this worker last looked at.
    seen_cas: Option<u32>,
}

impl RemoteKeys {
    pub fn new(spec: &RemoteJwks) -> RemoteKeys {
        let source = format!("{}|{}|{}", spec.cluster, spec.authority, spec.path);
        RemoteKeys {
            spec: spec.clone(),
            schedule: Schedule::for_remote(spec),
            keys_key: format!("tokengate.jwks.keys|{source}"),
            state_key: format!("tokengate.jwks.state|{source}"),
            seen_cas: None,
        }
    }

    /// The JWKS request.
    pub fn fetch_call(&self) -> HttpCall {
        let spec = &self.spec;
        HttpCall {
            cluster: spec.cluster.clone(),
            headers: vec![
                (":method".to_owned(), "GET".to_owned()),
                (":path".to_owned(), spec.path.clone()),
                (":authority".to_owned(), spec.authority.clone()),
                ("accept".to_owned(), "application/json".to_owned()),
                ("user-agent".to_owned(), "tokengate".to_owned()),
            ],
            body: Vec::new(),
            timeout_ms: spec.timeout_ms,
        }
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
        let source = format!("{}{}", remote.spec.authority, remote.spec.path);
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
