//! The files `render` reads (templates, secrets) and writes (its destinations).
//!
//! Reading opens only regular files, without waiting, and up to [`MAX_SOURCE`]: a FIFO
//! without a writer or `/dev/urandom` as a template must fail, not hang.
//!
//! Writing, once every template has rendered to memory:
//! 1. every destination is checked (all failures at once): only a regular file or a
//!    missing one is written; a mount point (a bind-mounted file) is opened for writing
//!    already, so that a refusal comes before any file is written;
//! 2. every other changed file is staged beside its destination, as
//!    `.NAME.maestro-guest.NONCE`, written, given the old file's owner and its mode,
//!    fsynced (stale ones of killed runs are removed first);
//! 3. only then is each staged file renamed over its destination, each mount point
//!    rewritten, and the directories fsynced. Each rename is atomic, the whole is not: a
//!    failure here names the files already written.
//!
//! A destination's symbolic links are followed only where the kernel's
//! protected_symlinks rule would, made stricter (see [`resolve`]): the guest usually runs
//! as root, and a link on a volume the app user writes must not make it replace
//! /etc/passwd.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fmt;
use std::fs::{self, File, Metadata, OpenOptions, Permissions};
use std::io::{self, Read, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustix::fs::{AtFlags, Mode, OFlags, StatxAttributes, StatxFlags};

use super::{Change, DEFAULT_MODE, Destination, RenderSpec, Rendered};

/// The most a template or a secret may hold: far more than any configuration, and a
/// bound on the memory an endless source could take.
pub const MAX_SOURCE: u64 = 16 * 1024 * 1024;

/// The text of the regular file at `path`, or why it cannot be read.
pub fn read_text(path: &Path) -> Result<String, String> {
    let bytes = read_regular(path, MAX_SOURCE).map_err(|err| match err {
        Unreadable::TooLarge => format!("it is larger than {} MiB", MAX_SOURCE >> 20),
        other => other.to_string(),
    })?;
    String::from_utf8(bytes).map_err(|_| "stream did not contain valid UTF-8".to_owned())
}

pub(super) enum Unreadable {
    Io(io::Error),
    NotRegular(&'static str),
    TooLarge,
}

impl fmt::Display for Unreadable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io(err) => err.fmt(f),
            Self::NotRegular(kind) => write!(f, "it is {kind}, not a regular file"),
            Self::TooLarge => f.write_str("it is too large"),
        }
    }
}

impl From<io::Error> for Unreadable {
    fn from(err: io::Error) -> Self {
        Self::Io(err)
    }
}

/// At most `limit` bytes of a regular file. Opened non-blocking (a FIFO's open would wait
/// for a writer) and without becoming the controlling terminal, then checked by `fstat`
/// on the open file, so what is read is what was checked.
fn read_regular(path: &Path, limit: u64) -> Result<Vec<u8>, Unreadable> {
    let flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
    let file = File::from(rustix::fs::open(path, flags, Mode::empty()).map_err(io::Error::from)?);
    read_open(&file, limit)
}

/// At most `limit` bytes of an open file, if it is a regular one.
fn read_open(file: &File, limit: u64) -> Result<Vec<u8>, Unreadable> {
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(Unreadable::NotRegular(kind(&meta)));
    }
    if meta.len() > limit {
        return Err(Unreadable::TooLarge);
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    // The file may grow after fstat: read one byte more than allowed to see it.
    file.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(Unreadable::TooLarge);
    }
    Ok(bytes)
}

/// What a file that is not a regular file is, for messages.
fn kind(meta: &Metadata) -> &'static str {
    let file_type = meta.file_type();
    if file_type.is_dir() {
        "a directory"
    } else if file_type.is_fifo() {
        "a FIFO"
    } else if file_type.is_char_device() {
        "a character device"
    } else if file_type.is_block_device() {
        "a block device"
    } else if file_type.is_socket() {
        "a socket"
    } else {
        "of an unknown type"
    }
}

/// `messages`, and that nothing was written when there was more than one file to write.
pub fn nothing_written(mut messages: Vec<String>, specs: &[RenderSpec]) -> String {
    let files = specs
        .iter()
        .filter(|s| matches!(s.dst, Destination::File(_)))
        .count();
    if files > 1 {
        messages.push("no file was written".to_owned());
    }
    messages.join("\n")
}

