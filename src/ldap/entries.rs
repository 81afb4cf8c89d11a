//! The entries of the book, built from the account directory of the settings in force: under
//! each base DN of `addressBook.baseDn` the base entry itself and one `inetOrgPerson` per
//! mailbox. Rebuilt when a reload brings a new directory (see [`BookCache`]), so an account
//! added, changed or removed shows in the next search without a restart.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use super::dn::{first_rdn_as_written, Dn};
use crate::address::Address;
use crate::auth::Directory;

/// One attribute of an entry: its canonical name and its values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    pub name: &'static str,
    pub values: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Entry {
    pub dn: Dn,
    /// The DN as the server writes it in results.
    pub text: String,
    /// User attributes (`*`).
    pub attributes: Vec<Attribute>,
    /// Operational attributes (`+`).
    pub operational: Vec<Attribute>,
}

impl Entry {
    /// The values of the attribute of this canonical name, user or operational.
    pub fn values(&self, name: &str) -> Option<&[String]> {
        self.attributes
            .iter()
            .chain(&self.operational)
            .find(|attribute| attribute.name == name)
            .map(|attribute| attribute.values.as_slice())
    }
}

/// The attribute types this server knows, by their names, short names and OIDs (RFC 4519,
/// RFC 2798, RFC 4512 for the RootDSE), lowercased; `None`: a type it does not know.
pub fn canonical(name: &str) -> Option<&'static str> {
    let lower = name.trim().to_ascii_lowercase();
    Some(match lower.as_str() {
        "objectclass" | "2.5.4.0" => "objectClass",
        "cn" | "commonname" | "2.5.4.3" => "cn",
        "sn" | "surname" | "2.5.4.4" => "sn",
        "givenname" | "gn" | "2.5.4.42" => "givenName",
        "displayname" | "2.16.840.1.113730.3.1.241" => "displayName",
        "mail" | "rfc822mailbox" | "0.9.2342.19200300.100.1.3" => "mail",
        "uid" | "userid" | "0.9.2342.19200300.100.1.1" => "uid",
        "dc" | "domaincomponent" | "0.9.2342.19200300.100.1.25" => "dc",
        "o" | "organizationname" | "2.5.4.10" => "o",
        "ou" | "organizationalunitname" | "2.5.4.11" => "ou",
        "entrydn" | "1.3.6.1.1.20" => "entryDN",
        "hassubordinates" | "2.5.18.9" => "hasSubordinates",
        "structuralobjectclass" | "2.5.21.9" => "structuralObjectClass",
        "namingcontexts" | "1.3.6.1.4.1.1466.101.120.5" => "namingContexts",
        "supportedldapversion" | "1.3.6.1.4.1.1466.101.120.15" => "supportedLDAPVersion",
        "supportedcontrol" | "1.3.6.1.4.1.1466.101.120.13" => "supportedControl",
        "supportedextension" | "1.3.6.1.4.1.1466.101.120.7" => "supportedExtension",
        "supportedsaslmechanisms" | "1.3.6.1.4.1.1466.101.120.14" => "supportedSASLMechanisms",
        "vendorname" | "1.3.6.1.1.4" => "vendorName",
        _ => return None,
    })
}

/// Attribute types of the inetOrgPerson schema that no entry here carries: a filter on one is
/// simply false (as on a server with that schema), where a type nobody knows is Undefined
/// (RFC 4511 §4.5.1.7), which matters under `!`.
pub fn known_but_absent(name: &str) -> bool {
    const TYPES: &[&str] = &[
        "telephonenumber",
        "mobile",
        "homephone",
        "pager",
        "facsimiletelephonenumber",
        "title",
        "description",
        "initials",
        "street",
        "l",
        "st",
        "c",
        "postalcode",
        "postaladdress",
        "homepostaladdress",
        "departmentnumber",
        "employeenumber",
        "employeetype",
        "manager",
        "secretary",
        "businesscategory",
        "labeleduri",
        "jpegphoto",
        "seealso",
        "userpassword",
        "preferredlanguage",
        "roomnumber",
        "carlicense",
        "physicaldeliveryofficename",
    ];
    TYPES.contains(&name.trim().to_ascii_lowercase().as_str())
}

/// Every entry of the book, in a fixed order (paged results count on it).
#[derive(Debug, Default)]
pub struct Book {
    entries: Vec<Entry>,
    naming_contexts: Vec<String>,
}

