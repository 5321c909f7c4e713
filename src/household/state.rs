//! A speaker's state directory (`--state DIR`): its identity, its settings and its replica
//! of the household, in one JSON file, `state.json`.
//!
//! # What it holds
//!
//! A [`SpeakerState`]: the speaker's [`SpeakerId`] and its [`Household`] replica, which
//! holds the speaker's own record (name, room, model; volume, mute, trim, output latency)
//! and the groups, pairs and subwoofers it belongs to, each record with its version.
//!
//! # Writing
//!
//! [`StateDir::save`] writes the whole state to `state.json.tmp` in the same directory,
//! flushes it to the disk (`fsync`), renames it over `state.json` (atomic on POSIX file
//! systems), then flushes the directory so that the rename itself is on the disk. A crash
//! at any point leaves either the previous `state.json` or the new one, whole, and at most
//! a stray temporary file, which [`StateDir::open`] removes: it never holds committed state.
//!
//! # Reading, and what to do when it fails
//!
//! [`StateDir::open`] is what a speaker calls at start:
//! - no `state.json` (a first start, or one after the file was set aside): it draws a new
//!   random id ([`new_nonce`]), founds a household holding only this speaker, saves it, and
//!   returns it with [`Opened::created`] set. The next start reads that same id back.
//! - a valid `state.json`: the state it holds.
//! - a file whose content is not a valid state (not JSON, another shape, records that do not
//!   hold together, larger than [`MAX_STATE_LEN`]): the file is renamed to
//!   `state.json.corrupt-<unix seconds>` (never overwritten, never deleted) and
//!   [`StateError::Corrupt`] names both paths. **The caller refuses to start** and shows the
//!   error: a speaker never quietly becomes a new speaker. A person can then put the
//!   set-aside file back (repaired), or start the speaker again, which then finds no
//!   `state.json` and starts fresh with a new id.
//! - a state in a format this build does not read ([`StateError::UnsupportedFormat`]), or
//!   a file that cannot be read at all ([`StateError::Io`]: permissions, a failing disk):
//!   the file stays where it is, untouched, and the caller refuses to start. The state is
//!   not damaged, so it is not set aside.
//!
//! One state directory belongs to one running speaker; two processes sharing one are not
//! guarded against.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::control::new_nonce;

use super::model::{FORMAT, GroupId, Household, HouseholdError, Speaker, SpeakerId};

/// The state file's name in the directory.
pub const STATE_FILE: &str = "state.json";

/// The temporary file [`StateDir::save`] writes before renaming it over [`STATE_FILE`].
pub const TEMP_FILE: &str = "state.json.tmp";

/// The largest state file read, in bytes (4 MiB): a household of hundreds of speakers and
/// groups takes a few hundred KiB; anything larger is treated as corrupt.
pub const MAX_STATE_LEN: u64 = 4 << 20;

/// Why a state directory could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// The state file's content is not a valid state. It was moved to `moved_to`.
    #[error(
        "state file {} is corrupt ({reason}); it was moved to {}",
        path.display(),
        moved_to.display()
    )]
    Corrupt {
        /// The state file.
        path: PathBuf,
        /// Where the bad file is now.
        moved_to: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The state file is in a format this build does not read (a newer build wrote it).
    /// It is left where it is.
    #[error(
        "state file {} has format {got}; this build reads format {supported}",
        path.display()
    )]
    UnsupportedFormat {
        /// The state file.
        path: PathBuf,
        /// Its format.
        got: u64,
        /// The format this build reads.
        supported: u32,
    },
    /// A file system operation failed.
    #[error("cannot {op} {}: {source}", path.display())]
    Io {
        /// What was being done ("read", "write", "rename", ...).
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
    /// The system's random source failed while drawing a new speaker id.
    #[error("the system's random source failed while drawing a speaker id: {0}")]
    Random(io::Error),
    /// The name, room or model for a new speaker is refused.
    #[error("cannot create the speaker's state: {0}")]
    Identity(#[from] HouseholdError),
}

/// What a speaker keeps: its id, its household replica (which holds its own record), and
/// what it leads, if anything.
#[derive(Debug, Clone, PartialEq)]
pub struct SpeakerState {
    id: SpeakerId,
    household: Household,
    leading: Option<Leading>,
}

/// A group a speaker leads and the source it plays there, kept so that a leader that
/// restarts plays on. Only sources the speaker can open again by themselves are kept (a
/// music file, a test signal; not a stream pushed over the control API).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Leading {
    /// The group.
    pub group: GroupId,
    /// The source, as `group.play` named it.
    pub source: String,
    /// Whether it is paused.
    pub paused: bool,
}

