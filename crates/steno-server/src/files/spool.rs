//! The spool folder: uploads, job records, finished windows and results on disk; every write atomic (a temporary file, fsync, rename), so a crash never leaves a half-written record or a result reported as done.
//!
//! ```text
//! SPOOL/instance                 this instance's id (made at the first start)
//! SPOOL/tmp/                     uploads being received (emptied at start)
//! SPOOL/jobs/ID/job.json         the job's record (status, progress, times)
//! SPOOL/jobs/ID/upload.EXT       the upload, until the job ends
//! SPOOL/jobs/ID/windows/N.json   each finished window's segments
//! SPOOL/jobs/ID/result.json      the transcription, written before `done`
//! ```

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::format::TimedSegment;
use super::transcribe::WindowStore;

/// `ENOSPC` on Linux: a full disk, answered 507.
pub const NO_SPACE: i32 = 28;

/// Whether an I/O error means the disk is full.
pub fn is_disk_full(e: &std::io::Error) -> bool {
    e.raw_os_error() == Some(NO_SPACE)
}

#[derive(Clone, Debug)]
pub struct Spool {
    root: PathBuf,
}

impl Spool {
    /// Opens (making it if needed) the spool at `root`; empties `tmp/`.
    pub fn open(root: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(root.join("jobs"))?;
        let tmp = root.join("tmp");
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp)?;
        Ok(Self {
            root: root.to_path_buf(),
        })
    }

    /// The instance id kept in the spool, made (random) at the first start.
    pub fn instance_id(&self) -> std::io::Result<String> {
        let path = self.root.join("instance");
        match std::fs::read_to_string(&path) {
            Ok(id) if !id.trim().is_empty() => Ok(id.trim().to_string()),
            _ => {
                let id = format!("{:08x}", rand::random::<u32>());
                write_atomic(&path, id.as_bytes())?;
                Ok(id)
            }
        }
    }

    /// A fresh path for an upload being received.
    pub fn temp_path(&self) -> PathBuf {
        self.root
            .join("tmp")
            .join(format!("{:032x}", rand::random::<u128>()))
    }

    pub fn job_dir(&self, id: &str) -> PathBuf {
        self.root.join("jobs").join(id)
    }

    /// Ids of every job on disk.
    pub fn job_ids(&self) -> std::io::Result<Vec<String>> {
        let mut ids = Vec::new();
        for entry in std::fs::read_dir(self.root.join("jobs"))? {
            let entry = entry?;
            if entry.file_type()?.is_dir()
                && let Some(name) = entry.file_name().to_str()
            {
                ids.push(name.to_string());
            }
        }
        ids.sort();
        Ok(ids)
    }

    /// Bytes the spool holds now.
    pub fn usage_bytes(&self) -> u64 {
        dir_size(&self.root)
    }
}

fn dir_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_size(&e.path()),
            Ok(_) => e.metadata().map_or(0, |m| m.len()),
            Err(_) => 0,
        })
        .sum()
}

/// Writes `bytes` to `path` so that a reader sees the old file or the new
/// one, never a part: a temporary file beside it, fsync, rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp{:08x}", rand::random::<u32>()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

pub fn write_json<T: Serialize>(path: &Path, value: &T) -> std::io::Result<()> {
    let bytes = serde_json::to_vec(value).map_err(std::io::Error::other)?;
    write_atomic(path, &bytes)
}

pub fn read_json<T: DeserializeOwned>(path: &Path) -> std::io::Result<T> {
    let bytes = std::fs::read(path)?;
    serde_json::from_slice(&bytes)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// A job's finished windows, one file each, read and written on tokio's
/// blocking pool.
pub struct DiskStore {
    dir: PathBuf,
}

impl DiskStore {
    pub fn new(job_dir: &Path) -> std::io::Result<Self> {
        let dir = job_dir.join("windows");
        std::fs::create_dir_all(&dir)?;
        Ok(Self { dir })
    }

    fn path(&self, index: u32) -> PathBuf {
        self.dir.join(format!("{index:06}.json"))
    }
}

impl WindowStore for DiskStore {
    async fn done(&self, index: u32) -> Option<Vec<TimedSegment>> {
        let path = self.path(index);
        tokio::task::spawn_blocking(move || read_json(&path).ok())
            .await
            .ok()
            .flatten()
    }

    async fn save(&mut self, index: u32, segments: Vec<TimedSegment>) -> std::io::Result<()> {
        let path = self.path(index);
        tokio::task::spawn_blocking(move || write_json(&path, &segments))
            .await
            .map_err(std::io::Error::other)?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn writes_are_whole_and_windows_come_back() {
        let root = std::env::temp_dir().join(format!("steno-spool-{}", std::process::id()));
        let spool = Spool::open(&root).unwrap();
        let id = spool.instance_id().unwrap();
        assert_eq!(spool.instance_id().unwrap(), id, "kept across calls");
        let dir = spool.job_dir("a-1");
        std::fs::create_dir_all(&dir).unwrap();
        let mut store = DiskStore::new(&dir).unwrap();
        assert!(store.done(0).await.is_none());
        let seg = TimedSegment {
            start_s: 1.0,
            end_s: 2.0,
            text: "hi".into(),
            words: vec![],
        };
        store.save(0, vec![seg.clone()]).await.unwrap();
        assert_eq!(store.done(0).await, Some(vec![seg]));
        assert_eq!(spool.job_ids().unwrap(), ["a-1"]);
        assert!(spool.usage_bytes() > 0);
        // No temporary files are left behind.
        let names: Vec<_> = std::fs::read_dir(dir.join("windows"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, ["000000.json"]);
        std::fs::remove_dir_all(&root).unwrap();
    }
}