/// What to do with one destination once every template has rendered.
enum Plan {
    Stdout,
    Keep,
    /// Through the destination opened (without following a link) while checking.
    Chmod(File, u32),
    /// Rename the staged file over the target.
    Replace {
        temp: PathBuf,
        target: PathBuf,
        mode: u32,
    },
    /// A mount point, which no rename can replace: its content is rewritten through this
    /// handle, opened for writing while checking.
    InPlace {
        file: File,
        mode: Option<u32>,
    },
}

/// What checking a destination found.
enum Check {
    Ready(Plan),
    /// A new file or a replacement to stage (with the owner of the file it replaces).
    Stage {
        target: PathBuf,
        mode: u32,
        owner: Option<(u32, u32)>,
    },
}

/// Writes every rendered text to its destination: checked and staged all or nothing,
/// then renamed one by one (see the module's documentation); the texts of standard output are returned.
pub fn write(specs: &[RenderSpec], texts: Vec<String>) -> Result<Vec<Rendered>, String> {
    let started = SystemTime::now();
    let mut checks = Vec::with_capacity(specs.len());
    let mut failures = Vec::new();
    for (spec, text) in specs.iter().zip(&texts) {
        match check(spec, text.as_bytes(), started) {
            Ok(check) => checks.push(check),
            Err(message) => failures.push(message),
        }
    }
    if !failures.is_empty() {
        return Err(nothing_written(failures, specs));
    }
    let mut plans = Vec::with_capacity(specs.len());
    for ((spec, text), check) in specs.iter().zip(&texts).zip(checks) {
        match check {
            Check::Ready(plan) => plans.push(plan),
            Check::Stage {
                target,
                mode,
                owner,
            } => match stage(&target, text.as_bytes(), mode, owner) {
                Ok(temp) => plans.push(Plan::Replace { temp, target, mode }),
                Err(message) => failures.push(format!("cannot write {}: {message}", spec.dst)),
            },
        }
    }
    if !failures.is_empty() {
        discard(&plans);
        return Err(nothing_written(failures, specs));
    }
    commit(specs, plans, texts)
}

fn check(spec: &RenderSpec, bytes: &[u8], started: SystemTime) -> Result<Check, String> {
    let Destination::File(dst) = &spec.dst else {
        return Ok(Check::Ready(Plan::Stdout));
    };
    // A symbolic link is followed (if safe): its target is what gets replaced, the link
    // stays.
    let (target, followed) =
        resolve(dst).map_err(|err| format!("cannot write {}: {err}", dst.display()))?;
    let fail = |what: &dyn fmt::Display| {
        if !followed {
            format!("cannot write {}: {what}", dst.display())
        } else {
            let (dst, target) = (dst.display(), target.display());
            format!("cannot write {dst} (a link to {target}): {what}")
        }
    };
    remove_stale(&target, started.checked_sub(STALE_AFTER));
    let existing = match fs::metadata(&target) {
        Ok(meta) => meta,
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            let mode = spec.mode.unwrap_or(DEFAULT_MODE);
            return Ok(Check::Stage {
                target,
                mode,
                owner: None,
            });
        }
        Err(err) => return Err(fail(&err)),
    };
    if !existing.is_file() {
        return Err(fail(&Unreadable::NotRegular(kind(&existing))));
    }
    let current_mode = existing.mode() & 0o7777;
    let mode = spec.mode.unwrap_or(current_mode);
    // A file that cannot be read is taken as different. Opened without following a link,
    // so that a file swapped for one since resolving cannot redirect the chmod.
    let same = (existing.len() == bytes.len() as u64)
        .then(|| open_target(&target, OFlags::RDONLY).ok())
        .flatten()
        .filter(|file| read_open(file, bytes.len() as u64).is_ok_and(|old| old == bytes));
    if let Some(file) = same {
        return Ok(Check::Ready(if mode == current_mode {
            Plan::Keep
        } else {
            Plan::Chmod(file, mode)
        }));
    }
    if !is_mount_point(&target, &existing) {
        let owner = Some((existing.uid(), existing.gid()));
        return Ok(Check::Stage {
            target,
            mode,
            owner,
        });
    }
    let file = open_in_place(&target).map_err(|err| fail(&err))?;
    let new_mode = (mode != current_mode).then_some(mode);
    let euid = rustix::process::geteuid().as_raw();
    if new_mode.is_some() && euid != 0 && euid != existing.uid() {
        return Err(fail(&format_args!(
            "cannot give it mode {mode:04o}: it belongs to uid {}",
            existing.uid()
        )));
    }
    Ok(Check::Ready(Plan::InPlace {
        file,
        mode: new_mode,
    }))
}

