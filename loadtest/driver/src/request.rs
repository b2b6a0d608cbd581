//! What the driver sends and how it judges the answers.

use anyhow::{Context, Result, bail};
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, Uri};
use serde::Serialize;

/// Produces request `index` of a run.
///
/// Called on the driver's hot path, once per request, from every driver
/// thread: build requests from pre-built parts (pre-minted tokens as
/// `HeaderValue`s, whose clones share their bytes) rather than formatting or
/// signing anything here. [`RequestTemplate`] and [`RoundRobin`] do that.
///
/// The URI should be origin-form (`/path?query`); an absolute URI is
/// rewritten to its path, its authority becoming the `host` header. The
/// engine adds `host` (from the config) when the request has none, and sets
/// `x-request-id: <label>-<index>`.
pub trait RequestSource: Send + Sync {
    fn request(&self, index: u64) -> Request<Full<Bytes>>;
}

impl<F> RequestSource for F
where
    F: Fn(u64) -> Request<Full<Bytes>> + Send + Sync,
{
    fn request(&self, index: u64) -> Request<Full<Bytes>> {
        self(index)
    }
}

/// Whether a response is what the scenario expects. An expected 401 (an
/// invalid token refused) is a success; an unexpected 200 (an expired token
/// let through) is a failure, counted apart from transport errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Expected,
    Unexpected,
}

/// Judges responses. Called once per response, on the hot path.
pub trait Classifier: Send + Sync {
    fn classify(&self, status: u16, headers: &HeaderMap) -> Outcome;

    /// Scenarios mixing requests with different expectations (say one
    /// expired token in ten) override this; by default the index is ignored.
    fn classify_request(&self, index: u64, status: u16, headers: &HeaderMap) -> Outcome {
        let _ = index;
        self.classify(status, headers)
    }
}

impl<F> Classifier for F
where
    F: Fn(u16, &HeaderMap) -> Outcome + Send + Sync,
{
    fn classify(&self, status: u16, headers: &HeaderMap) -> Outcome {
        self(status, headers)
    }
}

/// Expects one of a set of status codes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectStatus {
    statuses: Vec<u16>,
}

impl ExpectStatus {
    pub fn new(statuses: impl IntoIterator<Item = u16>) -> Self {
        Self {
            statuses: statuses.into_iter().collect(),
        }
    }
}

impl Classifier for ExpectStatus {
    fn classify(&self, status: u16, _headers: &HeaderMap) -> Outcome {
        if self.statuses.contains(&status) {
            Outcome::Expected
        } else {
            Outcome::Unexpected
        }
    }
}

/// A pre-built request, cloned per send: method, origin-form URI, headers
/// and body all share their bytes with the template.
#[derive(Debug, Clone)]
pub struct RequestTemplate {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
}

impl RequestTemplate {
    /// `path_and_query` must be origin-form: it starts with `/`.
    pub fn new(method: Method, path_and_query: &str) -> Result<Self> {
        if !path_and_query.starts_with('/') {
            bail!("request target {path_and_query:?} must start with '/'");
        }
        let uri: Uri = path_and_query
            .parse()
            .with_context(|| format!("request target {path_and_query:?} is not a valid URI"))?;
        Ok(Self {
            method,
            uri,
            headers: HeaderMap::new(),
            body: Bytes::new(),
        })
    }

    pub fn get(path_and_query: &str) -> Result<Self> {
        Self::new(Method::GET, path_and_query)
    }

    /// Appends a header; repeating a name sends it several times.
    pub fn header(mut self, name: &str, value: &str) -> Result<Self> {
        let name = HeaderName::try_from(name)
            .with_context(|| format!("{name:?} is not a valid header name"))?;
        let value = HeaderValue::try_from(value)
            .with_context(|| format!("the value of header {name} is not a valid header value"))?;
        self.headers.append(name, value);
        Ok(self)
    }

    /// Appends an already-built header value (cheap to clone).
    pub fn header_value(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.append(name, value);
        self
    }

    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    pub fn method(&self) -> &Method {
        &self.method
    }

    pub fn uri(&self) -> &Uri {
        &self.uri
    }

    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    pub fn build(&self) -> Request<Full<Bytes>> {
        let mut request = Request::new(Full::new(self.body.clone()));
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = self.uri.clone();
        *request.headers_mut() = self.headers.clone();
        request
    }
}

impl RequestSource for RequestTemplate {
    fn request(&self, _index: u64) -> Request<Full<Bytes>> {
        self.build()
    }
}

/// Cycles through templates by request index (index mod count), e.g. one
/// per pre-minted token.
#[derive(Debug, Clone)]
pub struct RoundRobin {
    templates: Vec<RequestTemplate>,
}

impl RoundRobin {
    pub fn new(templates: Vec<RequestTemplate>) -> Result<Self> {
        if templates.is_empty() {
            bail!("RoundRobin needs at least one request template");
        }
        Ok(Self { templates })
    }

    pub fn templates(&self) -> &[RequestTemplate] {
        &self.templates
    }
}

impl RequestSource for RoundRobin {
    fn request(&self, index: u64) -> Request<Full<Bytes>> {
        let n = self.templates.len() as u64;
        // `new` refuses an empty list, so `n > 0` and the index is in range.
        match self.templates.get((index % n.max(1)) as usize) {
            Some(template) => template.build(),
            None => Request::new(Full::new(Bytes::new())),
        }
    }
}
