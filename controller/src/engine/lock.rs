//! Locks (see `crate::lock`) on a ship's Docker engine: a container created from an
//! empty image maestro imports itself, never started; its heartbeat is a file written
//! and read through the archive API, in a tar made here (one file needs no tar crate).

use std::collections::BTreeMap;

use bollard::models::ContainerCreateBody;
use bollard::query_parameters::{
    CreateContainerOptions, CreateImageOptions, DownloadFromContainerOptions,
    UploadToContainerOptions,
};
use futures_util::StreamExt;

use super::EngineError;
use super::docker::{DockerEngine, daemon, is_not_found, shown};
use crate::lock::{self, Created, Found, LockStore};

/// The heartbeat's file in the lock container.
const HEARTBEAT_DIR: &str = "/";
const HEARTBEAT_FILE: &str = "heartbeat";
/// A tar is made of 512-byte blocks.
const BLOCK: usize = 512;
/// An empty tar: two zero blocks, padded to tar's usual 20-block record.
const EMPTY_TAR: usize = 20 * BLOCK;

impl LockStore for DockerEngine {
    async fn connect(&self) {
        let _ = self.client().await;
    }

    async fn import_lock_image(&self) -> Result<(), EngineError> {
        let docker = self.client().await?;
        let (repo, tag) = lock::IMAGE
            .split_once(':')
            .unwrap_or((lock::IMAGE, "latest"));
        // `docker import` of an empty tar: an image with no files, which no registry
        // needs to provide. Two plays importing at once only tag the same image twice.
        let options = CreateImageOptions {
            from_src: Some("-".to_owned()),
            repo: Some(repo.to_owned()),
            tag: Some(tag.to_owned()),
            ..Default::default()
        };
        let body = bollard::body_full(vec![0u8; EMPTY_TAR].into());
        let import = async {
            let mut progress = docker.create_image(Some(options), Some(body), None);
            while let Some(item) = progress.next().await {
                let info = item.map_err(daemon)?;
                if let Some(message) = info.error_detail.and_then(|d| d.message) {
                    return Err(EngineError::Daemon(format!(
                        "cannot import the lock image {}: {message}",
                        lock::IMAGE
                    )));
                }
            }
            Ok(())
        };
        self.request(|| format!("import of image {}", lock::IMAGE), import)
            .await
    }

    async fn create_lock(
        &self,
        name: &str,
        labels: &[(String, String)],
    ) -> Result<Created, EngineError> {
        let docker = self.client().await?;
        let body = ContainerCreateBody {
            image: Some(lock::IMAGE.to_owned()),
            cmd: Some(vec![lock::COMMAND.to_owned()]),
            labels: Some(labels.iter().cloned().collect()),
            network_disabled: Some(true),
            ..Default::default()
        };
        let options = CreateContainerOptions {
            name: Some(name.to_owned()),
            ..Default::default()
        };
        self.request(|| format!("create of {name}"), async {
            match docker.create_container(Some(options), body).await {
                Ok(created) => Ok(Created::Made(created.id)),
                Err(bollard::errors::Error::DockerResponseServerError {
                    status_code: 409, ..
                }) => Ok(Created::Conflict),
                // "No such image": the only thing a create finds missing.
                Err(e) if is_not_found(&e) => Ok(Created::NoImage),
                Err(e) => Err(daemon(e)),
            }
        })
        .await
    }

    async fn find_lock(&self, name: &str) -> Result<Option<Found>, EngineError> {
        let docker = self.client().await?;
        self.request(|| format!("inspect of {name}"), find(docker, name))
            .await
    }

    async fn beat_lock(&self, id: &str, at: i64) -> Result<(), EngineError> {
        let docker = self.client().await?;
        let content = format!("{}\n", lock::rfc3339(at));
        let tar = tar_of(HEARTBEAT_FILE, content.as_bytes(), at);
        let options = UploadToContainerOptions {
            path: HEARTBEAT_DIR.to_owned(),
            ..Default::default()
        };
        self.request(|| format!("heartbeat of {}", shown(id)), async {
            docker
                .upload_to_container(id, Some(options), bollard::body_full(tar.into()))
                .await
                .map_err(daemon)
        })
        .await
    }

    async fn remove_lock(&self, id: &str) -> Result<(), EngineError> {
        let docker = self.client().await?;
        self.request(|| format!("removal of {}", shown(id)), async {
            match docker.remove_container(id, None).await {
                Err(e) if is_not_found(&e) => Ok(()),
                other => other.map_err(daemon),
            }
        })
        .await
    }
}

