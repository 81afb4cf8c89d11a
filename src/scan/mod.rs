//! Clients of the content scanners a message is handed to before it is accepted: clamd
//! (`clamd`, ClamAV's daemon, by its `INSTREAM` command) and ICAP services (`icap`, RFC 3507:
//! Kaspersky Scan Engine, c-icap, DLP systems). Each says what the scanner found or why it
//! could not ask; what that means for the message is the policy's (`policy::antivirus`,
//! `policy::dlp`). Nothing here knows the settings or SMTP.

pub mod clamd;
pub mod icap;
