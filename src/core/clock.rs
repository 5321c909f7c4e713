//! A follower's clock: a PTP slave feeding a clock estimator.

use std::sync::Arc;

use crate::clock::{ClockEstimate, ClockEstimator, EnvelopeEstimator};
use crate::ptp::{AuthStats, PtpError, PtpKeys, PtpSlave, PtpStats, SlaveConfig, Transmit, TxTag};
use crate::time::LocalInstant;

/// Makes a fresh clock estimator. A follower's configuration chooses its estimator through
/// one; [`default_estimator`] gives lockstep's own.
pub type EstimatorFactory = Arc<dyn Fn() -> Box<dyn ClockEstimator> + Send + Sync>;

/// Lockstep's own estimator, [`EnvelopeEstimator`], with its defaults.
pub fn default_estimator() -> EstimatorFactory {
    Arc::new(|| Box::new(EnvelopeEstimator::default()))
}

/// A PTP slave and the estimator it feeds: learns the leader's clock. Sans-IO.
///
/// `A` names a master's address (a socket address on a node, an index in the simulator).
///
/// Call order, as for the slave it wraps:
/// 1. [`handle_ptp`](Self::handle_ptp) for every datagram from the master, with its
///    receive time, and [`handle_transmitted`](Self::handle_transmitted) for every transmit
///    time stamp the sockets report;
/// 2. [`handle_timeout`](Self::handle_timeout) once [`poll_timeout`](Self::poll_timeout)'s
///    instant has come;
/// 3. after either, [`poll_transmit`](Self::poll_transmit) until `None`, and send each at
///    once: a Delay_Req is stamped when it is polled. Draining it also hands the completed
///    exchanges to the estimator, sends the burst it asks for, and updates
///    [`estimate`](Self::estimate).
pub struct ClockCore<A> {
    slave: PtpSlave<A>,
    estimator: Box<dyn ClockEstimator>,
    estimate: Option<ClockEstimate>,
    /// The estimator asked for a burst that has not been requested yet.
    burst: bool,
    /// Authentication rejections of the slaves before this one (a reset starts a new
    /// slave, and its counters at zero).
    rejected_before: AuthStats,
}

impl<A> std::fmt::Debug for ClockCore<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClockCore")
            .field("estimator", &self.estimator.name())
            .field("estimate", &self.estimate)
            .finish_non_exhaustive()
    }
}

impl<A: Copy + Eq> ClockCore<A> {
    /// A slave with `config`, feeding `estimator`.
    pub fn new(config: SlaveConfig, estimator: Box<dyn ClockEstimator>) -> ClockCore<A> {
        ClockCore {
            slave: PtpSlave::new(config),
            estimator,
            estimate: None,
            burst: false,
            rejected_before: AuthStats::default(),
        }
    }

    /// Starts afresh: a new slave (no master), the estimator reset, no estimate. For a
    /// follower that restarts or is told to follow another leader.
    pub fn reset(&mut self) {
        self.new_slave(*self.slave.config());
        self.estimator.reset();
        self.estimate = None;
        self.burst = false;
    }

    fn new_slave(&mut self, config: SlaveConfig) {
        let a = &self.slave.stats().auth;
        let b = &mut self.rejected_before;
        b.missing += a.missing;
        b.malformed += a.malformed;
        b.unknown_key += a.unknown_key;
        b.bad_tag += a.bad_tag;
        b.replay += a.replay;
        self.slave = PtpSlave::new(config);
    }

    /// Signs and checks the clock with `keys` from now on (`None`: plain PTP), as
    /// [`SlaveConfig::auth`]: a new session's keys. The slave starts afresh (no master,
    /// the sequences accepted under old keys forgotten); the estimator keeps what it has
    /// until the driver resets it.
    pub fn set_auth(&mut self, keys: Option<PtpKeys>) {
        let mut config = *self.slave.config();
        config.auth = keys;
        self.new_slave(config);
    }

    /// Whether the clock is authenticated ([`set_auth`](Self::set_auth) or the config).
    pub fn is_authenticated(&self) -> bool {
        self.slave.config().auth.is_some()
    }

    /// Clock messages dropped for failing authentication since this core was made, by
    /// reason (across resets).
    pub fn auth_rejections(&self) -> AuthStats {
        let a = &self.slave.stats().auth;
        let b = &self.rejected_before;
        AuthStats {
            missing: a.missing + b.missing,
            malformed: a.malformed + b.malformed,
            unknown_key: a.unknown_key + b.unknown_key,
            bad_tag: a.bad_tag + b.bad_tag,
            replay: a.replay + b.replay,
        }
    }

    /// Takes a datagram that arrived at `at` from `from`. The error says why it was not
    /// used (it is counted too); nothing a peer sends can make this panic.
    pub fn handle_ptp(&mut self, from: A, at: LocalInstant, bytes: &[u8]) -> Result<(), PtpError> {
        self.slave.handle_receive(from, at, bytes)
    }

    /// Takes the transmit time stamp of a datagram sent earlier.
    pub fn handle_transmitted(&mut self, tag: TxTag, at: LocalInstant) {
        self.slave.handle_transmitted(tag, at);
    }

    /// Runs the slave's timers due by `now`.
    pub fn handle_timeout(&mut self, now: LocalInstant) {
        if self.slave.poll_timeout().is_some_and(|t| t <= now) {
            self.slave.handle_timeout(now);
        }
    }

    /// The next datagram to send, stamped as leaving at `now`. Call until `None` after
    /// every `handle_*`: see the type's docs.
    #[must_use]
    pub fn poll_transmit(&mut self, now: LocalInstant) -> Option<Transmit<A>> {
        loop {
            if let Some(tx) = self.slave.poll_transmit(now) {
                return Some(tx);
            }
            while let Some(ex) = self.slave.poll_exchange() {
                if self.estimator.wants(ex.completed_at()) {
                    self.estimator.handle_exchange(&ex);
                    self.burst |= self.estimator.poll_burst_request();
                }
            }
            // The request leaves now, after the Delay_Reqs above (their stamps are their
            // poll times), rather than at the next wake.
            if !(std::mem::take(&mut self.burst) && self.slave.request_burst(now)) {
                self.estimate = self.estimator.estimate();
                return None;
            }
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) next has work.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<LocalInstant> {
        self.slave.poll_timeout()
    }

    /// The estimate of the leader's clock, as of the last drained
    /// [`poll_transmit`](Self::poll_transmit).
    pub fn estimate(&self) -> Option<ClockEstimate> {
        self.estimate
    }

    /// The slave's counters.
    pub fn stats(&self) -> &PtpStats {
        self.slave.stats()
    }

    /// The slave.
    pub fn slave(&self) -> &PtpSlave<A> {
        &self.slave
    }

    /// The estimator.
    pub fn estimator(&self) -> &dyn ClockEstimator {
        self.estimator.as_ref()
    }
}
