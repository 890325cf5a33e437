//! Public-domain text for character-level language models, and the character vocabulary that encodes it.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::error::io_error;
use crate::{DataOrigin, DatasetError, DatasetInfo};

/// Where Debian's `dict-devil` installs The Devil's Dictionary (dictzip, readable as gzip).
pub const DEVILS_DICTIONARY_DEFAULT_PATH: &str = "/usr/share/dictd/devil.dict.dz";

const EMBEDDED_DEVILS_DICTIONARY: &str = include_str!("../data/devils_dictionary_a_to_f.txt");

/// Which text to load.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum TextSource {
    /// Entries A–F of Ambrose Bierce's *The Devil's Dictionary* (107 KB, public domain), compiled into the crate.
    #[default]
    Embedded,
    /// The whole Devil's Dictionary from Debian `dict-devil` (or the given dictzip/gzip/plain file).
    DevilsDictionary(Option<PathBuf>),
    /// The King James Bible printed by the `bible` program of Debian `bible-kjv` (about 4.4 MB).
    BibleKjv,
    /// A UTF-8 text file the caller vouches for; reported as real data of unknown licence.
    File(PathBuf),
}

/// A text and its provenance.
#[derive(Debug, Clone)]
pub struct TextCorpus {
    /// The text, with `\r\n` normalised to `\n`.
    pub text: String,
    /// Provenance.
    pub info: DatasetInfo,
}

/// Loads the text named by `source`.
///
/// # Errors
/// [`DatasetError::NotFound`] when the package or file is absent, [`DatasetError::Io`] when it cannot be read,
/// [`DatasetError::Corrupt`] when it is not valid UTF-8 (or gzip, for a `.dz`/`.gz` file) or is empty,
/// [`DatasetError::Command`] when the `bible` program fails.
pub fn load_text(source: &TextSource) -> Result<TextCorpus, DatasetError> {
    let devils_info = |location: String| {
        DatasetInfo {
        name: "devils-dictionary".into(),
        origin: DataOrigin::Real,
        source: "Ambrose Bierce, The Devil's Dictionary (1911), Internet Wiretap edition via Debian dict-devil"
            .into(),
        license: "public domain".into(),
        attribution: "Ambrose Bierce, The Devil's Dictionary (1911)".into(),
        location,
    }
    };
    match source {
        TextSource::Embedded => Ok(TextCorpus {
            text: EMBEDDED_DEVILS_DICTIONARY.to_string(),
            info: devils_info("embedded (entries A-F)".into()),
        }),
        TextSource::DevilsDictionary(path) => {
            let path = path
                .clone()
                .unwrap_or_else(|| PathBuf::from(DEVILS_DICTIONARY_DEFAULT_PATH));
            let text = read_text_file(
                "devils-dictionary",
                &path,
                "install the Debian package `dict-devil`",
            )?;
            Ok(TextCorpus {
                text,
                info: devils_info(path.display().to_string()),
            })
        }
        TextSource::BibleKjv => {
            let text = run_bible()?;
            Ok(TextCorpus {
                text,
                info: DatasetInfo {
                    name: "bible-kjv".into(),
                    origin: DataOrigin::Real,
                    source: "King James Version (1611/1769) as printed by the `bible` program of Debian bible-kjv"
                        .into(),
                    license: "public domain (outside the United Kingdom)".into(),
                    attribution: "The Holy Bible, King James Version".into(),
                    location: "bible -f Gen1:1-Rev22:21".into(),
                },
            })
        }
        TextSource::File(path) => {
            let text = read_text_file("text", path, "check the path")?;
            Ok(TextCorpus {
                text,
                info: DatasetInfo {
                    name: "text-file".into(),
                    origin: DataOrigin::Real,
                    source: path.display().to_string(),
                    license: "unknown (supplied by the user)".into(),
                    attribution: "unknown".into(),
                    location: path.display().to_string(),
                },
            })
        }
    }
}

fn read_text_file(dataset: &'static str, path: &Path, hint: &str) -> Result<String, DatasetError> {
    let raw = std::fs::read(path).map_err(|error| match error.kind() {
        std::io::ErrorKind::NotFound => DatasetError::NotFound {
            dataset,
            path: path.to_path_buf(),
            hint: hint.to_string(),
        },
        _ => io_error(path, error),
    })?;
    let corrupt = |reason: String| DatasetError::Corrupt {
        dataset,
        path: path.to_path_buf(),
        reason,
    };
    let bytes = if raw.starts_with(&[0x1f, 0x8b]) {
        let mut decoded = Vec::new();
        flate2::read::MultiGzDecoder::new(raw.as_slice())
            .read_to_end(&mut decoded)
            .map_err(|error| corrupt(format!("gzip: {error}")))?;
        decoded
    } else {
        raw
    };
    let text = String::from_utf8(bytes).map_err(|error| corrupt(format!("not UTF-8: {error}")))?;
    if text.trim().is_empty() {
        return Err(corrupt("empty text".into()));
    }
    Ok(text.replace("\r\n", "\n"))
}

