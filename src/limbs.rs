//! Conversions between big-endian byte strings and little-endian limbs of any width up to 56
//! bits, shared by the RSA kernels (`rsa_verify::monty`, 28-bit limbs; `rsa_verify::fma`,
//! 52-bit limbs) and the elliptic-curve fields (`ec::field`, whose constants are built by a
//! `const fn` of its own, since these take iterators).

/// Packs big-endian `bytes` into `bits`-bit limbs, least significant first, through `slots`
/// (`limb` turns each value into the slot's type). `None` if the value needs more slots.
pub(crate) fn pack_be<'a, T: 'a>(
    bytes: &[u8],
    bits: u32,
    mut slots: impl Iterator<Item = &'a mut T>,
    limb: impl Fn(u64) -> T,
) -> Option<()> {
    let mask = (1u64 << bits) - 1;
    let mut acc = 0u64;
    let mut acc_bits = 0;
    for &byte in bytes.iter().rev() {
        acc |= u64::from(byte) << acc_bits;
        acc_bits += 8;
        if acc_bits >= bits {
            let value = acc & mask;
            match slots.next() {
                Some(slot) => *slot = limb(value),
                None if value == 0 => {}
                None => return None,
            }
            acc >>= bits;
            acc_bits -= bits;
        }
    }
    if acc != 0 {
        *slots.next()? = limb(acc);
    }
    Some(())
}

/// Writes the number whose `bits`-bit limbs (least significant first) are `limbs` big-endian
/// into all of `out`; `false` if it does not fit.
pub(crate) fn unpack_be(limbs: impl Iterator<Item = u64>, bits: u32, out: &mut [u8]) -> bool {
    let mut bytes = out.iter_mut().rev();
    let mut acc = 0u64;
    let mut acc_bits = 0;
    for limb in limbs {
        acc |= limb << acc_bits;
        acc_bits += bits;
        while acc_bits >= 8 {
            match bytes.next() {
                #[allow(clippy::cast_possible_truncation)]
                Some(byte) => *byte = acc as u8,
                None if acc & 0xff == 0 => {}
                None => return false,
            }
            acc >>= 8;
            acc_bits -= 8;
        }
    }
    if acc != 0 {
        return false;
    }
    bytes.for_each(|byte| *byte = 0);
    true
}
