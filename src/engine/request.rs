//! A request as the engine sees it: the headers the configuration reads, and the host's route
//! name when a rule matches on it.

use crate::policy::matcher::{MatchNeeds, RequestAttributes};
use crate::token_source::{HeaderList, NeededHeaders, needed_headers};

use crate::config::TokenSource;

/// What the host read from a request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Request {
    /// Lower-case names and raw values, in order, repeated names kept: only the headers
    /// [`RequestNeeds`] lists.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The route's name, when [`RequestNeeds::route`] asks for it and the host knows it.
    pub route: Option<Vec<u8>>,
    /// Whether a body follows the headers.
    pub body_follows: bool,
}

impl Request {
    /// A request with these headers and no route name.
    pub fn with_headers(headers: Vec<(String, Vec<u8>)>) -> Request {
        Request {
            headers,
            route: None,
            body_follows: false,
        }
    }

    /// The headers, as token extraction takes them.
    pub fn headers(&self) -> &HeaderList {
        &self.headers
    }

    fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }

    /// What the rules match on.
    pub fn attributes(&self) -> RequestAttributes<'_> {
        RequestAttributes {
            path: self.header(":path"),
            method: self.header(":method"),
            authority: self.header(":authority"),
            route: self.route.as_deref(),
        }
    }
}

/// How to read one header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderRead {
    /// The first (and, for these headers, only) value.
    One(String),
    /// Every entry of this name, in order.
    All(String),
}

/// Which headers (and whether the route name) the host must read from each request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RequestNeeds {
    /// The headers, each once.
    pub headers: Vec<HeaderRead>,
    /// Whether a rule matches on the route name.
    pub route: bool,
}

impl RequestNeeds {
    /// What matching the rules, reading every token source and recognising logout requests
    /// (`logout`: some provider has a back-channel logout path) needs.
    pub fn new(matching: MatchNeeds, sources: &[TokenSource], logout: bool) -> RequestNeeds {
        let mut needs = RequestNeeds {
            headers: Vec::new(),
            route: matching.route,
        };
        for (wanted, name) in [
            (matching.path || logout, ":path"),
            (matching.method || logout, ":method"),
            (matching.authority, ":authority"),
            (logout, crate::config::RELAYED_HEADER),
        ] {
            if wanted {
                needs.add(HeaderRead::One(name.to_owned()));
            }
        }
        for source in sources {
            needs.add(match needed_headers(source) {
                NeededHeaders::One(name) => HeaderRead::One(name.to_owned()),
                NeededHeaders::All(name) => HeaderRead::All(name.to_owned()),
            });
        }
        needs
    }

    /// Adds a read; reading every entry of a header covers reading its first.
    fn add(&mut self, read: HeaderRead) {
        let name = match &read {
            HeaderRead::One(name) | HeaderRead::All(name) => name.clone(),
        };
        let existing = self.headers.iter_mut().find(|existing| match existing {
            HeaderRead::One(n) | HeaderRead::All(n) => *n == name,
        });
        match (existing, read) {
            (None, read) => self.headers.push(read),
            (Some(slot), HeaderRead::All(name)) => *slot = HeaderRead::All(name),
            (Some(_), HeaderRead::One(_)) => {}
        }
    }
}