impl Book {
    /// The book of `directory` under the base DNs of `base_dns` (`;`-separated; parts that are
    /// empty or do not parse are left out — validation refuses them anyway).
    pub fn build(directory: &Directory, base_dns: &str) -> Book {
        let mut aliases: BTreeMap<&Address, Vec<String>> = BTreeMap::new();
        for (alias, target) in directory.aliases() {
            aliases.entry(target).or_default().push(alias.to_string());
        }
        aliases.values_mut().for_each(|list| list.sort());
        let mut accounts: Vec<_> = directory.accounts().collect();
        accounts.sort_by(|a, b| a.address.cmp(&b.address));
        let mut book = Book::default();
        let mut seen = std::collections::HashSet::new();
        for text in base_dns.split(';').map(str::trim).filter(|t| !t.is_empty()) {
            let Ok(base) = Dn::parse(text) else {
                continue;
            };
            if base.is_root() || !seen.insert(base.clone()) {
                continue;
            }
            book.naming_contexts.push(text.to_string());
            book.entries
                .push(base_entry(&base, text, !accounts.is_empty()));
            for account in &accounts {
                let extra = aliases.get(&account.address).map_or(&[][..], Vec::as_slice);
                book.entries.push(person_entry(
                    &base,
                    text,
                    &account.address,
                    account.display_name.as_deref(),
                    extra,
                ));
            }
        }
        book
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    pub fn find(&self, dn: &Dn) -> Option<&Entry> {
        self.entries.iter().find(|entry| &entry.dn == dn)
    }

    /// The base DNs, as configured.
    pub fn naming_contexts(&self) -> &[String] {
        &self.naming_contexts
    }
}

fn attribute(name: &'static str, values: Vec<String>) -> Attribute {
    Attribute { name, values }
}

/// A base entry: its structural class follows its first RDN's type (`dc` → `domain`,
/// `o` → `organization`, `ou` → `organizationalUnit`).
fn base_entry(dn: &Dn, text: &str, has_children: bool) -> Entry {
    let mut attributes = Vec::new();
    let (kind, value) = first_rdn_as_written(text).unwrap_or_default();
    let (class, naming) = match kind.to_ascii_lowercase().as_str() {
        "dc" => ("domain", Some("dc")),
        "o" => ("organization", Some("o")),
        "ou" => ("organizationalUnit", Some("ou")),
        _ => ("extensibleObject", None),
    };
    attributes.push(attribute("objectClass", vec!["top".into(), class.into()]));
    if let Some(name) = naming {
        attributes.push(attribute(name, vec![value]));
    }
    Entry {
        dn: dn.clone(),
        text: text.to_string(),
        attributes,
        operational: operational(text, class, has_children),
    }
}

fn operational(text: &str, class: &str, has_children: bool) -> Vec<Attribute> {
    let flag = if has_children { "TRUE" } else { "FALSE" };
    vec![
        attribute("entryDN", vec![text.to_string()]),
        attribute("hasSubordinates", vec![flag.into()]),
        attribute("structuralObjectClass", vec![class.into()]),
    ]
}

/// A mailbox: `cn` is the display name (or the local part), `sn` its last word, `givenName`
/// the words before it; `mail` the address and then its aliases; `uid` the address (the login).
fn person_entry(
    base: &Dn,
    base_text: &str,
    address: &Address,
    display_name: Option<&str>,
    aliases: &[String],
) -> Entry {
    let address_text = address.to_string();
    let (dn, text) = base.child("uid", &address_text, base_text);
    let display = display_name.map(str::trim).filter(|name| !name.is_empty());
    let cn = display.unwrap_or(address.local()).to_string();
    let words: Vec<&str> = cn.split_whitespace().collect();
    let (given, sn) = match words.split_last() {
        Some((last, rest)) if !rest.is_empty() => (Some(rest.join(" ")), last.to_string()),
        _ => (None, cn.clone()),
    };
    let mut attributes = vec![attribute(
        "objectClass",
        ["top", "person", "organizationalPerson", "inetOrgPerson"]
            .map(String::from)
            .to_vec(),
    )];
    attributes.push(attribute("cn", vec![cn.clone()]));
    attributes.push(attribute("sn", vec![sn]));
    if let Some(given) = given {
        attributes.push(attribute("givenName", vec![given]));
    }
    if let Some(display) = display {
        attributes.push(attribute("displayName", vec![display.to_string()]));
    }
    let mut mail = vec![address_text.clone()];
    mail.extend(aliases.iter().cloned());
    attributes.push(attribute("mail", mail));
    attributes.push(attribute("uid", vec![address_text]));
    let operational = operational(&text, "inetOrgPerson", false);
    Entry {
        dn,
        text,
        attributes,
        operational,
    }
}

/// The book of the directory in force, built again only when a reload brought another
/// directory or other base DNs.
#[derive(Default)]
pub struct BookCache {
    current: Mutex<Option<Cached>>,
}

/// A book and what it was built from.
struct Cached {
    directory: Arc<Directory>,
    base_dns: String,
    book: Arc<Book>,
}

impl BookCache {
    pub fn get(&self, directory: &Arc<Directory>, base_dns: &str) -> Arc<Book> {
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(cached) = current.as_ref() {
            if Arc::ptr_eq(&cached.directory, directory) && cached.base_dns == base_dns {
                return cached.book.clone();
            }
        }
        let book = Arc::new(Book::build(directory, base_dns));
        *current = Some(Cached {
            directory: directory.clone(),
            base_dns: base_dns.to_string(),
            book: book.clone(),
        });
        book
    }
}
