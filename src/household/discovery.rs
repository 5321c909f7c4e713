//! Discovery: speakers find each other with mDNS/DNS-SD (RFC 6762, RFC 6763).
//!
//! Every speaker runs an [`Advertiser`]: it advertises one instance of [`SERVICE_TYPE`],
//! named by the speaker's id, whose SRV record gives its control port and whose TXT record
//! carries a [`SpeakerRecord`] (protocol version, id, name, room, model, state and group;
//! the keys are listed in [`txt`]). Changing the state or group re-announces the record.
//!
//! A [`Browser`] lists the speakers and groups on the interfaces it is given, as they come
//! and go: [`Browser::poll_event`] and [`Browser::next_event`] hand out
//! [`DiscoveryEvent`]s, [`Browser::speakers`] and [`Browser::groups`] are snapshots.
//! Whatever it resolves that is not a lockstep speaker this build can use (an instance of
//! some other program, a malformed, oversized or other-version TXT record) is ignored and
//! counted in [`DiscoveryCounters`].
//!
//! # Groups
//!
//! A group is not a record of its own. A speaker's TXT names the group it is in, and a
//! leader's says `state=leading`, so that one announcement changes state and group together
//! and a browser never sees half of a change (a second instance per group would be announced
//! apart from the speaker's and could disagree with it for a while, and would double the
//! records). [`Browser::groups`] gathers the speakers by group; two leaders of one group
//! show as two entries in [`GroupInfo::leaders`].
//!
//! # Interfaces
//!
//! Both types take the IPv4 addresses of the interfaces to use, and use those only: the
//! mDNS daemon is told to drop every interface, then to take exactly those. Its commands
//! are handled in order, so this happens before any query or announcement is sent. One
//! thing happens earlier: when `mdns-sd`'s daemon thread starts, it joins the mDNS group
//! (224.0.0.251, ff02::fb) on every interface before it reads its first command, and the
//! kernel reports such a join with an IGMP or MLD membership report; the first command
//! leaves those groups again. No mDNS packet is sent there. Addresses are checked before
//! the daemon starts: each must be on an interface of the calling thread's network
//! namespace.
//!
//! The daemon runs on a thread of its own that it spawns in [`Advertiser::start`] and
//! [`Browser::start`], and it opens its sockets on that thread. A thread starts in the
//! network namespace of the thread that spawned it, so starting either from a thread that
//! has entered a namespace keeps all of its traffic in there (the tests do that).

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use mdns_sd::{
    IfKind, ResolvedService, ServiceDaemon, ServiceEvent, ServiceInfo, TxtProperties,
    UnregisterStatus,
};
use thiserror::Error;

pub mod txt;

pub use txt::{IgnoredKind, PlayState, SpeakerRecord, TxtError};

/// The DNS-SD service type every speaker advertises.
pub const SERVICE_TYPE: &str = "_lockstep._tcp.local.";

/// How long [`Advertiser::stop`] and [`Browser::stop`] wait for the daemon to confirm.
const STOP_TIMEOUT: Duration = Duration::from_secs(2);

/// The most speakers a [`Browser`] lists; resolved instances beyond this are counted as
/// [`DiscoveryCounters::over_limit`] and ignored, so that a flood of advertisements cannot
/// grow its memory without bound.
pub const MAX_SPEAKERS: usize = 1024;