/// The lock container `name` and its heartbeat: an inspect and a download.
async fn find(docker: &bollard::Docker, name: &str) -> Result<Option<Found>, EngineError> {
    let container = match docker.inspect_container(name, None).await {
        Ok(c) => c,
        Err(e) if is_not_found(&e) => return Ok(None),
        Err(e) => return Err(daemon(e)),
    };
    let id = container.id.unwrap_or_default();
    let labels: BTreeMap<String, String> = container
        .config
        .and_then(|c| c.labels)
        .unwrap_or_default()
        .into_iter()
        .collect();
    let options = DownloadFromContainerOptions {
        path: format!("{HEARTBEAT_DIR}{HEARTBEAT_FILE}"),
    };
    let mut tar = Vec::new();
    let mut stream = docker.download_from_container(&id, Some(options));
    let mut heartbeat_missing = false;
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(bytes) => tar.extend_from_slice(&bytes),
            // Not written yet (or the lock vanished since: then there is no heartbeat
            // either, and the caller's next step finds out).
            Err(e) if is_not_found(&e) => {
                heartbeat_missing = true;
                break;
            }
            Err(e) => return Err(daemon(e)),
        }
    }
    let heartbeat = if heartbeat_missing {
        None
    } else {
        first_file(&tar)
            .and_then(|content| std::str::from_utf8(content).ok())
            .and_then(|text| lock::parse_rfc3339(text.trim()))
    };
    Ok(Some(Found {
        id,
        labels,
        heartbeat,
    }))
}

/// A tar holding one regular file `name` (at most 100 bytes of name, mode 0644, owned by
/// root), in the POSIX ustar format.
fn tar_of(name: &str, content: &[u8], mtime: i64) -> Vec<u8> {
    let mut header = [0u8; BLOCK];
    let field = |header: &mut [u8; BLOCK], at: usize, value: &[u8]| {
        header[at..at + value.len()].copy_from_slice(value);
    };
    // Numbers are octal, zero-padded, NUL-terminated.
    let octal = |width: usize, value: u64| format!("{value:0w$o}\0", w = width - 1);
    let name = &name.as_bytes()[..name.len().min(100)];
    field(&mut header, 0, name);
    field(&mut header, 100, octal(8, 0o644).as_bytes());
    field(&mut header, 108, octal(8, 0).as_bytes());
    field(&mut header, 116, octal(8, 0).as_bytes());
    field(&mut header, 124, octal(12, content.len() as u64).as_bytes());
    field(
        &mut header,
        136,
        octal(12, u64::try_from(mtime).unwrap_or(0)).as_bytes(),
    );
    header[156] = b'0';
    field(&mut header, 257, b"ustar\0");
    field(&mut header, 263, b"00");
    field(&mut header, 329, octal(8, 0).as_bytes());
    field(&mut header, 337, octal(8, 0).as_bytes());
    // The checksum is the sum of the header's bytes with its own field as spaces.
    field(&mut header, 148, b"        ");
    let sum: u32 = header.iter().map(|&b| u32::from(b)).sum();
    field(&mut header, 148, format!("{sum:06o}\0 ").as_bytes());

    let padded = content.len().div_ceil(BLOCK) * BLOCK;
    let mut tar = Vec::with_capacity(BLOCK + padded + 2 * BLOCK);
    tar.extend_from_slice(&header);
    tar.extend_from_slice(content);
    tar.resize(BLOCK + padded + 2 * BLOCK, 0);
    tar
}

