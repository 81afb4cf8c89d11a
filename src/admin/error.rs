//! The admin service's one error type: each variant is a D-Bus error name under
//! `org.icsmail.Mail1.Error`, its text what `busctl` prints.

use super::overrides::EditError;
use crate::config::ConfigErrors;

#[derive(Debug, zbus::DBusError)]
#[zbus(prefix = "org.icsmail.Mail1.Error", impl_display = true)]
pub enum AdminError {
    #[zbus(error)]
    ZBus(zbus::Error),
    /// The change fails the configuration's check; the text has one line per problem, each
    /// starting with the setting's name (as `check-config` prints them).
    InvalidSetting(String),
    /// No setting has this name.
    UnknownSetting(String),
    /// An argument that is neither a setting nor a value (a list that does not exist).
    InvalidArgument(String),
    /// No queued message has this id.
    NoSuchMessage(String),
    /// A queue runner holds the message right now, or a move runs.
    Busy(String),
    /// polkit (where it runs) does not authorize the caller for `org.icsmail.Mail1.manage`.
    AccessDenied(String),
    /// The change was valid but could not be stored, or the configuration could not be read.
    Failed(String),
}

impl From<EditError> for AdminError {
    fn from(err: EditError) -> AdminError {
        match err {
            EditError::Invalid(errors) => AdminError::InvalidSetting(errors.to_string()),
            EditError::Write(why) => {
                AdminError::Failed(format!("writing the override file: {why}"))
            }
        }
    }
}

impl From<ConfigErrors> for AdminError {
    /// The configuration on disk is broken (someone edited a file): say so whole.
    fn from(errors: ConfigErrors) -> AdminError {
        AdminError::Failed(format!("the configuration does not check:\n{errors}"))
    }
}

impl From<tokio::task::JoinError> for AdminError {
    fn from(err: tokio::task::JoinError) -> AdminError {
        AdminError::Failed(format!("the change did not finish: {err}"))
    }
}

impl From<zbus::fdo::Error> for AdminError {
    fn from(err: zbus::fdo::Error) -> AdminError {
        AdminError::ZBus(zbus::Error::from(err))
    }
}