/// What went wrong starting, changing or stopping discovery.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum DiscoveryError {
    /// No interface address was given: discovery would be bound to nothing.
    #[error("no interface given: discovery needs at least one IPv4 address to bind to")]
    NoInterface,
    /// An address that cannot name an interface (unspecified, multicast or broadcast).
    #[error("{addr} cannot name an interface")]
    BadAddress {
        /// The address.
        addr: Ipv4Addr,
    },
    /// An address that is on no interface of this network namespace.
    #[error("no interface here has the address {addr}")]
    NoSuchAddress {
        /// The address.
        addr: Ipv4Addr,
    },
    /// The interfaces could not be listed.
    #[error("cannot list the network interfaces: {0}")]
    Interfaces(#[source] std::io::Error),
    /// The record to advertise breaks a TXT rule.
    #[error("invalid speaker record: {0}")]
    Record(#[from] TxtError),
    /// [`Advertiser::update`] was given another speaker's record.
    #[error("the advertiser is for speaker {advertised:?}, not {given:?}")]
    OtherSpeaker {
        /// The id being advertised.
        advertised: String,
        /// The id given.
        given: String,
    },
    /// The mDNS daemon refused a command or could not start.
    #[error("mDNS: {0}")]
    Mdns(#[from] mdns_sd::Error),
    /// The mDNS daemon did not confirm a stop in time.
    #[error("the mDNS daemon did not confirm {what} within {timeout:?}")]
    Timeout {
        /// What was waited for.
        what: &'static str,
        /// How long.
        timeout: Duration,
    },
}

/// Checks `interfaces` and returns them as interface selections for the daemon.
fn interface_kinds(interfaces: &[Ipv4Addr]) -> Result<Vec<IfKind>, DiscoveryError> {
    if interfaces.is_empty() {
        return Err(DiscoveryError::NoInterface);
    }
    let here = if_addrs::get_if_addrs().map_err(DiscoveryError::Interfaces)?;
    for &addr in interfaces {
        if addr.is_unspecified() || addr.is_multicast() || addr.is_broadcast() {
            return Err(DiscoveryError::BadAddress { addr });
        }
        if !here.iter().any(|i| i.ip() == IpAddr::V4(addr)) {
            return Err(DiscoveryError::NoSuchAddress { addr });
        }
    }
    Ok(interfaces
        .iter()
        .map(|a| IfKind::Addr(IpAddr::V4(*a)))
        .collect())
}

/// Starts an mDNS daemon bound to `kinds` only: every interface off, then these on.
///
/// The daemon handles its commands in order, so nothing it is asked to do later (browse,
/// register) runs before the binding.
fn start_daemon(kinds: Vec<IfKind>) -> Result<ServiceDaemon, DiscoveryError> {
    let daemon = ServiceDaemon::new()?;
    let bound = daemon
        .disable_interface(IfKind::All)
        .and_then(|()| daemon.enable_interface(kinds));
    if let Err(e) = bound {
        let _ = daemon.shutdown();
        return Err(e.into());
    }
    Ok(daemon)
}

/// Shuts `daemon` down and waits for its confirmation.
fn shutdown(daemon: &ServiceDaemon) -> Result<(), DiscoveryError> {
    let done = daemon.shutdown()?;
    done.recv_timeout(STOP_TIMEOUT)
        .map(|_| ())
        .map_err(|_| DiscoveryError::Timeout {
            what: "its shutdown",
            timeout: STOP_TIMEOUT,
        })
}

/// The full instance name of the speaker with `id`.
fn instance_name(id: &str) -> String {
    format!("{id}.{SERVICE_TYPE}")
}

/// Advertises one speaker on the given interfaces until stopped or dropped.
///
/// Dropping it sends the goodbye and stops the daemon without waiting;
/// [`Advertiser::stop`] waits for both and reports errors.
pub struct Advertiser {
    /// The daemon; `None` once stopped.
    daemon: Option<ServiceDaemon>,
    /// What is advertised.
    record: SpeakerRecord,
    /// The control port in the SRV record.
    port: u16,
    /// The addresses in the A records, which are also the interfaces used.
    interfaces: Vec<Ipv4Addr>,
}

impl Advertiser {
    /// Starts advertising `record` with control port `port` on the interfaces with the
    /// IPv4 addresses `interfaces` (and on no other).
    ///
    /// The instance is named by the record's id and announced at once, without the probe
    /// for uniqueness of RFC 6762, section 8. The id is 128 random bits, so only this
    /// speaker (restarted, or its state directory copied) can hold the name, and a probe
    /// cannot tell that from another speaker: when the record changes within the probe's
    /// second (a restarted speaker follows its group again at once), the responder takes
    /// its own new record for a rival's, renames itself `ID (2)`, and browsers refuse a
    /// name that is not the id. The speaker would vanish from every list.
    pub fn start(
        record: SpeakerRecord,
        port: u16,
        interfaces: &[Ipv4Addr],
    ) -> Result<Advertiser, DiscoveryError> {
        let kinds = interface_kinds(interfaces)?;
        let daemon = start_daemon(kinds)?;
        let advertiser = Advertiser {
            daemon: Some(daemon),
            record,
            port,
            interfaces: interfaces.to_vec(),
        };
        advertiser.register()?;
        Ok(advertiser)
    }

    /// The record being advertised.
    pub fn record(&self) -> &SpeakerRecord {
        &self.record
    }

    /// Sets the state and group and re-announces; a leading or following speaker must name
    /// its group. On an error nothing changes.
    pub fn set_state(
        &mut self,
        state: PlayState,
        group: Option<&str>,
    ) -> Result<(), DiscoveryError> {
        let mut next = self.record.clone();
        next.set_state(state, group)?;
        self.update(next)
    }

    /// Replaces the whole record (a rename, say) and re-announces. The id must stay.
    pub fn update(&mut self, record: SpeakerRecord) -> Result<(), DiscoveryError> {
        if record.id != self.record.id {
            return Err(DiscoveryError::OtherSpeaker {
                advertised: self.record.id.clone(),
                given: record.id,
            });
        }
        let previous = std::mem::replace(&mut self.record, record);
        if let Err(e) = self.register() {
            self.record = previous;
            return Err(e);
        }
        Ok(())
    }

    /// Hands the current record to the daemon, which announces it (without a probe: see
    /// [`Advertiser::start`]).
    fn register(&self) -> Result<(), DiscoveryError> {
        let Some(daemon) = &self.daemon else {
            return Err(DiscoveryError::Mdns(mdns_sd::Error::DaemonShutdown));
        };
        let addrs: Vec<IpAddr> = self.interfaces.iter().map(|a| IpAddr::V4(*a)).collect();
        let mut info = ServiceInfo::new(
            SERVICE_TYPE,
            &self.record.id,
            &format!("{}.local.", self.record.id),
            &addrs[..],
            self.port,
            &self.record.to_txt()[..],
        )?;
        info.set_requires_probe(false);
        info.set_interfaces(
            self.interfaces
                .iter()
                .map(|a| IfKind::Addr(IpAddr::V4(*a)))
                .collect(),
        );
        daemon.register(info)?;
        Ok(())
    }

    /// Sends the goodbye (the records with a zero TTL), so that browsers drop the speaker
    /// at once, and stops the daemon; waits for both.
    pub fn stop(mut self) -> Result<(), DiscoveryError> {
        let Some(daemon) = self.daemon.take() else {
            return Ok(());
        };
        let goodbye = daemon
            .unregister(&instance_name(&self.record.id))
            .map_err(DiscoveryError::from)
            .and_then(|done| match done.recv_timeout(STOP_TIMEOUT) {
                Ok(UnregisterStatus::OK | UnregisterStatus::NotFound) => Ok(()),
                Err(_) => Err(DiscoveryError::Timeout {
                    what: "the goodbye",
                    timeout: STOP_TIMEOUT,
                }),
            });
        let stopped = shutdown(&daemon);
        goodbye.and(stopped)
    }
}

impl fmt::Debug for Advertiser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Advertiser")
            .field("running", &self.daemon.is_some())
            .field("record", &self.record)
            .field("port", &self.port)
            .field("interfaces", &self.interfaces)
            .finish()
    }
}

