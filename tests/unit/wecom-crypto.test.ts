import { OFFICIAL_V2_PLAINTEXT } from "../fixtures/wecom-vectors";
import { seededRandom } from "../../src/domain/random";
import { createCipheriv } from "node:crypto";
import { decrypt as refDecrypt, encrypt as refEncrypt, getSignature as refSignature } from "@wecom/crypto";
import { describe, expect, it } from "vitest";
import {
  WecomCryptoError,
  aesKeyFromEncodingAesKey,
  computeSignature,
  decryptMessage,
  encryptMessage,
  isTimestampFresh,
  signAndEncrypt,
  verifyAndDecrypt,
  verifySignature,
} from "../../src/wecom/crypto";

// shared/wecom-protocol.md section 5.1 (Tencent WXBizMsgCrypt samples).
const OFFICIAL = {
  token: "QDG6eK",
  encodingAesKey: "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C",
  corpId: "wx5823bf96d3bd56c7",
};
const V1 = {
  timestamp: "1409659589",
  nonce: "263014780",
  echostr: "P9nAzCzyDtyTWESHep1vC5X9xho/qYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp+4RPcs8TgAE7OaBO+FZXvnaqQ==",
  signature: "5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3",
  reply: "1616140317555161061",
  random: "c41b64491c2468d0",
};
const V2 = {
  timestamp: "1409659813",
  nonce: "1372623149",
  signature: "477715d11cdb4164915debcba66cb864d751f3e6",
  encrypt:
    "RypEvHKD8QQKFhvQ6QleEB4J58tiPdvo+rtK1I9qca6aM/wvqnLSV5zEPeusUiX5L5X/0lWfrf0QADHHhGd3QczcdCUpj911L3vg3W/sYYvuJTs3TUUkSUXxaccAS0qhxchrRYt66wiSpGLYL42aM6A8dTT+6k4aSknmPj48kzJs8qLjvd4Xgpue06DOdnLxAUHzM6+kDZ+HMZfJYuR+LtwGc2hgf5gsijff0ekUNXZiqATP7PF5mZxZ3Izoun1s4zG4LUMnvw2r+KqCKIw+3IQH03v+BCA9nMELNqbSf6tiWSrXJB3LAVGUcallcrw8V2t9EL4EhzJWrQUax5wLVMNS0+rUPA3k22Ncx4XXZS9o0MBH27Bo6BpNelZpS+/uh9KsNlY6bHCmJU9p8g7m3fVKn28H3KDYA5Pl/T8Z1ptDAVe0lXdQ2YoyyH2uyPIGHBZZIs2pDBS8R07+qN+E7Q==",
  random: "0960688932c47ef1",
  plaintext: OFFICIAL_V2_PLAINTEXT,
};