/// The most symbolic links followed for one destination, as the kernel's limit (ELOOP).
const MAX_LINKS: usize = 40;

/// The path `dst` names with every symbolic link in it resolved, and whether there was
/// one. Run as root, a link is followed only if root owns it, and only root can write
/// its folder (no group or other write bit, sticky or not): the kernel's
/// protected_symlinks rule, which covers sticky world-writable folders only, made strict
/// enough that the app's user cannot have planted or swapped a link to make root write
/// `/etc/passwd`. Run as another user (OpenShift's arbitrary uid in group root, writable
/// folders of mode 0775), links are followed as the kernel follows them: the guest can
/// then write only what its user may anyway.
fn resolve(dst: &Path) -> Result<(PathBuf, bool), String> {
    let euid = rustix::process::geteuid().as_raw();
    let guarded = euid == 0;
    let absolute = std::path::absolute(dst).map_err(|err| err.to_string())?;
    // The parts still to walk, the next one last.
    let mut pending: Vec<OsString> = Vec::new();
    let push = |pending: &mut Vec<OsString>, path: &Path| {
        let parts = path.components().filter_map(|c| match c {
            Component::Normal(name) => Some(name.to_owned()),
            Component::ParentDir => Some("..".into()),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
        });
        let parts: Vec<OsString> = parts.collect();
        pending.extend(parts.into_iter().rev());
    };
    push(&mut pending, &absolute);
    let mut resolved = PathBuf::from("/");
    let mut links = 0;
    while let Some(part) = pending.pop() {
        if part == ".." {
            resolved.pop();
            continue;
        }
        let next = resolved.join(&part);
        let meta = match fs::symlink_metadata(&next) {
            Ok(meta) if meta.file_type().is_symlink() => meta,
            // A missing part or a file: what follows fails (or is created) later.
            _ => {
                resolved = next;
                continue;
            }
        };
        links += 1;
        let refuse = |why: String| format!("will not follow the link {}: {why}", next.display());
        if links > MAX_LINKS {
            return Err(refuse(format!("more than {MAX_LINKS} links in a row")));
        }
        if guarded && meta.uid() != 0 {
            return Err(refuse(format!(
                "it belongs to uid {}, not to root (maestro-guest runs as root)",
                meta.uid()
            )));
        }
        let folder = fs::metadata(&resolved).map_err(|err| refuse(err.to_string()))?;
        let owner = folder.uid();
        if guarded && (owner != 0 || folder.mode() & 0o022 != 0) {
            return Err(refuse(format!(
                "it is in {}, which users other than root can write (owner uid {owner}, mode {:04o})",
                resolved.display(),
                folder.mode() & 0o7777
            )));
        }
        let to = fs::read_link(&next).map_err(|err| refuse(err.to_string()))?;
        if to.is_absolute() {
            resolved = PathBuf::from("/");
        }
        push(&mut pending, &to);
    }
    Ok((resolved, links > 0))
}

/// `target` opened with `access`, without following a link (it was resolved: a link now
/// is one swapped in since), and only if it is a regular file.
pub(super) fn open_target(target: &Path, access: OFlags) -> Result<File, Unreadable> {
    let flags = access | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
    let file = File::from(rustix::fs::open(target, flags, Mode::empty()).map_err(io::Error::from)?);
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(Unreadable::NotRegular(kind(&meta)));
    }
    Ok(file)
}

/// A regular file opened for writing (not truncated yet), or why not.
fn open_in_place(target: &Path) -> Result<File, Unreadable> {
    open_target(target, OFlags::WRONLY)
}

/// Whether `target` is a mount point (a bind-mounted file), which rename(2) cannot
/// replace (EBUSY). The kernel says so since Linux 5.8; before, a file on another device
/// than its directory is one (as a file bind-mounted into a container is).
fn is_mount_point(target: &Path, meta: &Metadata) -> bool {
    let flags = AtFlags::NO_AUTOMOUNT;
    let known = rustix::fs::statx(rustix::fs::CWD, target, flags, StatxFlags::empty())
        .ok()
        .filter(|st| st.stx_attributes_mask.contains(StatxAttributes::MOUNT_ROOT));
    if let Some(st) = known {
        return st.stx_attributes.contains(StatxAttributes::MOUNT_ROOT);
    }
    fs::metadata(folder_of(target)).is_ok_and(|dir| dir.dev() != meta.dev())
}

