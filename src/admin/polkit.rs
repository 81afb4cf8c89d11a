//! The polkit check of every changing call (docs/dbus.md, "Who may call"), the way systemd's
//! own services do it: the bus policy lets only root and the `icsmail-admin` group call at all;
//! then, where polkit runs (its name is owned or activatable on the bus), the caller must be
//! authorized for the action `org.icsmail.Mail1.manage`. Root is authorized without asking.
//! Where polkit does not run, the bus policy alone decides.

use zbus::message::{Flags, Header};
use zbus::names::BusName;
use zbus::Connection;
use zbus::Variant as Value;

use super::error::AdminError;

/// The one action of the service (units/polkit/org.icsmail.Mail1.policy).
pub const MANAGE_ACTION: &str = "org.icsmail.Mail1.manage";
const POLKIT_NAME: &str = "org.freedesktop.PolicyKit1";

/// polkit's `CheckAuthorization` flag: the caller may be asked for a password by an agent.
const ALLOW_USER_INTERACTION: u32 = 1;

#[zbus::proxy(
    interface = "org.freedesktop.PolicyKit1.Authority",
    default_service = "org.freedesktop.PolicyKit1",
    default_path = "/org/freedesktop/PolicyKit1/Authority"
)]
trait Authority {
    /// (authorized, challenge, details)
    #[allow(clippy::type_complexity)]
    fn check_authorization(
        &self,
        subject: &(&str, std::collections::HashMap<&str, Value<'_>>),
        action_id: &str,
        details: std::collections::HashMap<&str, &str>,
        flags: u32,
        cancellation_id: &str,
    ) -> zbus::Result<(bool, bool, std::collections::HashMap<String, String>)>;
}

/// Refuses the call of `header`'s sender unless it may manage the mail server.
pub async fn authorize(header: &Header<'_>, connection: &Connection) -> Result<(), AdminError> {
    let Some(sender) = header.sender() else {
        return Err(denied("the call has no sender"));
    };
    let bus = zbus::fdo::DBusProxy::new(connection).await?;
    let caller = BusName::from(sender.to_owned());
    if bus.get_connection_unix_user(caller.clone()).await? == 0 {
        return Ok(());
    }
    if !polkit_runs(&bus).await? {
        return Ok(());
    }
    let subject = (
        "system-bus-name",
        std::collections::HashMap::from([("name", Value::from(sender.as_str()))]),
    );
    let flags = if header
        .primary()
        .flags()
        .contains(Flags::ALLOW_INTERACTIVE_AUTH)
    {
        ALLOW_USER_INTERACTION
    } else {
        0
    };
    let authority = AuthorityProxy::new(connection).await?;
    let (authorized, challenge, _) = authority
        .check_authorization(
            &subject,
            MANAGE_ACTION,
            std::collections::HashMap::new(),
            flags,
            "",
        )
        .await?;
    if authorized {
        return Ok(());
    }
    Err(denied(if challenge {
        "polkit asks for authentication: call with --allow-interactive-authorization=yes from a session with an agent"
    } else {
        "polkit does not allow this caller"
    }))
}

/// Whether polkit answers on this bus: its name has an owner, or the bus can start it.
async fn polkit_runs(bus: &zbus::fdo::DBusProxy<'_>) -> Result<bool, AdminError> {
    let name = BusName::try_from(POLKIT_NAME)?;
    if bus.name_has_owner(name.clone()).await? {
        return Ok(true);
    }
    Ok(bus
        .list_activatable_names()
        .await?
        .iter()
        .any(|activatable| activatable.as_str() == POLKIT_NAME))
}

fn denied(why: &str) -> AdminError {
    AdminError::AccessDenied(format!("{MANAGE_ACTION}: {why}"))
}