// shared/wecom-protocol.md section 5.2 (constructed for this project).
const OURS = {
  token: "ClinicFakeToken01",
  encodingAesKey: "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
  aesKeyHex: "69b71d79f8218a39259a7a29aabb2dbafc31cb3d35db7e39ebbf3d0010831051",
  corpId: "ww0123456789abcdef",
  timestamp: "1700000000",
  nonce: "1938476521",
  random: "0123456789abcdef",
  msg:
    "<xml><ToUserName><![CDATA[ww0123456789abcdef]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName><CreateTime>1700000000</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[change_external_contact]]></Event><ChangeType><![CDATA[add_external_contact]]></ChangeType><UserID><![CDATA[zhangsan]]></UserID><ExternalUserID><![CDATA[wmAbCdEfGhIjKlMnOpQrStUvWxYz0123]]></ExternalUserID><State><![CDATA[clinic_a_poster_01]]></State><WelcomeCode><![CDATA[WELCOMECODE_TEST_欢迎]]></WelcomeCode></xml>",
  encrypt:
    "Q3stYC6hdFzMh9T8HCvyDE++kil+jUDoatl91HO6hni72mMNol+PanKzoyCu7XEM1vnnDOrLObPb2CFwSbtPx81/lVUuvcnpY/dLMahHNj/9bkm9BsyVj6LLYQOn0h6sarXr48ZhyQdxSTso7aA+4yjvbobD/BD9knM92SbjKHto1h8nn8uXgpbygOIvQGwwobhBOoPNiSyJ/j08zF0jumQI4jQTOc3ORneuS4/dkmX78krhGuFzqIb9zhuCrHURlrbBPkuguxG9EINsDRM7WyEJ1GWljcOeWlw6Rmzjzxg99R69Yez87arn9aStPNmhnLnFkMBV0WLgGTU1ZII9eKj90Vr0qB7sguIvEfbfd3Okn5LtX579OMnAqzd/9IUJPiu2dcyPGpPJ3dlRa8Mrez9fe214hn4HJJxusDoNNQ/uUxmXg5DxX/Fv32V9sE3gWNFRmg/iuTQjly65pWiT6NQn610F2zM5+1GlZb7bbFYO/Ccx84YatdpfCFG3gdzHvgeiSPldLpmSd7yBFfvIliK6xualmBC1lXp2Cwqc8k4+1ognmSRPBVEHPUBHx0CBEkgk5X0a6zm8ExdwFIJ5On+aXMvj6/1jY9x6sTdBqVrv9XLdLW//uf9rqh84vYq8PmW/hPQCEB/wppRA8Aeed+HuZm5bu52RoPBWM5H5i7yhJLiZgE6/23WXzfe2GSk6FsTvThZkwqdvlaqOAHXRnMe1VJwx+cHcFHDuhYk8EZUvNvJOrG5+IWGszOqVlHSz",
  signature: "4f79417fdedf2eaf0454b6fb57dd3a4875f3b320",
  echoRandom: "fedcba9876543210",
  echoPlain: "8143620581245927015",
  echostr: "DpQeJfnf/MGZ/+GTIspwVEic2P+QjgRQvSx+SebaXEDMpH14YbPIGjMy2GuiF6CrlRZF7AVpiG0X7lGkTHK3jg==",
  echoSignature: "98d61c381ce946e58ffa6783c49b29e07cf5abac",
};

const officialKey = aesKeyFromEncodingAesKey(OFFICIAL.encodingAesKey);
const ourKey = aesKeyFromEncodingAesKey(OURS.encodingAesKey);

/** The error code a call throws (fails the test when it does not throw a WecomCryptoError). */
function codeOf(fn: () => unknown): number {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(WecomCryptoError);
    return (e as WecomCryptoError).code;
  }
  throw new Error("expected a WecomCryptoError, got a result");
}

/** Encrypt raw plaintext bytes the WeCom way (no padding added), to craft bad plaintexts. */
function rawEncrypt(key: Buffer, plain: Buffer): string {
  const cipher = createCipheriv("aes-256-cbc", key, key.subarray(0, 16));
  cipher.setAutoPadding(false);
  return Buffer.concat([cipher.update(plain), cipher.final()]).toString("base64");
}

function header(random: string, msgLen: number): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(msgLen, 0);
  return Buffer.concat([Buffer.from(random, "ascii"), len]);
}

describe("official vectors (section 5.1)", () => {
  it("V1 URL verification: signature, echostr plaintext, receiveid, byte-exact re-encryption", () => {
    expect(computeSignature(OFFICIAL.token, V1.timestamp, V1.nonce, V1.echostr)).toBe(V1.signature);
    expect(verifySignature(OFFICIAL.token, V1.timestamp, V1.nonce, V1.echostr, V1.signature)).toBe(true);
    const out = decryptMessage(officialKey, V1.echostr, OFFICIAL.corpId);
    expect(out.message).toBe(V1.reply);
    expect(out.receiveId).toBe(OFFICIAL.corpId);
    expect(out.random.toString("ascii")).toBe(V1.random);
    expect(encryptMessage(officialKey, out.message, out.receiveId, out.random)).toBe(V1.echostr);
  });

  it("V2 POST message: signature, exact 284-byte plaintext, byte-exact re-encryption", () => {
    expect(computeSignature(OFFICIAL.token, V2.timestamp, V2.nonce, V2.encrypt)).toBe(V2.signature);
    const out = verifyAndDecrypt(
      { token: OFFICIAL.token, aesKey: officialKey, receiveId: OFFICIAL.corpId },
      { timestamp: V2.timestamp, nonce: V2.nonce, signature: V2.signature, encrypt: V2.encrypt },
    );
    expect(out.message).toBe(V2.plaintext);
    expect(Buffer.byteLength(out.message)).toBe(284);
    expect(out.receiveId).toBe(OFFICIAL.corpId);
    expect(out.random.toString("ascii")).toBe(V2.random);
    expect(Buffer.from(V2.encrypt, "base64")).toHaveLength(352);
    expect(encryptMessage(officialKey, out.message, out.receiveId, out.random)).toBe(V2.encrypt);
  });

  it("decodes the non-canonical official EncodingAESKey leniently", () => {
    expect(officialKey).toHaveLength(32);
    expect(officialKey.toString("base64")).not.toBe(`${OFFICIAL.encodingAesKey}=`);
  });
});

