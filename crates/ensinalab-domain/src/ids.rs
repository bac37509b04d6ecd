//! Typed ids: a `VideoId` can never be passed where a `BriefingId` is expected.

use std::fmt;

/// Why a raw value is not a valid id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// Celery task ids are UUID strings (`8-4-4-4-12` hex digits); anything else is refused so a
    /// crafted id never reaches Redis key names.
    #[error("task id must be a UUID string, got {0:?}")]
    NotAUuid(String),
}

macro_rules! int_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        #[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
        pub struct $name(
            /// The database key.
            pub i64,
        );

        impl $name {
            /// The database key.
            pub fn get(self) -> i64 {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

int_id!(
    /// The authenticated user (the JWT's `sub`).
    UserId
);
int_id!(
    /// A video row.
    VideoId
);
int_id!(
    /// A briefing row.
    BriefingId
);
int_id!(
    /// A generated option of a briefing.
    OptionId
);

/// A Celery task id: a UUID string, stored lowercase so lookups are case-insensitive.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(transparent))]
pub struct TaskId(String);

impl TaskId {
    /// Validates `raw` as a hyphenated UUID (any version, either case).
    ///
    /// # Errors
    /// [`IdError::NotAUuid`] for anything that is not `8-4-4-4-12` hex digits.
    pub fn parse(raw: &str) -> Result<Self, IdError> {
        let bytes = raw.as_bytes();
        let hex = |from: usize, to: usize| bytes[from..to].iter().all(u8::is_ascii_hexdigit);
        let well_formed = bytes.len() == 36
            && [8, 13, 18, 23].iter().all(|&i| bytes[i] == b'-')
            && hex(0, 8)
            && hex(9, 13)
            && hex(14, 18)
            && hex(19, 23)
            && hex(24, 36);
        if well_formed {
            let mut id = raw.to_owned();
            id.make_ascii_lowercase();
            Ok(Self(id))
        } else {
            Err(IdError::NotAUuid(raw.chars().take(64).collect()))
        }
    }

    /// The id as Celery writes it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<TaskId> for String {
    fn from(id: TaskId) -> Self {
        id.0
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for TaskId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

impl std::str::FromStr for TaskId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_ids_accept_uuids_of_either_case_and_store_them_lowercase() {
        for raw in [
            "550e8400-e29b-41d4-a716-446655440000",
            "550E8400-E29B-41D4-A716-446655440000",
            "00000000-0000-0000-0000-000000000000",
        ] {
            let id = TaskId::parse(raw).unwrap();
            assert_eq!(id.as_str(), raw.to_ascii_lowercase());
        }
    }

    #[test]
    fn task_ids_refuse_anything_that_is_not_a_uuid() {
        for raw in [
            "",
            "550e8400e29b41d4a716446655440000",
            "550e8400-e29b-41d4-a716-44665544000",
            "550e8400-e29b-41d4-a716-4466554400000",
            "550e8400-e29b-41d4-a716_446655440000",
            "550e8400e-29b-41d4-a716-446655440000",
            "550e8400-e29b-41d4-a716-44665544-000",
            "550e8400-e29b-41d4-a716-446655440000-",
            "g50e8400-e29b-41d4-a716-446655440000",
            "*",
            "celery-task-meta-*",
            "550e8400-e29b-41d4-a716-44665544000\u{e9}",
        ] {
            assert!(
                matches!(TaskId::parse(raw), Err(IdError::NotAUuid(_))),
                "{raw:?} accepted"
            );
        }
    }

    #[test]
    fn integer_ids_display_as_their_key() {
        assert_eq!(VideoId(42).to_string(), "42");
        assert_eq!(UserId(7).get(), 7);
    }
}
