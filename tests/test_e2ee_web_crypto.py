"""The browser's E2EE crypto (web/js/e2ee/) checked byte for byte against a Python reading of the
protocol (tests/e2ee_reference.py), in real headless Chromium served by the real server: link id,
k_auth and authenticators, the pairwise key and `key` messages both ways, frames both ways (and
IV layout, clear prefix), tampered / unknown-key / plaintext frames dropped, old keys kept 10 s
after a newer key is first used, the safety code, and recording-key escrow opened with the
clinic's private key."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from playwright.sync_api import sync_playwright

from tests.helpers import e2ee_reference as ref
from tests.helpers.browser_helpers import chromium
from tests.helpers.server_process import running_server

pytestmark = pytest.mark.browser

CID = "c-7f3a"
VECTORS = Path(__file__).with_name("e2ee_vectors.json")
IMPORTS = """
  const enc = await import('/static/js/e2ee/encoding.js');
  const proto = await import('/static/js/e2ee/protocol.js');
  const prim = await import('/static/js/e2ee/primitives.js');
  const fc = await import('/static/js/e2ee/frame-crypto.js');
  const link = await import('/static/js/e2ee/link-secret.js');
"""


def run(page: Any, body: str, arg: Any = None) -> Any:
    return page.evaluate(f"async (arg) => {{ {IMPORTS} {body} }}", arg)


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Any:
    tmp = tmp_path_factory.mktemp("e2ee-crypto")
    with running_server(Path(tmp)) as server, sync_playwright() as pw:
        browser = chromium(pw)
        try:
            p = browser.new_context().new_page()
            p.goto(f"{server.base_url}/join")
            p.wait_for_selector("body[data-state='link-error']")
            yield p
        finally:
            browser.close()


def test_link_secret_derivations_and_authenticators(page: Any) -> None:
    s = os.urandom(16)
    pub = ref.raw_public(ec.generate_private_key(ec.SECP256R1()))
    got = run(page, """
      const s = enc.b64decode(arg.s); const pub = enc.b64decode(arg.pub);
      const kAuth = await proto.authKeyOf(s, arg.cid);
      return {
        linkId: enc.b64encode(await proto.linkIdOf(s)), kAuth: enc.b64encode(kAuth),
        announce: enc.b64encode(await proto.announceAuth(kAuth, arg.cid, 'host', 'host', pub)),
        vouch: enc.b64encode(await proto.vouchAuth(kAuth, arg.cid, 'p-2', 'guest', pub)),
        verifies: await proto.verifyAnnounce(kAuth, arg.cid, 'host', 'host', pub, enc.b64decode(arg.good)),
        wrongRole: await proto.verifyAnnounce(kAuth, arg.cid, 'host', 'patient', pub, enc.b64decode(arg.good)),
        lp: enc.b64encode(enc.lp('ab', new Uint8Array([1, 2, 3]), '')),
      };
    """, {"s": ref.b64(s), "pub": ref.b64(pub), "cid": CID,
          "good": ref.b64(ref.announce_auth(ref.k_auth(s, CID), CID, "host", "host", pub))})
    key = ref.k_auth(s, CID)
    assert got["linkId"] == ref.b64(ref.link_id(s))
    assert got["kAuth"] == ref.b64(key)
    assert got["announce"] == ref.b64(ref.announce_auth(key, CID, "host", "host", pub))
    assert got["vouch"] == ref.b64(ref.vouch_auth(key, CID, "p-2", "guest", pub))
    assert got["verifies"] is True and got["wrongRole"] is False
    assert ref.unb64(got["lp"]) == ref.lp("ab", b"\x01\x02\x03", "")


def test_link_fragment_round_trip(page: Any) -> None:
    got = run(page, """
      const made = await link.secureLink(arg.cid, 'https://h/join#TOKEN_abc-1', 'required');
      const parsed = link.parseFragment(made.split('#')[1]);
      const stored = link.hostSecrets(arg.cid);
      const [[linkId, s]] = [...stored.entries()];
      return { made, token: parsed.token, policy: parsed.policy, s: enc.b64encode(parsed.secret), storedS: enc.b64encode(s),
               linkId, expectId: enc.b64encode(await proto.linkIdOf(parsed.secret)),
               old: link.parseFragment('#TOKEN_abc-1'), bad: link.parseFragment('TOKEN.zz.r'),
               preferred: link.parseFragment('T.' + enc.b64encode(new Uint8Array(16)) + '.p').policy };
    """, {"cid": CID})
    assert got["token"] == "TOKEN_abc-1" and got["policy"] == "required"
    assert got["made"].startswith("https://h/join#TOKEN_abc-1.") and got["made"].endswith(".r")
    assert got["s"] == got["storedS"] and got["linkId"] == got["expectId"]
    assert got["old"] == {"token": "TOKEN_abc-1", "secret": None, "policy": None}
    assert got["bad"]["secret"] is None and got["bad"]["policy"] is None
    assert got["preferred"] == "preferred"


def test_pair_key_and_key_messages_both_ways(page: Any) -> None:
    mine = ec.generate_private_key(ec.SECP256R1())
    media_key = os.urandom(16)
    got = run(page, """
      const me = await prim.generateEcdh();
      const peerPub = enc.b64decode(arg.pub);
      const k = await proto.pairKey(me.privateKey, peerPub, arg.cid, 'p-9', 'host');
      const sealed = await proto.sealMediaKey(k, arg.cid, 'p-9', 'host', 77, enc.b64decode(arg.mediaKey));
      return { pub: enc.b64encode(me.publicRaw), k: enc.b64encode(k), iv: enc.b64encode(sealed.iv), ct: enc.b64encode(sealed.ct) };
    """, {"pub": ref.b64(ref.raw_public(mine)), "cid": CID, "mediaKey": ref.b64(media_key)})
    k = ref.pair_key(mine, ref.unb64(got["pub"]), CID, "host", "p-9")
    assert got["k"] == ref.b64(k)
    assert AESGCM(k).decrypt(ref.unb64(got["iv"]), ref.unb64(got["ct"]), ref.key_aad(CID, "p-9", "host", 77)) == media_key
    # Python -> browser, and the aad binds the direction.
    iv = os.urandom(12)
    ct = AESGCM(k).encrypt(iv, media_key, ref.key_aad(CID, "host", "p-9", 78))
    opened = run(page, """
      const k = enc.b64decode(arg.k);
      const ok = await proto.openMediaKey(k, arg.cid, 'host', 'p-9', 78, enc.b64decode(arg.iv), enc.b64decode(arg.ct));
      let swapped = 'opened';
      try { await proto.openMediaKey(k, arg.cid, 'p-9', 'host', 78, enc.b64decode(arg.iv), enc.b64decode(arg.ct)); } catch (e) { swapped = e.name; }
      return { key: enc.b64encode(ok), swapped };
    """, {"k": ref.b64(k), "cid": CID, "iv": ref.b64(iv), "ct": ref.b64(ct)})
    assert opened == {"key": ref.b64(media_key), "swapped": "OperationError"}


def test_frames_both_ways_and_drops(page: Any) -> None:
    key = os.urandom(16)
    keyframe = bytes([0x10]) + os.urandom(300)  # VP8 keyframe: data[0] & 1 == 0
    delta = bytes([0x31]) + os.urandom(120)
    audio = os.urandom(80)
    got = run(page, """
      const raw = enc.b64decode(arg.key);
      const sk = await fc.makeSendKey(4242, raw);
      const out = {};
      for (const [name, kind] of [['keyframe', 'video'], ['delta', 'video'], ['audio', 'audio'], ['tiny', 'video']]) {
        out[name] = enc.b64encode(await fc.encryptFrame(sk, kind, enc.b64decode(arg[name])));
      }
      out.salt = enc.b64encode(sk.salt);
      out.counter = sk.counter;
      return out;
    """, {"key": ref.b64(key), "keyframe": ref.b64(keyframe), "delta": ref.b64(delta), "audio": ref.b64(audio),
          "tiny": ref.b64(b"\x10\x02")})
    salt = ref.unb64(got["salt"])
    for index, (name, kind, plain, clear) in enumerate((("keyframe", "video", keyframe, 10), ("delta", "video", delta, 3),
                                                       ("audio", "audio", audio, 1), ("tiny", "video", b"\x10\x02", 2))):
        frame = ref.unb64(got[name])
        assert frame[:clear] == plain[:clear], name
        key_id, iv, back = ref.decrypt_frame(key, kind, frame)
        assert (key_id, back) == (4242, plain), name
        assert iv == salt + index.to_bytes(8, "big"), name  # salt || u64 counter, one counter for all tracks
    assert got["counter"] == 4

    # Python-made frames decrypt in the browser; tampered, unknown-key and plaintext frames drop.
    iv = os.urandom(4) + (9).to_bytes(8, "big")
    good = ref.encrypt_frame(key, 99, iv, "video", keyframe)
    tampered = bytearray(good)
    tampered[40] ^= 0x01
    clear_tampered = bytearray(good)
    clear_tampered[5] ^= 0x01  # inside the authenticated clear prefix
    other_key = ref.encrypt_frame(os.urandom(16), 98, iv, "video", keyframe)
    result = run(page, """
      const keys = new fc.ReceiveKeys();
      await keys.add('host', 99, enc.b64decode(arg.key));
      const out = {};
      for (const name of ['good', 'tampered', 'clear_tampered', 'other_key', 'plain']) {
        const r = await fc.decryptFrame(keys, 'video', enc.b64decode(arg[name]));
        out[name] = r.drop ? r.drop : enc.b64encode(r.data);
      }
      return out;
    """, {"key": ref.b64(key), "good": ref.b64(good), "tampered": ref.b64(bytes(tampered)),
          "clear_tampered": ref.b64(bytes(clear_tampered)), "other_key": ref.b64(other_key), "plain": ref.b64(keyframe)})
    assert result == {"good": ref.b64(keyframe), "tampered": "auth", "clear_tampered": "auth",
                      "other_key": "no_key", "plain": "format"}


def test_previous_key_kept_ten_seconds_after_newer_key_is_used(page: Any) -> None:
    got = run(page, """
      let now = 1000;
      const keys = new fc.ReceiveKeys(() => now);
      const k1 = crypto.getRandomValues(new Uint8Array(16)), k2 = crypto.getRandomValues(new Uint8Array(16));
      await keys.add('p-1', 1, k1); await keys.add('p-1', 2, k2);
      const frame = (sk) => fc.encryptFrame(sk, 'audio', new Uint8Array([7, 7, 7]));
      const s1 = await fc.makeSendKey(1, k1), s2 = await fc.makeSendKey(2, k2);
      const ok = async (f) => !(await fc.decryptFrame(keys, 'audio', f)).drop;
      const out = { oldBefore: await ok(await frame(s1)) };
      now = 50000;  // no newer frame yet: the old key stays however long
      out.oldLater = await ok(await frame(s1));
      out.newFirst = await ok(await frame(s2));
      now += 9900; out.oldWithin = await ok(await frame(s1));
      now += 200; out.oldAfter = await ok(await frame(s1));
      out.newAfter = await ok(await frame(s2));
      return out;
    """)
    assert got == {"oldBefore": True, "oldLater": True, "newFirst": True, "oldWithin": True,
                   "oldAfter": False, "newAfter": True}


def test_safety_code_and_fingerprint(page: Any) -> None:
    entries = [(pid, ref.raw_public(ec.generate_private_key(ec.SECP256R1()))) for pid in ("p-b", "host", "p-a")]
    got = run(page, """
      const entries = arg.entries.map(([pid, pub]) => ({ pid, pub: enc.b64decode(pub) }));
      return { code: await proto.safetyCode(arg.cid, entries), reversed: await proto.safetyCode(arg.cid, [...entries].reverse()),
               fp: await proto.fingerprintOf(entries[0].pub) };
    """, {"cid": CID, "entries": [[pid, ref.b64(pub)] for pid, pub in entries]})
    assert got["code"] == got["reversed"] == ref.safety_code(CID, entries)
    assert len(got["code"]) == 15 and got["code"].replace(" ", "").isdigit()
    assert got["fp"] == ref.fingerprint(entries[0][1])


def test_recording_key_escrow_opens_with_the_clinic_private_key(page: Any) -> None:
    clinic = ec.generate_private_key(ec.SECP256R1())
    media_key = os.urandom(16)
    messages = run(page, """
      const pub = enc.b64decode(arg.pub);
      return [await proto.escrowMediaKey(pub, arg.cid, 'p-3', 3000000000, enc.b64decode(arg.key)),
              await proto.escrowMediaKey(pub, arg.cid, 'p-3', 3000000000, enc.b64decode(arg.key))];
    """, {"pub": ref.b64(ref.raw_public(clinic)), "cid": CID, "key": ref.b64(media_key)})
    for message in messages:
        assert message["sender"] == "p-3" and message["key_id"] == 3000000000
        assert len(ref.unb64(message["epk"])) == 65 and len(ref.unb64(message["iv"])) == 12
        assert ref.open_escrow(clinic, CID, message) == media_key
    assert messages[0]["epk"] != messages[1]["epk"]  # a fresh ephemeral key per message
    with pytest.raises(InvalidTag):
        ref.open_escrow(ec.generate_private_key(ec.SECP256R1()), CID, messages[0])


def jwk_private(scalar_hex: str) -> dict[str, str]:
    key = ec.derive_private_key(int(scalar_hex, 16), ec.SECP256R1())
    numbers = key.public_key().public_numbers()
    return {"kty": "EC", "crv": "P-256", "d": ref.b64(bytes.fromhex(scalar_hex)),
            "x": ref.b64(numbers.x.to_bytes(32, "big")), "y": ref.b64(numbers.y.to_bytes(32, "big")), "ext": True}


def test_shared_vectors_of_the_python_implementation(page: Any) -> None:
    """tests/e2ee_vectors.json (made by the Python side, server/recording/e2ee_format.py and
    client/e2ee.py) comes out byte for byte in the browser."""
    v = json.loads(VECTORS.read_text())
    got = run(page, """
      const v = arg.v, d = enc.b64decode;
      const imp = (jwk) => crypto.subtle.importKey('jwk', jwk, { name: 'ECDH', namedCurve: 'P-256' }, false, ['deriveBits']);
      const host = await imp(arg.host), eph = await imp(arg.eph);
      const s = d(v.link_secret), kAuth = await proto.authKeyOf(s, v.cid);
      const hostPub = d(v.host_pub), patientPub = d(v.patient_pub);
      const kPair = await proto.pairKey(host, patientPub, v.cid, v.host_pid, v.patient_pid);
      const mediaKey = await proto.openMediaKey(kPair, v.cid, v.host_pid, v.patient_pid, v.key_id, d(v.key_iv), d(v.key_ct));
      const key = await crypto.subtle.importKey('raw', d(v.media_key), 'AES-GCM', false, ['encrypt']);
      const sk = { keyId: v.key_id, key, salt: d(v.frame_salt), counter: 0 };
      const sealed = [];
      for (const f of v.frames) sealed.push(enc.b64encode(await fc.encryptFrame(sk, f.kind, d(f.plain))));
      const keys = new fc.ReceiveKeys();
      await keys.add(v.host_pid, v.key_id, d(v.media_key));
      const opened = [];
      for (const f of v.frames) opened.push(enc.b64encode((await fc.decryptFrame(keys, f.kind, d(f.sealed))).data));
      const escrow = await proto.escrowMediaKey(d(v.clinic_pub), v.cid, 'host', v.key_id, d(v.media_key),
                                                { eph: { privateKey: eph, publicRaw: d(v.escrow_epk) }, iv: d(v.escrow_iv) });
      return {
        link_id: enc.b64encode(await proto.linkIdOf(s)), k_auth: enc.b64encode(kAuth),
        host_announce_auth: enc.b64encode(await proto.announceAuth(kAuth, v.cid, v.host_pid, 'host', hostPub)),
        patient_announce_auth: enc.b64encode(await proto.announceAuth(kAuth, v.cid, v.patient_pid, 'patient', patientPub)),
        vouch_patient_auth: enc.b64encode(await proto.vouchAuth(kAuth, v.cid, v.patient_pid, 'patient', patientPub)),
        ecdh_z: enc.b64encode(await prim.ecdh(host, patientPub)), k_pair: enc.b64encode(kPair),
        media_key: enc.b64encode(mediaKey), sealed, opened,
        safety_code: await proto.safetyCode(v.cid, [{ pid: v.host_pid, pub: hostPub }, { pid: v.patient_pid, pub: patientPub }]),
        escrow_epk: escrow.epk, escrow_ct: escrow.ct,
      };
    """, {"v": v, "host": jwk_private(v["host_private_scalar_hex"]), "eph": jwk_private(v["escrow_ephemeral_scalar_hex"])})
    for name in ("link_id", "k_auth", "host_announce_auth", "patient_announce_auth", "vouch_patient_auth", "ecdh_z",
                 "k_pair", "media_key", "safety_code", "escrow_epk", "escrow_ct"):
        assert got[name] == v[name], name
    assert got["sealed"] == [f["sealed"] for f in v["frames"]]
    assert got["opened"] == [f["plain"] for f in v["frames"]]
