//! Image folders for `eval`, `sensitivity` and `compress --calibrate`: every JPEG, PNG or WebP
//! under them, read and handed to the session by path (its labels come from the path).

use std::path::{Path, PathBuf};

use modelslim::session::Session;
use modelslim::{Error, Result};

use super::read_file;

fn is_image(p: &Path) -> bool {
    p.extension().and_then(|x| x.to_str()).is_some_and(|x| {
        matches!(
            x.to_ascii_lowercase().as_str(),
            "jpg" | "jpeg" | "png" | "webp"
        )
    })
}

/// Every JPEG/PNG/WebP under `dirs` (recursively, in path order): its path and bytes.
pub fn image_files(dirs: &[&str]) -> Result<Vec<(String, Vec<u8>)>> {
    let mut paths = Vec::new();
    for dir in dirs {
        let root = PathBuf::from(dir);
        if !root.is_dir() {
            return Err(Error::Invalid(format!("{dir} is not a folder")));
        }
        let mut stack = vec![root];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).map_err(|e| Error::io(&d, e))? {
                let p = e.map_err(|e| Error::io(&d, e))?.path();
                if p.is_dir() {
                    stack.push(p);
                } else if is_image(&p) {
                    paths.push(p);
                }
            }
        }
    }
    paths.sort();
    if paths.is_empty() {
        return Err(Error::Invalid(format!(
            "{} holds no JPEG, PNG or WebP images",
            dirs.join(", ")
        )));
    }
    paths
        .iter()
        .map(|p| Ok((p.display().to_string(), read_file(p)?)))
        .collect()
}

/// Keep every image under `dirs` in the session (labels come from their paths); how many.
pub fn keep_photos(session: &Session, dirs: &[&str]) -> Result<usize> {
    let files = image_files(dirs)?;
    let n = files.len();
    for (name, bytes) in files {
        session.keep_photo(name, bytes)?;
    }
    Ok(n)
}