fn folder_of(target: &Path) -> &Path {
    match target.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// How many bytes of a destination's name its staged copies keep; a longer name is cut
/// and a hash of the whole added, so that the staged name fits in NAME_MAX (255 bytes).
const KEPT_NAME: usize = 200;

/// The prefix of the staged copies of `target`: `.NAME.maestro-guest.`, then a nonce.
pub(super) fn staging_prefix(target: &Path) -> Vec<u8> {
    let name = target
        .file_name()
        .map(OsStrExt::as_bytes)
        .unwrap_or_default();
    let mut prefix = b".".to_vec();
    if name.len() <= KEPT_NAME {
        prefix.extend_from_slice(name);
    } else {
        // `~` and 16 hex digits.
        prefix.extend_from_slice(&name[..KEPT_NAME - 17]);
        prefix.extend_from_slice(format!("~{:016x}", fnv1a(name)).as_bytes());
    }
    prefix.extend_from_slice(b".maestro-guest.");
    prefix
}

/// FNV-1a: a hash that stays the same across builds, so that a later run finds the
/// staged copies of an earlier one.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// 16 hex digits unique to one staging: from /dev/urandom, else (no /dev in a container
/// is unusual but possible) from the clock and pid. A pid alone is not unique: the guest
/// is pid 1 in every container, and containers may share a volume.
fn nonce() -> String {
    let mut bytes = [0u8; 8];
    if File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .is_err()
    {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        bytes = (nanos ^ u64::from(std::process::id()).rotate_left(40)).to_le_bytes();
    }
    format!("{:016x}", u64::from_le_bytes(bytes))
}

/// How old a staged copy must be to be taken as left by a killed run: far longer than
/// any staging takes, so that a copy another container is writing into a shared volume
/// right now stays.
const STALE_AFTER: Duration = Duration::from_secs(600);

/// Removes the staged copies of `target` (this version's `NONCE` or earlier versions'
/// `PID.N`) last modified before `cutoff`. Nothing else: no pid is trusted, as a pid
/// means nothing across PID namespaces.
fn remove_stale(target: &Path, cutoff: Option<SystemTime>) {
    let Some(cutoff) = cutoff else {
        return;
    };
    let prefix = staging_prefix(target);
    let Ok(entries) = fs::read_dir(folder_of(target)) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let ours = name
            .as_bytes()
            .strip_prefix(prefix.as_slice())
            .is_some_and(|rest| {
                (1..=32).contains(&rest.len())
                    && rest
                        .iter()
                        .all(|&b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b) || b == b'.')
            });
        // `DirEntry::metadata` does not follow a link: only our own regular files.
        let old = entry
            .metadata()
            .is_ok_and(|m| m.is_file() && m.modified().is_ok_and(|t| t < cutoff));
        if ours && old {
            let _ = fs::remove_file(entry.path());
        }
    }
}

fn discard(plans: &[Plan]) {
    for plan in plans {
        if let Plan::Replace { temp, .. } = plan {
            let _ = fs::remove_file(temp);
        }
    }
}

/// Writes `bytes` to a new temporary file next to `target` with `mode` (and `owner`),
/// fsynced. The file is removed again if any step fails.
fn stage(
    target: &Path,
    bytes: &[u8],
    mode: u32,
    owner: Option<(u32, u32)>,
) -> Result<PathBuf, String> {
    let prefix = staging_prefix(target);
    let dir = folder_of(target);
    let mut attempt = 0;
    let (temp, file) = loop {
        let mut name = prefix.clone();
        name.extend_from_slice(nonce().as_bytes());
        let temp = dir.join(OsString::from_vec(name));
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)
        {
            Ok(file) => break (temp, file),
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists && attempt < 8 => attempt += 1,
            Err(err) => return Err(err.to_string()),
        }
    };
    let filled = fill(&file, bytes, mode, owner);
    if filled.is_err() {
        let _ = fs::remove_file(&temp);
    }
    filled.map(|()| temp)
}

fn fill(mut file: &File, bytes: &[u8], mode: u32, owner: Option<(u32, u32)>) -> Result<(), String> {
    file.write_all(bytes).map_err(|err| err.to_string())?;
    if let Some((uid, gid)) = owner {
        let made = file.metadata().map_err(|err| err.to_string())?;
        // A file that changed owner would be a way to take it over, or to lock its owner
        // out of it; rewriting it in place instead could leave it half written.
        if (made.uid(), made.gid()) != (uid, gid) {
            std::os::unix::fs::fchown(file, Some(uid), Some(gid)).map_err(|err| {
                format!("cannot give the new file the owner of the old one (uid {uid}, gid {gid}): {err}")
            })?;
        }
    }
    // After chown, which clears the set-id bits.
    file.set_permissions(Permissions::from_mode(mode))
        .and_then(|()| file.sync_all())
        .map_err(|err| err.to_string())
}

