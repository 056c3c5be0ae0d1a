//! Commands ferry prints for a person to paste into a shell (`next:` lines,
//! hints, the migration command in a plan): each word quoted so that it comes
//! back as the same word, whatever spaces, quotes or `$` it holds.

/// One word as a POSIX shell reads it back: as it is when every character is
/// safe, else in single quotes (a `'` inside becomes `'\''`).
pub fn quote(word: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c);
    if !word.is_empty() && word.chars().all(safe) {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// Words joined into one command line, each [`quote`]d.
pub fn join<S: AsRef<str>>(words: &[S]) -> String {
    words.iter().map(|w| quote(w.as_ref())).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `sh` makes of a command line: its words, one per line.
    fn words_in_sh(line: &str) -> Vec<String> {
        let out =
            std::process::Command::new("sh").args(["-c", &format!("printf '%s\\n' {line}")]).output().expect("run sh");
        String::from_utf8(out.stdout).expect("utf-8").lines().map(String::from).collect()
    }

    #[test]
    fn quoted_words_paste_back_into_a_shell_as_the_same_words() {
        let words = [
            "plain-word_1.2",
            "with space",
            "it's",
            "\"double\"",
            "$HOME and `cmd`",
            "a\\b",
            "semi;colon|pipe&amp>redirect<",
            "*glob?",
            "",
            "tab\there",
        ];
        assert_eq!(words_in_sh(&join(&words)), words);
        assert_eq!(quote("stage-20261121T201602Z-9433"), "stage-20261121T201602Z-9433", "safe words stay bare");
        assert_eq!(quote("disk full, restored by hand"), "'disk full, restored by hand'");
    }
}