fn run_bible() -> Result<String, DatasetError> {
    let command_line = "bible -f Gen1:1-Rev22:21";
    let output = std::process::Command::new("bible")
        .args(["-f", "Gen1:1-Rev22:21"])
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|error| match error.kind() {
            std::io::ErrorKind::NotFound => DatasetError::NotFound {
                dataset: "bible-kjv",
                path: PathBuf::from("bible"),
                hint: "install the Debian package `bible-kjv`".into(),
            },
            _ => DatasetError::Command {
                command: command_line.into(),
                reason: error.to_string(),
            },
        })?;
    if !output.status.success() {
        return Err(DatasetError::Command {
            command: command_line.into(),
            reason: output.status.to_string(),
        });
    }
    let printed = String::from_utf8(output.stdout).map_err(|error| DatasetError::Command {
        command: command_line.into(),
        reason: format!("output is not UTF-8: {error}"),
    })?;
    // With -f each line is "Ge1:1 In the beginning ..."; drop the reference so the text is prose only.
    let verses: Vec<&str> = printed
        .lines()
        .filter_map(|line| line.split_once(' ').map(|(_, verse)| verse.trim()))
        .filter(|verse| !verse.is_empty())
        .collect();
    if verses.len() < 30_000 {
        return Err(DatasetError::Command {
            command: command_line.into(),
            reason: format!(
                "printed only {} verses, expected about 31,100",
                verses.len()
            ),
        });
    }
    Ok(verses.join("\n"))
}

/// The set of characters of a text, each mapped to a token id (ids in ascending code-point order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CharVocabulary {
    chars: Vec<char>,
}

impl CharVocabulary {
    /// The vocabulary of every character that occurs in `text`.
    pub fn from_text(text: &str) -> Self {
        let set: BTreeSet<char> = text.chars().collect();
        CharVocabulary {
            chars: set.into_iter().collect(),
        }
    }

    /// A vocabulary from an explicit character list (e.g. read back from a weight file).
    ///
    /// # Errors
    /// [`DatasetError::InvalidArgument`] if the list is empty, unsorted or holds a duplicate.
    pub fn from_chars(chars: Vec<char>) -> Result<Self, DatasetError> {
        if chars.is_empty() || chars.windows(2).any(|pair| pair[0] >= pair[1]) {
            return Err(DatasetError::InvalidArgument {
                reason: "vocabulary must be non-empty, sorted and free of duplicates".into(),
            });
        }
        Ok(CharVocabulary { chars })
    }

    /// The characters, index = token id.
    pub fn chars(&self) -> &[char] {
        &self.chars
    }

    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.chars.len()
    }

    /// Always false for a vocabulary built by the constructors; present for API symmetry.
    pub fn is_empty(&self) -> bool {
        self.chars.is_empty()
    }

    /// Token ids of `text`.
    ///
    /// # Errors
    /// [`DatasetError::InvalidArgument`] naming the first character outside the vocabulary.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, DatasetError> {
        text.chars()
            .map(|character| {
                self.chars
                    .binary_search(&character)
                    .map(|id| id as u32)
                    .map_err(|_| DatasetError::InvalidArgument {
                        reason: format!("character {character:?} not in vocabulary"),
                    })
            })
            .collect()
    }

    /// The text of `tokens`; ids outside the vocabulary become U+FFFD.
    pub fn decode(&self, tokens: &[u32]) -> String {
        tokens
            .iter()
            .map(|&token| {
                self.chars
                    .get(token as usize)
                    .copied()
                    .unwrap_or(char::REPLACEMENT_CHARACTER)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_text_is_real_and_ascii() {
        let corpus = load_text(&TextSource::Embedded).unwrap();
        assert_eq!(corpus.text.len(), 107_052);
        assert!(corpus.text.contains("ABASEMENT"));
        assert!(corpus.text.is_ascii());
        assert_eq!(corpus.info.origin, DataOrigin::Real);
    }

    #[test]
    fn vocabulary_round_trips() {
        let vocabulary = CharVocabulary::from_text("hello, world");
        assert_eq!(vocabulary.len(), 9);
        let tokens = vocabulary.encode("hello!").unwrap_err();
        assert!(matches!(tokens, DatasetError::InvalidArgument { .. }));
        let tokens = vocabulary.encode("lo, world").unwrap();
        assert_eq!(vocabulary.decode(&tokens), "lo, world");
        assert!(CharVocabulary::from_chars(vec!['b', 'a']).is_err());
        assert_eq!(
            CharVocabulary::from_chars(vocabulary.chars().to_vec()).unwrap(),
            vocabulary
        );
    }
}
