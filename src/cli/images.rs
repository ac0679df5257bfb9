//! Image folders for `eval`, `sensitivity` and `compress --calibrate`: every JPEG, PNG or WebP
//! under them, read and handed to the session by path (its labels come from the path, or from
//! a `labels.csv` beside it).

use std::path::{Path, PathBuf};

use modelslim::labels::PHOTO_LABELS_FILE;
use modelslim::preprocess::is_image_extension;
use modelslim::session::Session;
use modelslim::{Error, Result};

use super::read_file;

fn is_image(p: &Path) -> bool {
    p.extension()
        .and_then(|x| x.to_str())
        .is_some_and(is_image_extension)
}

/// Every JPEG/PNG/WebP under `dirs` (recursively, in path order): its path and bytes.
pub fn image_files(dirs: &[&str]) -> Result<Vec<(String, Vec<u8>)>> {
    image_paths(dirs)?
        .iter()
        .map(|p| Ok((p.display().to_string(), read_file(p)?)))
        .collect()
}

/// Every JPEG/PNG/WebP path under `dirs`, recursively, in path order.
fn image_paths(dirs: &[&str]) -> Result<Vec<PathBuf>> {
    let paths = files_under(dirs, is_image)?;
    if paths.is_empty() {
        return Err(Error::Invalid(format!(
            "{} holds no JPEG, PNG or WebP images",
            dirs.join(", ")
        )));
    }
    Ok(paths)
}

/// Give the session every labels file (`labels.csv`) under `dirs`; how many photos they label.
pub fn keep_photo_labels(session: &Session, dirs: &[&str]) -> Result<usize> {
    let is_labels = |p: &Path| {
        p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.eq_ignore_ascii_case(PHOTO_LABELS_FILE))
    };
    let mut n = 0;
    for p in files_under(dirs, is_labels)? {
        let bytes = read_file(&p)?;
        let name = p.display().to_string();
        let text = String::from_utf8(bytes).map_err(|_| {
            Error::Invalid(format!("{name} is not UTF-8 text: save it as a UTF-8 CSV"))
        })?;
        n += session.add_photo_labels(&name, &text)?;
    }
    Ok(n)
}

/// Every file under `dirs` (recursively, in path order) that `keep` keeps.
fn files_under(dirs: &[&str], keep: impl Fn(&Path) -> bool) -> Result<Vec<PathBuf>> {
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
                } else if keep(&p) {
                    paths.push(p);
                }
            }
        }
    }
    paths.sort();
    Ok(paths)
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

/// [`keep_photos`], leaving out each photo that cannot be read or decoded with a one-line
/// warning on stderr; how many were left out. Fails only when no photo is left.
pub fn keep_photos_skipping_bad(session: &Session, dirs: &[&str]) -> Result<usize> {
    let paths = image_paths(dirs)?;
    let mut skipped = 0;
    for p in &paths {
        let name = p.display().to_string();
        if let Err(e) = read_file(p).and_then(|bytes| session.keep_photo(name, bytes).map(drop)) {
            eprintln!(
                "modelslim: warning: skipped {}",
                super::one_line(&e.to_string())
            );
            skipped += 1;
        }
    }
    if skipped == paths.len() {
        return Err(Error::Invalid(format!(
            "none of the {skipped} images under {} could be read",
            dirs.join(", ")
        )));
    }
    Ok(skipped)
}
