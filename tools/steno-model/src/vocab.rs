//! Whisper vocabulary: CTranslate2's `vocabulary.txt` in, the regular BPE tokens as raw bytes out.
//!
//! Each line is one token spelled with GPT-2's byte-to-unicode table (a space is `Ġ`,
//! a newline `Ċ`), so a token made of arbitrary bytes is still one printable line. The
//! ggml file wants the raw bytes. The special tokens (`<|endoftext|>` onwards) are left
//! out on purpose: whisper.cpp names them itself from `n_vocab`, as it does for files
//! made by the openai converter, which writes only the regular tokens.

/// The token that ends the regular vocabulary and starts the special ones.
pub const END_OF_TEXT: &str = "<|endoftext|>";

/// A problem with one line of the vocabulary (1-based).
#[derive(Debug, Clone, PartialEq)]
pub struct VocabError {
    pub line: usize,
    pub reason: String,
}

/// The vocabulary split the way the ggml file needs it.
#[derive(Debug)]
pub struct Vocabulary {
    /// Regular tokens, in id order, as raw bytes.
    pub regular: Vec<Vec<u8>>,
    /// Every token in the file, special ones included; must equal the model's `n_vocab`.
    pub total: usize,
}

impl Vocabulary {
    pub fn parse(text: &str) -> Result<Vocabulary, VocabError> {
        let lines: Vec<&str> = text
            .strip_suffix('\n')
            .unwrap_or(text)
            .split('\n')
            .collect();
        let regular_count = lines
            .iter()
            .position(|&token| token == END_OF_TEXT)
            .ok_or_else(|| VocabError {
                line: lines.len(),
                reason: format!(
                    "no `{END_OF_TEXT}` token, so the special tokens cannot be told apart"
                ),
            })?;
        let decoder = ByteDecoder::new();
        let regular = lines[..regular_count]
            .iter()
            .enumerate()
            .map(|(i, token)| {
                decoder.decode(token).map_err(|c| VocabError {
                    line: i + 1,
                    reason: format!(
                        "token {token:?} has {c:?}, which is outside GPT-2's byte alphabet"
                    ),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Vocabulary {
            regular,
            total: lines.len(),
        })
    }
}

/// The inverse of GPT-2's `bytes_to_unicode`.
struct ByteDecoder {
    /// Indexed by code point; every code point the table uses is below 324.
    byte_of_char: [Option<u8>; 324],
}

impl ByteDecoder {
    fn new() -> Self {
        let mut byte_of_char = [None; 324];
        let mut next_unprintable = 256;
        for byte in 0..=255u8 {
            // Printable Latin-1 bytes stand for themselves; the rest are moved up past 255.
            let printable = matches!(byte, b'!'..=b'~' | 0xa1..=0xac | 0xae..=0xff);
            let code = if printable {
                usize::from(byte)
            } else {
                next_unprintable += 1;
                next_unprintable - 1
            };
            byte_of_char[code] = Some(byte);
        }
        ByteDecoder { byte_of_char }
    }

    fn decode(&self, token: &str) -> Result<Vec<u8>, char> {
        token
            .chars()
            .map(|c| {
                self.byte_of_char
                    .get(c as usize)
                    .copied()
                    .flatten()
                    .ok_or(c)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn undoes_the_gpt2_byte_mapping() {
        let d = ByteDecoder::new();
        assert_eq!(d.decode("hello").unwrap(), b"hello");
        assert_eq!(d.decode("Ġthe").unwrap(), b" the");
        assert_eq!(d.decode("Ċ").unwrap(), b"\n");
        assert_eq!(d.decode("ĉ").unwrap(), b"\t");
        assert_eq!(d.decode("Ā").unwrap(), [0u8]);
        // "é" in UTF-8 is c3 a9, which GPT-2 spells "Ã©".
        assert_eq!(d.decode("Ã©").unwrap(), "é".as_bytes());
        assert_eq!(d.decode("Ń").unwrap(), [0xadu8]); // soft hyphen, the last moved byte
        assert_eq!(d.decode("€"), Err('€'));
    }

    #[test]
    fn every_byte_has_exactly_one_character() {
        let d = ByteDecoder::new();
        let mut seen = [false; 256];
        for b in d.byte_of_char.iter().flatten() {
            assert!(!seen[usize::from(*b)]);
            seen[usize::from(*b)] = true;
        }
        assert!(seen.iter().all(|&s| s));
    }

    #[test]
    fn stops_at_end_of_text_and_counts_everything() {
        let text = "!\nĠa\nb\n<|endoftext|>\n<|startoftranscript|>\n<|0.00|>\n";
        let vocab = Vocabulary::parse(text).unwrap();
        assert_eq!(
            vocab.regular,
            vec![b"!".to_vec(), b" a".to_vec(), b"b".to_vec()]
        );
        assert_eq!(vocab.total, 6);
    }

    #[test]
    fn errors_name_the_line() {
        let err = Vocabulary::parse("a\nb\n").unwrap_err();
        assert!(err.reason.contains("<|endoftext|>"), "{err:?}");

        let err = Vocabulary::parse("a\nx€\n<|endoftext|>\n").unwrap_err();
        assert_eq!(err.line, 2);
    }
}
