//! The enrichment strings of S32–S37 (asa-api.md §8.7), with the template's bugs fixed.
//!
//! Each helper looks the reference id up in Audit Related Objects, parses its `object` and
//! composes one line. Fixes, as DESIGN.md §5 asks:
//! - S32 (client) reads `user_name` (the template read `username`, which ASA clients do not
//!   have) and fills the "hostname" label from `hostname` (the template used `description`);
//!   the stray trailing `"\n\n"` of the template's Compose card is dropped;
//! - S37 (user) reads `user_type` (the template read `usertype`); the template's space before
//!   the comma is kept, as that is its documented text.
//!
//! Fields that are `null` or missing render as empty; a reference that is empty, `null`, not a
//! string or not in the table, and an object that is empty, gives `""` (the template's
//! "Continue If object is not empty" stops the helper, so the caller gets nothing).

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::Value;

use crate::model::RelatedObjectRow;
use crate::{ref_id, text_of};

/// Which helper: the related object's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// S32
    Client,
    /// S33
    Gateway,
    /// S34
    Group,
    /// S35
    Project,
    /// S36
    Server,
    /// S37
    User,
}

impl Kind {
    /// Every kind, in declaration order (`kind as usize` indexes it).
    pub const ALL: [Kind; 6] =
        [Kind::Client, Kind::Gateway, Kind::Group, Kind::Project, Kind::Server, Kind::User];

    /// The helper flow that describes this kind.
    pub fn flow(self) -> &'static str {
        match self {
            Kind::Client => "S32",
            Kind::Gateway => "S33",
            Kind::Group => "S34",
            Kind::Project => "S35",
            Kind::Server => "S36",
            Kind::User => "S37",
        }
    }

    /// The fields of a related object this kind's line reads, in the order it reads them.
    fn fields(self) -> &'static [&'static str] {
        match self {
            Kind::Client => &["user_name", "hostname", "os", "state"],
            Kind::Gateway => &["name", "access_address", "default_address"],
            Kind::Group | Kind::Project => &["name"],
            Kind::Server => {
                &["hostname", "project_name", "canonical_name", "access_address", "os", "os_type"]
            }
            Kind::User => &["name", "status", "user_type"],
        }
    }

    /// The line from the texts of [`Kind::fields`], in that order.
    fn compose(self, f: &[String]) -> String {
        let f = |i: usize| f.get(i).map_or("", String::as_str);
        match self {
            Kind::Client => format!("{} (hostname: {}, OS: {}, state: {})", f(0), f(1), f(2), f(3)),
            Kind::Gateway => {
                format!("{} (access_address: {}, default_address: {})", f(0), f(1), f(2))
            }
            Kind::Group | Kind::Project => f(0).to_string(),
            Kind::Server => format!(
                "{} (project: {}, canonical name: {}, access address: {}, OS: {}, OS type: {})",
                f(0),
                f(1),
                f(2),
                f(3),
                f(4),
                f(5)
            ),
            Kind::User => format!("{} (status: {} , usertype: {})", f(0), f(1), f(2)),
        }
    }

    /// The line for a related object (`""` when it is empty or not an object). The helpers
    /// read a stored object with [`Kind::describe_text`]; this is the same line from a parsed
    /// `Value`, which the tests hold that one-pass reading to.
    pub fn describe(self, object: &Value) -> String {
        let Some(obj) = object.as_object().filter(|o| !o.is_empty()) else {
            return String::new();
        };
        let texts: Vec<String> = self.fields().iter().map(|name| text_of(obj.get(*name))).collect();
        self.compose(&texts)
    }

    /// [`Kind::describe`] of the object in `text`, read in one pass that builds only the
    /// fields the line shows: the same line for any text (`""` when it is no JSON, not an
    /// object or an empty one; of a repeated member, the last), with none of the object's
    /// other members built.
    pub fn describe_text(self, text: &str) -> String {
        let names = self.fields();
        let mut de = serde_json::Deserializer::from_str(text);
        let found =
            match (Members { names }).deserialize(&mut de).and_then(|f| de.end().map(|()| f)) {
                Ok(Some(found)) => found,
                Ok(None) | Err(_) => return String::new(),
            };
        let texts: Vec<String> = found.iter().map(|v| text_of(v.as_ref())).collect();
        self.compose(&texts)
    }

    /// The whole helper: the line for `reference`, looking the row up with `lookup` (only called
    /// for a non-empty string reference). A stored `object` that is not JSON counts as empty.
    pub fn describe_ref<E>(
        self,
        reference: &Value,
        lookup: impl FnOnce(&str) -> Result<Option<RelatedObjectRow>, E>,
    ) -> Result<String, E> {
        let Some(id) = ref_id(Some(reference)) else {
            return Ok(String::new());
        };
        let Some(row) = lookup(id)? else {
            return Ok(String::new());
        };
        Ok(self.describe_text(&row.object))
    }
}