#[derive(Serialize)]
struct WireOut<'a> {
    format: u32,
    id: SpeakerId,
    household: &'a Household,
    #[serde(skip_serializing_if = "Option::is_none")]
    leading: Option<&'a Leading>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireIn {
    #[allow(dead_code)] // checked through Peek before the rest is read
    format: u64,
    id: SpeakerId,
    household: Household,
    #[serde(default)]
    leading: Option<Leading>,
}

#[derive(Deserialize)]
struct Peek {
    format: u64,
}

impl SpeakerState {
    /// The state of a speaker starting for the first time: a household holding only `me`.
    pub fn new(me: Speaker) -> Result<SpeakerState, HouseholdError> {
        Ok(SpeakerState {
            id: me.id,
            household: Household::founded_by(me)?,
            leading: None,
        })
    }

    /// The state of speaker `id` with replica `household`; refuses a household that does
    /// not hold the speaker ([`HouseholdError::NoSuchSpeaker`]).
    pub fn from_parts(id: SpeakerId, household: Household) -> Result<SpeakerState, HouseholdError> {
        if household.speaker(id).is_none() {
            return Err(HouseholdError::NoSuchSpeaker {
                speaker: id.to_string(),
            });
        }
        Ok(SpeakerState {
            id,
            household,
            leading: None,
        })
    }

    /// The speaker's id.
    pub fn id(&self) -> SpeakerId {
        self.id
    }

    /// The speaker's own record: name, room, model and settings.
    pub fn me(&self) -> Option<&Speaker> {
        self.household.speaker(self.id)
    }

    /// The household replica.
    pub fn household(&self) -> &Household {
        &self.household
    }

    /// The household replica, to edit (as this speaker: `household_mut().edit(id)`) or to
    /// merge into. Neither removes a speaker, so the speaker's own record stays.
    pub fn household_mut(&mut self) -> &mut Household {
        &mut self.household
    }

    /// The group this speaker leads and its source, as last saved.
    pub fn leading(&self) -> Option<&Leading> {
        self.leading.as_ref()
    }

    /// Sets (or, with `None`, clears) what this speaker leads.
    pub fn set_leading(&mut self, leading: Option<Leading>) {
        self.leading = leading;
    }

    /// The state as the JSON object `state.json` holds.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(&WireOut {
            format: FORMAT,
            id: self.id,
            household: &self.household,
            leading: self.leading.as_ref(),
        })
        .unwrap_or_default()
    }

    /// Reads what [`to_json`](SpeakerState::to_json) wrote. Another format is
    /// [`HouseholdError::UnsupportedFormat`]; anything else wrong is
    /// [`HouseholdError::Malformed`] or [`HouseholdError::Inconsistent`].
    pub fn from_json(text: &str) -> Result<SpeakerState, HouseholdError> {
        let malformed = |e: serde_json::Error| HouseholdError::Malformed {
            reason: e.to_string(),
        };
        let peek: Peek = serde_json::from_str(text).map_err(malformed)?;
        super::model::check_format(peek.format)?;
        let wire: WireIn = serde_json::from_str(text).map_err(malformed)?;
        let mut state = SpeakerState::from_parts(wire.id, wire.household).map_err(|_| {
            HouseholdError::Inconsistent {
                reason: format!(
                    "the household does not hold the state's own speaker {}",
                    wire.id
                ),
            }
        })?;
        state.leading = wire.leading;
        Ok(state)
    }
}

/// What [`StateDir::open`] found.
#[derive(Debug, Clone, PartialEq)]
pub struct Opened {
    /// The speaker's state.
    pub state: SpeakerState,
    /// Whether there was no state and this one was created (a new id).
    pub created: bool,
}

/// A speaker's state directory: see the module docs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateDir {
    dir: PathBuf,
}

fn io_err<'p>(op: &'static str, path: &'p Path) -> impl FnOnce(io::Error) -> StateError + 'p {
    move |source| StateError::Io {
        op,
        path: path.to_owned(),
        source,
    }
}

