//! The proxy-wasm map encoding, in which header maps go to and come from the host (see
//! [`super::abi`]). Pure: no host call.

/// The proxy-wasm map encoding: pair count, each pair's key and value lengths (all u32 LE),
/// then each key and value followed by a NUL byte.
pub(super) fn serialize_map(pairs: &[(&str, &str)]) -> Vec<u8> {
    let size = 4 + pairs
        .iter()
        .map(|(k, v)| 10 + k.len() + v.len())
        .sum::<usize>();
    let mut bytes = Vec::with_capacity(size);
    let len32 = |n: usize| u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes();
    bytes.extend_from_slice(&len32(pairs.len()));
    for (key, value) in pairs {
        bytes.extend_from_slice(&len32(key.len()));
        bytes.extend_from_slice(&len32(value.len()));
    }
    for (key, value) in pairs {
        bytes.extend_from_slice(key.as_bytes());
        bytes.push(0);
        bytes.extend_from_slice(value.as_bytes());
        bytes.push(0);
    }
    bytes
}

/// The inverse of [`serialize_map`]; `None` if the bytes do not follow the encoding. Names
/// that are not UTF-8 are converted lossily (header names are ASCII).
pub(super) fn deserialize_map(bytes: &[u8]) -> Option<Vec<(String, Vec<u8>)>> {
    let read_u32 = |at: usize| -> Option<usize> {
        let field: [u8; 4] = bytes.get(at..at + 4)?.try_into().ok()?;
        usize::try_from(u32::from_le_bytes(field)).ok()
    };
    let count = read_u32(0)?;
    let mut pairs = Vec::with_capacity(count.min(bytes.len() / 8));
    let mut data = 4usize.checked_add(count.checked_mul(8)?)?;
    for index in 0..count {
        let key_len = read_u32(4 + index * 8)?;
        let value_len = read_u32(8 + index * 8)?;
        let key = bytes.get(data..data.checked_add(key_len)?)?;
        data = data.checked_add(key_len + 1)?;
        let value = bytes.get(data..data.checked_add(value_len)?)?;
        data = data.checked_add(value_len + 1)?;
        pairs.push((String::from_utf8_lossy(key).into_owned(), value.to_vec()));
    }
    Some(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_encoding_round_trips() {
        let pairs = [
            (":path", "/a"),
            ("x-empty", ""),
            ("authorization", "Bearer t"),
        ];
        let decoded = deserialize_map(&serialize_map(&pairs)).unwrap_or_default();
        let expected: Vec<(String, Vec<u8>)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect();
        assert_eq!(decoded, expected);
        assert_eq!(deserialize_map(&[1, 0, 0, 0, 9, 0]), None);
    }
}
