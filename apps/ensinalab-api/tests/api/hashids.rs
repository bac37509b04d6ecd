//! Test vectors made by the Python `hashids` package, which the links already out there use
//! (`hashids-vectors.json`, beside this file).

use ensinalab_api::config::HashidsConfig;
use ensinalab_api::ids::Hashids;
use serde::Deserialize;

#[derive(Deserialize)]
struct Vectors {
    encode: Vec<Case>,
    decode: Vec<DecodeCase>,
}

#[derive(Deserialize)]
struct Case {
    salt: String,
    min_length: usize,
    alphabet: Option<String>,
    numbers: Vec<u64>,
    hash: String,
}

#[derive(Deserialize)]
struct DecodeCase {
    salt: String,
    min_length: usize,
    alphabet: Option<String>,
    hash: String,
    decoded: Vec<u64>,
}

fn vectors() -> Vectors {
    serde_json::from_str(include_str!("hashids-vectors.json")).expect("vectors parse")
}

fn hashids(salt: &str, min_length: usize, alphabet: Option<&str>) -> Hashids {
    let config = HashidsConfig {
        salt: salt.to_owned(),
        min_length,
    };
    Hashids::with_alphabet(&config, alphabet).expect("valid settings")
}

#[test]
fn every_encode_vector_of_the_python_package_matches_both_ways() {
    let vectors = vectors();
    assert!(vectors.encode.len() >= 100);
    for case in &vectors.encode {
        let ids = hashids(&case.salt, case.min_length, case.alphabet.as_deref());
        assert_eq!(
            ids.encode_many(&case.numbers),
            case.hash,
            "encode {:?}",
            case.numbers
        );
        assert_eq!(
            ids.decode_many(&case.hash),
            case.numbers,
            "decode {}",
            case.hash
        );
        // one key: the fast path every response's ids take
        if let [one] = case.numbers[..] {
            let key = i64::try_from(one).expect("the vectors' keys fit an i64");
            assert_eq!(ids.encode(key), case.hash, "encode {one}");
        }
    }
}

#[test]
fn every_non_canonical_hash_of_the_vectors_decodes_to_nothing() {
    for case in vectors().decode {
        let ids = hashids(&case.salt, case.min_length, case.alphabet.as_deref());
        assert_eq!(ids.decode_many(&case.hash), case.decoded, "{:?}", case.hash);
        assert_eq!(ids.decode(&case.hash), None, "{:?}", case.hash);
    }
}