describe("constructed vector (section 5.2)", () => {
  it("derives the documented AES key", () => {
    expect(ourKey.toString("hex")).toBe(OURS.aesKeyHex);
  });

  it("encrypts the 509-byte event to the given Encrypt with the given random, and signs it", () => {
    expect(Buffer.byteLength(OURS.msg)).toBe(509);
    const sealed = signAndEncrypt(
      { token: OURS.token, aesKey: ourKey, receiveId: OURS.corpId },
      { message: OURS.msg, timestamp: OURS.timestamp, nonce: OURS.nonce, random: Buffer.from(OURS.random, "ascii") },
    );
    expect(sealed.encrypt).toBe(OURS.encrypt);
    expect(sealed.signature).toBe(OURS.signature);
    const plain = decryptMessage(ourKey, OURS.encrypt, OURS.corpId);
    expect(plain.message).toBe(OURS.msg);
    // 16 + 4 + 509 + 18 = 547 bytes, padded by 29 to 576.
    expect(Buffer.from(OURS.encrypt, "base64")).toHaveLength(576);
  });

  it("echo vector: encrypts and signs the echostr", () => {
    const echostr = encryptMessage(ourKey, OURS.echoPlain, OURS.corpId, Buffer.from(OURS.echoRandom, "ascii"));
    expect(echostr).toBe(OURS.echostr);
    expect(computeSignature(OURS.token, OURS.timestamp, OURS.nonce, echostr)).toBe(OURS.echoSignature);
    expect(decryptMessage(ourKey, OURS.echostr, OURS.corpId).message).toBe(OURS.echoPlain);
  });

  it("alignment: a 26-byte msg makes a 64-byte plaintext, so a full 32-byte pad block (96 cipher bytes)", () => {
    const msg = "x".repeat(26);
    expect(16 + 4 + 26 + OURS.corpId.length).toBe(64);
    const enc = encryptMessage(ourKey, msg, OURS.corpId, Buffer.from(OURS.random, "ascii"));
    expect(Buffer.from(enc, "base64")).toHaveLength(96);
    expect(refEncrypt(OURS.encodingAesKey, msg, OURS.corpId, Buffer.from(OURS.random, "ascii"))).toBe(enc);
    expect(decryptMessage(ourKey, enc, OURS.corpId).message).toBe(msg);
  });
});


const ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

describe("agreement with @wecom/crypto on random inputs", () => {
  const SEED = 20240917;
  const rand = seededRandom(SEED);
  const int = (n: number) => Math.floor(rand() * n);
  const pick = (s: string) => s[int(s.length)]!;
  const alnum = (n: number) => Array.from({ length: n }, () => pick(ALNUM)).join("");
  const codePoint = (): string => {
    const kind = int(10);
    if (kind < 4) return String.fromCodePoint(0x20 + int(0x5f)); // printable ASCII
    if (kind < 7) return String.fromCodePoint(0x4e00 + int(0x5200)); // CJK
    if (kind < 8) return String.fromCodePoint(0x1f300 + int(0x300)); // emoji (4 UTF-8 bytes)
    if (kind < 9) return pick("<>&]\"'\n\t");
    return String.fromCodePoint(0xa0 + int(0x700)); // Latin-1 .. Cyrillic (2 bytes)
  };

  const cases = Array.from({ length: 200 }, (_, i) => {
    // Short lengths first so the 32-byte alignment edges are all hit; then up to 2000 chars.
    const length = i < 64 ? i : int(2001);
    return {
      i,
      encodingAesKey: alnum(43),
      message: Array.from({ length }, codePoint).join(""),
      receiveId: int(3) === 0 ? alnum(1 + int(40)) : `ww${Buffer.from(Array.from({ length: 8 }, () => int(256))).toString("hex")}`,
      random: Buffer.from(Array.from({ length: 16 }, () => int(256))),
      token: alnum(1 + int(32)),
      timestamp: String(1_600_000_000 + int(200_000_000)),
      nonce: String(int(2 ** 31)),
    };
  });

  it.each(cases)("case $i (seed 20240917)", (c) => {
    const key = aesKeyFromEncodingAesKey(c.encodingAesKey);
    const ours = encryptMessage(key, c.message, c.receiveId, c.random);
    const theirs = refEncrypt(c.encodingAesKey, c.message, c.receiveId, c.random);
    expect(ours).toBe(theirs);

    const fromRef = decryptMessage(key, refEncrypt(c.encodingAesKey, c.message, c.receiveId), c.receiveId);
    expect(fromRef.message).toBe(c.message);
    expect(fromRef.receiveId).toBe(c.receiveId);

    const fresh = encryptMessage(key, c.message, c.receiveId);
    const byRef = refDecrypt(c.encodingAesKey, fresh);
    expect(byRef.message).toBe(c.message);
    expect(byRef.id).toBe(c.receiveId);
    expect(decryptMessage(key, fresh).random.equals(byRef.random)).toBe(true);

    const sig = computeSignature(c.token, c.timestamp, c.nonce, ours);
    expect(sig).toBe(refSignature(c.token, c.timestamp, c.nonce, ours));
    expect(verifySignature(c.token, c.timestamp, c.nonce, ours, sig)).toBe(true);
    expect(verifySignature(c.token, c.timestamp, c.nonce, ours, sig.toUpperCase())).toBe(true);
  });
});