impl Drop for Advertiser {
    fn drop(&mut self) {
        if let Some(daemon) = self.daemon.take() {
            // Best effort and without waiting: drop cannot report.
            let _ = daemon.unregister(&instance_name(&self.record.id));
            let _ = daemon.shutdown();
        }
    }
}

/// A speaker a [`Browser`] lists: its record and where to reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SpeakerInfo {
    /// What it advertises.
    pub record: SpeakerRecord,
    /// Its control port (from the SRV record).
    pub port: u16,
    /// Its IPv4 addresses (from the A records), sorted.
    pub addresses: Vec<Ipv4Addr>,
}

impl SpeakerInfo {
    /// The speaker's id.
    pub fn id(&self) -> &str {
        &self.record.id
    }

    /// Checks a resolved advertisement and turns it into a speaker. Pure.
    fn from_resolved(service: &ResolvedService) -> Result<SpeakerInfo, TxtError> {
        if !service.ty_domain.eq_ignore_ascii_case(SERVICE_TYPE) {
            return Err(TxtError::OtherService {
                service_type: service.ty_domain.chars().take(255).collect(),
            });
        }
        let record = parse_properties(&service.txt_properties)?;
        if !service
            .fullname
            .eq_ignore_ascii_case(&instance_name(&record.id))
        {
            return Err(TxtError::InstanceMismatch {
                instance: service.fullname.chars().take(255).collect(),
                id: record.id,
            });
        }
        let mut addresses: Vec<Ipv4Addr> = service.get_addresses_v4().into_iter().collect();
        addresses.sort_unstable();
        Ok(SpeakerInfo {
            record,
            port: service.port,
            addresses,
        })
    }
}

/// Parses `mdns-sd`'s decoded TXT properties with [`SpeakerRecord::parse_txt`].
fn parse_properties(properties: &TxtProperties) -> Result<SpeakerRecord, TxtError> {
    SpeakerRecord::parse_txt(properties.iter().map(|p| (p.key(), p.val())))
}

