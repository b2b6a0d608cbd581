//! What a matrix run is asked to do: the profiles, their rates and cell lengths fitted to a
//! time budget, the cells they make on given gateways, and an already running stack to drive
//! instead of a native one.

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use super::{logout, scenario};
use crate::driver;
use scenario::{GatewayProfile, Scenario};

/// Where requests go when the matrix drives an already running stack.
#[derive(Debug, Clone, PartialEq)]
pub struct ExternalTarget {
    /// The gateway's base URL (`http://host:port`).
    pub gateway_url: String,
    /// Which gateway template it runs (decides the expected outcomes).
    pub gateway: String,
    /// Keycloak's base URL, as the gateway's issuer names it.
    pub keycloak_url: String,
    /// The gateway's back-channel logout URL as Keycloak reaches it: registered at the minting
    /// client for the run (needed for `api-logged-out` on a gateway that receives logouts).
    pub logout_url: Option<String>,
}

/// What `loadtest run` runs when no flag says otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Profile {
    /// The write-up's experiment: every gateway × token kind at 100, 500 and 1000 req/s in
    /// short cells, the policy scenarios at 100 req/s, Keycloak's own scenarios (token
    /// generation, introspection) at a rate a 2-core IdP sustains next to the gateways.
    #[default]
    Default,
    /// A first look: every gateway × token kind at 100 req/s only.
    Quick,
    /// Every scenario at every rate in 5-second cells, Keycloak's scenarios included.
    Full,
}

impl Profile {
    pub fn name(self) -> &'static str {
        match self {
            Profile::Default => "default",
            Profile::Quick => "quick",
            Profile::Full => "full",
        }
    }
}

/// What Keycloak's own scenarios (token generation, introspection) are driven at outside the
/// full profile: a rate the IdP sustains on 2 cores while the gateways' Envoys share them. At
/// 500 and 1000 req/s token generation keeps Keycloak signing on both cores and starves the
/// driver; the write-up generated tokens once per thread (5–6 tokens/s).
pub const IDP_RATE: f64 = 10.0;

/// Seconds of scheduled load ([`MatrixConfig::scheduled_secs`]) the default profile may take
/// of its 5 minutes: the rest is the stack's start (about 60 s on 2 quiet cores, Keycloak's
/// JVM most of it) and each cell's set-up (about 0.1 s each, 20 s for the 201 cells).
pub const DEFAULT_LOAD_BUDGET_SECS: f64 = 200.0;
/// The same for the quick profile's 90 s.
pub const QUICK_LOAD_BUDGET_SECS: f64 = 40.0;

#[derive(Debug, Clone, PartialEq)]
pub struct MatrixConfig {
    pub profile: Profile,
    pub gateways: Vec<String>,
    pub scenarios: Vec<Scenario>,
    /// Rates of the API scenarios (`api-*`).
    pub rates: Vec<f64>,
    /// Rates of the policy scenarios (`policy-*`).
    pub policy_rates: Vec<f64>,
    /// Rates of the scenarios at Keycloak (its cost, not a gateway's).
    pub idp_rates: Vec<f64>,
    pub warmup: Duration,
    pub duration: Duration,
    pub pool_size: usize,
    pub driver_threads: usize,
    pub max_in_flight: usize,
    pub envoy_workers: u32,
    pub out: PathBuf,
    pub target: Option<ExternalTarget>,
    /// RFC 7386 merge patches of a gateway's plugin configuration (tokengate gateways), e.g.
    /// `introspect` with its introspection cache on.
    pub patches: Vec<(String, serde_json::Value)>,
    pub progress: bool,
    /// Sessions the logout-to-refusal time is measured over, per gateway.
    pub logout_sessions: usize,
}

