//! A speaker's state directory: an identity created once and kept, atomic saves read back
//! after a crash at any point, and corrupt or unreadable files refused with a typed error
//! that names them, set aside and never overwritten.

use std::fs;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use lockstep::household::state::{Leading, MAX_STATE_LEN, STATE_FILE, TEMP_FILE};
use lockstep::household::{
    HouseholdError, Opened, Speaker, SpeakerId, SpeakerState, StateDir, StateError,
};
use lockstep::time::Nanos;

/// A fresh directory under the system's temporary directory, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "lockstep-state-{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&dir);
        Scratch(dir)
    }

    fn state(&self) -> StateDir {
        StateDir::new(&self.0)
    }

    fn file(&self) -> PathBuf {
        self.0.join(STATE_FILE)
    }

    fn temp(&self) -> PathBuf {
        self.0.join(TEMP_FILE)
    }

    /// The names of the files in the directory, sorted.
    fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(&self.0)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn open(s: &Scratch) -> Result<Opened, StateError> {
    s.state().open("Kitchen", "Kitchen", "One")
}

/// A state with settings, a group, a pair and a subwoofer.
fn furnished(s: &Scratch) -> SpeakerState {
    let mut state = open(s).unwrap().state;
    let me = state.id();
    let h = state.household_mut();
    for (n, name) in [(2u8, "Left"), (3, "Right"), (4, "Sub")] {
        h.edit(me)
            .add_speaker(Speaker::new(SpeakerId([n; 16]), name, "Living", "Five").unwrap())
            .unwrap();
    }
    h.edit(me).set_volume("Kitchen", 0.6).unwrap();
    h.edit(me)
        .set_trim("Kitchen", Nanos::from_micros(250))
        .unwrap();
    h.edit(me)
        .set_output_latency("Kitchen", Nanos::from_millis(12))
        .unwrap();
    h.edit(me).create_pair("Left", "Right").unwrap();
    h.edit(me).set_sub("Left", "Sub").unwrap();
    h.edit(me)
        .create_group("Downstairs", &["Kitchen", "Left"])
        .unwrap();
    state
}

#[test]
fn a_first_start_creates_an_identity_once_and_later_starts_keep_it() {
    let s = Scratch::new("first");
    let first = open(&s).unwrap();
    assert!(first.created);
    let me = first.state.me().unwrap();
    assert_eq!(
        (me.name.as_str(), me.room.as_str(), me.model.as_str()),
        ("Kitchen", "Kitchen", "One")
    );
    assert_ne!(first.state.id(), SpeakerId::NIL);
    assert_eq!(s.names(), [STATE_FILE]);
    // Later starts read the same identity, whatever names they are given.
    for _ in 0..3 {
        let again = s.state().open("Other", "Other", "Other").unwrap();
        assert!(!again.created);
        assert_eq!(again.state, first.state);
    }
    // Another directory is another speaker.
    let t = Scratch::new("first-other");
    assert_ne!(open(&t).unwrap().state.id(), first.state.id());
}

#[test]
fn a_saved_state_reads_back_whole() {
    let s = Scratch::new("saved");
    let state = furnished(&s);
    s.state().save(&state).unwrap();
    assert_eq!(s.names(), [STATE_FILE], "no temporary file is left");
    let back = open(&s).unwrap();
    assert!(!back.created);
    assert_eq!(back.state, state);
    let me = back.state.me().unwrap();
    assert_eq!(me.settings.volume.get(), 0.6);
    assert_eq!(me.settings.trim(), Nanos::from_micros(250));
    assert_eq!(me.settings.output_latency(), Nanos::from_millis(12));
    let h = back.state.household();
    let g = h.resolve_group("Downstairs").unwrap();
    assert_eq!(h.group_of(back.state.id()), Some(g));
    assert_eq!(h.layout().pairs.len(), 1);
    assert_eq!(h.layout().subs.len(), 1);
    // The file is JSON with its format and the speaker's id.
    let v: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(s.file()).unwrap()).unwrap();
    assert_eq!(v["format"], 1);
    assert_eq!(v["id"], state.id().to_string());
    assert_eq!(v["household"]["format"], 1);
}

#[test]
fn what_a_leader_leads_is_kept_and_a_state_without_it_still_reads() {
    let s = Scratch::new("leading");
    let mut state = furnished(&s);
    s.state().save(&state).unwrap();
    let without = fs::read_to_string(s.file()).unwrap();
    assert!(!without.contains("leading"), "nothing led, nothing written");
    let group = state.household().resolve_group("Downstairs").unwrap();
    let leading = Leading {
        group,
        source: "/music/a.flac".into(),
        paused: true,
    };
    state.set_leading(Some(leading.clone()));
    s.state().save(&state).unwrap();
    let back = open(&s).unwrap().state;
    assert_eq!(back.leading(), Some(&leading));
    assert_eq!(back, state);
    // A state written before leaders were kept reads as leading nothing.
    fs::write(s.file(), without).unwrap();
    assert_eq!(open(&s).unwrap().state.leading(), None);
}

