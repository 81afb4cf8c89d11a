use super::*;

fn subject_of(message: &[u8]) -> String {
    let text = String::from_utf8(message.to_vec()).unwrap();
    let header = &text[..text.find("\r\n\r\n").unwrap()];
    let mut lines = header.split("\r\n").peekable();
    let mut field = String::new();
    while let Some(line) = lines.next() {
        if line.to_ascii_lowercase().starts_with("subject:") {
            field.push_str(line);
            while lines.peek().is_some_and(|l| l.starts_with(' ')) {
                field.push_str("\r\n");
                field.push_str(lines.next().unwrap());
            }
        }
    }
    field
}

/// The subject as a reader sees it: encoded-words decoded (UTF-8 only, as we write them).
fn shown(field: &str) -> String {
    let value = field.trim_start_matches("Subject: ");
    decode_words(&value.replace("\r\n", "")).unwrap().text
}

fn message(subject: &[u8], content_type: &str) -> Vec<u8> {
    let mut m = b"From: a@b.test\r\nSubject: ".to_vec();
    m.extend_from_slice(subject);
    m.extend_from_slice(
        format!("\r\nMIME-Version: 1.0\r\n{content_type}\r\n\r\nbody\r\n").as_bytes(),
    );
    m
}

fn recoded(subject: &[u8], content_type: &str) -> String {
    let out = recode_subject(&message(subject, content_type)).expect("recoded");
    let field = subject_of(&out);
    for line in field.split("\r\n") {
        assert!(
            line.len() <= 76,
            "line of {} characters: {line}",
            line.len()
        );
        assert!(line.is_ascii(), "{line}");
    }
    assert!(out.ends_with(b"\r\n\r\nbody\r\n"));
    shown(&field)
}

const RUSSIAN: &str = "Привет, как дела? Отчёт за квартал";

#[test]
fn encoded_words_in_legacy_charsets_become_utf8() {
    for charset in ["koi8-r", "windows-1251", "iso-8859-5"] {
        let encoding = Encoding::for_label(charset.as_bytes()).unwrap();
        let bytes = encoding.encode(RUSSIAN).0;
        let word = format!("=?{charset}?B?{}?=", STANDARD.encode(&bytes));
        assert_eq!(
            recoded(word.as_bytes(), "Content-Type: text/plain"),
            RUSSIAN,
            "{charset}"
        );
    }
    let latin = "=?iso-8859-1?Q?Gr=FC=DFe_aus_K=F6ln?=";
    assert_eq!(recoded(latin.as_bytes(), ""), "Grüße aus Köln");
    let japanese = Encoding::for_label(b"shift_jis")
        .unwrap()
        .encode("会議の議事録")
        .0;
    let word = format!("=?shift_jis?B?{}?=", STANDARD.encode(&japanese));
    assert_eq!(recoded(word.as_bytes(), ""), "会議の議事録");
    let chinese = Encoding::for_label(b"gb2312").unwrap().encode("会议纪要").0;
    let word = format!("=?gb2312?B?{}?=", STANDARD.encode(&chinese));
    assert_eq!(recoded(word.as_bytes(), ""), "会议纪要");
}

#[test]
fn raw_8bit_in_the_declared_charset() {
    for charset in ["koi8-r", "windows-1251"] {
        let encoding = Encoding::for_label(charset.as_bytes()).unwrap();
        let raw = encoding.encode(RUSSIAN).0;
        let declared = format!("Content-Type: text/plain; charset=\"{charset}\"");
        assert_eq!(recoded(&raw, &declared), RUSSIAN, "{charset}");
    }
}

#[test]
fn raw_8bit_undeclared_is_guessed() {
    for charset in ["koi8-r", "windows-1251"] {
        let encoding = Encoding::for_label(charset.as_bytes()).unwrap();
        let raw = encoding.encode(RUSSIAN).0;
        assert_eq!(
            recoded(&raw, "Content-Type: text/plain"),
            RUSSIAN,
            "{charset}"
        );
    }
    let raw = Encoding::for_label(b"shift_jis")
        .unwrap()
        .encode("会議の議事録について")
        .0;
    assert_eq!(recoded(&raw, ""), "会議の議事録について");
}

