//! The worker's side of back-channel logout: the endpoint the IdP posts logout tokens to, the
//! shared log of ended sessions (see [`crate::revocation::set`]) read on every request and
//! appended to on every accepted logout, the shared record of seen `jti`s, and the relay of
//! accepted logout tokens to peer replicas.

use crate::config::{BackchannelLogout, Provider, RELAYED_HEADER, WhenFull};
use crate::engine::{Engine, Request};
use crate::metrics::{Counter, Gauge};
use crate::rejection::DenyResponse;
use crate::revocation::set::{self, CHUNK, Entry, Head, Kind, MAX_VALUE_BYTES};
use crate::revocation::{LogoutError, LogoutEvent, SeenIds, logout_token_of, seen_bucket};

use super::host::{Host, HostError};
use super::{Now, Worker};

/// Compare-and-swap attempts before an update of a shared record gives up.
const CAS_ATTEMPTS: usize = 8;
/// Logout requests waiting for their body, at most (a client that never sends one is
/// forgotten, oldest first: the module has no per-request end callback).
pub const MAX_PENDING_LOGOUTS: usize = 64;
/// Forgotten logout requests remembered, so a late body is refused, never passed on.
pub const MAX_ABANDONED_LOGOUTS: usize = 1024;

/// The shared records of one provider's ended sessions.
pub(super) struct SharedLog {
    head_key: String,
    chunk_prefix: String,
    seen_key: String,
    chunks: u64,
    revoke_for: i64,
    max_token_age: i64,
    when_full: WhenFull,
}

impl SharedLog {
    pub(super) fn for_provider(provider: &Provider) -> Option<SharedLog> {
        let settings: &BackchannelLogout = provider.backchannel.as_ref()?;
        let key = &provider.issuer;
        let chunks = set::chunk_count(settings.max_entries);
        Some(SharedLog {
            head_key: format!("tokengate.revoked.head|{key}"),
            chunk_prefix: format!("tokengate.revoked.chunk|{key}|"),
            seen_key: format!("tokengate.logout.seen|{key}"),
            chunks,
            revoke_for: i64::try_from(settings.revoke_for_seconds).unwrap_or(i64::MAX),
            max_token_age: i64::try_from(settings.max_token_age_seconds)
                .unwrap_or(i64::MAX)
                .saturating_add(i64::try_from(provider.clock_skew_seconds).unwrap_or(0)),
            when_full: settings.when_full,
        })
    }

    fn chunk_key(&self, seq: u64) -> String {
        format!("{}{}", self.chunk_prefix, set::slot(seq, self.chunks))
    }

    fn head(&self, host: &impl Host) -> (Head, Option<u32>) {
        match host.shared_get(&self.head_key) {
            Ok((Some(bytes), cas)) => (Head::decode(&bytes).unwrap_or_default(), cas),
            _ => (Head::default(), None),
        }
    }

    /// Fail closed: the provider's tokens are refused until `until`.
    fn mark_full(&self, host: &mut impl Host, until: i64) {
        log::warn!("tokengate: the set of ended sessions is full; failing closed");
        for _ in 0..CAS_ATTEMPTS {
            let (mut head, cas) = self.head(host);
            head.full_until = head.full_until.max(until);
            match host.shared_set(&self.head_key, &head.encode(), cas) {
                Err(HostError::CasMismatch) => continue,
                _ => break,
            }
        }
    }

    fn chunk(&self, host: &impl Host, seq: u64) -> (Vec<Entry>, Option<u32>) {
        match host.shared_get(&self.chunk_key(seq)) {
            Ok((Some(bytes), cas)) => (set::decode_chunk(&bytes).unwrap_or_default(), cas),
            _ => (Vec::new(), None),
        }
    }
}

/// A logout request whose body is on its way.
pub(super) struct PendingLogout {
    pub(super) context_id: u32,
    pub(super) provider: usize,
    relayed: bool,
}

/// What became of a whole logout body.
pub(super) enum Received {
    /// Verified, recorded and relayed.
    Accepted,
    /// Its key may be on its way: it is judged again when the provider's fetch ends.
    WaitingForKeys,
}

/// What to do with a chunk of request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyStep {
    /// Not a body the worker waits for: let it through.
    Continue,
    /// Hold it and deliver the rest (the host buffers).
    Buffer,
    /// Answer the request with this reply.
    Reply(DenyResponse),
    /// The body is whole and held; the answer comes later, as a [`Resumption`] (the token
    /// waits for its provider's keys).
    Wait,
}

