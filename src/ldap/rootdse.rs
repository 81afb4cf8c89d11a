//! The RootDSE (RFC 4512 §5.1): what a client reads at the empty DN to learn the base DNs
//! (`namingContexts`) and what the server supports.

use super::dn::Dn;
use super::entries::{Attribute, Book, Entry};

pub const PAGED_RESULTS_OID: &str = "1.2.840.113556.1.4.319";
pub const STARTTLS_OID: &str = "1.3.6.1.4.1.1466.20037";
pub const WHOAMI_OID: &str = "1.3.6.1.4.1.4203.1.11.3";
/// The unsolicited Notice of Disconnection (RFC 4511 §4.4.1).
pub const NOTICE_OF_DISCONNECTION_OID: &str = "1.3.6.1.4.1.1466.20036";

/// The RootDSE; StartTLS is listed when the server has a certificate for it. Its attributes
/// are all returned for a request of no attribute, `*` or `+` (several clients read it so).
pub fn root_dse(book: &Book, starttls: bool) -> Entry {
    let mut extensions = vec![WHOAMI_OID.to_string()];
    if starttls {
        extensions.insert(0, STARTTLS_OID.to_string());
    }
    let attribute = |name, values| Attribute { name, values };
    Entry {
        dn: Dn::root(),
        text: String::new(),
        attributes: vec![
            attribute("objectClass", vec!["top".into(), "extensibleObject".into()]),
            attribute("namingContexts", book.naming_contexts().to_vec()),
            attribute("supportedLDAPVersion", vec!["3".into()]),
            attribute("supportedControl", vec![PAGED_RESULTS_OID.into()]),
            attribute("supportedExtension", extensions),
            attribute("vendorName", vec!["ics-mail".into()]),
        ],
        operational: Vec::new(),
    }
}
