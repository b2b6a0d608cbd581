//! Encoding edge cases: base64url padding, non-canonical trailing bits and the standard
//! alphabet in each segment of each key type, token shapes (segments, dots, whitespace,
//! characters outside base64url) and the authorization scheme.

use tokengate::algorithm::Algorithm;

use super::cases::{Template, bearer, case, draft};
use super::mint::{self, Draft};

pub fn add(cases: &mut Vec<Template>) {
    use Algorithm::{EdDsa, Es256, Rs256};
    for alg in [Rs256, Es256, EdDsa] {
        let name = alg.jws_name();
        for index in 0..3 {
            let segment = ["header", "payload", "signature"][index];
            for (edit, apply) in [
                ("padded", mint::padded as fn(&str, usize) -> String),
                ("non-canonical last character", mint::non_canonical_tail),
            ] {
                let label = format!("{name} {segment} {edit}");
                let jti = label.clone();
                cases.push(case("base64", label, move |iss, now| {
                    // Vary the jti until the segment has a length the edit changes.
                    let token = (0..64)
                        .map(|n| Draft::new(alg, iss, now, &format!("{jti} {n}")).sign())
                        .find(|t| t.split('.').nth(index).is_some_and(|s| s.len() % 4 != 0))
                        .unwrap_or_default();
                    bearer(&apply(&token, index))
                }));
            }
        }
        let label = format!("{name} standard alphabet");
        cases.push(case("base64", label.clone(), move |iss, now| {
            let token = (0..64)
                .map(|n| Draft::new(alg, iss, now, &format!("{label} {n}")).sign())
                .find(|t| t.contains(['-', '_']))
                .unwrap_or_default();
            bearer(&mint::standard_alphabet(&token))
        }));
    }
    type Shape = fn(&str) -> String;
    let shapes: [(&str, Shape); 15] = [
        ("space inside the payload", |t| insert_at(t, 1, 5, " ")),
        ("tab inside the payload", |t| insert_at(t, 1, 5, "\t")),
        ("space after the first dot", |t| t.replacen('.', ". ", 1)),
        ("four segments", |t| format!("{t}.e30")),
        ("five segments (JWE shape)", |t| format!("{t}.AAAA.AAAA")),
        ("two segments", |t| {
            t.rsplit_once('.').map_or(t.to_owned(), |p| p.0.to_owned())
        }),
        ("trailing dot", |t| format!("{t}.")),
        ("leading dot", |t| format!(".{t}")),
        ("empty header segment", |t| {
            mint::map_segment(t, 0, |_| String::new())
        }),
        ("percent-encoded dash", |t| t.replacen('-', "%2D", 1)),
        ("character outside base64url", |t| insert_at(t, 2, 3, "!")),
        ("header as padded standard base64", |t| {
            mint::map_segment(t, 0, |s| mint::padded(&mint::standard_alphabet(s), 0))
        }),
        ("doubled dot", |t| t.replacen('.', "..", 1)),
        ("quoted", |t| format!("\"{t}\"")),
        ("with a trailing comma", |t| format!("{t},")),
    ];
    for (label, shape) in shapes {
        cases.push(case("token shape", label, move |iss, now| {
            bearer(&shape(&draft(iss, now, label).sign()))
        }));
    }
    let schemes: [(&str, Shape); 7] = [
        ("scheme lower case", |t| format!("bearer {t}")),
        ("scheme upper case", |t| format!("BEARER {t}")),
        ("two spaces after the scheme", |t| format!("Bearer  {t}")),
        ("tab after the scheme", |t| format!("Bearer\t{t}")),
        ("no scheme", |t| t.to_owned()),
        ("Basic scheme", |t| format!("Basic {t}")),
        ("two tokens", |t| format!("Bearer {t} {t}")),
    ];
    for (label, scheme) in schemes {
        cases.push(case("scheme", label, move |iss, now| {
            scheme(&draft(iss, now, label).sign())
        }));
    }
}

fn insert_at(token: &str, segment: usize, offset: usize, text: &str) -> String {
    mint::map_segment(token, segment, |s| {
        let at = offset.min(s.len());
        format!("{}{text}{}", &s[..at], &s[at..])
    })
}
