//! Configuration loading: the text of a configuration file through parsing, validation, the
//! refusal of what is not built and the secret checks (`settings::check_static`: no files
//! read). Property: the verdict on a text is the same twice (no hidden state).

use crate::config::layers::Source;
use crate::settings::check_static;

pub fn load(data: &[u8]) {
    let source = Source::Text {
        name: "fuzz".into(),
        text: String::from_utf8_lossy(data).into_owned(),
    };
    let first = check_static(&source).map_err(|errors| errors.to_string());
    let second = check_static(&source).map_err(|errors| errors.to_string());
    assert_eq!(
        first.is_ok(),
        second.is_ok(),
        "the same configuration judged twice otherwise"
    );
    if let (Err(a), Err(b)) = (&first, &second) {
        assert_eq!(a, b, "the same configuration refused twice otherwise");
    }
}
