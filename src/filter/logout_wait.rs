//! Logout tokens that wait for their provider's keys: a replica that has just started, or
//! that has not seen a key rotation yet, must not answer a genuine logout with a final 400
//! (neither Keycloak nor a relaying peer sends it again). The token waits for a fetch (this
//! worker's, or another's seen through shared data), bounded in number and in time, and is
//! judged again when the fetch ends.

use super::calls::{Call, KeyWaiter};
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
        if self.calls.logouts_waiting_for_keys() >= MAX_PENDING_LOGOUTS
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

    /// A logout body waits for a fetch of its provider's keys ([`Worker::wait_for_keys`]
    /// said one will come).
    pub(super) fn park_logout(&mut self, pending: PendingLogout, body: Vec<u8>, now: Now) {
        let provider = pending.provider;
        let waiting = KeyWaitingLogout {
            pending,
            body,
            since_ms: now.millis,
        };
        self.calls
            .wait_for_keys(provider, KeyWaiter::Logout(waiting));
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
        if self.calls.logouts_waiting_for_keys() == 0 {
            return Vec::new();
        }
        let deadlines: Vec<u64> = self
            .remotes
            .iter()
            .map(|remote| remote.as_ref().map_or(0, |r| r.fetch_deadline_ms()))
            .collect();
        let due = self.calls.take_logouts_where(|provider, waiting| {
            synced.contains(&provider)
                || now.millis.saturating_sub(waiting.since_ms)
                    >= deadlines.get(provider).copied().unwrap_or(0)
        });
        self.resume_logouts(host, due, now)
    }

    /// Judges the logout tokens that waited for keys again, now without waiting, and answers
    /// each.
    pub(super) fn resume_logouts(
        &mut self,
        host: &mut impl Host,
        logouts: Vec<KeyWaitingLogout>,
        now: Now,
    ) -> Vec<Resumption> {
        logouts
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
