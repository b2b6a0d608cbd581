//! `filters/passthrough` written on the proxy-wasm Rust SDK (`proxy-wasm` crate): reads the
//! `authorization` header and the clock, then lets the request through.
//!
//! Benchmark-only. It exists so that "why does tokengate bind the ABI itself instead of using
//! the SDK" stays a measured answer: `loadtest/benches/envoy_cpu.rs` runs it next to
//! `filters/passthrough` (the same work on a hand-bound ABI that exports only the callbacks it
//! uses). The SDK's dispatcher exports every `proxy_on_*` callback, so the host calls into the
//! VM for response headers, body, trailers, log and delete on every request as well. Build it
//! with
//!
//! ```text
//! cargo build --release --target wasm32-wasip1 -p passthrough-sdk
//! ```

#[cfg(target_arch = "wasm32")]
mod filter {
    use proxy_wasm::traits::{Context, HttpContext, RootContext};
    use proxy_wasm::types::{Action, ContextType, LogLevel};

    proxy_wasm::main! {{
        proxy_wasm::set_log_level(LogLevel::Warn);
        proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root) });
    }}

    struct Root;

    impl Context for Root {}

    impl RootContext for Root {
        fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
            Some(Box::new(Request))
        }

        fn get_type(&self) -> Option<ContextType> {
            Some(ContextType::HttpContext)
        }
    }

    struct Request;

    impl Context for Request {}

    impl HttpContext for Request {
        fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
            let token = self.get_http_request_header("authorization");
            let now = self.get_current_time();
            std::hint::black_box((token, now));
            Action::Continue
        }
    }
}
