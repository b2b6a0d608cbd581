//! Native stack runner, backend and load driver for tokengate.

pub mod backend;
pub mod compose;
pub mod cpu;
pub mod differential;
/// The load driver is its own crate (`loadtest/driver`); re-exported so the kit names it
/// `loadtest::driver`.
pub use loadtest_driver as driver;
pub mod envoy;
pub mod flock;
pub mod host_cases;
pub mod http;
pub mod jwks_server;
pub mod keycloak;
pub mod matrix;
pub mod paths;
pub mod ports;
pub mod process;
pub mod render;
pub mod render_logout;
pub mod soak;
pub mod stack;
