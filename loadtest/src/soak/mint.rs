//! The soak's token supply: valid EdDSA tokens signed by a pool of threads just ahead of the
//! senders, and invalid ones assembled without signing.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokengate::algorithm::Algorithm;
use tokio::sync::{Mutex, mpsc};

use crate::differential::mint::{Draft, b64};

/// Tokens queued ahead of the senders: enough to ride out a scheduling hiccup of the pool.
const AHEAD: usize = 8192;

#[derive(Clone)]
pub enum Supply {
    Signed(Arc<Mutex<mpsc::Receiver<String>>>),
    /// `header.payload(n).signature` with one token's header and signature around distinct
    /// payloads: every one fails its signature check.
    Forged {
        header: Arc<str>,
        signature: Arc<str>,
        issuer: Arc<str>,
        now: i64,
        next: Arc<AtomicU64>,
        end: u64,
    },
}

impl Supply {
    pub async fn next(&self) -> Option<String> {
        match self {
            Supply::Signed(receiver) => receiver.lock().await.recv().await,
            Supply::Forged {
                header,
                signature,
                issuer,
                now,
                next,
                end,
            } => {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= *end {
                    return None;
                }
                let claims = draft(issuer, *now, &format!("forged-{n}")).claims_bytes();
                Some(format!("{header}.{}.{signature}", b64(claims)))
            }
        }
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn draft(issuer: &str, now: i64, jti: &str) -> Draft {
    // Valid for two hours: a million-token phase on a slow machine still ends well before.
    Draft::new(Algorithm::EdDsa, issuer, now, jti).claim("exp", Some(serde_json::json!(now + 7200)))
}

/// Valid tokens `offset..offset + count` (`jti` = `soak-N`), signed by `threads` threads.
pub fn valid(issuer: &str, offset: u64, count: u64, threads: usize) -> Supply {
    let (sender, receiver) = mpsc::channel(AHEAD);
    let threads = threads.max(1) as u64;
    for thread in 0..threads {
        let (sender, issuer) = (sender.clone(), issuer.to_owned());
        std::thread::spawn(move || {
            let now = unix_now();
            let mut n = offset + thread;
            while n < offset + count {
                let token =
                    draft(&issuer, now, &format!("soak-{n}")).sign_as(Algorithm::EdDsa, "ed1");
                if sender.blocking_send(token).is_err() {
                    return;
                }
                n += threads;
            }
        });
    }
    Supply::Signed(Arc::new(Mutex::new(receiver)))
}

/// `count` distinct tokens with bad signatures.
pub fn invalid(issuer: &str, count: u64) -> Supply {
    let now = unix_now();
    let token = draft(issuer, now, "signed").sign_as(Algorithm::EdDsa, "ed1");
    let mut parts = token.split('.');
    let header = parts.next().unwrap_or_default().into();
    let signature = parts.nth(1).unwrap_or_default().into();
    Supply::Forged {
        header,
        signature,
        issuer: issuer.into(),
        now,
        next: Arc::new(AtomicU64::new(0)),
        end: count,
    }
}
