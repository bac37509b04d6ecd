//! Hashids: how database keys look in URLs and bodies. Compatible with the Python `hashids`
//! package (tests/api/hashids-vectors.json), so ids minted by the old service keep working.

use ensinalab_domain::{BriefingId, OptionId, ResourceKind, UserId, VideoId};
use ensinalab_ports::ActivePosition;
use harsh::Harsh;
use time::OffsetDateTime;

use crate::config::HashidsConfig;
use crate::error::{ApiError, BRIEFING_NOT_FOUND, OPTION_NOT_FOUND, VIDEO_NOT_FOUND};

mod single;

/// Why hashids could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("invalid hashids settings: {0}")]
pub struct HashidsError(String);

/// Encodes and decodes resource keys.
#[derive(Debug, Clone)]
pub struct Hashids {
    harsh: Harsh,
    /// [`Self::encode`]'s fast path: the same hashes as `harsh`.
    single: single::SingleEncoder,
}

impl Hashids {
    /// With the default alphabet.
    ///
    /// # Errors
    /// When harsh refuses the settings.
    pub fn new(config: &HashidsConfig) -> Result<Self, HashidsError> {
        Self::with_alphabet(config, None)
    }

    /// With a custom alphabet (the vectors exercise it).
    ///
    /// # Errors
    /// When harsh refuses the settings (e.g. too short an alphabet).
    pub fn with_alphabet(
        config: &HashidsConfig,
        alphabet: Option<&str>,
    ) -> Result<Self, HashidsError> {
        let mut builder = Harsh::builder()
            .salt(config.salt.as_bytes())
            .length(config.min_length);
        if let Some(a) = alphabet {
            builder = builder.alphabet(a.as_bytes());
        }
        let harsh = builder.build().map_err(|e| HashidsError(e.to_string()))?;
        let single = single::SingleEncoder::new(
            alphabet.map_or(single::DEFAULT_ALPHABET, str::as_bytes),
            config.salt.as_bytes(),
            config.min_length,
        );
        Ok(Self { harsh, single })
    }

    /// Encodes numbers (keys are never negative; a negative one encodes as the empty string).
    pub fn encode_many(&self, numbers: &[u64]) -> String {
        self.harsh.encode(numbers)
    }

    /// Decodes a hash as the Python package does: anything that is not the canonical encoding
    /// of some numbers is `[]`.
    pub fn decode_many(&self, hash: &str) -> Vec<u64> {
        // harsh adds segment values unchecked, which panics on overflow in debug builds for
        // crafted input; a panic here must be a 404, not a dropped connection.
        std::panic::catch_unwind(|| self.harsh.decode(hash))
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default()
    }

    /// The hash of one key.
    pub fn encode(&self, key: i64) -> String {
        u64::try_from(key)
            .map(|k| self.single.encode(k))
            .unwrap_or_default()
    }

    /// The key of a one-number hash, if `hash` is one.
    pub fn decode(&self, hash: &str) -> Option<i64> {
        // Our hashes are short; a long path segment cannot be one and is not worth decoding.
        if hash.len() > 64 {
            return None;
        }
        match self.decode_many(hash).as_slice() {
            [one] => i64::try_from(*one).ok(),
            _ => None,
        }
    }

    /// A video key from its hash; an undecodable hash is the same 404 as a missing video.
    ///
    /// # Errors
    /// [`ApiError::NotFound`].
    pub fn video(&self, hash: &str) -> Result<VideoId, ApiError> {
        self.decode(hash)
            .map(VideoId)
            .ok_or(ApiError::NotFound(VIDEO_NOT_FOUND))
    }

    /// A briefing key from its hash.
    ///
    /// # Errors
    /// [`ApiError::NotFound`].
    pub fn briefing(&self, hash: &str) -> Result<BriefingId, ApiError> {
        self.decode(hash)
            .map(BriefingId)
            .ok_or(ApiError::NotFound(BRIEFING_NOT_FOUND))
    }

