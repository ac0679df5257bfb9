//! The 1000 ImageNet classes in class-index order (timm's synset list, Apache-2.0).

use std::sync::OnceLock;

use crate::{Error, Result};

const CLASSES_TSV: &str = include_str!("../assets/imagenet_classes.tsv");

/// One ImageNet class: its WordNet id and readable names.
#[derive(Debug, Clone, Copy)]
pub struct ImageNetClass {
    pub wnid: &'static str,
    pub name: &'static str,
}

/// All 1000 classes; index `i` is class `i` of the classifier.
pub fn imagenet_classes() -> &'static [ImageNetClass] {
    static CLASSES: OnceLock<Vec<ImageNetClass>> = OnceLock::new();
    CLASSES.get_or_init(|| {
        CLASSES_TSV
            .lines()
            .filter_map(|line| line.split_once('\t'))
            .map(|(wnid, name)| ImageNetClass { wnid, name })
            .collect()
    })
}

/// The readable name of class `index`, or `class N` for classifiers with other classes.
pub fn class_name(index: usize) -> String {
    imagenet_classes()
        .get(index)
        .map(|c| c.name.to_string())
        .unwrap_or_else(|| format!("class {index}"))
}

/// The class index of a WordNet id (`n02123045`), if it is an ImageNet class.
pub fn class_of_wnid(wnid: &str) -> Option<usize> {
    imagenet_classes().iter().position(|c| c.wnid == wnid)
}

/// The classes a model's answers are: ImageNet's, named ones, or unnamed.
#[derive(Debug, Clone, Copy)]
pub enum Classes<'a> {
    ImageNet,
    Named(&'a [String]),
    Unnamed,
}

/// The class a folder called `folder` holds photos of: a class name, in any case, `_` and `-`
/// read as spaces — for ImageNet, its whole name or any of its comma-separated names; `None` when no
/// class, or more than one, has that name.
pub fn class_of_folder(folder: &str, classes: Classes<'_>) -> Option<usize> {
    let norm = |s: &str| s.trim().replace(['_', '-'], " ").to_lowercase();
    let want = norm(folder);
    let hits: Vec<usize> = match classes {
        Classes::ImageNet => imagenet_classes()
            .iter()
            .enumerate()
            .filter(|(_, c)| norm(c.name) == want || c.name.split(',').any(|n| norm(n) == want))
            .map(|(i, _)| i)
            .collect(),
        Classes::Named(names) => names
            .iter()
            .enumerate()
            .filter(|(_, n)| norm(n) == want)
            .map(|(i, _)| i)
            .collect(),
        Classes::Unnamed => Vec::new(),
    };
    match hits.as_slice() {
        [one] => Some(*one),
        _ => None,
    }
}

/// The most bytes one class name may take: a labels file is read in full, and a name is shown
/// on a card.
pub const MAX_LABEL_BYTES: usize = 200;

/// Class names from a labels file `name`: one per line, in class order, blank lines at the end
/// ignored; exactly `classes` of them.
pub fn parse_labels(name: &str, text: &str, classes: usize) -> Result<Vec<String>> {
    let names: Vec<String> = text
        .trim_end()
        .lines()
        .map(|l| l.trim().to_string())
        .collect();
    if names.len() != classes {
        return Err(Error::Invalid(format!(
            "{name}: {} names for a model with {classes} classes: give one name per line, in class order",
            names.len()
        )));
    }
    if let Some((i, _)) = names
        .iter()
        .enumerate()
        .find(|(_, n)| n.is_empty() || n.len() > MAX_LABEL_BYTES)
    {
        return Err(Error::Invalid(format!(
            "{name}: line {} is empty or longer than {MAX_LABEL_BYTES} bytes: give every class a short name",
            i + 1
        )));
    }
    Ok(names)
}

/// The name a photos' labels file has in a folder: each row a photo and its class.
pub const PHOTO_LABELS_FILE: &str = "labels.csv";

/// The most bytes a photos' labels file may have: a million rows of a long path each.
pub const MAX_PHOTO_LABELS_BYTES: usize = 64 << 20;

/// A photos' labels file (`labels.csv`): each row a photo's file name (or its path within the
/// folder) and its class — a class number, an ImageNet wnid or a class name. A first row that
/// names no image is a header.
#[derive(Debug, Clone, Default)]
pub struct PhotoLabels {
    /// By a photo's file name: (its path as the row gives it, `/`-separated; its class as written).
    rows: std::collections::HashMap<String, Vec<(String, String)>>,
}

/// The fields of one CSV line: commas separate, double quotes enclose a field with commas
/// (`""` is a quote inside one); `None` when a quote is left open.
fn csv_fields(line: &str) -> Option<Vec<String>> {
    let mut fields = vec![String::new()];
    let (mut quoted, mut chars) = (false, line.chars().peekable());
    while let Some(c) = chars.next() {
        let field = fields.last_mut()?;
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            ('"', _) => quoted = !quoted,
            (',', false) => fields.push(String::new()),
            _ => field.push(c),
        }
    }
    (!quoted).then(|| fields.into_iter().map(|f| f.trim().to_string()).collect())
}

fn is_image_name(name: &str) -> bool {
    name.rsplit_once('.')
        .is_some_and(|(_, x)| crate::preprocess::is_image_extension(x))
}