/// A group as its speakers' advertisements describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct GroupInfo {
    /// The group's name.
    pub name: String,
    /// The ids of the speakers that say they lead it, sorted; more than one is a conflict.
    pub leaders: Vec<String>,
    /// The ids of every speaker in it, leaders included, sorted.
    pub members: Vec<String>,
}

/// What changed in a [`Browser`]'s list.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DiscoveryEvent {
    /// A speaker appeared.
    Discovered(SpeakerInfo),
    /// A listed speaker's record, port or addresses changed.
    Updated(SpeakerInfo),
    /// A speaker left (its goodbye, its records expired, or it now advertises something
    /// this browser ignores); the id it had.
    Lost(String),
}

/// How many advertisements a [`Browser`] ignored, by reason.
///
/// An advertisement is counted each time the daemon resolves it: when first seen and when
/// its records change.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DiscoveryCounters {
    /// Not lockstep's: no `lv` key, or another service type ([`IgnoredKind::Foreign`]).
    pub foreign: u64,
    /// Missing, malformed or contradictory fields ([`IgnoredKind::Malformed`]).
    pub malformed: u64,
    /// Over a size cap ([`IgnoredKind::Oversized`]).
    pub oversized: u64,
    /// Another protocol version ([`IgnoredKind::Incompatible`]).
    pub incompatible: u64,
    /// Valid, but beyond [`MAX_SPEAKERS`].
    pub over_limit: u64,
    /// Not an ignored advertisement: how often the browser had to browse again because it
    /// was not polled for so long that the daemon closed its subscription.
    pub resubscribed: u64,
}

impl DiscoveryCounters {
    /// Every ignored advertisement ([`DiscoveryCounters::resubscribed`] aside).
    pub fn total(&self) -> u64 {
        self.foreign + self.malformed + self.oversized + self.incompatible + self.over_limit
    }

    /// Adds one to the counter of `kind`.
    fn count(&mut self, kind: IgnoredKind) {
        let counter = match kind {
            IgnoredKind::Foreign => &mut self.foreign,
            IgnoredKind::Malformed => &mut self.malformed,
            IgnoredKind::Oversized => &mut self.oversized,
            IgnoredKind::Incompatible => &mut self.incompatible,
        };
        *counter = counter.saturating_add(1);
    }
}

/// Lists the lockstep speakers on the given interfaces as they come and go.
///
/// Call [`Browser::poll_event`] (never blocks) or [`Browser::next_event`] (waits up to a
/// timeout) to take in what the daemon resolved; the snapshots [`Browser::speakers`] and
/// [`Browser::groups`] reflect what has been taken in so far. Poll it regularly (every
/// second, say): the daemon queues events for it, and a browser left unpolled until that
/// queue fills must browse again ([`DiscoveryCounters::resubscribed`]).
pub struct Browser {
    /// The daemon; `None` once stopped.
    daemon: Option<ServiceDaemon>,
    /// Its events for [`SERVICE_TYPE`].
    events: mdns_sd::Receiver<ServiceEvent>,
    /// Listed speakers by their full instance name, lower case.
    speakers: HashMap<String, SpeakerInfo>,
    /// What was ignored.
    counters: DiscoveryCounters,
}

impl Browser {
    /// Starts browsing for speakers on the interfaces with the IPv4 addresses `interfaces`
    /// (and on no other).
    pub fn start(interfaces: &[Ipv4Addr]) -> Result<Browser, DiscoveryError> {
        let kinds = interface_kinds(interfaces)?;
        let daemon = start_daemon(kinds)?;
        let events = match daemon.browse(SERVICE_TYPE) {
            Ok(events) => events,
            Err(e) => {
                let _ = daemon.shutdown();
                return Err(e.into());
            }
        };
        Ok(Browser {
            daemon: Some(daemon),
            events,
            speakers: HashMap::new(),
            counters: DiscoveryCounters::default(),
        })
    }

    /// The next change, if one is waiting; never blocks.
    pub fn poll_event(&mut self) -> Option<DiscoveryEvent> {
        loop {
            match self.events.try_recv() {
                Ok(event) => {
                    if let Some(change) = self.handle(event) {
                        return Some(change);
                    }
                }
                Err(mdns_sd::TryRecvError::Empty) => return None,
                Err(mdns_sd::TryRecvError::Disconnected) => {
                    self.resubscribe();
                    return None;
                }
            }
        }
    }

    /// Browses again after the daemon closed the subscription.
    ///
    /// `mdns-sd` closes it when its event queue (1000 events) is full, that is when the
    /// browser was not polled for long. The new subscription resolves the speakers again
    /// from the daemon's cache and by a query; the listed ones come back unchanged and
    /// make no event.
    fn resubscribe(&mut self) {
        if let Some(daemon) = &self.daemon
            && let Ok(events) = daemon.browse(SERVICE_TYPE)
        {
            self.events = events;
            self.counters.resubscribed = self.counters.resubscribed.saturating_add(1);
        }
    }

