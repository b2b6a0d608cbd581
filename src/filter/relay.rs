//! The relay of accepted logout tokens to peer replicas (each verifies the token again and
//! never trusts the relay).

use std::rc::Rc;

use crate::config::RELAYED_HEADER;
use crate::introspection::HttpCall;
use crate::metrics::Counter;

use super::calls::Call;
use super::host::Host;
use super::{Now, Worker};

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
            let call = Call::Relay {
                provider,
                peer,
                body: Rc::clone(&body),
            };
            if !self.start_call(host, call, now) {
                self.metrics.increment(host, Counter::RevocationRelayFailed);
            }
        }
    }

    /// The relay request to a peer.
    pub(super) fn relay_call(&self, provider: usize, peer: usize, body: &[u8]) -> Option<HttpCall> {
        let peer = self
            .engine
            .config()
            .providers
            .get(provider)?
            .backchannel
            .as_ref()?
            .peers
            .get(peer)?;
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
            body: body.to_vec(),
            timeout_ms: peer.timeout_ms,
        })
    }
}
