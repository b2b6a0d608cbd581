//! Finding the bearer token in a request (RFC 6750 §2), and removing it before forwarding.

use crate::config::TokenSource;
use crate::rejection::{Rejection, RequestProblem};

/// Request headers as the host hands them over: lower-case names (pseudo-headers such as
/// `:path` included) and raw byte values, in order, repeated names kept.
pub type HeaderList = [(String, Vec<u8>)];

/// A change to the request headers before it is forwarded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderUpdate {
    /// Replace every value of the header with this one.
    Set(String, String),
    /// Remove every value of the header.
    Remove(String),
}

/// Which request headers the token source reads (extraction and removal both).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NeededHeaders<'a> {
    /// A header that exists once (`:path`): reading its value is the whole story.
    One(&'a str),
    /// Every entry of this header, since a single-value read shows only the first. Envoy
    /// joins repeated `authorization` lines into one comma-separated entry, but other hosts
    /// (wasmtime's `proxy-wasm-host`, Chicory's) keep them apart, and Envoy keeps repeated
    /// custom headers (and `cookie` on HTTP/1.1) apart too: a token header read as one value
    /// would let a second token through unseen.
    All(&'a str),
}

impl NeededHeaders<'_> {
    /// The header's name.
    pub fn name(&self) -> &str {
        match self {
            NeededHeaders::One(name) | NeededHeaders::All(name) => name,
        }
    }
}

/// The headers `source` needs from a request.
pub fn needed_headers(source: &TokenSource) -> NeededHeaders<'_> {
    match source {
        TokenSource::Header { name, .. } => NeededHeaders::All(name),
        TokenSource::Query { .. } => NeededHeaders::One(":path"),
        TokenSource::Cookie { .. } => NeededHeaders::All("cookie"),
    }
}

/// Extracts the token. `Ok(None)` means the request carries no credentials of this kind.
pub fn extract<'a>(
    source: &TokenSource,
    headers: &'a HeaderList,
) -> Result<Option<&'a str>, Rejection> {
    extract_unchecked(source, headers)?.map(check).transpose()
}

/// The token's bytes as the request carries them, before [`check`]: at most one of them, and
/// not empty. `Ok(None)` means the request carries no credentials of this kind. For looking
/// the token up in a cache that only ever holds tokens that passed [`check`], which then need
/// not be checked again; everything else must check the bytes first.
pub fn extract_unchecked<'a>(
    source: &TokenSource,
    headers: &'a HeaderList,
) -> Result<Option<&'a [u8]>, Rejection> {
    let token = match source {
        TokenSource::Header { name, prefix } => {
            let Some(value) = single(header_values(headers, name))? else {
                return Ok(None);
            };
            match strip_prefix(value, prefix) {
                Some(rest) => rest,
                // Another scheme (e.g. Basic): not a bearer credential at all.
                None => return Ok(None),
            }
        }
        TokenSource::Query { name } => {
            let path = header_values(headers, ":path").next().unwrap_or(&[]);
            let Some(value) = single(query_values(path, name))? else {
                return Ok(None);
            };
            value
        }
        TokenSource::Cookie { name } => {
            let Some(value) = single(cookie_values(headers, name))? else {
                return Ok(None);
            };
            value
        }
    };
    if token.is_empty() {
        return Err(Rejection::InvalidRequest(RequestProblem::EmptyToken));
    }
    Ok(Some(token))
}

/// The token as text, if it is an RFC 6750 b64token (which is ASCII).
pub fn check(token: &[u8]) -> Result<&str, Rejection> {
    if !is_b64token(token) {
        // Repeated headers may reach the filter joined into one value with commas (a comma
        // is not a b64token character, so a valid token never contains one).
        return Err(Rejection::InvalidRequest(if token.contains(&b',') {
            RequestProblem::MultipleTokens
        } else {
            RequestProblem::InvalidCharacters
        }));
    }
    std::str::from_utf8(token)
        .map_err(|_| Rejection::InvalidRequest(RequestProblem::InvalidCharacters))
}

/// The update that removes the token from the forwarded request.
pub fn strip_update(source: &TokenSource, headers: &HeaderList) -> Option<HeaderUpdate> {
    match source {
        TokenSource::Header { name, .. } => Some(HeaderUpdate::Remove(name.clone())),
        TokenSource::Query { name } => {
            // Bytes, not text: `extract` reads a token from a path that is not UTF-8 too, and
            // such a token must not reach the upstream either.
            let path = header_values(headers, ":path").next()?;
            let at = path.iter().position(|b| *b == b'?')?;
            let (base, query) = (&path[..at], &path[at + 1..]);
            let kept: Vec<&[u8]> = query
                .split(|b| *b == b'&')
                .filter(|pair| pair.split(|b| *b == b'=').next() != Some(name.as_bytes()))
                .collect();
            let mut new_path = base.to_vec();
            if !kept.is_empty() {
                new_path.push(b'?');
                new_path.extend(kept.join(&b'&'));
            }
            Some(HeaderUpdate::Set(":path".to_owned(), path_text(new_path)))
        }
        TokenSource::Cookie { name } => {
            let kept: Vec<&str> = header_values(headers, "cookie")
                .filter_map(|value| std::str::from_utf8(value).ok())
                .flat_map(|value| value.split(';'))
                .map(str::trim)
                .filter(|pair| !pair.is_empty() && cookie_name(pair) != name.as_str())
                .collect();
            Some(if kept.is_empty() {
                HeaderUpdate::Remove("cookie".to_owned())
            } else {
                HeaderUpdate::Set("cookie".to_owned(), kept.join("; "))
            })
        }
    }
}

