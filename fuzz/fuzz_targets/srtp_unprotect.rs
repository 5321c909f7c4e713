//! Arbitrary datagrams into an SRTP receiving context, mixed with packets a sending context
//! protected under the same key: nothing panics, nothing forged or corrupted is accepted,
//! a genuine packet comes out exactly as it went in, and every rejection is counted.
//!
//! Both contexts use the master key `00 01 … 0f` and the master salt `f0 f1 …` (14 or 12
//! bytes). Input layout: byte 0 picks the profile (bit 0: AES-CM or GCM) and whether the
//! receiver is fixed to SSRC `0x4c4f434b` (bit 1); then records of
//! `[op: u8][len: u16 BE][len bytes]`, where `op % 4` says what happens to the bytes:
//! 0, they go to the receiver as they are; 1, the sender protects them first (if it
//! accepts them) and the receiver must give back exactly them or refuse them; 2, as 1 with
//! bit `op >> 2` (modulo the length in bits) of the protected packet flipped, which the
//! receiver must refuse; 3, the last datagram the receiver was given goes again, and must
//! be refused if it was accepted the first time.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lockstep::media::{SrtpContext, SrtpProfile};

fuzz_target!(|input: &[u8]| {
    let Some((&pick, mut rest)) = input.split_first() else {
        return;
    };
    let profile = if pick & 1 == 0 {
        SrtpProfile::AesCm128HmacSha1_80
    } else {
        SrtpProfile::AeadAes128Gcm
    };
    let key: Vec<u8> = (0..profile.master_key_len() as u8).collect();
    let salt: Vec<u8> = (0..profile.master_salt_len() as u8).map(|i| 0xf0 + i).collect();
    let mut tx = SrtpContext::new(profile, &key, &salt).unwrap();
    let mut rx = SrtpContext::new(profile, &key, &salt).unwrap();
    if pick & 2 != 0 {
        rx = rx.with_ssrc(0x4c4f_434b);
    }
    let mut wire = vec![0u8; 65_536 + 64];
    let mut out = vec![0u8; 65_536 + 64];
    let mut last: Vec<u8> = Vec::new();
    let mut last_accepted = false;
    let mut calls = 0u64;
    while rest.len() >= 3 {
        let op = rest[0];
        let len = usize::from(u16::from_be_bytes([rest[1], rest[2]]));
        rest = &rest[3..];
        let data = &rest[..len.min(rest.len())];
        rest = &rest[data.len()..];
        let datagram: Vec<u8> = match op % 4 {
            0 => data.to_vec(),
            1 | 2 => {
                let Ok(n) = tx.protect(data, &mut wire) else {
                    continue;
                };
                if op % 4 == 2 {
                    let bit = usize::from(op >> 2) % (8 * n);
                    wire[bit / 8] ^= 1 << (bit % 8);
                }
                wire[..n].to_vec()
            }
            _ => last.clone(),
        };
        let result = rx.unprotect(&datagram, &mut out);
        calls += 1;
        match op % 4 {
            1 => {
                if let Ok(n) = result {
                    assert_eq!(&out[..n], data, "a genuine packet comes back as it went in");
                }
            }
            2 => assert!(result.is_err(), "a corrupted packet is refused"),
            3 => assert!(!(last_accepted && result.is_ok()), "a repeat is refused"),
            _ => {}
        }
        if op % 4 != 3 {
            last = datagram;
            last_accepted = result.is_ok();
        } else {
            last_accepted |= result.is_ok();
        }
        let stats = rx.stats();
        assert_eq!(stats.accepted + stats.rejected(), calls);
    }
});
