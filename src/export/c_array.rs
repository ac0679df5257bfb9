//! A TFLite file as a C header, the way TensorFlow Lite Micro and Edge Impulse projects compile
//! a model into the firmware: a 16-byte aligned `const unsigned char` array (kept in flash; TFLite
//! Micro reads the model in place), its length, and the activation arena the model needs.

use std::fmt::Write;

/// Bytes per line of the array: 12 as `0x00, ` fit in 80 columns.
const PER_LINE: usize = 12;

/// `tflite` (a TFLite file) as a C/C++ header declaring `<name>_tflite[]`, `<name>_tflite_len`
/// and `<name>_arena_bytes` (`arena_bytes`: the activations' arena as TFLite Micro's planner
/// lays it out; the interpreter adds a little bookkeeping of its own). `name` becomes a C
/// identifier: anything but letters, digits and `_` becomes `_`, and a leading digit gets `model_`
/// before it. Like `xxd -i`, it defines the array: include it in one source file.
pub fn c_header(tflite: &[u8], name: &str, arena_bytes: usize) -> String {
    let id = identifier(name);
    let guard = format!("{}_H", id.to_ascii_uppercase());
    let mut s = String::with_capacity(tflite.len() * 6 + 1024);
    let _ = write!(
        s,
        "// {name}.tflite as a C array, written by modelslim {version}.\n\
         // Keep it const (in flash) and 16-byte aligned: TensorFlow Lite Micro reads it in place,\n\
         // e.g. tflite::GetModel({id}_tflite). Define it in one source file only.\n\
         #ifndef {guard}\n\
         #define {guard}\n\
         \n\
         #ifndef __cplusplus\n\
         #include <stdalign.h>\n\
         #endif\n\
         \n\
         // Bytes of activation memory the model needs (TFLite Micro's arena plan); size the\n\
         // tensor arena a few kB above it for the interpreter's own bookkeeping.\n\
         const unsigned int {id}_arena_bytes = {arena_bytes};\n\
         \n\
         const unsigned int {id}_tflite_len = {len};\n\
         \n\
         alignas(16) const unsigned char {id}_tflite[] = {{\n",
        version = env!("CARGO_PKG_VERSION"),
        len = tflite.len(),
    );
    for line in tflite.chunks(PER_LINE) {
        s.push(' ');
        for b in line {
            let _ = write!(s, " 0x{b:02x},");
        }
        s.push('\n');
    }
    let _ = write!(s, "}};\n\n#endif  // {guard}\n");
    s
}

/// `name` as a C identifier.
fn identifier(name: &str) -> String {
    let mut id: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if id.is_empty() || id.starts_with(|c: char| c.is_ascii_digit()) {
        id.insert_str(0, "model_");
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The array's bytes, read back from the header's hex.
    fn bytes_of(header: &str) -> Vec<u8> {
        let body = header.split_once("[] = {").unwrap().1;
        let body = body.split_once("};").unwrap().0;
        body.split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(|t| u8::from_str_radix(t.trim_start_matches("0x"), 16).unwrap())
            .collect()
    }

    #[test]
    fn the_header_holds_the_file_byte_for_byte_with_its_length_and_arena() {
        let file: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        let h = c_header(&file, "resnet18-c30-int8", 123_456);
        assert_eq!(bytes_of(&h), file);
        assert!(h.contains("alignas(16) const unsigned char resnet18_c30_int8_tflite[] = {"));
        assert!(h.contains("const unsigned int resnet18_c30_int8_tflite_len = 1000;"));
        assert!(h.contains("const unsigned int resnet18_c30_int8_arena_bytes = 123456;"));
        assert!(
            h.contains("#ifndef RESNET18_C30_INT8_H")
                && h.ends_with("#endif  // RESNET18_C30_INT8_H\n")
        );
        assert!(h.lines().all(|l| l.len() <= 100), "a line too long");
    }

    #[test]
    fn names_become_c_identifiers() {
        assert_eq!(identifier("efficientnet-lite0.kd"), "efficientnet_lite0_kd");
        assert_eq!(identifier("18layers"), "model_18layers");
        assert_eq!(identifier(""), "model_");
        assert_eq!(identifier("ünï"), "_n_");
    }
}
