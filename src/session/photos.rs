//! The photos a session keeps — decoded and preprocessed for the loaded model, classified,
//! cached logits of the original — and what a photo's name says: the ImageNet class it shows,
//! when the name carries one (`n01440764/fish.jpg`, `imagenet-val/n01440764/…`, or
//! `n01440764_123.JPEG`).

use std::cell::RefCell;
use std::future::Future;
use std::rc::Rc;

use web_time::Instant;

use super::{Classified, PhotoResult, Session, ms_since, no_progress};
use crate::compress::{Progress, report};
use crate::labels::{Classes, PhotoLabels, class_of_folder, class_of_wnid};
use crate::{Error, Result};

/// A kept photo.
pub(super) struct Photo {
    pub name: String,
    /// The file, kept to preprocess again for a network with another input convention.
    pub bytes: Vec<u8>,
    pub input: RefCell<Vec<f32>>,
    /// The loaded original's logits (reset when another model loads).
    pub original_logits: RefCell<Option<Vec<f32>>>,
}

impl Session {
    /// An image file decoded and preprocessed for the loaded model, and the time it took (ms);
    /// the error names the file.
    fn preprocess(&self, name: &str, bytes: &[u8]) -> Result<(Vec<f32>, f64)> {
        let original = self.original()?;
        let t = Instant::now();
        let input = original
            .model
            .preprocess()
            .run(bytes)
            .map_err(|e| Error::Invalid(format!("{name}: {e}")))?;
        Ok((input, ms_since(t)))
    }

    /// Decode and preprocess a photo for the loaded model.
    fn photo(&self, name: String, bytes: Vec<u8>) -> Result<(Photo, f64)> {
        let (input, ms) = self.preprocess(&name, &bytes)?;
        Ok((
            Photo {
                name,
                bytes,
                input: RefCell::new(input),
                original_logits: RefCell::new(None),
            },
            ms,
        ))
    }

    /// Keep a photo for calibration, agreement and scoring without classifying it; returns its
    /// index.
    pub fn keep_photo(&self, name: impl Into<String>, bytes: Vec<u8>) -> Result<usize> {
        let (photo, _) = self.photo(name.into(), bytes)?;
        let mut s = self.state.borrow_mut();
        s.photos.push(Rc::new(photo));
        Ok(s.photos.len() - 1)
    }

    /// Keep a photo for batch-norm recalibration only.
    pub fn keep_batch_norm_photo(&self, name: impl Into<String>, bytes: Vec<u8>) -> Result<()> {
        let (photo, _) = self.photo(name.into(), bytes)?;
        self.state
            .borrow_mut()
            .batch_norm_photos
            .push(Rc::new(photo));
        Ok(())
    }

    /// The kept photo `index` as the loaded model's input (CHW, a square of the model's
    /// side): what another runtime must be given to compare its answers with this one's.
    pub fn photo_input(&self, index: usize) -> Result<Vec<f32>> {
        let s = self.state.borrow();
        let photo = s.photos.get(index).ok_or_else(|| {
            Error::Invalid(format!(
                "there is no photo {index}: {} are kept",
                s.photos.len()
            ))
        })?;
        Ok(photo.input.borrow().clone())
    }

    /// Forget the kept photos (and their labels files).
    pub fn clear_photos(&self) {
        let mut s = self.state.borrow_mut();
        s.photos.clear();
        s.batch_norm_photos.clear();
        s.photo_labels = PhotoLabels::default();
    }

    /// Label the photos from a labels file `name` (rows `file,class`; see [`PhotoLabels`]),
    /// besides those read before; how many rows it has. Its rows win over the photos' paths.
    pub fn add_photo_labels(&self, name: &str, text: &str) -> Result<usize> {
        let labels = PhotoLabels::parse(name, text)?;
        let n = labels.len();
        self.state.borrow_mut().photo_labels.extend(labels);
        Ok(n)
    }

    /// Classify one image file with the loaded model, without keeping it.
    pub async fn classify(&self, name: &str, bytes: &[u8]) -> Result<Classified> {
        let (input, preprocess_ms) = self.preprocess(name, bytes)?;
        let original = self.original()?;
        let (mut logits, ms, cold) = original.run(&[input]).await?;
        Ok(Classified {
            preprocess_ms,
            answer: original.answer(logits.pop().unwrap_or_default(), ms, cold),
        })
    }

    /// Keep a photo and classify it with the original and, when there is one, the compressed
    /// model.
    pub async fn add_photo(&self, name: impl Into<String>, bytes: Vec<u8>) -> Result<PhotoResult> {
        let (photo, preprocess_ms) = self.photo(name.into(), bytes)?;
        let photo = Rc::new(photo);
        let mut result = self
            .classify_photos(std::slice::from_ref(&photo), 1)
            .await?;
        let index = {
            let mut s = self.state.borrow_mut();
            s.photos.push(photo);
            s.photos.len() - 1
        };
        let mut r = result.pop().ok_or(Error::Cancelled)?;
        r.index = index;
        r.preprocess_ms = preprocess_ms;
        Ok(r)
    }

    /// Classify every kept photo again (after another model was loaded); `progress` is told
    /// before each batch and may cancel.
    pub async fn predict_all<P, F>(&self, mut progress: P) -> Result<Vec<PhotoResult>>
    where
        P: FnMut(Progress) -> F,
        F: Future<Output = bool>,
    {
        let photos = self.state.borrow().photos.clone();
        let mut out = Vec::with_capacity(photos.len());
        let batch = self.batches.display.max(1);
        for (i, chunk) in photos.chunks(batch).enumerate() {
            let p = Progress {
                step: i + 1,
                steps: photos.len().div_ceil(batch),
                label: "classifying your photos".into(),
            };
            report(&mut progress, p).await?;
            let mut rows = self.classify_photos(chunk, chunk.len()).await?;
            for (k, r) in rows.iter_mut().enumerate() {
                r.index = i * batch + k;
            }
            out.extend(rows);
        }
        Ok(out)
    }

