//! The hash of ONE key, as `harsh` (and Python's `hashids`) make it, without their per-call
//! work. For a single number the alphabet shuffles depend only on the "lottery" character
//! (`n % 100` picks it), so they are done once per lottery at start-up: encoding is then a base
//! conversion and two table lookups. The active list encodes one key per row, and `harsh`'s
//! shuffles and allocations per call showed in its profile (docs/benchmarks.md, "hashids").
//!
//! Equal to `harsh` by construction and by test (every number up to 20,000 and the extremes, for
//! several salts, lengths and alphabets; and the Python package's vectors in `tests/api`).

use std::borrow::Cow;

/// Python `hashids`' default alphabet and separators (harsh's too).
pub(super) const DEFAULT_ALPHABET: &[u8] =
    b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ1234567890";
const SEPARATORS: &[u8] = b"cfhistuCFHISTU";
const SEPARATOR_DIV: f64 = 3.5;
const GUARD_DIV: f64 = 12.0;

/// Per-lottery tables for encoding one number.
#[derive(Debug, Clone)]
pub(super) struct SingleEncoder {
    /// The alphabet after the separators and guards were taken out, shuffled by the salt.
    alphabet: Box<[u8]>,
    guards: Box<[u8]>,
    min_length: usize,
    /// Indexed like `alphabet`.
    lotteries: Box<[Lottery]>,
}

/// The alphabet shuffled for one lottery character, and its first padding shuffle.
#[derive(Debug, Clone)]
struct Lottery {
    shuffled: Box<[u8]>,
    padding: Box<[u8]>,
}

impl SingleEncoder {
    /// Tables for `alphabet` (already valid: `harsh` built with the same settings) and `salt`.
    pub(super) fn new(alphabet: &[u8], salt: &[u8], min_length: usize) -> Self {
        let mut unique: Vec<u8> = Vec::with_capacity(alphabet.len());
        for &c in alphabet {
            if !unique.contains(&c) {
                unique.push(c);
            }
        }
        let mut separators: Vec<u8> = SEPARATORS
            .iter()
            .copied()
            .filter(|c| unique.contains(c))
            .collect();
        let mut alphabet: Vec<u8> = unique
            .into_iter()
            .filter(|c| !separators.contains(c))
            .collect();
        shuffle(&mut separators, salt);
        if separators.is_empty() || ratio(alphabet.len(), separators.len()) > SEPARATOR_DIV {
            let wanted = match ceil_div(alphabet.len(), SEPARATOR_DIV) {
                1 => 2,
                n => n,
            };
            if wanted > separators.len() {
                let taken = wanted - separators.len();
                separators.extend_from_slice(&alphabet[..taken]);
                alphabet.drain(..taken);
            } else {
                separators.truncate(wanted);
            }
        }
        shuffle(&mut alphabet, salt);
        let guard_count = ceil_div(alphabet.len(), GUARD_DIV);
        let guards: Vec<u8> = if alphabet.len() < 3 {
            separators.drain(..guard_count).collect()
        } else {
            alphabet.drain(..guard_count).collect()
        };

        let lotteries = alphabet
            .iter()
            .map(|&lottery| {
                let mut key = Vec::with_capacity(1 + salt.len() + alphabet.len());
                key.push(lottery);
                key.extend_from_slice(salt);
                key.extend_from_slice(&alphabet);
                let mut shuffled = alphabet.clone();
                shuffle(&mut shuffled, &key[..alphabet.len()]);
                let mut padding = shuffled.clone();
                shuffle(&mut padding, &shuffled);
                Lottery {
                    shuffled: shuffled.into(),
                    padding: padding.into(),
                }
            })
            .collect();
        Self {
            alphabet: alphabet.into(),
            guards: guards.into(),
            min_length,
            lotteries,
        }
    }

