//! SEARCH: evaluating RFC 3501 §6.4.4 search keys against one message.
