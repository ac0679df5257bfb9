//! What a photo's name says about it: the ImageNet class it shows, when the name carries one
//! (`n01440764/fish.jpg`, `imagenet-val/n01440764/…`, or `n01440764_123.JPEG`).

use crate::labels::class_of_wnid;

/// The class a photo's name or path carries: its file name's `wnid_` prefix, else its parent
/// folder's wnid. Both `/` and `\` separate folders.
pub fn label_of_name(name: &str) -> Option<usize> {
    let mut parts = name.rsplit(['/', '\\']);
    let file = parts.next()?;
    let from_file = file.split_once('_').and_then(|(w, _)| class_of_wnid(w));
    from_file.or_else(|| parts.next().and_then(class_of_wnid))
}

#[cfg(test)]
mod tests {
    use super::label_of_name;

    #[test]
    fn labels_from_file_prefix_or_parent_folder() {
        assert_eq!(label_of_name("n01440764_10026.JPEG"), Some(0));
        assert_eq!(label_of_name("data/n01443537/photo.jpg"), Some(1));
        assert_eq!(label_of_name(r"data\n01443537\photo.jpg"), Some(1));
        // The file name's prefix wins over the folder.
        assert_eq!(label_of_name("n01443537/n01440764_1.jpg"), Some(0));
        assert_eq!(label_of_name("holiday/beach.jpg"), None);
        assert_eq!(label_of_name("beach.jpg"), None);
    }
}
