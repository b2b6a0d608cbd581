//! Remote JWKS: one copy in shared data for all workers, fetched on a shared schedule.
//!
//! Shared data holds two records per key source: the key set (fetch time + JWKS document) and
//! the [`FetchState`]. A worker claims a fetch by updating the state with compare-and-swap;
//! it receives the answer, installs the keys locally and publishes them; the other workers
//! pick them up on their next tick (or at once, when a request of theirs meets an unknown
//! `kid`).

use super::abi::{self, Status};

use crate::config::RemoteJwks;
use crate::introspection::HttpCall;
use crate::jwks::MAX_JWKS_BYTES;
use crate::jwks_refresh::{FetchState, Schedule, decode_key_record, encode_key_record};
use crate::metrics::Counter;

use super::calls::CallResponse;
use super::{Now, Worker};

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
}

/// Installs the shared key set if it changed since this worker last looked. Returns whether
/// new keys were installed.
pub fn sync_from_shared(worker: &mut Worker) -> bool {
    let Some(remote) = worker.remote.as_mut() else {
        return false;
    };
    let Ok((Some(record), Some(cas))) = abi::get_shared_data(&remote.keys_key) else {
        return false;
    };
    if remote.seen_cas == Some(cas) {
        return false;
    }
    remote.seen_cas = Some(cas);
    let Some((_fetched_at, jwks)) = decode_key_record(&record) else {
        return false;
    };
    match worker.engine.install_keys(jwks) {
        Ok(_) => {
            worker.metrics.record_keys(worker.engine.key_count());
            true
        }
        Err(err) => {
            log::warn!("tokengate: shared key set is unusable: {err}");
            false
        }
    }
}

/// Claims the periodic fetch if it is due and no other worker claimed it first.
pub fn claim_periodic_fetch(worker: &Worker, now: Now) -> bool {
    let Some(remote) = worker.remote.as_ref() else {
        return false;
    };
    let have_keys = worker.engine.key_count() > 0;
    let schedule = remote.schedule;
    update_state(remote, |state| {
        let due = schedule.periodic_fetch_due(state, have_keys, now.millis);
        if due {
            state.last_attempt_ms = now.millis;
        }
        due
    })
    .is_some()
}

/// For a token with an unknown `kid`: claims a refetch if the shared rate limit allows one.
pub fn claim_kid_refetch(worker: &Worker, now: Now) -> bool {
    let Some(remote) = worker.remote.as_ref() else {
        return false;
    };
    let schedule = remote.schedule;
    let claimed = update_state(remote, |state| {
        let allowed = schedule.kid_refetch_allowed(state, now.millis);
        if allowed {
            state.last_kid_refetch_ms = now.millis;
            state.last_attempt_ms = now.millis;
        }
        allowed
    });
    if claimed.is_some() {
        worker.metrics.increment(Counter::JwksKidRefetch);
    }
    claimed.is_some()
}

/// The JWKS request.
pub fn fetch_call(remote: &RemoteKeys) -> HttpCall {
    let spec = &remote.spec;
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

/// Handles the answer to a fetch: install and publish the keys, or keep the last good ones.
pub fn finish_fetch(worker: &mut Worker, response: &CallResponse, now: Now) {
    let Some(remote) = worker.remote.as_ref() else {
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
            record_failure(worker, now);
            return;
        }
    };
    match worker.engine.install_keys(body) {
        Ok(skipped) => {
            for skip in skipped {
                log::info!("tokengate: JWKS from {source}: skipped {skip}");
            }
            publish(worker, now, body);
            worker.metrics.increment(Counter::JwksFetchSuccess);
            worker.metrics.record_keys(worker.engine.key_count());
        }
        Err(err) => {
            log::warn!("tokengate: JWKS from {source} rejected: {err}; keeping the current keys");
            record_failure(worker, now);
        }
    }
}

fn publish(worker: &mut Worker, now: Now, jwks: &[u8]) {
    let Some(remote) = worker.remote.as_mut() else {
        return;
    };
    let record = encode_key_record(now.millis, jwks);
    if abi::set_shared_data(&remote.keys_key, &record, None).is_ok() {
        // This worker already runs these keys: remember the record so a tick skips it.
        remote.seen_cas = abi::get_shared_data(&remote.keys_key)
            .ok()
            .and_then(|(_, cas)| cas);
    }
    update_state(remote, |state| {
        state.record_success(now.millis);
        true
    });
}

pub fn record_failure(worker: &mut Worker, now: Now) {
    worker.metrics.increment(Counter::JwksFetchFailure);
    if let Some(remote) = worker.remote.as_ref() {
        update_state(remote, |state| {
            state.record_failure(now.millis);
            true
        });
    }
}

/// Read-modify-write of the shared fetch state with compare-and-swap. `change` returns false
/// to leave the state alone; the result is the state written, if any.
fn update_state(
    remote: &RemoteKeys,
    mut change: impl FnMut(&mut FetchState) -> bool,
) -> Option<FetchState> {
    for _ in 0..4 {
        let (bytes, cas) = abi::get_shared_data(&remote.state_key).ok()?;
        let mut state = bytes
            .as_deref()
            .and_then(FetchState::decode)
            .unwrap_or_default();
        if !change(&mut state) {
            return None;
        }
        match abi::set_shared_data(&remote.state_key, &state.encode(), cas) {
            Ok(()) => return Some(state),
            Err(Status::CasMismatch) => continue,
            Err(_) => return None,
        }
    }
    None
}