#[test]
fn a_crash_before_the_rename_leaves_the_last_committed_state() {
    // The temporary file as a crash leaves it at each point before the rename: created
    // empty, half written, written whole (fsynced or not).
    let s = Scratch::new("crash");
    let committed = furnished(&s);
    s.state().save(&committed).unwrap();
    let mut newer = committed.clone();
    let me = newer.id();
    newer
        .household_mut()
        .edit(me)
        .set_volume("Kitchen", 0.1)
        .unwrap();
    let text = newer.to_json();
    for leftover in [&text[..0], &text[..text.len() / 2], text.as_str()] {
        fs::write(s.temp(), leftover).unwrap();
        let back = open(&s).unwrap();
        assert!(!back.created);
        assert_eq!(back.state, committed);
        assert_eq!(
            s.names(),
            [STATE_FILE],
            "the stray temporary file is removed"
        );
    }
    // After the rename (whether or not the directory was flushed): the new state.
    s.state().save(&newer).unwrap();
    assert_eq!(open(&s).unwrap().state, newer);
}

#[test]
fn a_crash_during_the_first_save_starts_fresh_once() {
    let s = Scratch::new("first-crash");
    fs::create_dir_all(&s.0).unwrap();
    fs::write(s.temp(), b"{\"format\":1,\"id\":\"0a").unwrap();
    let first = open(&s).unwrap();
    assert!(first.created);
    assert_eq!(s.names(), [STATE_FILE]);
    let again = open(&s).unwrap();
    assert!(!again.created);
    assert_eq!(again.state.id(), first.state.id());
}

#[test]
fn a_corrupt_file_is_set_aside_named_in_the_error_and_the_next_start_is_fresh() {
    let s = Scratch::new("corrupt");
    let old = open(&s).unwrap().state;
    let garbage = b"{\"format\":1,\"id\":\"\x00\xff not json";
    fs::write(s.file(), garbage).unwrap();
    let err = open(&s).unwrap_err();
    let StateError::Corrupt {
        path,
        moved_to,
        reason,
    } = &err
    else {
        panic!("{err:?}");
    };
    assert_eq!(path, &s.file());
    assert!(!reason.is_empty());
    assert_eq!(moved_to.parent(), Some(s.0.as_path()));
    let moved_name = moved_to.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        moved_name.starts_with("state.json.corrupt-"),
        "{moved_name}"
    );
    assert_eq!(
        fs::read(moved_to).unwrap(),
        garbage,
        "the bad file is kept as it was"
    );
    let text = err.to_string();
    assert!(text.contains(&s.file().display().to_string()), "{text}");
    assert!(text.contains(&moved_to.display().to_string()), "{text}");
    // Refusing once, the caller starts again: no state, so a fresh identity; the set-aside
    // file is still there.
    assert!(!s.file().exists());
    let fresh = open(&s).unwrap();
    assert!(fresh.created);
    assert_ne!(fresh.state.id(), old.id());
    assert_eq!(fs::read(moved_to).unwrap(), garbage);
    // A second corrupt file in the same second gets a name of its own.
    fs::write(s.file(), b"again").unwrap();
    let StateError::Corrupt {
        moved_to: second, ..
    } = open(&s).unwrap_err()
    else {
        panic!("not corrupt");
    };
    assert_ne!(&second, moved_to);
    assert_eq!(fs::read(&second).unwrap(), b"again");
    assert_eq!(fs::read(moved_to).unwrap(), garbage);
}

#[test]
fn every_kind_of_bad_content_is_corrupt() {
    let s = Scratch::new("kinds");
    let good = furnished(&s);
    let mut v: serde_json::Value = serde_json::from_str(&good.to_json()).unwrap();
    let stranger = SpeakerId([0x5a; 16]).to_string();
    v["id"] = stranger.into();
    let not_mine = v.to_string();
    let mut v: serde_json::Value = serde_json::from_str(&good.to_json()).unwrap();
    v["household"]["format"] = 9.into();
    let inner_format = v.to_string();
    let mut too_large = good.to_json().into_bytes();
    too_large.resize(MAX_STATE_LEN as usize + 1, b' ');
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("not UTF-8", vec![0xff, 0xfe, b'{']),
        ("JSON of another shape", b"[1, 2, 3]".to_vec()),
        (
            "missing household",
            b"{\"format\": 1, \"id\": \"00\"}".to_vec(),
        ),
        ("household without the speaker", not_mine.into_bytes()),
        (
            "household of another format inside",
            inner_format.into_bytes(),
        ),
        ("larger than the cap", too_large),
    ];
    for (what, bytes) in cases {
        fs::write(s.file(), &bytes).unwrap();
        match s.state().load() {
            Err(StateError::Corrupt { moved_to, .. }) => {
                assert_eq!(fs::read(&moved_to).unwrap(), bytes, "{what}");
                fs::remove_file(moved_to).unwrap();
            }
            other => panic!("{what}: {other:?}"),
        }
        assert!(!s.file().exists(), "{what}");
    }
}