/// Reads a JSON object keeping only the members named in `names` (the last of each, as a
/// `Value` would), and checks the rest as parsing it into a `Value` would (numbers included)
/// without building it. `None`: an empty object. Anything but an object is an error (whose
/// line is `""` as well).
struct Members {
    names: &'static [&'static str],
}

impl<'de> DeserializeSeed<'de> for Members {
    type Value = Option<Vec<Option<Value>>>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Members {
    type Value = Option<Vec<Option<Value>>>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found: Vec<Option<Value>> = vec![None; self.names.len()];
        let mut any = false;
        while let Some(name) = map.next_key::<Name<'de>>()? {
            any = true;
            match self.names.iter().position(|n| *n == name.0.as_ref()) {
                Some(i) => found[i] = Some(map.next_value()?),
                None => map.next_value::<Skip>().map(drop)?,
            }
        }
        Ok(any.then_some(found))
    }
}

/// A member's name, borrowed from the text unless it has escapes.
struct Name<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Name<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Name<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a member name")
            }
            fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Name<'de>, E> {
                Ok(Name(Cow::Borrowed(s)))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Name<'de>, E> {
                Ok(Name(Cow::Owned(s.to_string())))
            }
        }
        d.deserialize_str(V)
    }
}

/// Any JSON value, read as a `Value` would be (so a number out of range fails the same) and
/// dropped as it is read. (`IgnoredAny` would skip a number without reading it.)
struct Skip;

impl<'de> Deserialize<'de> for Skip {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(SkipVisitor)
    }
}

struct SkipVisitor;

