//! Logout tokens that wait for their provider's keys: a replica that has just started, or
//! that has not seen a key rotation yet, must not answer a genuine logout with a final 400
//! (neither Keycloak nor a relaying peer sends it again). The token waits for a fetch (this
//! worker's, or another's seen through shared data), bounded in number and in time, and is
//! judged again when the fetch ends.

use super::calls::Call;
use super::host::Host;
use super::revocations::logout_response;
use super::revocations::{MAX_PENDING_LOGOUTS, PendingLogout};
use super::{Now, Resumption, Step, Worker};

/// A logout body that waits for its provider's keys.
pub(super) struct KeyWaitingLogout {
    pending: PendingLogout,
    body: Vec<u8>,
    /// When it started waiting (Unix milliseconds).
    since_ms: u64,
}

impl KeyWaitingLogout {
    pub(super) fn new(pending: PendingLogout, body: Vec<u8>, now: Now) -> KeyWaitingLogout {
        KeyWaitingLogout {
            pending,
            body,
            since_ms: now.millis,
        }
    }
}

impl Worker {
    /// Whether a logout token whose key this worker lacks can wait for a fetch of `provider`'s
    /// keys: one already on its way, or a refetch under the same shared rate limit and
    /// "recently missing" memory as requests with an unknown `kid` (a forged `kid` costs the
    /// IdP no more than it does on the request path).
    pub(super) fn wait_for_keys(
        &mut self,
        host: &mut impl Host,
        provider: usize,
        token: &str,
        now: Now,
    ) -> bool {
        if self.key_waiting_logouts.len() >= MAX_PENDING_LOGOUTS
            || !self.remotes.get(provider).is_some_and(Option::is_some)
        {
            return false;
        }
        if self.calls.fetching(provider, None) {
            return true;
        }
        if self.remotes[provider]
            .as_ref()
            .is_some_and(|remote| remote.fetch_in_flight(host, now))
        {
            // Another worker's fetch: its keys reach this worker through shared data, on a
            // tick ([`Worker::on_tick`]).
            return true;
        }
        let kid = jwt_compact::UntrustedToken::new(token)
            .ok()
            .and_then(|t| t.header().key_id.clone())
            .unwrap_or_default();
        if self.engine.key_count(provider) > 0 && self.kid_known_missing(host, provider, &kid, now)
        {
            return false;
        }
        let Some(Some(remote)) = self.remotes.get(provider) else {
            return false;
        };
        let refetch = Call::fetch(remote, provider, true);
        if !self.claim_kid_refetch(host, provider, now) {
            return false;
        }
        if self.start_call(host, refetch, now) {
            return true;
        }
        self.record_fetch_failure(host, provider, now);
        false
    }

    /// A fetch of `provider`'s keys ended (with keys or without): every logout token that
    /// waited for it is judged again, now without waiting, and answered.
    pub(super) fn resume_key_waiting_logouts(
        &mut self,
        host: &mut impl Host,
        provider: usize,
        now: Now,
    ) -> Vec<Resumption> {
        self.resume_logouts_where(host, now, |waiting| waiting.pending.provider == provider)
    }

    /// On a tick: the logout tokens whose provider's keys came through shared data, and those
    /// that waited longer than a fetch can take (another worker's fetch they waited on was
    /// lost), are judged again and answered.
    pub(super) fn resume_logouts_on_tick(
        &mut self,
        host: &mut impl Host,
        synced: &[usize],
        now: Now,
    ) -> Vec<Resumption> {
        if self.key_waiting_logouts.is_empty() {
            return Vec::new();
        }
        let deadlines: Vec<u64> = self
            .remotes
            .iter()
            .map(|remote| remote.as_ref().map_or(0, |r| r.fetch_deadline_ms()))
            .collect();
        self.resume_logouts_where(host, now, |waiting| {
            let provider = waiting.pending.provider;
            synced.contains(&provider)
                || now.millis.saturating_sub(waiting.since_ms)
                    >= deadlines.get(provider).copied().unwrap_or(0)
        })
    }

    fn resume_logouts_where(
        &mut self,
        host: &mut impl Host,
        now: Now,
        due: impl Fn(&KeyWaitingLogout) -> bool,
    ) -> Vec<Resumption> {
        let (waiting, others): (Vec<KeyWaitingLogout>, Vec<KeyWaitingLogout>) =
            std::mem::take(&mut self.key_waiting_logouts)
                .into_iter()
                .partition(|w| due(w));
        self.key_waiting_logouts = others;
        waiting
            .into_iter()
            .map(|KeyWaitingLogout { pending, body, .. }| {
                let reply = match self.receive_logout(host, &pending, &body, false, now) {
                    Ok(_) => logout_response(Ok(()), self.retry_after()),
                    Err(error) => self.refuse_logout(host, error),
                };
                Resumption {
                    context_id: pending.context_id,
                    step: Step::Reply(reply),
                }
            })
            .collect()
    }
}
