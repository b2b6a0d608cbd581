//! Proves the stack-running pieces work against real processes and a real
//! Envoy. Envoy tests fail (not skip) when Envoy is missing.

// A failed expectation in a test panics: that is how the test fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, HashSet};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use loadtest::envoy::{Envoy, EnvoyOptions};
use loadtest::jwks_server::JwksServer;
use loadtest::process::{ManagedProcess, ProcessSpec};
use loadtest::{backend, http, paths, ports};

mod envoy;
mod processes;
mod services;

const PDEATHSIG_HELPER_ENV: &str = "TOKENGATE_TEST_PDEATHSIG_DIR";