    /// The original's (cached) and the compressed model's answers for `photos`, in one batch.
    async fn classify_photos(
        &self,
        photos: &[Rc<Photo>],
        batch: usize,
    ) -> Result<Vec<PhotoResult>> {
        let original = self.original()?;
        let compressed = self.state.borrow().compressed.clone();
        let inputs: Vec<Vec<f32>> = photos.iter().map(|p| p.input.borrow().clone()).collect();
        let originals = original
            .answers(&inputs, batch, "", &mut no_progress)
            .await?;
        let compressed = match &compressed {
            Some(c) => Some(
                c.loaded
                    .answers(&inputs, batch, "", &mut no_progress)
                    .await?,
            ),
            None => None,
        };
        let mut out = Vec::with_capacity(photos.len());
        for (i, (p, o)) in photos.iter().zip(originals).enumerate() {
            *p.original_logits.borrow_mut() = Some(o.logits.clone());
            out.push(PhotoResult {
                index: i,
                name: p.name.clone(),
                preprocess_ms: 0.0,
                original: Some(o),
                compressed: compressed.as_ref().and_then(|c| c.get(i).cloned()),
            });
        }
        Ok(out)
    }

    /// The loaded original's logits for every kept photo, from the cache where present.
    pub(super) async fn original_logits<P, F>(&self, progress: &mut P) -> Result<Vec<Vec<f32>>>
    where
        P: FnMut(Progress) -> F,
        F: Future<Output = bool>,
    {
        let original = self.original()?;
        let photos = self.state.borrow().photos.clone();
        let missing: Vec<Rc<Photo>> = photos
            .iter()
            .filter(|p| p.original_logits.borrow().is_none())
            .cloned()
            .collect();
        if !missing.is_empty() {
            let inputs: Vec<Vec<f32>> = missing.iter().map(|p| p.input.borrow().clone()).collect();
            let answers = original
                .answers(
                    &inputs,
                    self.batches.calibration,
                    "classifying your photos with the original model",
                    progress,
                )
                .await?;
            for (p, a) in missing.iter().zip(answers) {
                *p.original_logits.borrow_mut() = Some(a.logits);
            }
        }
        Ok(photos
            .iter()
            .map(|p| p.original_logits.borrow().clone().unwrap_or_default())
            .collect())
    }

    /// The kept photos' inputs, and the separate batch-norm photos' (empty when none were given).
    pub(super) fn inputs(&self) -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
        let s = self.state.borrow();
        let of = |v: &[Rc<Photo>]| v.iter().map(|p| p.input.borrow().clone()).collect();
        (of(&s.photos), of(&s.batch_norm_photos))
    }
}

/// The class a photo's name or path carries, of a model answering in `classes`: for ImageNet's,
/// its file name's `wnid_` prefix, else its parent folder's wnid; else the parent folder's name
/// as a class name (see [`class_of_folder`]). Both `/` and `\` separate folders.
pub fn label_of_name(name: &str, classes: Classes<'_>) -> Option<usize> {
    let mut parts = name.rsplit(['/', '\\']);
    let file = parts.next()?;
    let folder = parts.next();
    let by_wnid = match classes {
        Classes::ImageNet => file
            .split_once('_')
            .and_then(|(w, _)| class_of_wnid(w))
            .or_else(|| folder.and_then(class_of_wnid)),
        _ => None,
    };
    by_wnid.or_else(|| folder.and_then(|f| class_of_folder(f, classes)))
}

#[cfg(test)]
mod tests {
    use super::label_of_name;
    use crate::labels::Classes;

    #[test]
    fn labels_from_file_prefix_or_parent_folder() {
        let label = |name| label_of_name(name, Classes::ImageNet);
        assert_eq!(label("n01440764_10026.JPEG"), Some(0));
        assert_eq!(label("data/n01443537/photo.jpg"), Some(1));
        assert_eq!(label(r"data\n01443537\photo.jpg"), Some(1));
        // The file name's prefix wins over the folder.
        assert_eq!(label("n01443537/n01440764_1.jpg"), Some(0));
        assert_eq!(label("holiday/beach.jpg"), None);
        assert_eq!(label("beach.jpg"), None);
    }

    #[test]
    fn labels_from_folders_named_by_class() {
        // Any of an ImageNet class's names, in any case, `_` for a space.
        let imagenet = |name| label_of_name(name, Classes::ImageNet);
        assert_eq!(imagenet("photos/Golden_Retriever/1.jpg"), Some(207));
        assert_eq!(imagenet("photos/goldfish/a.png"), Some(1));
        assert_eq!(imagenet("photos/Carassius auratus/a.png"), Some(1));
        // Two ImageNet classes are called crane: the folder says neither.
        assert_eq!(imagenet("photos/crane/a.png"), None);
        let names = ["cat".to_string(), "dog".into(), "red fox".into()];
        let own = |name| label_of_name(name, Classes::Named(&names));
        assert_eq!(own("data/DOG/x.jpg"), Some(1));
        assert_eq!(own("data/red-fox/x.jpg"), Some(2));
        // Not ImageNet's classes: a wnid says nothing.
        assert_eq!(own("data/n01443537/x.jpg"), None);
        assert_eq!(label_of_name("data/cat/x.jpg", Classes::Unnamed), None);
    }
}