#[test]
fn a_state_of_a_later_format_is_refused_and_left_in_place() {
    let s = Scratch::new("format");
    let good = furnished(&s);
    let mut v: serde_json::Value = serde_json::from_str(&good.to_json()).unwrap();
    v["format"] = 2.into();
    v["new_things"] = "a later build's".into();
    let bytes = v.to_string().into_bytes();
    fs::write(s.file(), &bytes).unwrap();
    match open(&s) {
        Err(StateError::UnsupportedFormat {
            path,
            got: 2,
            supported: 1,
        }) => assert_eq!(path, s.file()),
        other => panic!("{other:?}"),
    }
    assert_eq!(fs::read(s.file()).unwrap(), bytes);
    assert_eq!(s.names(), [STATE_FILE]);
    assert!(matches!(
        SpeakerState::from_json(&v.to_string()),
        Err(HouseholdError::UnsupportedFormat { got: 2, .. })
    ));
}

#[test]
fn an_unreadable_file_is_an_error_naming_it_and_is_left_alone() {
    // A directory where the file should be: it opens, but cannot be read (this holds for
    // root too, unlike file permissions).
    let s = Scratch::new("unreadable");
    fs::create_dir_all(s.file()).unwrap();
    match open(&s) {
        Err(StateError::Io { op, path, .. }) => {
            assert_eq!(op, "read");
            assert_eq!(path, s.file());
        }
        other => panic!("{other:?}"),
    }
    assert!(s.file().is_dir());
    assert_eq!(s.names(), [STATE_FILE]);
}

#[test]
fn a_save_into_a_missing_directory_fails_with_its_path() {
    let s = Scratch::new("missing");
    let state =
        SpeakerState::new(Speaker::new(SpeakerId([1; 16]), "A", "B", "C").unwrap()).unwrap();
    match s.state().save(&state) {
        Err(StateError::Io {
            op: "create", path, ..
        }) => assert_eq!(path, s.temp()),
        other => panic!("{other:?}"),
    }
    // Invalid names for a new speaker are refused before anything is written.
    assert!(matches!(
        s.state().open("", "Room", "Model"),
        Err(StateError::Identity(HouseholdError::InvalidName {
            what: "speaker",
            ..
        }))
    ));
    assert!(!s.file().exists());
}

/// A tiny deterministic generator.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn check_any_content(s: &Scratch, bytes: &[u8]) -> bool {
    fs::write(s.file(), bytes).unwrap();
    match s.state().load() {
        Ok(Some(state)) => {
            // Accepted content is a whole state that saves and reads back.
            s.state().save(&state).unwrap();
            assert_eq!(s.state().load().unwrap(), Some(state));
            true
        }
        Ok(None) => panic!("a present file read as absent"),
        Err(StateError::Corrupt { moved_to, .. }) => {
            assert_eq!(fs::read(&moved_to).unwrap(), bytes);
            fs::remove_file(moved_to).unwrap();
            false
        }
        Err(StateError::UnsupportedFormat { .. }) => {
            assert_eq!(fs::read(s.file()).unwrap(), bytes);
            false
        }
        Err(e) => panic!("{e:?}"),
    }
}

#[test]
fn no_file_content_makes_reading_panic() {
    let s = Scratch::new("fuzz");
    let good = furnished(&s).to_json().into_bytes();
    let mut rng = Lcg(11);
    let mut accepted = 0;
    for round in 0..600 {
        let bytes: Vec<u8> = match round % 4 {
            0 => (0..rng.below(200)).map(|_| rng.next() as u8).collect(),
            1 => {
                let mut b = good.clone();
                for _ in 0..1 + rng.below(6) {
                    let at = rng.below(b.len());
                    b[at] = rng.next() as u8;
                }
                b
            }
            2 => good[..rng.below(good.len())].to_vec(),
            _ => {
                let mut b = good.clone();
                let at = rng.below(b.len());
                let len = rng.below(64).min(b.len() - at);
                b.drain(at..at + len);
                b
            }
        };
        if check_any_content(&s, &bytes) {
            accepted += 1;
        }
    }
    // The unchanged file is accepted; most mutations are not.
    assert!(check_any_content(&s, &good));
    assert!(accepted < 600, "{accepted}");
}