/// The IdP's answer for a logout: 200; 400 with a JSON error; or, when the keys to judge it
/// are not there yet, 503 with `Retry-After` (the sender keeps the token and tries again).
/// Never cached.
pub fn logout_response(result: Result<(), LogoutError>, retry_after_seconds: u32) -> DenyResponse {
    let mut headers: Vec<(&'static str, String)> = vec![("cache-control", "no-store".to_owned())];
    match result {
        Ok(()) => DenyResponse {
            status: 200,
            headers,
            body: String::new(),
        },
        Err(error) => {
            headers.push(("content-type", "application/json".to_owned()));
            let (status, code) = if error.is_transient() {
                headers.push(("retry-after", retry_after_seconds.to_string()));
                (503, "temporarily_unavailable")
            } else {
                (400, "invalid_request")
            };
            DenyResponse {
                status,
                headers,
                body: serde_json::json!({
                    "error": code,
                    "error_description": error.description(),
                })
                .to_string(),
            }
        }
    }
}

/// The answer to anything but a POST on a logout path.
pub fn method_not_allowed() -> DenyResponse {
    DenyResponse {
        status: 405,
        headers: vec![
            ("allow", "POST".to_owned()),
            ("cache-control", "no-store".to_owned()),
        ],
        body: String::new(),
    }
}

fn header<'r>(request: &'r Request, name: &str) -> Option<&'r [u8]> {
    request
        .headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_slice())
}

impl Worker {
    /// The provider whose logout path this request is for, if any.
    pub(super) fn logout_provider(&self, request: &Request) -> Option<usize> {
        if self.logout_paths.is_empty() {
            return None;
        }
        let path = header(request, ":path")?;
        let path = &path[..path.iter().position(|b| *b == b'?').unwrap_or(path.len())];
        self.logout_paths
            .iter()
            .find(|(logout, _)| logout.as_bytes() == path)
            .map(|(_, provider)| *provider)
    }

    /// A request on a logout path: a POST waits for its body; anything else is answered.
    pub(super) fn start_logout(
        &mut self,
        context_id: u32,
        provider: usize,
        request: &Request,
    ) -> Result<(), DenyResponse> {
        if header(request, ":method") != Some(b"POST") {
            return Err(method_not_allowed());
        }
        if !request.body_follows {
            return Err(logout_response(
                Err(LogoutError::MissingToken),
                self.retry_after(),
            ));
        }
        if self.pending_logouts.len() >= MAX_PENDING_LOGOUTS
            && let Some(given_up) = self.pending_logouts.pop_front()
        {
            if self.abandoned_logouts.len() >= MAX_ABANDONED_LOGOUTS {
                self.abandoned_logouts.pop_front();
            }
            self.abandoned_logouts.push_back(given_up.context_id);
        }
        self.pending_logouts.push_back(PendingLogout {
            context_id,
            provider,
            relayed: header(request, RELAYED_HEADER).is_some(),
        });
        Ok(())
    }

    /// Whether the worker waits for this request's body.
    pub fn awaits_body(&self, context_id: u32) -> bool {
        self.pending_logouts
            .iter()
            .any(|p| p.context_id == context_id)
    }

    /// A chunk of request body: `size` bytes so far; `read` reads them (only called once the
    /// whole body is there).
    pub fn on_request_body(
        &mut self,
        host: &mut impl Host,
        context_id: u32,
        size: usize,
        end_of_stream: bool,
        read: impl FnOnce(usize) -> Option<Vec<u8>>,
        now: Now,
    ) -> BodyStep {
        let Some(at) = self
            .pending_logouts
            .iter()
            .position(|p| p.context_id == context_id)
        else {
            if let Some(at) = self
                .abandoned_logouts
                .iter()
                .position(|id| *id == context_id)
            {
                self.abandoned_logouts.remove(at);
                return BodyStep::Reply(self.refuse_logout(host, LogoutError::Busy));
            }
            return BodyStep::Continue;
        };
        let provider = self.pending_logouts[at].provider;
        let limit = self
            .engine
            .config()
            .providers
            .get(provider)
            .and_then(|p| p.backchannel.as_ref())
            .map_or(0, |b| b.max_body_bytes);
        if size > limit {
            self.pending_logouts.remove(at);
            return BodyStep::Reply(self.refuse_logout(host, LogoutError::TooLarge));
        }
        if !end_of_stream {
            return BodyStep::Buffer;
        }
        let Some(pending) = self.pending_logouts.remove(at) else {
            return BodyStep::Continue;
        };
        let body = read(size).unwrap_or_default();
        match self.receive_logout(host, &pending, &body, true, now) {
            Ok(Received::Accepted) => BodyStep::Reply(logout_response(Ok(()), self.retry_after())),
            Ok(Received::WaitingForKeys) => {
                self.park_logout(pending, body, now);
                BodyStep::Wait
            }
            Err(error) => BodyStep::Reply(self.refuse_logout(host, error)),
        }
    }

