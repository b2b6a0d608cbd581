//! The proxy-wasm ABI (0.2.1) as tokengate uses it: the host functions it imports, with safe
//! wrappers, and the guest allocator the host calls to hand data over.
//!
//! Why not the Rust SDK (`proxy-wasm` crate): its dispatcher exports every `proxy_on_*`
//! callback, and Envoy calls each exported one on every request — response headers, response
//! body chunks, log, done, delete — even when the filter has nothing to do there. The host
//! skips callbacks a module does not export (proxy-wasm-cpp-host checks each one), so a filter
//! that only exports what it uses pays for one call into the VM per request instead of seven
//! (measured: about 10 000 fewer instructions per request in Envoy 1.40, V8). The exports are
//! in `host/mod.rs`; this module is the other direction. The map encoding the header calls
//! use is `host/map_encoding.rs`.
//!
//! Every wrapper returns the host's status instead of panicking on an unexpected one: a panic
//! would abort the VM, and with it every request on this worker.

use std::mem::MaybeUninit;
use std::ptr::{null, null_mut};

use super::map_encoding::{deserialize_map, serialize_map};

/// Host call results (proxy-wasm `WasmResult`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    NotFound,
    BadArgument,
    SerializationFailure,
    ParseFailure,
    Empty,
    CasMismatch,
    InternalFailure,
    /// A code this module does not know.
    Other(u32),
}

impl Status {
    fn from_raw(code: u32) -> Status {
        match code {
            0 => Status::Ok,
            1 => Status::NotFound,
            2 => Status::BadArgument,
            3 => Status::SerializationFailure,
            4 => Status::ParseFailure,
            7 => Status::Empty,
            8 => Status::CasMismatch,
            10 => Status::InternalFailure,
            other => Status::Other(other),
        }
    }

    /// The numeric status, for log lines.
    pub fn code(self) -> u32 {
        match self {
            Status::Ok => 0,
            Status::NotFound => 1,
            Status::BadArgument => 2,
            Status::SerializationFailure => 3,
            Status::ParseFailure => 4,
            Status::Empty => 7,
            Status::CasMismatch => 8,
            Status::InternalFailure => 10,
            Status::Other(code) => code,
        }
    }