/// A rewritten path as header text: unchanged when UTF-8, else with its non-ASCII bytes
/// percent-encoded (the same request-target to an RFC 3986 server; raw bytes above 0x7f are
/// not valid in one anyway).
fn path_text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|err| {
        let mut text = String::new();
        for byte in err.into_bytes() {
            if byte.is_ascii() {
                text.push(char::from(byte));
            } else {
                text.push_str(&format!("%{byte:02X}"));
            }
        }
        text
    })
}

fn header_values<'h, 'n>(
    headers: &'h HeaderList,
    name: &'n str,
) -> impl Iterator<Item = &'h [u8]> + use<'h, 'n> {
    headers
        .iter()
        .filter(move |(n, _)| n == name)
        .map(|(_, v)| v.as_slice())
}

/// At most one value is allowed: RFC 6750 §2 forbids more than one way of passing a token.
fn single<T>(mut values: impl Iterator<Item = T>) -> Result<Option<T>, Rejection> {
    let first = values.next();
    if first.is_some() && values.next().is_some() {
        return Err(Rejection::InvalidRequest(RequestProblem::MultipleTokens));
    }
    Ok(first)
}

/// Matches `prefix` case-insensitively; a prefix ending in a space absorbs further spaces.
fn strip_prefix<'a>(value: &'a [u8], prefix: &str) -> Option<&'a [u8]> {
    let prefix = prefix.as_bytes();
    let trimmed_prefix = prefix.strip_suffix(b" ").unwrap_or(prefix);
    if value.len() < trimmed_prefix.len()
        || !value[..trimmed_prefix.len()].eq_ignore_ascii_case(trimmed_prefix)
    {
        return None;
    }
    let rest = &value[trimmed_prefix.len()..];
    if trimmed_prefix.len() == prefix.len() {
        return Some(rest);
    }
    // The scheme must be followed by at least one space, or by nothing at all ("Bearer").
    match rest.first() {
        None => Some(rest),
        Some(b' ') => {
            let spaces = rest.iter().take_while(|b| **b == b' ').count();
            Some(&rest[spaces..])
        }
        Some(_) => None,
    }
}

fn query_values<'p, 'n>(
    path: &'p [u8],
    name: &'n str,
) -> impl Iterator<Item = &'p [u8]> + use<'p, 'n> {
    let query = path
        .iter()
        .position(|b| *b == b'?')
        .map(|at| &path[at + 1..])
        .unwrap_or(&[]);
    let query = query.split(|b| *b == b'#').next().unwrap_or(&[]);
    query.split(|b| *b == b'&').filter_map(move |pair| {
        let mut parts = pair.splitn(2, |b| *b == b'=');
        let key = parts.next()?;
        (key == name.as_bytes()).then(|| parts.next().unwrap_or(&[]))
    })
}

fn cookie_values<'h, 'n>(
    headers: &'h HeaderList,
    name: &'n str,
) -> impl Iterator<Item = &'h [u8]> + use<'h, 'n> {
    header_values(headers, "cookie")
        .flat_map(|value| value.split(|b| *b == b';'))
        .filter_map(move |pair| {
            let pair = trim_ascii(pair);
            let mut parts = pair.splitn(2, |b| *b == b'=');
            let key = trim_ascii(parts.next()?);
            (key == name.as_bytes()).then(|| trim_ascii(parts.next().unwrap_or(&[])))
        })
}

fn cookie_name(pair: &str) -> &str {
    pair.split('=').next().unwrap_or("").trim()
}

fn trim_ascii(bytes: &[u8]) -> &[u8] {
    bytes.trim_ascii()
}

/// The characters of a b64token before its `=` padding.
static B64TOKEN_CHAR: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] =
            c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~' | b'+' | b'/');
        b += 1;
    }
    table
};