    pub(super) fn retry_after(&self) -> u32 {
        self.engine.config().retry_after_seconds
    }

    pub(super) fn refuse_logout(&self, host: &mut impl Host, error: LogoutError) -> DenyResponse {
        self.metrics.record_logout_rejected(host, error);
        log::info!("tokengate: logout token refused: {}", error.as_str());
        logout_response(Err(error), self.retry_after())
    }

    /// Judges a whole logout body. A token this worker has no key for yet may wait
    /// (`may_wait`) for a fetch of the provider's keys rather than be refused: a replica that
    /// has just started, or that has not seen a rotation yet, would otherwise answer a final
    /// 400 to a genuine logout, and neither Keycloak nor a relaying peer sends it again.
    pub(super) fn receive_logout(
        &mut self,
        host: &mut impl Host,
        pending: &PendingLogout,
        body: &[u8],
        may_wait: bool,
        now: Now,
    ) -> Result<Received, LogoutError> {
        let provider = pending.provider;
        let token = logout_token_of(body)?;
        let judge =
            |engine: &mut Engine| engine.validate_logout_token(provider, &token, now.seconds);
        let mut judged = judge(&mut self.engine);
        if judged == Err(LogoutError::UnknownKey) {
            judged = self.judge_again_with_shared_keys(host, provider, judged, judge);
        }
        if judged == Err(LogoutError::UnknownKey) {
            if may_wait && self.wait_for_keys(host, provider, &token, now) {
                return Ok(Received::WaitingForKeys);
            }
            if self.engine.key_count(provider) == 0 {
                return Err(LogoutError::KeysUnavailable);
            }
        }
        let event = judged?;
        if event
            .sid
            .as_ref()
            .or(event.sub.as_ref())
            .is_some_and(|v| v.len() > MAX_VALUE_BYTES)
        {
            return Err(LogoutError::MissingSubject);
        }
        self.check_replay(host, provider, &event, now)?;
        self.record_logout(host, provider, &event, now);
        self.metrics.increment(host, Counter::RevocationReceived);
        if !pending.relayed {
            self.relay(host, provider, body, now);
        }
        Ok(Received::Accepted)
    }

    /// Records the `jti` in the shared record of seen ids; a replay is refused.
    fn check_replay(
        &self,
        host: &mut impl Host,
        provider: usize,
        event: &LogoutEvent,
        now: Now,
    ) -> Result<(), LogoutError> {
        let Some(Some(log)) = self.revocations.get(provider) else {
            return Ok(());
        };
        let forget_at = event.iat.saturating_add(log.max_token_age);
        let key = format!("{}|{}", log.seen_key, seen_bucket(&event.jti));
        for _ in 0..CAS_ATTEMPTS {
            let (mut seen, cas) = match host.shared_get(&key) {
                Ok((Some(bytes), cas)) => (SeenIds::decode(&bytes).unwrap_or_default(), cas),
                _ => (SeenIds::default(), None),
            };
            if !seen.insert(&event.jti, forget_at, now.seconds) {
                return Err(LogoutError::Replayed);
            }
            match host.shared_set(&key, &seen.encode(), cas) {
                Err(HostError::CasMismatch) => continue,
                _ => return Ok(()),
            }
        }
        Ok(())
    }