/// Applies every plan, in order; then fsyncs the directories that got new entries.
fn commit(
    specs: &[RenderSpec],
    plans: Vec<Plan>,
    texts: Vec<String>,
) -> Result<Vec<Rendered>, String> {
    let mut done = Vec::with_capacity(specs.len());
    let mut dirs = BTreeSet::new();
    let mut plans = plans.into_iter();
    for ((spec, text), plan) in specs.iter().zip(texts).zip(plans.by_ref()) {
        let change = match apply(&plan, text.as_bytes(), &mut dirs) {
            Ok(Some(change)) => change,
            Ok(None) => Change::Stdout(text),
            Err(err) => {
                discard(&[plan]);
                discard(&plans.collect::<Vec<_>>());
                let mut message = format!("cannot write {}: {err}", spec.dst);
                let written: Vec<String> = done
                    .iter()
                    .filter(|r: &&Rendered| {
                        matches!(r.change, Change::Written | Change::ModeChanged)
                    })
                    .map(|r| r.dst.to_string())
                    .collect();
                if !written.is_empty() {
                    message.push_str(&format!("\nalready written: {}", written.join(", ")));
                }
                sync_dirs(&dirs);
                return Err(message);
            }
        };
        done.push(Rendered {
            src: spec.src.clone(),
            dst: spec.dst.clone(),
            change,
        });
    }
    sync_dirs(&dirs);
    Ok(done)
}

/// Makes the renames durable. Some filesystems refuse to fsync a directory; the files
/// themselves are synced already, so that is no failure.
fn sync_dirs(dirs: &BTreeSet<PathBuf>) {
    for dir in dirs {
        let _ = File::open(dir).and_then(|d| d.sync_all());
    }
}

/// `None` for standard output.
fn apply(plan: &Plan, bytes: &[u8], dirs: &mut BTreeSet<PathBuf>) -> io::Result<Option<Change>> {
    match plan {
        Plan::Stdout => Ok(None),
        Plan::Keep => Ok(Some(Change::Unchanged)),
        Plan::Chmod(file, mode) => {
            file.set_permissions(Permissions::from_mode(*mode))?;
            Ok(Some(Change::ModeChanged))
        }
        Plan::InPlace { file, mode } => {
            write_in_place(file, bytes, *mode)?;
            Ok(Some(Change::Written))
        }
        Plan::Replace { temp, target, mode } => {
            match fs::rename(temp, target) {
                Ok(()) => {
                    dirs.insert(folder_of(target).to_path_buf());
                }
                // A mount point that checking did not recognise (an older kernel, a bind
                // mount within one filesystem): the last resort is the one left.
                Err(err) if refused_rename(&err) => {
                    let _ = fs::remove_file(temp);
                    let file = open_in_place(target).map_err(|err| match err {
                        Unreadable::Io(err) => err,
                        other => io::Error::other(other.to_string()),
                    })?;
                    let current = file.metadata()?.mode() & 0o7777;
                    write_in_place(&file, bytes, (current != *mode).then_some(*mode))?;
                }
                Err(err) => return Err(err),
            }
            Ok(Some(Change::Written))
        }
    }
}

/// EBUSY (the target is a mount point, as a bind-mounted file is) or EXDEV.
pub(super) fn refused_rename(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ResourceBusy | io::ErrorKind::CrossesDevices
    )
}

/// Rewrites a mount point's content, keeping its inode and owner. This is not atomic, and
/// cannot be: only rename(2) replaces content at once, and a mount point refuses it. The
/// best available is what is done: the text is rendered in full beforehand, and written
/// with one `write_all` right after the truncation, so the time in which a reader (or a
/// kill) finds the file short is one write. The mode comes first, so that a secret never
/// sits under the old, wider one.
pub(super) fn write_in_place(file: &File, bytes: &[u8], mode: Option<u32>) -> io::Result<()> {
    if let Some(mode) = mode {
        file.set_permissions(Permissions::from_mode(mode))?;
    }
    file.set_len(0)?;
    file.write_all_at(bytes, 0)?;
    file.sync_all()
}
