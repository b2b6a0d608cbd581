//! A proxy-wasm HTTP filter that looks at the bearer token and lets every request through.
//!
//! Benchmark-only. `loadtest/benches/envoy_cpu.rs` loads it in place of tokengate in the `jwt`
//! gateway's configuration (same V8 runtime, same `vm_config`, same plugin configuration,
//! which it ignores) to measure the floor any wasm token filter costs per request: Envoy's wasm
//! filter context life cycle, one call into the VM, and the two host reads no bearer-token
//! filter can skip: the `authorization` header (the host copies it into memory the module
//! allocates, a second call into the VM) and the clock. Build it with
//!
//! ```text
//! cargo build --release --target wasm32-wasip1 -p passthrough
//! ```
//!
//! It exports the same request-path callbacks as tokengate (`src/host/mod.rs`): context
//! creation and request headers, nothing for the response or the end of the stream, so the
//! host makes the same calls into the VM per request for both and the difference between the
//! two is tokengate's own work. (A filter on the Rust SDK exports every callback and pays for
//! about seven calls per request instead.)

#[cfg(target_arch = "wasm32")]
mod filter {
    #[unsafe(no_mangle)]
    pub extern "C" fn proxy_abi_version_0_2_1() {}

    /// The host hands data to the module in memory it allocates here (never, for this filter,
    /// beyond the plugin configuration at start-up).
    #[unsafe(no_mangle)]
    pub extern "C" fn proxy_on_memory_allocate(size: usize) -> *mut u8 {
        let mut buffer = std::mem::ManuallyDrop::new(Vec::<u8>::with_capacity(size));
        buffer.as_mut_ptr()
    }

    #[unsafe(no_mangle)]
    pub extern "C" fn proxy_on_vm_start(_root_context_id: u32, _configuration_size: usize) -> u32 {
        1
    }

    #[unsafe(no_mangle)]
    pub extern "C" fn proxy_on_configure(_root_context_id: u32, _configuration_size: usize) -> u32 {
        1
    }

    #[unsafe(no_mangle)]
    pub extern "C" fn proxy_on_context_create(_context_id: u32, _parent_context_id: u32) {}

    /// Reads the token and the time, then `Continue` (proxy-wasm `FilterHeadersStatus`
    /// `Continue` = 0).
    #[unsafe(no_mangle)]
    pub extern "C" fn proxy_on_request_headers(
        _context_id: u32,
        _headers: usize,
        _end_of_stream: u32,
    ) -> u32 {
        const AUTHORIZATION: &str = "authorization";
        const REQUEST_HEADERS: u32 = 0;
        let (mut data, mut size) = (std::ptr::null_mut::<u8>(), 0usize);
        let mut nanos = 0u64;
        // SAFETY: valid name and out-pointers; a returned block came from
        // proxy_on_memory_allocate with capacity `size` and is freed here.
        unsafe {
            let status = proxy_get_header_map_value(
                REQUEST_HEADERS,
                AUTHORIZATION.as_ptr(),
                AUTHORIZATION.len(),
                &mut data,
                &mut size,
            );
            if status == 0 && !data.is_null() {
                drop(Vec::from_raw_parts(data, size, size));
            }
            proxy_get_current_time_nanoseconds(&mut nanos);
        }
        std::hint::black_box((size, nanos));
        0
    }

    #[link(wasm_import_module = "env")]
    unsafe extern "C" {
        fn proxy_get_header_map_value(
            map_type: u32,
            key_data: *const u8,
            key_size: usize,
            return_value_data: *mut *mut u8,
            return_value_size: *mut usize,
        ) -> u32;
        fn proxy_get_current_time_nanoseconds(return_time: *mut u64) -> u32;
    }
}
