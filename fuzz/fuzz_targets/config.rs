#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tokengate_fuzz::config::run(data));