    /// The next change, waiting up to `timeout` for one; `None` when none came.
    pub fn next_event(&mut self, timeout: Duration) -> Option<DiscoveryEvent> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(change) = self.poll_event() {
                return Some(change);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            match self.events.recv_timeout(left) {
                Ok(event) => {
                    if let Some(change) = self.handle(event) {
                        return Some(change);
                    }
                }
                Err(mdns_sd::RecvTimeoutError::Timeout) => return None,
                // The subscription was closed: open another, and return rather than spin
                // until the deadline should that fail.
                Err(mdns_sd::RecvTimeoutError::Disconnected) => {
                    self.resubscribe();
                    return None;
                }
            }
        }
    }

    /// Takes in one daemon event; returns the change it makes to the list, if any.
    fn handle(&mut self, event: ServiceEvent) -> Option<DiscoveryEvent> {
        match event {
            ServiceEvent::ServiceResolved(service) => {
                let key = service.fullname.to_ascii_lowercase();
                match SpeakerInfo::from_resolved(&service) {
                    Ok(info) => {
                        let full = self.speakers.len() >= MAX_SPEAKERS;
                        match self.speakers.get_mut(&key) {
                            Some(listed) if *listed == info => None,
                            Some(listed) => {
                                *listed = info.clone();
                                Some(DiscoveryEvent::Updated(info))
                            }
                            None if full => {
                                self.counters.over_limit =
                                    self.counters.over_limit.saturating_add(1);
                                None
                            }
                            None => {
                                self.speakers.insert(key, info.clone());
                                Some(DiscoveryEvent::Discovered(info))
                            }
                        }
                    }
                    Err(e) => {
                        self.counters.count(e.kind());
                        // A listed speaker that now advertises nonsense is no longer listed.
                        self.speakers
                            .remove(&key)
                            .map(|gone| DiscoveryEvent::Lost(gone.record.id))
                    }
                }
            }
            ServiceEvent::ServiceRemoved(_, fullname) => self
                .speakers
                .remove(&fullname.to_ascii_lowercase())
                .map(|gone| DiscoveryEvent::Lost(gone.record.id)),
            _ => None,
        }
    }

    /// The listed speakers, sorted by id.
    pub fn speakers(&self) -> Vec<&SpeakerInfo> {
        let mut list: Vec<&SpeakerInfo> = self.speakers.values().collect();
        list.sort_by(|a, b| a.record.id.cmp(&b.record.id));
        list
    }

    /// The listed speaker with `id`, if any.
    pub fn speaker(&self, id: &str) -> Option<&SpeakerInfo> {
        self.speakers.get(&instance_name(id).to_ascii_lowercase())
    }

    /// The groups the listed speakers are in, sorted by name.
    pub fn groups(&self) -> Vec<GroupInfo> {
        let mut groups: HashMap<&str, GroupInfo> = HashMap::new();
        for info in self.speakers.values() {
            let Some(name) = info.record.group.as_deref() else {
                continue;
            };
            let group = groups.entry(name).or_insert_with(|| GroupInfo {
                name: name.to_owned(),
                leaders: Vec::new(),
                members: Vec::new(),
            });
            group.members.push(info.record.id.clone());
            if info.record.state == PlayState::Leading {
                group.leaders.push(info.record.id.clone());
            }
        }
        let mut list: Vec<GroupInfo> = groups.into_values().collect();
        for g in &mut list {
            g.leaders.sort_unstable();
            g.members.sort_unstable();
        }
        list.sort_by(|a, b| a.name.cmp(&b.name));
        list
    }

    /// What was ignored so far.
    pub fn counters(&self) -> DiscoveryCounters {
        self.counters
    }

    /// Stops browsing and the daemon; waits for its confirmation.
    pub fn stop(mut self) -> Result<(), DiscoveryError> {
        match self.daemon.take() {
            Some(daemon) => shutdown(&daemon),
            None => Ok(()),
        }
    }
}

impl fmt::Debug for Browser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Browser")
            .field("running", &self.daemon.is_some())
            .field("speakers", &self.speakers.len())
            .field("counters", &self.counters)
            .finish()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(daemon) = self.daemon.take() {
            // Without waiting: drop cannot report.
            let _ = daemon.shutdown();
        }
    }
}

#[cfg(test)]
mod ns_tests;