impl<'de> Visitor<'de> for SkipVisitor {
    type Value = Skip;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Skip, A::Error> {
        while map.next_key::<Skip>()?.is_some() {
            map.next_value::<Skip>()?;
        }
        Ok(Skip)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Skip, A::Error> {
        while seq.next_element::<Skip>()?.is_some() {}
        Ok(Skip)
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Skip, E> {
        Ok(Skip)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    /// The `related_objects` of the asa-api.md §7 example page.
    pub fn doc_related_objects() -> Value {
        json!({
            "18TGDjrSCM5QZkQQNunxkeC3UDanf2Xi6qR1JEMjP74=": {"type": "user", "object": {"deleted_at": null,
              "details": {"email": "jason.compson@example.com", "first_name": "Jason", "full_name": "Jason Compson IV", "last_name": "Compson"},
              "id": "e4c22cba-f8ec-4beb-98f4-b1a03725b204", "name": "Jason.Compson.IV", "oauth_client_application_id": null,
              "role_grants": null, "status": "ACTIVE", "team_name": "", "user_type": "human"}},
            "gMMtgekb3qBM16OBmzInX8MpivTH7IfrAJlSfQQc7Vw=": {"type": "user", "object": {"deleted_at": null,
              "details": {"email": "quentin.compson@example.com", "first_name": "Quentin", "full_name": "Quentin Compson", "last_name": "Compson"},
              "id": "6513270e-269e-4d37-b2a7-4de452e6b438", "name": "Quentin.Compson", "oauth_client_application_id": null,
              "role_grants": null, "status": "ACTIVE", "team_name": "", "user_type": "human"}},
            "4PzUzk49Dj3gkfIUFbt80BH6wojEICCoefKMKkOH35s=": {"type": "user", "object": {"deleted_at": null, "details": null,
              "id": "aa225c16-af6e-4ab4-9150-456fd472e2d7", "name": "shreve", "oauth_client_application_id": null,
              "role_grants": null, "status": "ACTIVE", "team_name": "", "user_type": "service"}},
            "ErWhDzoR5wjcVBKDPEerfDaKIbnv4ZKTeT7Iec5oMBg=": {"type": "client", "object": {"deleted_at": null,
              "description": "Personal laptop", "encrypted": true, "hostname": "Absalom", "id": "65d9e9d0-b0e5-48d9-aea6-420b9da6d1a3",
              "os": "macOS 10.14.6", "state": "ACTIVE", "user_name": "Jason.Compson.IV"}},
            "3Sn5zM8t4WkGLbzsVcjuac2r3bzPP0QoybMbYd8J23g=": {"type": "server", "object": {"access_address": null, "alt_names": null,
              "bastion": null, "canonical_name": null, "cloud_provider": null, "deleted_at": "0001-01-01T00:00:00Z", "hostname": "harvard",
              "id": "0a49a1cf-c747-47a0-bb14-94b1edb9f3ee", "instance_details": null, "last_seen": "2024-03-05T01:01:00Z", "managed": true,
              "os": "Ubuntu 16.04", "os_type": "linux", "project_name": "the-sound-and-the-fury", "registered_at": "2023-01-01T00:00:00Z",
              "services": ["ssh"], "sftd_version": "1.44.4", "ssh_host_keys": null, "state": "ACTIVE", "team_name": "william-faulkner"}},
            "caw2gnnL5vXLvCuoFUiDqaKeVRfR88A8rE85zjIlBgs=": {"type": "project", "object": {"create_server_users": true,
              "deleted_at": "0001-01-01T00:00:00Z", "force_shared_ssh_users": false, "id": "47534a0d-ba28-4a8b-b427-3a9fb276c033",
              "name": "the-sound-and-the-fury", "next_unix_gid": 63001, "next_unix_uid": 60001, "require_preauth_for_creds": true,
              "shared_admin_user_name": null, "shared_standard_user_name": null, "team": "william-faulkner", "user_on_demand_period": null}},
            "Pvt5nNnEEnRq4qGTMbeyYn5mPiWnsAHkwNzF4hvHbDg=": {"type": "group", "object": {"deleted_at": "0001-01-01T00:00:00Z",
              "federated_from_team": null, "federation_approved_at": null, "id": "57bc138b-63c2-4351-98d0-d72d8d6c1b74",
              "name": "compsons", "roles": ["access_user"]}},
            "1OiMcuUovtx5c0LAP9ejRsTHhXygPUZwE7ZJPEVVUeQ=": {"type": "gateway", "object": {"id": "d23f0824-128b-4f33-8c5c-7fd0a6a3a450",
              "name": "gw-jefferson", "access_address": "gw.example.com", "default_address": "10.0.0.5", "description": "",
              "cloud_provider": "", "refuse_connections": false, "labels": {}}}
        })
    }

    /// Looks a reference up in the example's related objects, as S21 would have stored them.
    pub fn doc_lookup(id: &str) -> Result<Option<RelatedObjectRow>, String> {
        let ro = doc_related_objects();
        Ok(ro
            .get(id)
            .map(|v| crate::model::RelatedItem::from_entry(id.to_string(), v.clone()).into_row()))
    }

    fn describe(kind: Kind, id: &str) -> String {
        kind.describe_ref(&json!(id), doc_lookup).unwrap()
    }

    #[test]
    fn user_reads_user_type() {
        assert_eq!(
            describe(Kind::User, "18TGDjrSCM5QZkQQNunxkeC3UDanf2Xi6qR1JEMjP74="),
            "Jason.Compson.IV (status: ACTIVE , usertype: human)"
        );
        assert_eq!(
            describe(Kind::User, "4PzUzk49Dj3gkfIUFbt80BH6wojEICCoefKMKkOH35s="),
            "shreve (status: ACTIVE , usertype: service)"
        );
    }

    #[test]
    fn client_reads_user_name_and_hostname_without_trailing_newlines() {
        assert_eq!(
            describe(Kind::Client, "ErWhDzoR5wjcVBKDPEerfDaKIbnv4ZKTeT7Iec5oMBg="),
            "Jason.Compson.IV (hostname: Absalom, OS: macOS 10.14.6, state: ACTIVE)"
        );
    }

    #[test]
    fn server_renders_nulls_as_empty() {
        assert_eq!(
            describe(Kind::Server, "3Sn5zM8t4WkGLbzsVcjuac2r3bzPP0QoybMbYd8J23g="),
            "harvard (project: the-sound-and-the-fury, canonical name: , access address: , OS: Ubuntu 16.04, OS type: linux)"
        );
    }

    #[test]
    fn gateway_group_project() {
        assert_eq!(
            describe(Kind::Gateway, "1OiMcuUovtx5c0LAP9ejRsTHhXygPUZwE7ZJPEVVUeQ="),
            "gw-jefferson (access_address: gw.example.com, default_address: 10.0.0.5)"
        );
        assert_eq!(
            describe(Kind::Group, "Pvt5nNnEEnRq4qGTMbeyYn5mPiWnsAHkwNzF4hvHbDg="),
            "compsons"
        );
        assert_eq!(
            describe(Kind::Project, "caw2gnnL5vXLvCuoFUiDqaKeVRfR88A8rE85zjIlBgs="),
            "the-sound-and-the-fury"
        );
    }

    #[test]
    fn docs_objects_from_the_fixtures() {
        // asa-fixtures/okta-docs-user.json and okta-docs-client.json.
        let user = json!({"deleted_at": null, "details": {"email": "jason.compson@example.com", "first_name": "Jason",
            "full_name": "Jason Compson IV", "last_name": "Compson"}, "id": "9b30f827-66bb-4d86-ba26-d57f85c2a0d6",
            "name": "Jason.Compson.IV", "oauth_client_application_id": null, "role_grants": null, "status": "ACTIVE", "user_type": "human"});
        assert_eq!(
            Kind::User.describe(&user),
            "Jason.Compson.IV (status: ACTIVE , usertype: human)"
        );
        let client = json!({"deleted_at": null, "description": "Work laptop", "encrypted": true, "hostname": "LightInAugust",
            "id": "9c199afe-0ca5-427a-baac-c4341707d82b", "os": "macOS 10.14.6", "state": "PENDING", "user_name": "Jason.Compson.IV"});
        assert_eq!(
            Kind::Client.describe(&client),
            "Jason.Compson.IV (hostname: LightInAugust, OS: macOS 10.14.6, state: PENDING)"
        );
    }

    #[test]
    fn unusable_references_give_empty() {
        let never =
            |_: &str| -> Result<Option<RelatedObjectRow>, String> { panic!("no lookup expected") };
        for r in [json!(""), json!(null), json!(42), json!(["x"]), json!({"id": "x"})] {
            assert_eq!(Kind::User.describe_ref(&r, never).unwrap(), "");
        }
        assert_eq!(describe(Kind::User, "not-in-the-table"), "");
        let stored = |object: &str| {
            let row =
                RelatedObjectRow { id: "r".into(), kind: "user".into(), object: object.into() };
            Kind::User.describe_ref(&json!("r"), |_| Ok::<_, String>(Some(row))).unwrap()
        };
        assert_eq!(stored("{}"), "");
        assert_eq!(stored("null"), "");
        assert_eq!(stored("not json"), "");
        assert_eq!(stored(r#"{"name": "x"}"#), "x (status:  , usertype: )");
    }
}