/// The file name of a path with `/` or `\` separators.
fn file_name(path: &str) -> &str {
    path.rsplit(['/', '\\']).next().unwrap_or(path)
}

impl PhotoLabels {
    /// Read the labels file `name` (a CSV of `file,class` rows).
    pub fn parse(name: &str, text: &str) -> Result<Self> {
        if text.len() > MAX_PHOTO_LABELS_BYTES {
            return Err(Error::Invalid(format!(
                "{name}: {} bytes, over the {MAX_PHOTO_LABELS_BYTES} a labels file may have: split the photos into folders named by class",
                text.len()
            )));
        }
        let mut labels = Self::default();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let bad = |what: &str| {
                Error::Invalid(format!(
                    "{name}: line {}: {what}: give each photo a row `file,class` (a class number, wnid or name)",
                    i + 1
                ))
            };
            let fields = csv_fields(line).ok_or_else(|| bad("a quote is not closed"))?;
            let [path, class] = fields.as_slice() else {
                return Err(bad(&format!("{} fields", fields.len())));
            };
            if !is_image_name(path) {
                if i == 0 {
                    continue; // a header
                }
                return Err(bad(&format!("{path:?} is not a JPEG, PNG or WebP file")));
            }
            if class.is_empty() || class.len() > MAX_LABEL_BYTES {
                return Err(bad("the class is empty or too long"));
            }
            let path = path.replace('\\', "/");
            let same = labels.rows.entry(file_name(&path).to_string()).or_default();
            if same.iter().any(|(p, c)| *p == path && c != class) {
                return Err(bad(&format!("{path} was given another class before")));
            }
            same.push((path, class.clone()));
        }
        if labels.rows.is_empty() {
            return Err(Error::Invalid(format!(
                "{name} labels no JPEG, PNG or WebP file: give each photo a row `file,class`"
            )));
        }
        Ok(labels)
    }

    /// Add `other`'s rows (another folder's labels file).
    pub fn extend(&mut self, other: Self) {
        for (file, rows) in other.rows {
            self.rows.entry(file).or_default().extend(rows);
        }
    }

    /// How many photos are labelled.
    pub fn len(&self) -> usize {
        self.rows.values().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The class written for the photo called `photo` (a path): the row whose path ends it,
    /// the longest such; `None` when no row names it.
    pub fn class_written(&self, photo: &str) -> Option<&str> {
        let photo = photo.replace('\\', "/");
        self.rows
            .get(file_name(&photo))?
            .iter()
            .filter(|(p, _)| photo == *p || photo.ends_with(&format!("/{p}")))
            .max_by_key(|(p, _)| p.len())
            .map(|(_, c)| c.as_str())
    }
}

/// The class a labels file's `class` names, of `count` classes: its number, an ImageNet wnid,
/// or a name as a folder may give it.
pub fn class_of_label(class: &str, classes: Classes<'_>, count: usize) -> Option<usize> {
    if let Ok(i) = class.parse::<usize>() {
        return (i < count).then_some(i);
    }
    match classes {
        Classes::ImageNet => class_of_wnid(class),
        _ => None,
    }
    .or_else(|| class_of_folder(class, classes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousand_classes_in_order() {
        let classes = imagenet_classes();
        assert_eq!(classes.len(), 1000);
        assert_eq!(classes[0].wnid, "n01440764");
        assert!(classes[0].name.starts_with("tench"));
        assert_eq!(class_of_wnid("n02123045"), Some(281));
        assert!(class_name(281).contains("tabby"));
        assert_eq!(class_name(5000), "class 5000");
    }

    #[test]
    fn photo_labels_by_path_or_file_name() {
        let text = "file,label\nn1/a.jpg,281\n\"b, 2.png\",n01440764\nc.webp,\"tabby, tabby cat\"\nsub/a.jpg,goldfish\n";
        let l = PhotoLabels::parse("labels.csv", text).unwrap();
        assert_eq!(l.len(), 4);
        let class = |photo| {
            l.class_written(photo)
                .and_then(|c| class_of_label(c, Classes::ImageNet, 1000))
        };
        assert_eq!(class("photos/n1/a.jpg"), Some(281));
        assert_eq!(class(r"photos\sub\a.jpg"), Some(1));
        assert_eq!(class("photos/b, 2.png"), Some(0));
        assert_eq!(class("c.webp"), Some(281), "a whole ImageNet name");
        assert_eq!(class("photos/other/a.jpg"), None, "no row's path ends it");
        assert_eq!(class_of_label("1000", Classes::ImageNet, 1000), None);
        let names = ["cat".to_string(), "dog".into()];
        assert_eq!(class_of_label("Dog", Classes::Named(&names), 2), Some(1));
    }

    #[test]
    fn photo_labels_refused_with_the_line() {
        for (text, want) in [
            ("a.jpg,1\nb.jpg\n", "line 2: 1 fields"),
            ("a.jpg,\"1\n", "line 1: a quote is not closed"),
            ("a.jpg,1\nnotes.txt,2\n", "\"notes.txt\" is not a JPEG"),
            ("a.jpg,1\na.jpg,2\n", "a.jpg was given another class"),
            ("file,label\n", "labels no JPEG"),
        ] {
            let e = PhotoLabels::parse("x/labels.csv", text)
                .unwrap_err()
                .to_string();
            assert!(e.contains("x/labels.csv") && e.contains(want), "{e}");
        }
    }
}