describe("failures", () => {
  it("tampered last ciphertext block: every single-bit flip is rejected, never a garbage success", () => {
    const raw = Buffer.from(V2.encrypt, "base64");
    for (let pos = raw.length - 16; pos < raw.length; pos++) {
      for (let bit = 0; bit < 8; bit++) {
        const t = Buffer.from(raw);
        t[pos]! ^= 1 << bit;
        const tampered = t.toString("base64");
        expect([-40007, -40008]).toContain(codeOf(() => decryptMessage(officialKey, tampered)));
        expect([-40005, -40007, -40008]).toContain(codeOf(() => decryptMessage(officialKey, tampered, OFFICIAL.corpId)));
      }
    }
  });

  it("rejects padding values 0 and 33 and unequal pad bytes (-40007), where @wecom/crypto is lenient", () => {
    const body = Buffer.concat([header(OURS.random, 5), Buffer.from("hello"), Buffer.from(OURS.corpId)]); // 43 bytes
    const withTail = (tail: Buffer) => rawEncrypt(ourKey, Buffer.concat([body, tail]));
    const zero = withTail(Buffer.alloc(21, 0));
    const thirtyThree = withTail(Buffer.alloc(21, 33));
    const mixed = withTail(Buffer.concat([Buffer.alloc(20, 7), Buffer.from([21])]));
    expect(codeOf(() => decryptMessage(ourKey, zero))).toBe(-40007);
    expect(codeOf(() => decryptMessage(ourKey, thirtyThree))).toBe(-40007);
    expect(codeOf(() => decryptMessage(ourKey, mixed))).toBe(-40007);
    expect(() => refDecrypt(OURS.encodingAesKey, zero)).not.toThrow();
    // Sanity: the same layout with correct padding decrypts.
    expect(decryptMessage(ourKey, withTail(Buffer.alloc(21, 21)), OURS.corpId).message).toBe("hello");
  });

  it("rejects a msg_len that does not fit and a message that is not UTF-8 (-40008)", () => {
    const tooLong = Buffer.concat([header(OURS.random, 999), Buffer.from("hello"), Buffer.from(OURS.corpId)]);
    expect(codeOf(() => decryptMessage(ourKey, rawEncrypt(ourKey, Buffer.concat([tooLong, Buffer.alloc(21, 21)]))))).toBe(-40008);
    const badUtf8 = Buffer.concat([header(OURS.random, 5), Buffer.from([0x68, 0xc3, 0x28, 0xff, 0x6f]), Buffer.from(OURS.corpId)]);
    expect(codeOf(() => decryptMessage(ourKey, rawEncrypt(ourKey, Buffer.concat([badUtf8, Buffer.alloc(21, 21)]))))).toBe(-40008);
    // Shorter than the 20-byte header once the padding is stripped.
    expect(codeOf(() => decryptMessage(ourKey, rawEncrypt(ourKey, Buffer.concat([Buffer.alloc(16, 1), Buffer.alloc(16, 16)]))))).toBe(-40008);
  });

  it("rejects truncated, empty and non-Base64 ciphertexts (-40008)", () => {
    expect(codeOf(() => decryptMessage(officialKey, V2.encrypt.slice(0, -4)))).toBe(-40008);
    expect(codeOf(() => decryptMessage(officialKey, V2.encrypt.slice(0, -1)))).toBe(-40008);
    expect(codeOf(() => decryptMessage(officialKey, V2.encrypt.slice(0, 100)))).toBe(-40008);
    expect(codeOf(() => decryptMessage(officialKey, ""))).toBe(-40008);
    expect(codeOf(() => decryptMessage(officialKey, V2.encrypt.replace("+", " ")))).toBe(-40008);
    expect(codeOf(() => decryptMessage(officialKey, `${V2.encrypt}\n`))).toBe(-40008);
  });

  it("rejects a receiveid other than ours (-40005)", () => {
    expect(codeOf(() => decryptMessage(officialKey, V2.encrypt, "ww0123456789abcdef"))).toBe(-40005);
    const foreign = encryptMessage(ourKey, OURS.msg, "wwffffffffffffffff");
    expect(codeOf(() => decryptMessage(ourKey, foreign, OURS.corpId))).toBe(-40005);
  });

  it("rejects bad EncodingAESKeys and wrong-size keys (-40004)", () => {
    for (const bad of ["", "short", `${OURS.encodingAesKey}H`, OURS.encodingAesKey.slice(0, 42), `${OURS.encodingAesKey.slice(0, 42)}+`, `${OURS.encodingAesKey.slice(0, 42)}=`]) {
      expect(codeOf(() => aesKeyFromEncodingAesKey(bad))).toBe(-40004);
    }
    expect(codeOf(() => decryptMessage(Buffer.alloc(16), V2.encrypt))).toBe(-40004);
    expect(codeOf(() => encryptMessage(Buffer.alloc(31), "x", "y"))).toBe(-40004);
    // The wrong (but well-formed) key: garbage plaintext, never a success.
    expect([-40007, -40008]).toContain(codeOf(() => decryptMessage(ourKey, V2.encrypt)));
  });

  it("returns false for a wrong, truncated or non-hex signature, and verifyAndDecrypt throws -40001", () => {
    const ok = [OFFICIAL.token, V2.timestamp, V2.nonce, V2.encrypt] as const;
    expect(verifySignature(...ok, V2.signature)).toBe(true);
    expect(verifySignature(...ok, `${V2.signature.slice(0, -1)}0`)).toBe(false);
    expect(verifySignature(...ok, V2.signature.slice(0, -2))).toBe(false);
    expect(verifySignature(...ok, `${V2.signature}00`)).toBe(false);
    expect(verifySignature(...ok, "")).toBe(false);
    expect(verifySignature(...ok, `${V2.signature.slice(0, -2)}zz`)).toBe(false);
    expect(verifySignature(...ok, `${V2.signature.slice(0, -1)}g`)).toBe(false);
    expect(verifySignature(OFFICIAL.token, V2.timestamp, "1372623150", V2.encrypt, V2.signature)).toBe(false);
    expect(
      codeOf(() =>
        verifyAndDecrypt(
          { token: "other", aesKey: officialKey, receiveId: OFFICIAL.corpId },
          { timestamp: V2.timestamp, nonce: V2.nonce, signature: V2.signature, encrypt: V2.encrypt },
        ),
      ),
    ).toBe(-40001);
  });

  it("insists on a 16-byte random", () => {
    expect(() => encryptMessage(ourKey, "x", "y", Buffer.alloc(15))).toThrow(RangeError);
  });
});

describe("timestamp window", () => {
  const now = 1_700_000_000_000;
  it("accepts timestamps within the window and refuses stale, future or malformed ones", () => {
    expect(isTimestampFresh("1700000000", now)).toBe(true);
    expect(isTimestampFresh("1699999700", now)).toBe(true);
    expect(isTimestampFresh("1699999699", now)).toBe(false);
    expect(isTimestampFresh("1700000301", now)).toBe(false);
    expect(isTimestampFresh("1700000030", now, 30)).toBe(true);
    for (const bad of ["", "abc", "-1", "1.7e9", " 1700000000"]) expect(isTimestampFresh(bad, now)).toBe(false);
  });
});
