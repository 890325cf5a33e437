//! The Devil's Dictionary as the capstone reads it: entries (headword and definition) and sentences, and
//! the full-length windows of the speed claims.

use minilm::MAX_SEQUENCE_LENGTH;

/// One entry of the dictionary: the headword and its definition.
pub(super) struct Entry {
    pub(super) headword: String,
    pub(super) definition: String,
}

/// Entries (`HEADWORD, pos.  Definition ...` paragraphs) and sentences (of at least four words) of the text.
pub(super) fn parse_dictionary(text: &str) -> (Vec<Entry>, Vec<String>) {
    let mut entries = Vec::new();
    let mut sentences = Vec::new();
    for paragraph in text.split("\n\n") {
        let joined = paragraph.split_whitespace().collect::<Vec<_>>().join(" ");
        if joined.is_empty() {
            continue;
        }
        for sentence in split_sentences(&joined) {
            if sentence.split_whitespace().count() >= 4 {
                sentences.push(sentence);
            }
        }
        let Some((head, rest)) = joined.split_once(", ") else {
            continue;
        };
        let is_headword = !head.is_empty()
            && head.chars().any(|c| c.is_ascii_uppercase())
            && head
                .chars()
                .all(|c| c.is_ascii_uppercase() || c == ' ' || c == '-' || c == '\'');
        if !is_headword {
            continue;
        }
        // Skip the part-of-speech tokens ("n.", "v.t.", "adj.", "pp.").
        let words: Vec<&str> = rest.split(' ').collect();
        let pos_words = words
            .iter()
            .take_while(|w| {
                w.ends_with('.') && w.chars().all(|c| c.is_ascii_lowercase() || c == '.')
            })
            .count();
        if pos_words == 0 {
            continue;
        }
        let definition = words[pos_words..].join(" ");
        if definition.split_whitespace().count() >= 8 {
            entries.push(Entry {
                headword: head.to_owned(),
                definition,
            });
        }
    }
    (entries, sentences)
}

/// Splits at `.`, `!` or `?` followed by a space and an upper-case letter.
pub(super) fn split_sentences(text: &str) -> Vec<String> {
    let mut sentences = Vec::new();
    let mut start = 0;
    let bytes = text.as_bytes();
    for (index, &byte) in bytes.iter().enumerate() {
        let ends = matches!(byte, b'.' | b'!' | b'?')
            && bytes.get(index + 1) == Some(&b' ')
            && bytes.get(index + 2).is_some_and(|c| c.is_ascii_uppercase());
        if ends {
            sentences.push(text[start..=index].trim().to_owned());
            start = index + 2;
        }
    }
    let tail = text[start..].trim();
    if !tail.is_empty() {
        sentences.push(tail.to_owned());
    }
    sentences
}

/// `batch_size` consecutive windows of 150 words of `text` (the speed claims' full-length inputs).
pub(super) fn word_windows(text: &str, batch_size: usize) -> Vec<String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    (0..batch_size)
        .map(|i| {
            words
                .iter()
                .skip(i * 150)
                .take(150)
                .copied()
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

/// Whether every sequence is exactly [`MAX_SEQUENCE_LENGTH`] tokens (none was shorter than a window).
pub(super) fn all_full_length(ids: &[Vec<u32>]) -> bool {
    ids.iter()
        .all(|sequence| sequence.len() == MAX_SEQUENCE_LENGTH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dictionary_parses_into_entries_and_sentences() {
        let text = "PREFACE\n\nSome words here. More words follow Here.\n\nABASEMENT, n.  A decent and \
                    customary mental attitude in the\npresence of wealth of power.  Peculiarly appropriate.\n\n\
                    ABANDON, v.t.  To leave a thing where it lies, without any further care at all.\n\nSHORT, \
                    adj.  Too short.";
        let (entries, sentences) = parse_dictionary(text);
        let headwords: Vec<&str> = entries.iter().map(|e| e.headword.as_str()).collect();
        assert_eq!(headwords, vec!["ABASEMENT", "ABANDON"]);
        assert!(entries[1].definition.starts_with("To leave a thing"));
        assert!(sentences.contains(
            &"A decent and customary mental attitude in the presence of wealth of power."
                .to_owned()
        ));
        assert!(sentences.iter().all(|s| s.split_whitespace().count() >= 4));
    }
}
