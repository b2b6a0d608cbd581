//! ECDSA public keys (P-256, P-384): the point, checked when the key set loads, and its
//! tables in the backend this engine computes correctly.

/// Generates a curve's key type: `$fast` (52-bit limbs on FMA) and `$int` (29-bit limbs) are
/// its field, `$scalar` the field of its order n, `$words` the 64-bit words of n, `$hash`
/// the JWS hash.
macro_rules! ecdsa_key {
    (
        $(#[$doc:meta])*
        $key:ident, $curve:path, $fast:ty, $fl:literal, $int:ty, $il:literal,
        $scalar:ty, $sl:literal, $words:literal, $hash:ty
    ) => {
        $(#[$doc])*
        #[derive(Clone)]
        pub struct $key {
            /// x ‖ y, big-endian.
            point: Box<[u8]>,
            tables: crate::ec::Backend<
                crate::ec::weierstrass::Table<$fast, $fl>,
                crate::ec::weierstrass::Table<$int, $il>,
            >,
        }

        impl PartialEq for $key {
            fn eq(&self, other: &Self) -> bool {
                self.point == other.point
            }
        }

        impl Eq for $key {}

        impl std::fmt::Debug for $key {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($key))
                    .field("backend", &self.tables.name())
                    .finish_non_exhaustive()
            }
        }

        impl $key {
            /// A key from its affine coordinates (a JWK's `x` and `y`): each exactly the
            /// curve's size, below p, and the point on the curve (which, with cofactor 1,
            /// makes it a point of the group; the point at infinity has no coordinates).
            pub fn from_coordinates(x: &[u8], y: &[u8]) -> Result<$key, crate::ec::KeyError> {
                use crate::ec::weierstrass::{Table, point_from_be};
                use crate::ec::{Backend, KeyError};
                let curve = &$curve;
                for coordinate in [x, y] {
                    if coordinate.len() != curve.bytes {
                        return Err(KeyError::CoordinateLength {
                            expected: curve.bytes,
                            got: coordinate.len(),
                        });
                    }
                    if coordinate >= curve.p_be {
                        return Err(KeyError::CoordinateOutOfRange);
                    }
                }
                let point = point_from_be::<$int, $il>(curve, x, y).ok_or(KeyError::NotOnCurve)?;
                let tables = match Self::fast_tables(x, y, &point) {
                    Some(tables) => tables,
                    None => Backend::int(Table::new(curve, &point, curve.w_q)),
                };
                Ok($key {
                    point: [x, y].concat().into_boxed_slice(),
                    tables,
                })
            }

            /// The floating-point backend's tables, if this build has it and it computes
            /// 3·Q as the integer one does (it does not where `relaxed_madd` is not fused).
            #[allow(unused_variables)]
            fn fast_tables(
                x: &[u8],
                y: &[u8],
                point: &crate::ec::weierstrass::Affine<$int, $il>,
            ) -> Option<
                crate::ec::Backend<
                    crate::ec::weierstrass::Table<$fast, $fl>,
                    crate::ec::weierstrass::Table<$int, $il>,
                >,
            > {
                #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
                {
                    Self::fast_tables_checked(x, y, point)
                }
                #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
                {
                    None
                }
            }

            #[cfg(any(not(target_arch = "wasm32"), target_feature = "simd128"))]
            #[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
            pub(crate) fn fast_tables_checked(
                x: &[u8],
                y: &[u8],
                point: &crate::ec::weierstrass::Affine<$int, $il>,
            ) -> Option<
                crate::ec::Backend<
                    crate::ec::weierstrass::Table<$fast, $fl>,
                    crate::ec::weierstrass::Table<$int, $il>,
                >,
            > {
                use crate::ec::weierstrass::{Table, affine_be, point_from_be, triple};
                let curve = &$curve;
                let fast = point_from_be::<$fast, $fl>(curve, x, y)?;
                let (mut a, mut b) = ([0u8; 96], [0u8; 96]);
                let len = 2 * curve.bytes;
                affine_be(&triple(&fast), a.get_mut(..len)?);
                affine_be(&triple(point), b.get_mut(..len)?);
                (a == b).then(|| {
                    crate::ec::Backend::Fma(std::sync::Arc::new(Table::new(curve, &fast, curve.w_q)))
                })
            }

            /// For tests and benches: the same key on the floating-point backend, unchecked
            /// (natively it runs on software `fma`). Not part of the API.
            #[doc(hidden)]
            #[cfg(any(not(target_arch = "wasm32"), target_feature = "simd128"))]
            pub fn with_fma_backend(&self) -> Option<$key> {
                use crate::ec::weierstrass::{Table, point_from_be};
                let curve = &$curve;
                let (x, y) = self.point.split_at(curve.bytes);
                let fast = point_from_be::<$fast, $fl>(curve, x, y)?;
                Some($key {
                    point: self.point.clone(),
                    tables: crate::ec::Backend::Fma(std::sync::Arc::new(Table::new(
                        curve, &fast, curve.w_q,
                    ))),
                })
            }

            /// For tests and benches: the same key on the integer backend.
            #[doc(hidden)]
            pub fn with_int_backend(&self) -> Option<$key> {
                use crate::ec::weierstrass::{Table, point_from_be};
                let curve = &$curve;
                let (x, y) = self.point.split_at(curve.bytes);
                let point = point_from_be::<$int, $il>(curve, x, y)?;
                Some($key {
                    point: self.point.clone(),
                    tables: crate::ec::Backend::int(Table::new(curve, &point, curve.w_q)),
                })
            }

            /// Which backend verifies with this key: "fma" or "int".
            pub fn backend(&self) -> &'static str {
                self.tables.name()
            }

            /// x ‖ y, big-endian.
            pub fn to_uncompressed_coordinates(&self) -> &[u8] {
                &self.point
            }

            /// Verifies a JWS signature (r ‖ s, each the curve's size) over `message`.
            pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
                use sha2::Digest;
                self.verify_prehash(&<$hash>::digest(message), signature)
            }

            /// Verifies r ‖ s over a digest as long as the order (SHA-256 for P-256,
            /// SHA-384 for P-384). Any r or s that is zero or not below n fails; s above n/2
            /// ("high S") verifies, as in FIPS 186-5 and BoringSSL.
            pub fn verify_prehash(&self, digest: &[u8], signature: &[u8]) -> bool {
                use crate::ec::weierstrass::{ecdsa_check, ecdsa_scalars};
                let curve = &$curve;
                if signature.len() != 2 * curve.bytes {
                    return false;
                }
                let (r, s) = signature.split_at(curve.bytes);
                let Some((u1, u2)) = ecdsa_scalars::<$scalar, $sl, $words>(curve, r, s, digest)
                else {
                    return false;
                };
                match &self.tables {
                    #[cfg(any(not(target_arch = "wasm32"), target_feature = "simd128"))]
                    crate::ec::Backend::Fma(q) => {
                        static G: std::sync::OnceLock<
                            Option<crate::ec::weierstrass::Table<$fast, $fl>>,
                        > = std::sync::OnceLock::new();
                        match G.get_or_init(|| generator_table::<$fast, $fl>()) {
                            Some(g) => ecdsa_check(curve, g, q, &u1, &u2, r),
                            None => false,
                        }
                    }
                    crate::ec::Backend::Int(q, _) => {
                        static G: std::sync::OnceLock<
                            Option<crate::ec::weierstrass::Table<$int, $il>>,
                        > = std::sync::OnceLock::new();
                        match G.get_or_init(|| generator_table::<$int, $il>()) {
                            Some(g) => ecdsa_check(curve, g, q, &u1, &u2, r),
                            None => false,
                        }
                    }
                }
            }
        }

        /// G's tables, built on first use.
        fn generator_table<M: crate::ec::field::Modulus<L>, const L: usize>()
        -> Option<crate::ec::weierstrass::Table<M, L>> {
            use crate::ec::weierstrass::{Table, point_from_be};
            let curve = &$curve;
            let g = point_from_be::<M, L>(curve, curve.gx_be, curve.gy_be)?;
            Some(Table::new(curve, &g, curve.w_g))
        }
    };
}

pub(crate) use ecdsa_key;
