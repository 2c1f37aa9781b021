use std::collections::HashMap;
use std::io;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::*;
use crate::entitlements::{Package, User, Users};

/// A snapshot of `n` users whose package is named after `tag`, so two
/// generations are told apart.
fn snapshot(n: usize, tag: &str) -> Snapshot {
    let users: Users = (0..n)
        .map(|i| {
            let user = User {
                tokens: vec![format!("tok-{tag}-{i:08}")],
                max_sessions: 2,
                packages: vec![tag.to_owned()],
                ..User::default()
            };
            (format!("user{i:08}"), user)
        })
        .collect();
    Snapshot {
        users,
        packages: HashMap::from([(
            tag.to_owned(),
            Package {
                channels: vec!["ch1".to_owned(), "news/*".to_owned()],
                ..Package::default()
            },
        )]),
        ..Snapshot::default()
    }
}

#[test]
fn save_then_load_round_trips_and_ignores_tmp() {
    let dir = tempfile::tempdir().unwrap();
    assert!(load(dir.path()).unwrap().is_none());
    assert!(load_entitlements(dir.path()).unwrap().is_none());
    let s = snapshot(3, "a");
    save(dir.path(), &s).unwrap();
    assert!(!dir.path().join(TMP_NAME).exists());
    // A leftover temporary file from a crash is not read.
    std::fs::write(dir.path().join(TMP_NAME), b"{garbage").unwrap();
    assert_eq!(load(dir.path()).unwrap(), Some(s.clone()));
    let ents = load_entitlements(dir.path()).unwrap().unwrap();
    assert_eq!(ents.user_by_token("tok-a-00000001"), Some("user00000001"));
    // The next save overwrites the leftover.
    let s2 = snapshot(2, "b");
    save(dir.path(), &s2).unwrap();
    assert_eq!(load(dir.path()).unwrap(), Some(s2));
    assert!(!dir.path().join(TMP_NAME).exists());
}

#[test]
fn entitlements_save_as_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let s = snapshot(5, "a");
    let ents = Entitlements::build(s.clone()).unwrap();
    save(dir.path(), &ents).unwrap();
    assert_eq!(load(dir.path()).unwrap(), Some(s));
}

#[test]
fn corrupt_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(FILE_NAME);
    let cases: [&[u8]; 5] = [
        b"",
        b"{\"users\":{\"a\":{\"tokens\":[\"sec",
        b"not json",
        b"{\"users\":{\"a\":{\"max_sessions\":\"secret-token\"}}}",
        b"{\"surprise\":1}",
    ];
    for bytes in cases {
        std::fs::write(&path, bytes).unwrap();
        let err = load(dir.path()).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, StateError::Corrupt { .. }), "{text}");
        assert!(text.contains("snapshot.json"), "{text}");
        assert!(!text.contains("secret-token"), "{text}");
        assert!(matches!(
            load_entitlements(dir.path()),
            Err(StateError::Corrupt { .. })
        ));
    }
    // Parses, but does not validate: corrupt for the compiling loader.
    std::fs::write(&path, br#"{"users":{"a":{"packages":["nope"]}}}"#).unwrap();
    let err = load_entitlements(dir.path()).unwrap_err().to_string();
    assert!(err.contains("unknown package"), "{err}");
}

/// A writer that accepts `budget` bytes, then fails like a full disk.
struct FullDisk<'a> {
    inner: &'a mut dyn Write,
    budget: usize,
}

impl Write for FullDisk<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.len() > self.budget {
            return Err(io::Error::from_raw_os_error(28)); // ENOSPC
        }
        self.budget -= buf.len();
        self.inner.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Simulated full disk: the write fails part way; the old file stays.
#[test]
fn failed_write_keeps_previous_state() {
    let dir = tempfile::tempdir().unwrap();
    let old = snapshot(10, "a");
    save(dir.path(), &old).unwrap();
    let new = snapshot(1000, "b");
    let err = save_with(dir.path(), |w| {
        let mut full = FullDisk {
            inner: w,
            budget: 1000,
        };
        serde_json::to_writer(&mut full, &new).map_err(io::Error::other)?;
        full.flush()
    })
    .unwrap_err();
    assert!(err.to_string().contains(TMP_NAME), "{err}");
    assert_eq!(load(dir.path()).unwrap(), Some(old));
    assert!(!dir.path().join(TMP_NAME).exists());
}