#[test]
fn raw_utf8_becomes_encoded_words() {
    assert_eq!(recoded(RUSSIAN.as_bytes(), ""), RUSSIAN);
}

#[test]
fn words_split_inside_a_character_are_joined() {
    // "Привет" in UTF-8 split after the first byte of 'и', in two words.
    let bytes = "Привет".as_bytes();
    let (a, b) = bytes.split_at(3);
    let subject = format!(
        "=?koi8-r?B?{}?= =?utf-8?B?{}?= =?utf-8?B?{}?=",
        STANDARD.encode(Encoding::for_label(b"koi8-r").unwrap().encode("Re:").0),
        STANDARD.encode(a),
        STANDARD.encode(b)
    );
    assert_eq!(recoded(subject.as_bytes(), ""), "Re:Привет");
}

#[test]
fn text_around_words_is_kept() {
    let subject = "Re: =?koi8-r?Q?=F0=D2=C9=D7=C5=D4?= again";
    assert_eq!(recoded(subject.as_bytes(), ""), "Re: Привет again");
}

#[test]
fn what_needs_nothing_is_left_alone() {
    for subject in [
        "Plain ASCII subject".to_string(),
        format!("=?UTF-8?B?{}?=", STANDARD.encode(RUSSIAN)),
        "=?us-ascii?Q?hello?=".to_string(),
        // An unknown charset: rewriting would lose the text.
        "=?x-unknown-charset?B?AAAA?= and =?koi8-r?B?8NLJ18XU?=".to_string(),
        // Not an encoded-word at all.
        "=?what? is this =?".to_string(),
    ] {
        assert!(
            recode_subject(&message(subject.as_bytes(), "")).is_none(),
            "{subject}"
        );
    }
    assert!(recode_subject(b"From: a@b.test\r\n\r\nno subject\r\n").is_none());
}

#[test]
fn long_subjects_fold_without_splitting_characters() {
    let long = RUSSIAN.repeat(6);
    let out = recoded(long.as_bytes(), "");
    assert_eq!(out, long);
}

#[test]
fn a_folded_subject_is_unfolded_first() {
    let encoding = Encoding::for_label(b"koi8-r").unwrap();
    let first = STANDARD.encode(encoding.encode("Привет,").0);
    let second = STANDARD.encode(encoding.encode(" мир").0);
    let subject = format!("=?koi8-r?B?{first}?=\r\n =?koi8-r?B?{second}?=");
    assert_eq!(recoded(subject.as_bytes(), ""), "Привет, мир");
}

#[test]
fn malformed_words_do_not_panic() {
    for subject in [
        "=?koi8-r?B?!!!?=",
        "=?koi8-r?Q?=Z?=",
        "=?koi8-r?Q?=F?=",
        "=??B?AAAA?=",
        "=?koi8-r?X?AAAA?=",
        "=?=?=?=?",
    ] {
        let _ = recode_subject(&message(subject.as_bytes(), ""));
    }
    let mut junk = b"Subject: ".to_vec();
    junk.extend((0u8..=255).cycle().take(5000));
    junk.extend_from_slice(b"\r\n\r\nbody");
    let _ = recode_subject(&junk);
}

#[test]
fn the_declared_charset_is_read_from_content_type() {
    let fields = [&b"Content-Type: text/plain;\r\n charset=KOI8-R; format=flowed\r\n"[..]];
    assert_eq!(declared_charset(&fields), Encoding::for_label(b"koi8-r"));
    let fields = [&b"content-type: text/plain; charset=\"windows-1251\"\r\n"[..]];
    assert_eq!(
        declared_charset(&fields),
        Encoding::for_label(b"windows-1251")
    );
    let fields = [&b"Content-Type: text/plain\r\n"[..]];
    assert_eq!(declared_charset(&fields), None);
}