    /// Appends the ended session (or user) to the shared log and to this worker's index.
    fn record_logout(
        &mut self,
        host: &mut impl Host,
        provider: usize,
        event: &LogoutEvent,
        now: Now,
    ) {
        let Some(Some(log)) = self.revocations.get(provider) else {
            return;
        };
        // With a `sid`, that session ends; with only a `sub`, every session of the user
        // (OpenID Connect Back-Channel Logout 1.0 §2.4).
        let (kind, value) = match (&event.sid, &event.sub) {
            (Some(sid), _) => (Kind::Session, sid.clone()),
            (None, Some(sub)) => (Kind::Subject, sub.clone()),
            (None, None) => return,
        };
        let mut entry = Entry {
            seq: 0,
            kind,
            value,
            revoked_at: event.iat.max(now.seconds),
            expires_at: now.seconds.saturating_add(log.revoke_for),
        };
        let mut written = None;
        let (head, _) = log.head(host);
        let mut seq = head.next_seq;
        for _ in 0..CAS_ATTEMPTS * 2 {
            let (mut chunk, chunk_cas) = log.chunk(host, seq);
            let first = seq - seq % CHUNK;
            let in_round = |e: &Entry| e.seq >= first && e.seq < first + CHUNK;
            // Past what other workers have put here ahead of moving the head.
            if let Some(taken) = chunk.iter().filter(|e| in_round(e)).map(|e| e.seq).max()
                && taken >= seq
            {
                seq = taken + 1;
                if seq % CHUNK == 0 {
                    continue;
                }
            }
            if seq == first {
                // A new round of this ring slot: what is there now is the oldest.
                let live = chunk
                    .iter()
                    .filter(|e| !in_round(e) && e.expires_at > now.seconds)
                    .count();
                if live > 0 {
                    if log.when_full == WhenFull::FailClosed {
                        let until = chunk.iter().map(|e| e.expires_at).max().unwrap_or(0);
                        self.metrics.increment(host, Counter::RevocationFull);
                        log.mark_full(host, until);
                        self.sync_revocations(host, now);
                        return;
                    }
                    for _ in 0..live {
                        self.metrics.increment(host, Counter::RevocationDropped);
                    }
                }
            }
            chunk.retain(|e| in_round(e) && e.seq < seq);
            entry.seq = seq;
            chunk.push(entry.clone());
            match host.shared_set(&log.chunk_key(seq), &set::encode_chunk(&chunk), chunk_cas) {
                Ok(()) => {
                    written = Some(seq);
                    break;
                }
                Err(HostError::CasMismatch) => continue,
                Err(status) => {
                    log::warn!("tokengate: cannot record a logout: {status:?}");
                    return;
                }
            }
        }
        let Some(seq) = written else {
            return;
        };
        for _ in 0..CAS_ATTEMPTS {
            let (mut head, cas) = log.head(host);
            if head.next_seq > seq {
                break;
            }
            head.next_seq = seq + 1;
            if head.full_until <= now.seconds {
                head.full_until = 0;
            }
            match host.shared_set(&log.head_key, &head.encode(), cas) {
                Err(HostError::CasMismatch) => continue,
                _ => break,
            }
        }
        self.sync_revocations(host, now);
    }

    /// Brings every provider's index up to the shared log: one small read per provider when
    /// nothing changed.
    pub(super) fn sync_revocations(&mut self, host: &mut impl Host, now: Now) {
        let mut changed = false;
        for provider in 0..self.revocations.len() {
            let Some(Some(log)) = self.revocations.get(provider) else {
                continue;
            };
            let (head, _) = log.head(host);
            let Some(revoked) = self.engine.revoked_mut(provider) else {
                continue;
            };
            if revoked.full_until != head.full_until {
                revoked.full_until = head.full_until;
                changed = true;
            }
            if head.next_seq == revoked.read_up_to {
                continue;
            }
            changed = true;
            let oldest = set::oldest_held(head.next_seq, log.chunks);
            if revoked.read_up_to < oldest || revoked.read_up_to > head.next_seq {
                // Fell behind a whole ring (or the log restarted): read it all again.
                revoked.clear();
                revoked.read_up_to = oldest;
            }
            let mut seq = revoked.read_up_to - revoked.read_up_to % CHUNK;
            let from = revoked.read_up_to;
            while seq < head.next_seq {
                let (entries, _) = log.chunk(host, seq);
                revoked.apply(
                    entries
                        .into_iter()
                        .filter(|e| e.seq >= from && e.seq < head.next_seq),
                    now.seconds,
                );
                seq += CHUNK;
            }
            revoked.forget_before(oldest, now.seconds);
            revoked.read_up_to = head.next_seq;
        }
        if changed {
            let entries: usize = (0..self.revocations.len())
                .filter_map(|p| self.engine.revoked(p))
                .map(|r| r.len())
                .sum();
            let entries = u64::try_from(entries).unwrap_or(u64::MAX);
            self.metrics.set(host, Gauge::RevokedEntries, entries);
        }
    }
}
