//! Reading choices from the fuzzer's bytes. Every choice from a short list takes one byte
//! (`byte % len`), and an exhausted input reads as zeros, so the empty input is "the first
//! choice everywhere" and seeds can be written byte by byte. Built on `arbitrary`'s
//! `Unstructured`, whose small-range integers behave exactly so.

use arbitrary::Unstructured;

/// The fuzzer's bytes, read as a sequence of choices.
pub struct Choices<'a>(Unstructured<'a>);

impl<'a> Choices<'a> {
    /// Choices from these bytes.
    pub fn new(data: &'a [u8]) -> Choices<'a> {
        Choices(Unstructured::new(data))
    }

    /// An index below `len` (0 when the input is exhausted); `len` must be at least 1.
    pub fn index(&mut self, len: usize) -> usize {
        if len <= 1 {
            return 0;
        }
        self.0.choose_index(len).unwrap_or(0)
    }

    /// One of `options`.
    pub fn pick<T: Clone>(&mut self, options: &[T]) -> T {
        let at = self.index(options.len());
        options[at].clone()
    }

    /// A number in `0..=max`.
    pub fn upto(&mut self, max: usize) -> usize {
        self.0.int_in_range(0..=max).unwrap_or(0)
    }

    /// One byte.
    pub fn byte(&mut self) -> u8 {
        self.0.int_in_range(0..=u8::MAX).unwrap_or(0)
    }

    /// A signed offset in `-limit..=limit`.
    pub fn offset(&mut self, limit: i64) -> i64 {
        self.0.int_in_range(-limit..=limit).unwrap_or(0)
    }

    /// A flag; `false` when exhausted.
    pub fn flag(&mut self) -> bool {
        self.byte() & 1 == 1
    }

    /// Up to `max` raw bytes: a length byte, then that many bytes (fewer at the end).
    pub fn bytes(&mut self, max: usize) -> Vec<u8> {
        let len = self.upto(max);
        let mut out = Vec::with_capacity(len);
        for _ in 0..len {
            if self.0.is_empty() {
                break;
            }
            out.push(self.byte());
        }
        out
    }

    /// Up to `max` bytes as text (invalid UTF-8 replaced).
    pub fn text(&mut self, max: usize) -> String {
        String::from_utf8_lossy(&self.bytes(max)).into_owned()
    }

    /// Whatever is left.
    pub fn rest(&mut self) -> Vec<u8> {
        let len = self.0.len();
        self.0.bytes(len).map(<[u8]>::to_vec).unwrap_or_default()
    }

    /// Whether nothing is left.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