    /// The `next_cursor` of a page of `user`'s active list that ends at `at`: an opaque hash of
    /// the user and the position (the user, so that a cursor is worth nothing to anyone else).
    pub fn cursor(&self, user: UserId, at: &ActivePosition) -> String {
        let micros = at.created_at.unix_timestamp_nanos() / 1_000;
        let kind = match at.kind {
            ResourceKind::Briefing => 0,
            ResourceKind::Video => 1,
        };
        let numbers = [user.get(), i64::try_from(micros).unwrap_or(0), kind, at.id];
        match numbers.map(u64::try_from) {
            [Ok(a), Ok(b), Ok(c), Ok(d)] => self.encode_many(&[a, b, c, d]),
            _ => String::new(),
        }
    }

    /// The position a `cursor` of [`Self::cursor`] names, if it is one of `user`'s.
    ///
    /// # Errors
    /// [`ApiError::BadRequest`] for anything else: garbage, another user's cursor.
    pub fn position(&self, user: UserId, cursor: &str) -> Result<ActivePosition, ApiError> {
        let bad = || ApiError::BadRequest("Parâmetro inválido: cursor".to_owned());
        if cursor.len() > 128 {
            return Err(bad());
        }
        let [owner, micros, kind, id] = self.decode_many(cursor)[..] else {
            return Err(bad());
        };
        let kind = match kind {
            0 => ResourceKind::Briefing,
            1 => ResourceKind::Video,
            _ => return Err(bad()),
        };
        let created_at = i128::from(micros)
            .checked_mul(1_000)
            .and_then(|nanos| OffsetDateTime::from_unix_timestamp_nanos(nanos).ok());
        match (i64::try_from(owner), created_at, i64::try_from(id)) {
            (Ok(owner), Some(created_at), Ok(id)) if owner == user.get() => Ok(ActivePosition {
                created_at,
                kind,
                id,
            }),
            _ => Err(bad()),
        }
    }

    /// An option key from its hash.
    ///
    /// # Errors
    /// [`ApiError::NotFound`].
    pub fn option(&self, hash: &str) -> Result<OptionId, ApiError> {
        self.decode(hash)
            .map(OptionId)
            .ok_or(ApiError::NotFound(OPTION_NOT_FOUND))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> Hashids {
        Hashids::new(&HashidsConfig {
            salt: "ensinalab".into(),
            min_length: 6,
        })
        .unwrap()
    }

    #[test]
    fn keys_round_trip_through_their_hash() {
        let ids = ids();
        for key in [1, 2, 42, 1_000_000, i64::MAX] {
            let hash = ids.encode(key);
            assert!(hash.len() >= 6, "{hash}");
            assert_eq!(ids.decode(&hash), Some(key));
        }
    }

    #[test]
    fn a_cursor_names_its_position_to_its_user_only() {
        let ids = ids();
        let at = ActivePosition {
            created_at: OffsetDateTime::from_unix_timestamp_nanos(1_764_000_000_123_456_000)
                .unwrap(),
            kind: ResourceKind::Video,
            id: 42,
        };
        let cursor = ids.cursor(UserId(7), &at);
        assert_eq!(ids.position(UserId(7), &cursor).unwrap(), at);
        assert!(ids.position(UserId(8), &cursor).is_err(), "another user's");
        for forged in [
            "",
            "aB3xY9",
            &ids.encode(7),
            &ids.encode_many(&[7, 1, 9, 1]),
        ] {
            assert!(ids.position(UserId(7), forged).is_err(), "{forged:?}");
        }
    }

    #[test]
    fn garbage_and_multi_number_hashes_decode_to_nothing() {
        let ids = ids();
        let pair = ids.encode_many(&[1, 2]);
        let long = "z".repeat(5000);
        for hash in [
            "",
            "!",
            "aB3xY9",
            "../../etc",
            &pair,
            &long,
            "é",
            "ZZZZZZZZZZZZZZZZZZZZ",
        ] {
            assert_eq!(ids.decode(hash), None, "{hash}");
        }
    }
}