/// RFC 6750 `b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
pub fn is_b64token(token: &[u8]) -> bool {
    let body_len = token.len() - token.iter().rev().take_while(|b| **b == b'=').count();
    let body = token.get(..body_len).unwrap_or_default();
    // Branch-free over the (long) body: one table lookup per byte.
    !body.is_empty()
        && body
            .iter()
            .fold(true, |ok, b| ok & B64TOKEN_CHAR[usize::from(*b)])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
            .collect()
    }

    fn bearer() -> TokenSource {
        TokenSource::default()
    }

    #[test]
    fn authorization_header_cases() {
        use RequestProblem::*;
        type Case = (
            Vec<(&'static str, &'static str)>,
            Result<Option<&'static str>, Rejection>,
        );
        let cases: Vec<Case> = vec![
            (vec![], Ok(None)),
            (
                vec![("authorization", "Bearer abc.def.ghi")],
                Ok(Some("abc.def.ghi")),
            ),
            (vec![("authorization", "bearer abc")], Ok(Some("abc"))),
            (vec![("authorization", "BEARER    abc")], Ok(Some("abc"))),
            (vec![("authorization", "Basic dXNlcjpwYXNz")], Ok(None)),
            (vec![("authorization", "Bearerabc")], Ok(None)),
            (
                vec![("authorization", "Bearer")],
                Err(Rejection::InvalidRequest(EmptyToken)),
            ),
            (
                vec![("authorization", "Bearer   ")],
                Err(Rejection::InvalidRequest(EmptyToken)),
            ),
            (
                vec![("authorization", "Bearer a b")],
                Err(Rejection::InvalidRequest(InvalidCharacters)),
            ),
            (
                vec![("authorization", "Bearer a\"b")],
                Err(Rejection::InvalidRequest(InvalidCharacters)),
            ),
            (
                vec![("authorization", "Bearer ====")],
                Err(Rejection::InvalidRequest(InvalidCharacters)),
            ),
            (vec![("authorization", "Bearer ab==")], Ok(Some("ab=="))),
            (
                vec![("authorization", "Bearer a"), ("authorization", "Bearer b")],
                Err(Rejection::InvalidRequest(MultipleTokens)),
            ),
            (vec![("x-other", "Bearer abc")], Ok(None)),
            (
                vec![("authorization", "Bearer a,Bearer b")],
                Err(Rejection::InvalidRequest(MultipleTokens)),
            ),
        ];
        for (pairs, expected) in cases {
            let list = headers(&pairs);
            assert_eq!(extract(&bearer(), &list), expected, "{pairs:?}");
        }
        let non_utf8 = vec![("authorization".to_owned(), b"Bearer \xff\xfe".to_vec())];
        assert_eq!(
            extract(&bearer(), &non_utf8),
            Err(Rejection::InvalidRequest(InvalidCharacters))
        );
    }

    #[test]
    fn custom_header_query_and_cookie() {
        let header = TokenSource::Header {
            name: "x-token".into(),
            prefix: String::new(),
        };
        let list = headers(&[("x-token", "abc")]);
        assert_eq!(extract(&header, &list), Ok(Some("abc")));

        let query = TokenSource::Query {
            name: "access_token".into(),
        };
        let list = headers(&[(":path", "/api?x=1&access_token=abc.d_e&y=2")]);
        assert_eq!(extract(&query, &list), Ok(Some("abc.d_e")));
        assert_eq!(
            strip_update(&query, &list),
            Some(HeaderUpdate::Set(":path".into(), "/api?x=1&y=2".into()))
        );
        let list = headers(&[(":path", "/api?access_token=a&access_token=b")]);
        assert_eq!(
            extract(&query, &list),
            Err(Rejection::InvalidRequest(RequestProblem::MultipleTokens))
        );
        let list = headers(&[(":path", "/api?access_token_x=a")]);
        assert_eq!(extract(&query, &list), Ok(None));
        let list = headers(&[(":path", "/api?access_token=abc")]);
        assert_eq!(
            strip_update(&query, &list),
            Some(HeaderUpdate::Set(":path".into(), "/api".into()))
        );

        // Found by fuzzing: a token in the query of a path that is not UTF-8 was extracted,
        // but no update removed it, so it reached the upstream.
        let list = vec![(
            ":path".to_owned(),
            b"/a\xb9?x=1&access_token=abc&y=\xff".to_vec(),
        )];
        assert_eq!(extract(&query, &list), Ok(Some("abc")));
        assert_eq!(
            strip_update(&query, &list),
            Some(HeaderUpdate::Set(":path".into(), "/a%B9?x=1&y=%FF".into()))
        );

        let cookie = TokenSource::Cookie { name: "at".into() };
        let list = headers(&[("cookie", "a=1; at=tok; b=2")]);
        assert_eq!(extract(&cookie, &list), Ok(Some("tok")));
        assert_eq!(
            strip_update(&cookie, &list),
            Some(HeaderUpdate::Set("cookie".into(), "a=1; b=2".into()))
        );
        let list = headers(&[("cookie", "at=1"), ("cookie", "at=2")]);
        assert_eq!(
            extract(&cookie, &list),
            Err(Rejection::InvalidRequest(RequestProblem::MultipleTokens))
        );
        let list = headers(&[("cookie", "at=tok")]);
        assert_eq!(
            strip_update(&cookie, &list),
            Some(HeaderUpdate::Remove("cookie".into()))
        );
    }
}