impl StateDir {
    /// The state directory at `dir` (nothing is read or created yet).
    pub fn new(dir: impl Into<PathBuf>) -> StateDir {
        StateDir { dir: dir.into() }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The state file's path.
    pub fn file(&self) -> PathBuf {
        self.dir.join(STATE_FILE)
    }

    fn temp(&self) -> PathBuf {
        self.dir.join(TEMP_FILE)
    }

    /// What a speaker calls at start (see the module docs for each case): creates the
    /// directory if it is missing, removes a stray temporary file, and returns the saved
    /// state, or (when there is none) a new speaker named `name` in `room`, of `model`,
    /// with a new random id, saved before this returns. An existing state keeps its own
    /// name, room and model; whether `name`, `room` and `model` change them is the
    /// caller's choice.
    pub fn open(&self, name: &str, room: &str, model: &str) -> Result<Opened, StateError> {
        fs::create_dir_all(&self.dir).map_err(io_err("create", &self.dir))?;
        let temp = self.temp();
        match fs::remove_file(&temp) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("remove", &temp)(e)),
        }
        if let Some(state) = self.load()? {
            return Ok(Opened {
                state,
                created: false,
            });
        }
        let id = SpeakerId::from_bytes(new_nonce().map_err(StateError::Random)?);
        let state = SpeakerState::new(Speaker::new(id, name, room, model)?)?;
        self.save(&state)?;
        Ok(Opened {
            state,
            created: true,
        })
    }

    /// Reads the state file: `None` if there is none; a corrupt one is moved aside and
    /// reported ([`StateError::Corrupt`]). Does not look at a temporary file.
    pub fn load(&self) -> Result<Option<SpeakerState>, StateError> {
        let path = self.file();
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err("read", &path)(e)),
        };
        let mut bytes = Vec::new();
        file.take(MAX_STATE_LEN + 1)
            .read_to_end(&mut bytes)
            .map_err(io_err("read", &path))?;
        let parsed = if bytes.len() as u64 > MAX_STATE_LEN {
            Err(format!("it is larger than {MAX_STATE_LEN} bytes"))
        } else {
            match std::str::from_utf8(&bytes) {
                Err(e) => Err(format!("it is not UTF-8 text: {e}")),
                Ok(text) => match SpeakerState::from_json(text) {
                    Ok(state) => Ok(state),
                    Err(HouseholdError::UnsupportedFormat { got, supported }) => {
                        return Err(StateError::UnsupportedFormat {
                            path,
                            got,
                            supported,
                        });
                    }
                    Err(e) => Err(e.to_string()),
                },
            }
        };
        match parsed {
            Ok(state) => Ok(Some(state)),
            Err(reason) => {
                let moved_to = self.set_aside(&path)?;
                Err(StateError::Corrupt {
                    path,
                    moved_to,
                    reason,
                })
            }
        }
    }

    /// Renames a bad state file to `state.json.corrupt-<unix seconds>[-n]`, a name that is
    /// not taken, and returns it.
    fn set_aside(&self, path: &Path) -> Result<PathBuf, StateError> {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let base = format!("{STATE_FILE}.corrupt-{secs}");
        for n in 0..1000u32 {
            let name = if n == 0 {
                base.clone()
            } else {
                format!("{base}-{n}")
            };
            let to = self.dir.join(name);
            if to.exists() {
                continue;
            }
            fs::rename(path, &to).map_err(io_err("rename", path))?;
            sync_dir(&self.dir)?;
            return Ok(to);
        }
        Err(StateError::Io {
            op: "find a free name to set aside",
            path: path.to_owned(),
            source: io::ErrorKind::AlreadyExists.into(),
        })
    }

    /// Writes `state` atomically: temporary file, `fsync`, rename over the state file,
    /// `fsync` of the directory. Once this returns `Ok`, a crash does not lose the state.
    pub fn save(&self, state: &SpeakerState) -> Result<(), StateError> {
        let temp = self.temp();
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&temp)
            .map_err(io_err("create", &temp))?;
        f.write_all(state.to_json().as_bytes())
            .and_then(|()| f.write_all(b"\n"))
            .map_err(io_err("write", &temp))?;
        f.sync_all().map_err(io_err("fsync", &temp))?;
        drop(f);
        let path = self.file();
        fs::rename(&temp, &path).map_err(io_err("rename", &temp))?;
        sync_dir(&self.dir)
    }
}

/// Flushes a directory's entries (a rename in it) to the disk.
fn sync_dir(dir: &Path) -> Result<(), StateError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("fsync", dir))
}
