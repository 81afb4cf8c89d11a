//! Configuration: the model (`model`), its value types (`types`), reading JSON with key paths
//! (`load`), the declarative file and its override layer (`layers`), the syntax of names and
//! networks (`syntax`), the semantic checks (`validate`) and the refusal of what this version
//! lacks (`unimplemented`). Everything here looks at the file alone: what the machine adds
//! (secret files, the host name) is read by `settings`.

pub mod layers;
pub mod load;
pub mod model;
pub mod syntax;
pub mod types;
mod unimplemented;
pub mod validate;

pub use model::Config;
pub use types::{Port, TlsMode};

use std::fmt;

/// Every problem found in a configuration, one line each, each starting with its key path.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<String>);

impl ConfigErrors {
    pub fn single(line: String) -> Self {
        ConfigErrors(vec![line])
    }

    pub fn push(&mut self, line: String) {
        self.0.push(line);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, line) in self.0.iter().enumerate() {
            if index > 0 {
                writeln!(f)?;
            }
            write!(f, "{line}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Parses and validates configuration text (the file alone: see [`validate::validate`]).
pub fn load_str(text: &str) -> Result<Config, ConfigErrors> {
    validate::validate(load::parse(text)?)
}