impl MatrixConfig {
    /// The matrix of `profile`: the one place the CLI's defaults live.
    ///
    /// Cell lengths, from the budget ([`DEFAULT_LOAD_BUDGET_SECS`], tested below): the default
    /// profile's 201 cells (9 token kinds × 7 gateways × 3 rates, 8 policy and 4 Keycloak
    /// cells) plus the three longer cells logout-to-refusal is measured in must fit 5 minutes
    /// on 2 cores with the stack's start (Keycloak 30–40 s warm on quiet cores, minting,
    /// Envoys) and each cell's own set-up (connections, stragglers: about 0.1 s), which leaves
    /// 0.9 s of load per cell. The warm-up is the shortest that passes once through the token
    /// pool at the lowest rate (10 tokens at 100 req/s: 0.1 s, so each token's first, uncached
    /// validation falls in it) with margin: 0.15 s. The 0.75 s measured give 75, 375 and 750
    /// samples at 100, 500 and 1000 req/s, so p99 rests on the slowest 1, 4 and 8 requests (p50
    /// and p90 on many more): steady at 500 and 1000 req/s, a first estimate at 100, where
    /// `--duration` buys a steadier one. The quick profile halves that again (100 req/s only,
    /// 0.3 s cells after 0.1 s: p99 is the slowest of 30) to fit 90 s; the full profile's 5 s
    /// cells are the whole matrix as it ran before profiles.
    pub fn for_profile(profile: Profile, out: PathBuf) -> MatrixConfig {
        let seconds = Duration::from_secs_f64;
        let all_rates = vec![100.0, 500.0, 1000.0];
        let (rates, policy_rates, idp_rates, warmup, duration, pool_size) = match profile {
            Profile::Default => (
                all_rates,
                vec![100.0],
                vec![IDP_RATE],
                seconds(0.15),
                seconds(0.75),
                10,
            ),
            Profile::Quick => (
                vec![100.0],
                vec![100.0],
                vec![IDP_RATE],
                seconds(0.1),
                seconds(0.3),
                5,
            ),
            Profile::Full => (
                all_rates.clone(),
                all_rates.clone(),
                all_rates,
                seconds(1.0),
                seconds(5.0),
                50,
            ),
        };
        MatrixConfig {
            profile,
            gateways: scenario::GATEWAYS
                .iter()
                .map(|g| g.name.to_owned())
                .collect(),
            scenarios: Scenario::all().collect(),
            rates,
            policy_rates,
            idp_rates,
            warmup,
            duration,
            pool_size,
            driver_threads: 1,
            max_in_flight: driver::DEFAULT_MAX_IN_FLIGHT,
            envoy_workers: 1,
            out,
            target: None,
            patches: Vec::new(),
            progress: true,
            logout_sessions: logout::DEFAULT_SESSIONS,
        }
    }

    /// Today's whole matrix: every gateway and scenario at 100, 500 and 1000 req/s (the
    /// policy scenarios on the policy gateway).
    pub fn default_matrix(out: PathBuf) -> MatrixConfig {
        MatrixConfig::for_profile(Profile::Full, out)
    }

    /// The rates `scenario` is driven at.
    pub fn rates_for(&self, scenario: Scenario) -> &[f64] {
        match scenario {
            Scenario::Api(_) => &self.rates,
            Scenario::Policy(_) => &self.policy_rates,
            _ => &self.idp_rates,
        }
    }

    /// How many cells the matrix has on `gateways`.
    pub fn cells<'a>(&self, gateways: impl Iterator<Item = &'a GatewayProfile> + Clone) -> usize {
        self.scenarios
            .iter()
            .map(|s| {
                let targets = if s.through_gateway() {
                    gateways
                        .clone()
                        .filter(|g| scenario::runs_on(g, *s))
                        .count()
                } else {
                    1
                };
                targets * self.rates_for(*s).len()
            })
            .sum()
    }

    /// The seconds of load the matrix schedules on its own gateways: every cell's warm-up and
    /// measured window, and the longer cells the logout-to-refusal time is measured in.
    /// Excludes the stack's start, minting, and each cell's set-up.
    pub fn scheduled_secs(&self) -> f64 {
        let profiles: Vec<&GatewayProfile> = self
            .gateways
            .iter()
            .filter_map(|name| scenario::profile(name))
            .collect();
        let cells = self.cells(profiles.iter().copied());
        let measured = if self.scenarios.contains(&logout::SCENARIO) {
            logout::Plan::gateways(profiles.iter().copied()).len()
        } else {
            0
        };
        let per_cell = (self.warmup + self.duration).as_secs_f64();
        let longer = logout::MEASURED_CELL_MIN.saturating_sub(self.duration);
        cells as f64 * per_cell + measured as f64 * longer.as_secs_f64()
    }

    /// Every rate some scenario is driven at, ascending.
    pub fn all_rates(&self) -> Vec<f64> {
        union_of_rates(
            self.scenarios
                .iter()
                .flat_map(|scenario| self.rates_for(*scenario).iter().copied()),
        )
    }
}

/// The distinct rates of `rates`, ascending.
pub fn union_of_rates(rates: impl IntoIterator<Item = f64>) -> Vec<f64> {
    let mut all: Vec<f64> = rates.into_iter().collect();
    all.sort_by(f64::total_cmp);
    all.dedup();
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The profiles' arithmetic fits their budgets (seconds of load scheduled, not a clock).
    #[test]
    fn the_profiles_fit_their_time_budgets() {
        let out = PathBuf::from("out");
        let default = MatrixConfig::for_profile(Profile::Default, out.clone());
        let profiles = || scenario::GATEWAYS.iter();
        assert_eq!(default.cells(profiles()), 9 * 7 * 3 + 8 + 4);
        let secs = default.scheduled_secs();
        assert!(secs <= DEFAULT_LOAD_BUDGET_SECS, "default: {secs} s");
        let quick = MatrixConfig::for_profile(Profile::Quick, out.clone());
        assert_eq!(quick.cells(profiles()), 9 * 7 + 8 + 4);
        let secs = quick.scheduled_secs();
        assert!(secs <= QUICK_LOAD_BUDGET_SECS, "quick: {secs} s");
        // The full profile is the whole matrix in 5 s cells, over any budget.
        let full = MatrixConfig::for_profile(Profile::Full, out);
        assert_eq!(full.cells(profiles()), (9 * 7 + 8 + 4) * 3);
    }
}