    /// `Ok(())` for [`Status::Ok`], the status as the error otherwise.
    fn check(code: u32) -> Result<(), Status> {
        match Status::from_raw(code) {
            Status::Ok => Ok(()),
            status => Err(status),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum LogLevel {
    Trace = 0,
    Debug = 1,
    Info = 2,
    Warn = 3,
    Error = 4,
    Critical = 5,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum MapType {
    HttpRequestHeaders = 0,
    HttpCallResponseHeaders = 6,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum BufferType {
    HttpRequestBody = 0,
    HttpCallResponseBody = 4,
    PluginConfiguration = 7,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum MetricType {
    Counter = 0,
    Gauge = 1,
    Histogram = 2,
}

/// What a request callback tells the host: go on, or wait (for a call, or a local reply).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Action {
    Continue = 0,
    Pause = 1,
}

/// `proxy_continue_stream`'s stream type for the request.
const STREAM_HTTP_REQUEST: u32 = 0;

#[link(wasm_import_module = "env")]
unsafe extern "C" {
    fn proxy_log(level: u32, message_data: *const u8, message_size: usize) -> u32;
    fn proxy_get_log_level(return_level: *mut u32) -> u32;
    fn proxy_get_current_time_nanoseconds(return_time: *mut u64) -> u32;
    fn proxy_set_tick_period_milliseconds(period: u32) -> u32;
    fn proxy_get_buffer_bytes(
        buffer_type: u32,
        start: usize,
        max_size: usize,
        return_data: *mut *mut u8,
        return_size: *mut usize,
    ) -> u32;
    fn proxy_get_header_map_pairs(
        map_type: u32,
        return_data: *mut *mut u8,
        return_size: *mut usize,
    ) -> u32;
    fn proxy_get_header_map_value(
        map_type: u32,
        key_data: *const u8,
        key_size: usize,
        return_data: *mut *mut u8,
        return_size: *mut usize,
    ) -> u32;
    fn proxy_replace_header_map_value(
        map_type: u32,
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
    ) -> u32;
    fn proxy_remove_header_map_value(map_type: u32, key_data: *const u8, key_size: usize) -> u32;
    fn proxy_get_shared_data(
        key_data: *const u8,
        key_size: usize,
        return_data: *mut *mut u8,
        return_size: *mut usize,
        return_cas: *mut u32,
    ) -> u32;
    fn proxy_set_shared_data(
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
        cas: u32,
    ) -> u32;
    fn proxy_register_shared_queue(
        name_data: *const u8,
        name_size: usize,
        return_id: *mut u32,
    ) -> u32;
    fn proxy_dequeue_shared_queue(
        queue_id: u32,
        return_data: *mut *mut u8,
        return_size: *mut usize,
    ) -> u32;
    fn proxy_enqueue_shared_queue(queue_id: u32, value_data: *const u8, value_size: usize) -> u32;
    fn proxy_continue_stream(stream_type: u32) -> u32;
    fn proxy_send_local_response(
        status_code: u32,
        details_data: *const u8,
        details_size: usize,
        body_data: *const u8,
        body_size: usize,
        headers_data: *const u8,
        headers_size: usize,
        grpc_status: i32,
    ) -> u32;
    fn proxy_http_call(
        upstream_data: *const u8,
        upstream_size: usize,
        headers_data: *const u8,
        headers_size: usize,
        body_data: *const u8,
        body_size: usize,
        trailers_data: *const u8,
        trailers_size: usize,
        timeout_ms: u32,
        return_token: *mut u32,
    ) -> u32;
    fn proxy_set_effective_context(context_id: u32) -> u32;
    fn proxy_set_property(
        path_data: *const u8,
        path_size: usize,
        value_data: *const u8,
        value_size: usize,
    ) -> u32;
    fn proxy_call_foreign_function(
        name_data: *const u8,
        name_size: usize,
        args_data: *const u8,
        args_size: usize,
        return_data: *mut *mut u8,
        return_size: *mut usize,
    ) -> u32;
    fn proxy_get_property(
        path_data: *const u8,
        path_size: usize,
        return_data: *mut *mut u8,
        return_size: *mut usize,
    ) -> u32;
    fn proxy_define_metric(
        metric_type: u32,
        name_data: *const u8,
        name_size: usize,
        return_id: *mut u32,
    ) -> u32;
    fn proxy_record_metric(metric_id: u32, value: u64) -> u32;
    fn proxy_increment_metric(metric_id: u32, offset: i64) -> u32;
}

/// The allocator the host calls to place data it returns into this VM's memory. Each block is
/// a boxed byte slice of exactly `size` bytes; [`take_returned`] turns it back into a `Vec`.
#[unsafe(no_mangle)]
pub extern "C" fn proxy_on_memory_allocate(size: usize) -> *mut u8 {
    let block: Box<[MaybeUninit<u8>]> = Box::new_uninit_slice(size);
    Box::into_raw(block).cast::<u8>()
}

/// Takes ownership of a block the host filled: `None` when the host returned none.
///
/// # Safety
/// `data` is null or a block of exactly `size` bytes from [`proxy_on_memory_allocate`] that the
/// host initialised and handed back through a return pointer of the call just made.
unsafe fn take_returned(data: *mut u8, size: usize) -> Option<Vec<u8>> {
    if data.is_null() {
        return None;
    }
    // SAFETY: per the contract, `data` is a live allocation of `size` bytes (a boxed slice, so
    // capacity = length = size) now owned by us and fully initialised by the host.
    Some(unsafe { Vec::from_raw_parts(data, size, size) })
}

pub fn log(level: LogLevel, message: &str) -> Result<(), Status> {
    // SAFETY: pointer and length of a live string.
    Status::check(unsafe { proxy_log(level as u32, message.as_ptr(), message.len()) })
}

pub fn get_log_level() -> Result<LogLevel, Status> {
    let mut level = 0u32;
    // SAFETY: the host writes a u32 through a valid pointer.
    Status::check(unsafe { proxy_get_log_level(&mut level) })?;
    Ok(match level {
        0 => LogLevel::Trace,
        1 => LogLevel::Debug,
        2 => LogLevel::Info,
        3 => LogLevel::Warn,
        4 => LogLevel::Error,
        _ => LogLevel::Critical,
    })
}

/// Wall-clock time, nanoseconds since the Unix epoch.
pub fn current_time_nanos() -> Result<u64, Status> {
    let mut nanos = 0u64;
    // SAFETY: the host writes a u64 through a valid pointer.
    Status::check(unsafe { proxy_get_current_time_nanoseconds(&mut nanos) })?;
    Ok(nanos)
}

pub fn set_tick_period_ms(period_ms: u32) -> Result<(), Status> {
    // SAFETY: no pointers.
    Status::check(unsafe { proxy_set_tick_period_milliseconds(period_ms) })
}

/// A buffer (`None` if absent or empty).
pub fn get_buffer(
    buffer: BufferType,
    start: usize,
    max_size: usize,
) -> Result<Option<Vec<u8>>, Status> {
    let (mut data, mut size) = (null_mut(), 0usize);
    // SAFETY: the host writes a pointer and a size through valid pointers.
    let status =
        unsafe { proxy_get_buffer_bytes(buffer as u32, start, max_size, &mut data, &mut size) };
    match Status::from_raw(status) {
        // SAFETY: on success the host returned a block from proxy_on_memory_allocate, or null.
        Status::Ok => Ok(unsafe { take_returned(data, size) }),
        Status::NotFound => Ok(None),
        other => Err(other),
    }
}

/// One header's value (the first entry of that name), `None` if absent.
pub fn get_map_value(map: MapType, name: &str) -> Result<Option<Vec<u8>>, Status> {
    let (mut data, mut size) = (null_mut(), 0usize);
    // SAFETY: valid key; the host writes a pointer and a size through valid pointers.
    let status = unsafe {
        proxy_get_header_map_value(map as u32, name.as_ptr(), name.len(), &mut data, &mut size)
    };
    match Status::from_raw(status) {
        // SAFETY: on success the host returned a block from proxy_on_memory_allocate, or null
        // for an empty value.
        Status::Ok => Ok(Some(
            unsafe { take_returned(data, size) }.unwrap_or_default(),
        )),
        Status::NotFound => Ok(None),
        other => Err(other),
    }
}

/// Every entry of a header map, in order, repeated names kept.
pub fn get_map_pairs(map: MapType) -> Result<Vec<(String, Vec<u8>)>, Status> {
    let (mut data, mut size) = (null_mut(), 0usize);
    // SAFETY: the host writes a pointer and a size through valid pointers.
    Status::check(unsafe { proxy_get_header_map_pairs(map as u32, &mut data, &mut size) })?;
    // SAFETY: on success the host returned a block from proxy_on_memory_allocate, or null.
    let Some(serialized) = (unsafe { take_returned(data, size) }) else {
        return Ok(Vec::new());
    };
    deserialize_map(&serialized).ok_or(Status::SerializationFailure)
}

/// Sets a header (replacing every value of that name).
pub fn set_map_value(map: MapType, name: &str, value: &[u8]) -> Result<(), Status> {
    // SAFETY: pointers and lengths of live slices.
    Status::check(unsafe {
        proxy_replace_header_map_value(
            map as u32,
            name.as_ptr(),
            name.len(),
            value.as_ptr(),
            value.len(),
        )
    })
}

pub fn remove_map_value(map: MapType, name: &str) -> Result<(), Status> {
    // SAFETY: pointer and length of a live string.
    Status::check(unsafe { proxy_remove_header_map_value(map as u32, name.as_ptr(), name.len()) })
}

/// A shared-data record and its CAS; `(None, None)` if the key is absent.
pub fn get_shared_data(key: &str) -> Result<(Option<Vec<u8>>, Option<u32>), Status> {
    let (mut data, mut size, mut cas) = (null_mut(), 0usize, 0u32);
    // SAFETY: valid key; the host writes through valid pointers.
    let status =
        unsafe { proxy_get_shared_data(key.as_ptr(), key.len(), &mut data, &mut size, &mut cas) };
    match Status::from_raw(status) {
        Status::Ok => {
            // SAFETY: on success the host returned a block from proxy_on_memory_allocate, or
            // null.
            let value = unsafe { take_returned(data, size) };
            Ok((value, (cas != 0).then_some(cas)))
        }
        Status::NotFound => Ok((None, None)),
        other => Err(other),
    }
}

pub fn set_shared_data(key: &str, value: &[u8], cas: Option<u32>) -> Result<(), Status> {
    // SAFETY: pointers and lengths of live slices.
    Status::check(unsafe {
        proxy_set_shared_data(
            key.as_ptr(),
            key.len(),
            value.as_ptr(),
            value.len(),
            cas.unwrap_or(0),
        )
    })
}

pub fn register_shared_queue(name: &str) -> Result<u32, Status> {
    let mut id = 0u32;
    // SAFETY: valid name; the host writes a u32 through a valid pointer.
    Status::check(unsafe { proxy_register_shared_queue(name.as_ptr(), name.len(), &mut id) })?;
    Ok(id)
}

/// The next item of a queue, `None` when it is empty.
pub fn dequeue_shared_queue(queue: u32) -> Result<Option<Vec<u8>>, Status> {
    let (mut data, mut size) = (null_mut(), 0usize);
    // SAFETY: the host writes a pointer and a size through valid pointers.
    let status = unsafe { proxy_dequeue_shared_queue(queue, &mut data, &mut size) };
    match Status::from_raw(status) {
        // SAFETY: on success the host returned a block from proxy_on_memory_allocate, or null.
        Status::Ok => Ok(Some(
            unsafe { take_returned(data, size) }.unwrap_or_default(),
        )),
        Status::Empty => Ok(None),
        other => Err(other),
    }
}

pub fn enqueue_shared_queue(queue: u32, value: &[u8]) -> Result<(), Status> {
    // SAFETY: pointer and length of a live slice.
    Status::check(unsafe { proxy_enqueue_shared_queue(queue, value.as_ptr(), value.len()) })
}

/// Resumes the paused request of the effective context.
pub fn resume_http_request() -> Result<(), Status> {
    // SAFETY: no pointers.
    Status::check(unsafe { proxy_continue_stream(STREAM_HTTP_REQUEST) })
}

/// Answers the request of the effective context with a local reply.
pub fn send_http_response(
    status: u16,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<(), Status> {
    let headers = serialize_map(headers);
    // SAFETY: pointers and lengths of live slices; no details string (null, 0).
    Status::check(unsafe {
        proxy_send_local_response(
            u32::from(status),
            null(),
            0,
            body.as_ptr(),
            body.len(),
            headers.as_ptr(),
            headers.len(),
            -1,
        )
    })
}

/// Dispatches an HTTP call to `cluster`; returns its token.
pub fn dispatch_http_call(
    cluster: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout_ms: u32,
) -> Result<u32, Status> {
    let headers = serialize_map(headers);
    let trailers = serialize_map(&[]);
    let mut token = 0u32;
    // SAFETY: pointers and lengths of live slices; the host writes a u32 through a valid
    // pointer.
    Status::check(unsafe {
        proxy_http_call(
            cluster.as_ptr(),
            cluster.len(),
            headers.as_ptr(),
            headers.len(),
            body.as_ptr(),
            body.len(),
            trailers.as_ptr(),
            trailers.len(),
            timeout_ms,
            &mut token,
        )
    })?;
    Ok(token)
}

/// A host property (e.g. Envoy's `route_name`), `None` if the host has none. The path's
/// segments are sent NUL-separated, as the ABI defines.
pub fn get_property(path: &[&str]) -> Result<Option<Vec<u8>>, Status> {
    let encoded = path.join("\0");
    let (mut data, mut size) = (null_mut(), 0usize);
    // SAFETY: valid path bytes; the host writes a pointer and a size through valid pointers.
    let status =
        unsafe { proxy_get_property(encoded.as_ptr(), encoded.len(), &mut data, &mut size) };
    match Status::from_raw(status) {
        // SAFETY: on success the host returned a block from proxy_on_memory_allocate, or null.
        Status::Ok => Ok(unsafe { take_returned(data, size) }),
        Status::NotFound => Ok(None),
        other => Err(other),
    }
}

/// Sets a host property of the effective context (one path segment).
pub fn set_property(name: &str, value: &[u8]) -> Result<(), Status> {
    // SAFETY: pointers and lengths of live slices.
    Status::check(unsafe {
        proxy_set_property(name.as_ptr(), name.len(), value.as_ptr(), value.len())
    })
}

/// Calls a host extension by name (Envoy: `clear_route_cache`, ...); returns its result bytes.
pub fn call_foreign_function(name: &str, args: &[u8]) -> Result<Option<Vec<u8>>, Status> {
    let (mut data, mut size) = (null_mut(), 0usize);
    // SAFETY: live name and argument slices; the host writes a pointer and a size through
    // valid pointers.
    let status = unsafe {
        proxy_call_foreign_function(
            name.as_ptr(),
            name.len(),
            args.as_ptr(),
            args.len(),
            &mut data,
            &mut size,
        )
    };
    Status::check(status)?;
    // SAFETY: on success the host returned a block from proxy_on_memory_allocate, or null.
    Ok(unsafe { take_returned(data, size) })
}

pub fn set_effective_context(context_id: u32) -> Result<(), Status> {
    // SAFETY: no pointers.
    Status::check(unsafe { proxy_set_effective_context(context_id) })
}

pub fn define_metric(metric_type: MetricType, name: &str) -> Result<u32, Status> {
    let mut id = 0u32;
    // SAFETY: valid name; the host writes a u32 through a valid pointer.
    Status::check(unsafe {
        proxy_define_metric(metric_type as u32, name.as_ptr(), name.len(), &mut id)
    })?;
    Ok(id)
}

pub fn record_metric(metric: u32, value: u64) -> Result<(), Status> {
    // SAFETY: no pointers.
    Status::check(unsafe { proxy_record_metric(metric, value) })
}

pub fn increment_metric(metric: u32, offset: i64) -> Result<(), Status> {
    // SAFETY: no pointers.
    Status::check(unsafe { proxy_increment_metric(metric, offset) })
}

/// A `log` backend writing to the host's log.
struct HostLogger;

static LOGGER: HostLogger = HostLogger;

impl log::Log for HostLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let level = match record.level() {
            log::Level::Trace => LogLevel::Trace,
            log::Level::Debug => LogLevel::Debug,
            log::Level::Info => LogLevel::Info,
            log::Level::Warn => LogLevel::Warn,
            log::Level::Error => LogLevel::Error,
        };
        let _ = log(level, &record.args().to_string());
    }

    fn flush(&self) {}
}

/// Installs the host logger (once) and the level below which `log` records are dropped.
pub fn set_log_level(level: LogLevel) {
    if log::set_logger(&LOGGER).is_ok() {
        // A panic aborts the VM; say why in Envoy's log first.
        std::panic::set_hook(Box::new(|info| {
            let _ = log(LogLevel::Critical, &info.to_string());
        }));
    }
    log::set_max_level(match level {
        LogLevel::Trace => log::LevelFilter::Trace,
        LogLevel::Debug => log::LevelFilter::Debug,
        LogLevel::Info => log::LevelFilter::Info,
        LogLevel::Warn => log::LevelFilter::Warn,
        LogLevel::Error => log::LevelFilter::Error,
        LogLevel::Critical => log::LevelFilter::Off,
    });
}
