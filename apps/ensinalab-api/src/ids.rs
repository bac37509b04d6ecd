//! Hashids: how database keys look in URLs and bodies. Compatible with the Python `hashids`
//! package (tests/api/hashids-vectors.json), so ids minted by the old service keep working.

use ensinalab_domain::{BriefingId, OptionId, VideoId};
use harsh::Harsh;

use crate::config::HashidsConfig;
use crate::error::ApiError;

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

/// 404 bodies of the seed, one per kind of resource.
pub const VIDEO_NOT_FOUND: &str = "Vídeo não encontrado";
pub const BRIEFING_NOT_FOUND: &str = "Briefing não encontrado";
pub const OPTION_NOT_FOUND: &str = "Opção não encontrada";
pub const TASK_NOT_FOUND: &str = "Task não encontrada";

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