/// The content of the first entry of a tar, if it is a regular file whose header's
/// checksum is right.
fn first_file(tar: &[u8]) -> Option<&[u8]> {
    let header = tar.get(..BLOCK)?;
    let number = |range: std::ops::Range<usize>| -> Option<u64> {
        let text = std::str::from_utf8(&header[range]).ok()?;
        let text = text.trim_matches(|c: char| c == '\0' || c == ' ');
        u64::from_str_radix(text, 8).ok()
    };
    let sum: u64 = header
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                32
            } else {
                u64::from(b)
            }
        })
        .sum();
    if number(148..156)? != sum || !matches!(header[156], b'0' | 0) {
        return None;
    }
    let size = usize::try_from(number(124..136)?).ok()?;
    tar.get(BLOCK..BLOCK.checked_add(size)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tar_of_one_file_reads_back() {
        let tar = tar_of("heartbeat", b"2024-05-01T12:00:00Z\n", 1_714_564_800);
        assert_eq!(tar.len(), 4 * BLOCK);
        assert_eq!(first_file(&tar), Some(&b"2024-05-01T12:00:00Z\n"[..]));
        assert_eq!(&tar[..9], b"heartbeat");
        assert_eq!(&tar[257..263], b"ustar\0");
    }

    #[test]
    fn a_tar_with_a_wrong_checksum_or_short_content_is_refused() {
        let mut tar = tar_of("heartbeat", b"x", 0);
        tar[0] = b'H';
        assert_eq!(first_file(&tar), None);
        let tar = tar_of("heartbeat", &[b'x'; 600], 0);
        assert_eq!(first_file(&tar[..700]), None);
        assert_eq!(first_file(&tar).map(<[u8]>::len), Some(600));
        assert_eq!(first_file(b"short"), None);
    }

    /// The header GNU tar writes for the same file, checksum included (made with
    /// `tar --format=ustar --owner=0 --group=0 --numeric-owner --mtime=@1714564800`).
    #[test]
    fn the_header_matches_gnu_tar() {
        let mut gnu = [0u8; BLOCK];
        for (at, value) in [
            (0, &b"heartbeat"[..]),
            (100, b"0000644\0"),
            (108, b"0000000\0"),
            (116, b"0000000\0"),
            (124, b"00000000025\0"),
            (136, b"14614427300\0"),
            (148, b"011124\0 "),
            (156, b"0"),
            (257, b"ustar\0"),
            (263, b"00"),
            (329, b"0000000\0"),
            (337, b"0000000\0"),
        ] {
            gnu[at..at + value.len()].copy_from_slice(value);
        }
        let tar = tar_of("heartbeat", b"2024-05-01T12:00:00Z\n", 1_714_564_800);
        assert_eq!(tar[..BLOCK], gnu[..]);
    }
}

/// Against this machine's Docker engine (the end-to-end tests need it too; the tests crate
/// cannot reach this implementation, only the binary).
#[cfg(test)]
mod engine_tests {
    use super::*;
    use maestro_core::model::Ship;

    /// Removes the test's container, and the lock image if the test imported it, even
    /// when the test fails.
    struct Cleanup {
        name: String,
        image_was_there: bool,
    }

    impl Drop for Cleanup {
        fn drop(&mut self) {
            let docker = |args: &[&str]| std::process::Command::new("docker").args(args).output();
            let _ = docker(&["rm", "-f", &self.name]);
            if !self.image_was_there {
                // Refused (harmlessly) while a lock container of someone else uses it.
                let _ = docker(&["rmi", lock::IMAGE]);
            }
        }
    }

    #[tokio::test]
    async fn a_lock_on_the_real_engine_is_created_once_beaten_read_and_removed() {
        let mut ship = Ship::new("local", "127.0.0.1");
        ship.socket_path = Some("/var/run/docker.sock".into());
        let engine = DockerEngine::new(ship, ".".into(), 16);
        let name = format!("maestro-lock.unit-{}.local", std::process::id());
        let image_was_there = engine
            .client()
            .await
            .expect("the local Docker engine runs")
            .inspect_image(lock::IMAGE)
            .await
            .is_ok();
        let _cleanup = Cleanup {
            name: name.clone(),
            image_was_there,
        };

        let labels = vec![(
            lock::labels::ROLE.to_owned(),
            lock::labels::ROLE_LOCK.to_owned(),
        )];
        if !image_was_there {
            assert_eq!(
                engine.create_lock(&name, &labels).await.unwrap(),
                Created::NoImage
            );
        }
        engine.import_lock_image().await.expect("imported");
        // Another play may import it at the same time: a second import only tags it again.
        engine.import_lock_image().await.expect("imported again");
        let Created::Made(id) = engine.create_lock(&name, &labels).await.unwrap() else {
            panic!("{name} is new");
        };
        assert_eq!(
            engine.create_lock(&name, &labels).await.unwrap(),
            Created::Conflict
        );
        let found = engine.find_lock(&name).await.unwrap().expect("found");
        assert_eq!((found.id.as_str(), found.heartbeat), (id.as_str(), None));
        assert_eq!(found.labels[lock::labels::ROLE], "lock");
        engine.beat_lock(&id, 1_714_564_800).await.unwrap();
        let found = engine.find_lock(&name).await.unwrap().unwrap();
        assert_eq!(found.heartbeat, Some(1_714_564_800));
        engine.beat_lock(&id, 1_714_564_810).await.unwrap();
        let found = engine.find_lock(&name).await.unwrap().unwrap();
        assert_eq!(found.heartbeat, Some(1_714_564_810), "overwritten");

        engine.remove_lock(&id).await.unwrap();
        engine.remove_lock(&id).await.expect("already gone is fine");
        assert_eq!(engine.find_lock(&name).await.unwrap(), None);
        assert!(engine.beat_lock(&id, 1).await.is_err());
    }
}
