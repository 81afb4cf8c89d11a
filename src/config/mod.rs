//! Configuration: the model (`model`), its value types (`types`), reading JSON with key paths
//! (`load`), the syntax of names and networks (`syntax`) and the semantic checks (`validate`).

pub mod load;
pub mod model;
pub mod syntax;
pub mod types;
pub mod validate;

#[cfg(test)]
mod tests;

pub use model::Config;
pub use types::{Port, TlsMode};
pub use validate::Scope;

use std::fmt;
use std::path::Path;

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

/// Reads, parses and validates a configuration file (with everything the machine says: see
/// [`Scope::Machine`]).
pub fn load_file(path: &Path) -> Result<Config, ConfigErrors> {
    load_file_in(path, Scope::Machine)
}

/// Reads, parses and validates a configuration file, looking only as far as `scope` allows.
pub fn load_file_in(path: &Path, scope: Scope) -> Result<Config, ConfigErrors> {
    let config = load::read(path)?;
    validate::validate_in(config, scope)
}

/// Parses and validates configuration text.
pub fn load_str(text: &str) -> Result<Config, ConfigErrors> {
    load_str_in(text, Scope::Machine)
}

/// Parses and validates configuration text, looking only as far as `scope` allows.
pub fn load_str_in(text: &str, scope: Scope) -> Result<Config, ConfigErrors> {
    validate::validate_in(load::parse(text)?, scope)
}