    /// The hash of `n` alone.
    pub(super) fn encode(&self, n: u64) -> String {
        let len = self.alphabet.len();
        // harsh and Python's `hashids` sum `value % (index + 100)` over the numbers: one here.
        let nhash = usize::try_from(n % 100).unwrap_or(0);
        let lottery = nhash % len;
        let Lottery { shuffled, padding } = &self.lotteries[lottery];
        let mut out: Vec<u8> = Vec::with_capacity(self.min_length.max(16));
        out.push(self.alphabet[lottery]);
        let digits = out.len();
        let base = len as u64;
        let mut rest = n;
        loop {
            out.push(shuffled[usize::try_from(rest % base).unwrap_or(0)]);
            rest /= base;
            if rest == 0 {
                break;
            }
        }
        out[digits..].reverse();

        if out.len() < self.min_length {
            let guards = &self.guards;
            out.insert(0, guards[(nhash + usize::from(out[0])) % guards.len()]);
            if out.len() < self.min_length {
                out.push(guards[(nhash + usize::from(out[2])) % guards.len()]);
            }
        }
        let half = len / 2;
        let mut alphabet: Cow<'_, [u8]> = Cow::Borrowed(padding);
        let mut first = true;
        while out.len() < self.min_length {
            if !first {
                // a length beyond one round's: the alphabet is shuffled again, by itself
                let key = alphabet.to_vec();
                shuffle(alphabet.to_mut(), &key);
            }
            first = false;
            let mut padded = Vec::with_capacity(out.len() + len);
            padded.extend_from_slice(&alphabet[half..]);
            padded.extend_from_slice(&out);
            padded.extend_from_slice(&alphabet[..half]);
            if padded.len() > self.min_length {
                padded.drain(..(padded.len() - self.min_length) / 2);
                padded.truncate(self.min_length);
            }
            out = padded;
        }
        // Every byte comes from the alphabet, which `harsh` accepted as bytes of a `str`.
        String::from_utf8(out)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
    }
}

/// The hashids shuffle (a salted Fisher-Yates), as in `harsh` and Python's `hashids`.
fn shuffle(values: &mut [u8], salt: &[u8]) {
    if salt.is_empty() {
        return;
    }
    let (mut v, mut p) = (0, 0);
    for i in (1..values.len()).rev() {
        v %= salt.len();
        let n = usize::from(salt[v]);
        p += n;
        values.swap(i, (n + v + p) % i);
        v += 1;
    }
}

#[allow(clippy::cast_precision_loss)]
fn ratio(a: usize, b: usize) -> f64 {
    a as f64 / b as f64
}

#[allow(
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]
fn ceil_div(a: usize, by: f64) -> usize {
    (a as f64 / by).ceil() as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULT: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ1234567890";

    #[test]
    fn every_hash_equals_harsh_for_many_numbers_and_settings() {
        let settings: [(&str, usize, &str); 8] = [
            ("", 0, DEFAULT),
            ("ensinalab", 6, DEFAULT),
            ("bench", 6, DEFAULT),
            ("this is my salt", 8, DEFAULT),
            ("salt", 1, DEFAULT),
            (
                "a longer salt than the alphabet itself, by some way, really",
                40,
                DEFAULT,
            ),
            ("x", 120, DEFAULT),
            ("custom", 10, "0123456789abcdefABCDEF!@#$%"),
        ];
        for (salt, min_length, alphabet) in settings {
            let harsh = harsh::Harsh::builder()
                .salt(salt.as_bytes())
                .length(min_length)
                .alphabet(alphabet.as_bytes())
                .build()
                .unwrap();
            let ours = SingleEncoder::new(alphabet.as_bytes(), salt.as_bytes(), min_length);
            let extremes = [
                u64::MAX,
                u64::MAX - 1,
                i64::MAX as u64,
                1 << 40,
                99,
                100,
                101,
            ];
            for n in (0..20_000).chain(extremes) {
                assert_eq!(
                    ours.encode(n),
                    harsh.encode(&[n]),
                    "{n} with {salt:?}, {min_length}"
                );
            }
        }
    }
}
