//! Modified UTF-7 folder names on the wire (RFC 3501 §5.1.3).