/// Unmounts on drop.
struct Tmpfs(PathBuf);

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// A real full disk: a 64 KiB tmpfs. Needs root (mount), as the test
/// command runs in CI (`.ci/run`); as another user it fails saying so.
#[test]
fn full_tmpfs_keeps_previous_state() {
    let dir = tempfile::tempdir().unwrap();
    let ok = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(
        ok.success(),
        "mounting a 64 KiB tmpfs failed: run the tests as root (scripts/test.sh, .ci/run)"
    );
    let _guard = Tmpfs(dir.path().to_owned());
    let old = snapshot(100, "a");
    save(dir.path(), &old).unwrap();
    let big = snapshot(5000, "b"); // ~400 KB of JSON: cannot fit
    let err = save(dir.path(), &big).unwrap_err();
    assert!(matches!(err, StateError::Io { .. }), "{err}");
    assert_eq!(load(dir.path()).unwrap(), Some(old));
    assert!(!dir.path().join(TMP_NAME).exists());
}

const HELPER_ENV: &str = "TOLLGATE_STATE_KILL_HELPER_DIR";
const KILL_USERS: usize = 200_000;

/// Child mode for `kill_9_during_save_keeps_a_complete_state`: saves two
/// alternating 200k-user generations forever. Does nothing when run
/// normally.
#[test]
#[ignore = "helper process for the kill -9 test"]
fn kill_helper() {
    let Ok(dir) = std::env::var(HELPER_ENV) else {
        return;
    };
    let gens = [snapshot(KILL_USERS, "a"), snapshot(KILL_USERS, "b")];
    println!("helper ready");
    for g in gens.iter().cycle() {
        save(Path::new(&dir), g).unwrap();
    }
}

/// SIGKILL a process in the middle of big saves: the state is always one
/// complete generation, never an error. Each round waits until the helper
/// has finished at least one save of its own (the file was replaced) and is
/// writing the next (the temp file is there), then kills it at a random
/// moment of that write; the temp file it leaves proves the kill landed
/// mid-write.
#[test]
fn kill_9_during_save_keeps_a_complete_state() {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    use std::hash::BuildHasher;
    use std::os::unix::fs::MetadataExt;

    let dir = tempfile::tempdir().unwrap();
    save(dir.path(), &snapshot(KILL_USERS, "a")).unwrap();
    let exe = std::env::current_exe().unwrap();
    let random = std::hash::RandomState::new();
    let inode = || fs::metadata(dir.path().join(FILE_NAME)).unwrap().ino();
    let mut torn_tmp = 0;
    for round in 0..5u64 {
        let before = inode();
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "persist::tests::kill_helper",
                "--ignored",
                "--nocapture",
            ])
            .env(HELPER_ENV, dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut wait_for = |what: &str, done: &dyn Fn() -> bool| {
            while !done() {
                assert!(child.try_wait().unwrap().is_none(), "helper exited early");
                assert!(
                    Instant::now() < deadline,
                    "round {round}: no {what} in 120 s"
                );
                std::thread::sleep(Duration::from_millis(1));
            }
        };
        wait_for("completed save", &|| inode() != before);
        wait_for("save in progress", &|| dir.path().join(TMP_NAME).exists());
        // A random moment of this write (not a synchronisation: any moment
        // must be safe).
        std::thread::sleep(Duration::from_millis(random.hash_one(round) % 20));
        kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL).unwrap();
        child.wait().unwrap();
        torn_tmp += usize::from(dir.path().join(TMP_NAME).exists());
        let s = load(dir.path())
            .unwrap_or_else(|e| panic!("round {round}: {e}"))
            .unwrap();
        assert_eq!(s.users.len(), KILL_USERS, "round {round}");
        let tag = s.packages.keys().next().unwrap().clone();
        assert!(tag == "a" || tag == "b", "round {round}: {tag}");
        let last = format!("user{:08}", KILL_USERS - 1);
        assert_eq!(s.users.get(&last).unwrap().packages, vec![tag]);
    }
    assert!(
        torn_tmp > 0,
        "no kill landed mid-write (no round left a torn {TMP_NAME})"
    );
    println!("rounds that left a torn {TMP_NAME}: {torn_tmp}/5");
}
