use serde_json::json;

use super::*;

/// A declarative file in a fresh directory, with its stateDir beside it.
fn setup(name: &str, declarative: Value) -> (Overrides, PathBuf) {
    let dir = std::env::temp_dir().join(format!("ics-admin-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(dir.join("state")).unwrap();
    let mut config = declarative;
    config["stateDir"] = json!(dir.join("state"));
    config["storage"] = json!({"path": dir.join("mail")});
    let file = dir.join("config.json");
    fs::write(&file, serde_json::to_string(&config).unwrap()).unwrap();
    (Overrides::new(Source::File(file)).unwrap(), dir)
}

#[test]
fn a_valid_change_is_written_and_read_back_with_its_layer() {
    let (overrides, dir) = setup(
        "set",
        json!({"domains": ["example.org"], "heloName": "mx.example.org"}),
    );
    let size = overrides.resolve("smtp.maxMessageSize").unwrap();
    let (_, layer) = overrides.get(&size).unwrap().unwrap();
    assert_eq!(layer, Layer::Default);
    let helo = overrides.resolve("heloName").unwrap();
    assert_eq!(
        overrides.get(&helo).unwrap().unwrap(),
        (json!("mx.example.org"), Layer::File)
    );

    overrides.set(&size, json!(20971520)).unwrap();
    let (value, layer) = overrides.get(&size).unwrap().unwrap();
    assert_eq!((value, layer), (json!(20971520), Layer::Override));
    let written: Value =
        serde_json::from_str(&fs::read_to_string(overrides.path()).unwrap()).unwrap();
    assert_eq!(written, json!({"smtp": {"maxMessageSize": 20971520}}));
    assert!(!dir.join("state").join(".overrides.json.new").exists());

    assert!(overrides.reset(&size).unwrap());
    assert!(
        !overrides.path().exists(),
        "an empty override layer leaves no file"
    );
    assert!(!overrides.reset(&size).unwrap());
    let _ = fs::remove_dir_all(dir);
}

#[test]
fn an_invalid_change_names_its_key_and_writes_nothing() {
    let (overrides, dir) = setup("invalid", json!({"domains": ["example.org"]}));
    let helo = overrides.resolve("heloName").unwrap();
    let Err(EditError::Invalid(errors)) = overrides.set(&helo, json!("mail_server!")) else {
        panic!("an invalid host name was accepted");
    };
    let text = errors.to_string();
    assert!(text.starts_with("heloName: "), "{text}");
    assert!(text.contains("in the override file"), "{text}");
    assert!(!overrides.path().exists());

    let unknown = overrides.resolve("smtp.colour").unwrap();
    let Err(EditError::Invalid(errors)) = overrides.set(&unknown, json!(1)) else {
        panic!("an unknown key was accepted");
    };
    assert!(errors.to_string().contains("colour"), "{errors}");
    let state = overrides.resolve("stateDir").unwrap();
    let Err(EditError::Invalid(errors)) = overrides.set(&state, json!("/tmp")) else {
        panic!("stateDir was overridden");
    };
    assert!(
        errors
            .to_string()
            .starts_with("stateDir: cannot be overridden"),
        "{errors}"
    );
    let _ = fs::remove_dir_all(dir);
}
