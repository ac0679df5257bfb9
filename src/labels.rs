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
/// read as spaces — for ImageNet, any of a class's comma-separated names; `None` when no
/// class, or more than one, has that name.
pub fn class_of_folder(folder: &str, classes: Classes<'_>) -> Option<usize> {
    let norm = |s: &str| s.trim().replace(['_', '-'], " ").to_lowercase();
    let want = norm(folder);
    let hits: Vec<usize> = match classes {
        Classes::ImageNet => imagenet_classes()
            .iter()
            .enumerate()
            .filter(|(_, c)| c.name.split(',').any(|n| norm(n) == want))
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
}
