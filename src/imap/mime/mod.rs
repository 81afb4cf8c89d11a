//! ENVELOPE, BODYSTRUCTURE and BODY[section] of a message (RFC 3501 §6.4.5, §7.4.2).
