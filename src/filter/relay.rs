//! The relay of accepted logout tokens to peer replicas (each verifies the token again and
//! never trusts the relay).
//!
//! A relay that gets no answer (the peer is down, restarting, or did not answer in time) or a
//! 5xx (a peer without its keys yet answers 503) is sent again on a tick, after 1 s and then
//! 2 s: a peer that is back within those seconds still learns of the logout. A 4xx is final:
//! the peer judged the token. A retry after an answer that was lost may find the peer already
//! holds the logout (it answers 400, `replayed`): counted as a failed relay here, and as
//! `rejected.replayed` on the peer.

use std::rc::Rc;

use crate::config::RELAYED_HEADER;
use crate::introspection::HttpCall;
use crate::metrics::Counter;

use super::calls::{Call, Relay};
use super::host::Host;
use super::{Now, Worker};

/// Attempts per relay, the first included.
pub const RELAY_ATTEMPTS: u8 = 3;
/// Relays waiting to be sent again, at most per worker (a flood of logouts while a peer is
/// down must not grow memory without bound); beyond it a failed relay is final.
pub const MAX_RELAY_RETRIES: usize = 1024;

/// Whether a relay's answer says "try again": none at all, or a 5xx.
fn worth_retrying(status: Option<u16>) -> bool {
    status.is_none_or(|status| (500..600).contains(&status))
}

impl Worker {
    /// Sends an accepted logout token on to every peer replica (each verifies it again).
    pub(super) fn relay(&mut self, host: &mut impl Host, provider: usize, body: &[u8], now: Now) {
        let peers = self
            .engine
            .config()
            .providers
            .get(provider)
            .and_then(|p| p.backchannel.as_ref())
            .map_or(0, |b| b.peers.len());
        let body: Rc<[u8]> = Rc::from(body);
        for peer in 0..peers {
            let relay = Relay {
                provider,
                peer,
                body: Rc::clone(&body),
                attempt: 1,
            };
            if !self.start_call(host, Call::Relay(relay.clone()), now) {
                self.relay_failed(host, relay, None, now);
            }
        }
    }

    /// The relay request to a peer.
    pub(super) fn relay_call(&self, relay: &Relay) -> Option<HttpCall> {
        let peer = self
            .engine
            .config()
            .providers
            .get(relay.provider)?
            .backchannel
            .as_ref()?
            .peers
            .get(relay.peer)?;
        Some(HttpCall {
            cluster: peer.cluster.clone(),
            headers: vec![
                (":method".to_owned(), "POST".to_owned()),
                (":path".to_owned(), peer.path.clone()),
                (":authority".to_owned(), peer.authority.clone()),
                (
                    "content-type".to_owned(),
                    "application/x-www-form-urlencoded".to_owned(),
                ),
                (RELAYED_HEADER.to_owned(), "1".to_owned()),
            ],
            body: relay.body.to_vec(),
            timeout_ms: peer.timeout_ms,
        })
    }

    /// A relay's answer: counted, or sent again later.
    pub(super) fn finish_relay(
        &mut self,
        host: &mut impl Host,
        relay: Relay,
        response: &super::CallResponse,
        now: Now,
    ) {
        if response.status == Some(200) {
            self.metrics.increment(host, Counter::RevocationRelayed);
        } else {
            self.relay_failed(host, relay, response.status, now);
        }
    }

    /// A relay that did not get 200: scheduled again if worth it and attempts remain, else
    /// final (counted and logged).
    fn relay_failed(
        &mut self,
        host: &mut impl Host,
        mut relay: Relay,
        status: Option<u16>,
        now: Now,
    ) {
        if worth_retrying(status)
            && relay.attempt < RELAY_ATTEMPTS
            && self.relay_retries.len() < MAX_RELAY_RETRIES
        {
            let delay_ms = 1_000u64 << (relay.attempt - 1);
            self.metrics
                .increment(host, Counter::RevocationRelayRetried);
            relay.attempt += 1;
            self.relay_retries
                .push((now.millis.saturating_add(delay_ms), relay));
            return;
        }
        self.metrics.increment(host, Counter::RevocationRelayFailed);
        log::warn!(
            "tokengate: relaying a logout to peer {} failed ({status:?}, attempt {} of {RELAY_ATTEMPTS})",
            relay.peer,
            relay.attempt
        );
    }

    /// On a tick: sends the relays whose time has come (from the root context).
    pub(super) fn retry_relays(&mut self, host: &mut impl Host, now: Now) {
        if self.relay_retries.is_empty() {
            return;
        }
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.relay_retries)
            .into_iter()
            .partition(|(at, _)| *at <= now.millis);
        self.relay_retries = later;
        for (_, relay) in due {
            if let Err(Call::Relay(relay)) = self.dispatch(host, Call::Relay(relay), now) {
                self.relay_failed(host, relay, None, now);
            }
        }
    }
}
