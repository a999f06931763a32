// The decoders read bytes from the kernel; a bug there (or a future kernel) must give a clear
// NetlinkDecodeError, never a RangeError from deep inside Buffer, a wrong value or a hang. The same for the
// rtnetlink address and link decoders of the VIP binder (at the end).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  decodeConfigMsg,
  decodeDaemonMsg,
  decodeDestAttrs,
  decodeDestMsg,
  decodeFamily,
  decodeInfoMsg,
  decodeServiceAttrs,
  decodeServiceMsg,
  newDestRequest,
  newServiceRequest,
} from '../../src/ipvs/codec.js';
import { canonicalIp } from '../../src/ipam/address.js';
import { IpvsInputError } from '../../src/ipvs/errors.js';
import { attr, encodeAttrs, encodeMsg, encodeMsgs, genlPayload, NetlinkDecodeError, parseAttrs, parseMsgs, u16, u32 } from '../../src/ipvs/netlink.js';
import type { AddressServiceKey, DestinationSpec, ServiceSpec } from '../../src/ipvs/types.js';
import { addrPayload, decodeAddr, decodeLink, IFA, IFLA, linkByNamePayload } from '../../src/vip/rtnl.js';
import { fuzzParams } from '../support/fuzz.js';

const decoders: [string, (b: Buffer) => unknown][] = [
  ['service', decodeServiceMsg],
  ['dest v4', (b) => decodeDestMsg(b, 4)],
  ['dest v6', (b) => decodeDestMsg(b, 6)],
  ['daemon', decodeDaemonMsg],
  ['info', decodeInfoMsg],
  ['config', decodeConfigMsg],
  ['family', decodeFamily],
  ['messages', parseMsgs],
];

/** Runs fn; passes if it returns or throws NetlinkDecodeError; fails on any other exception. */
function decodesOrRejectsCleanly(fn: () => unknown): boolean {
  try {
    fn();
    return true;
  } catch (e) {
    if (e instanceof NetlinkDecodeError) return true;
    throw e;
  }
}

// Well-formed attribute trees with random types and payloads reach deeper decoder paths than flat noise.
const leaf = fc.record({ type: fc.integer({ min: 0, max: 16 }), value: fc.uint8Array({ maxLength: 24 }).map((a) => Buffer.from(a)) });
const attrTree = fc.letrec<{ tree: Buffer }>((tie) => ({
  tree: fc
    .array(fc.oneof({ depthSize: 'small' }, leaf.map((l) => attr(l.type, l.value)), fc.record({ type: fc.integer({ min: 0, max: 16 }), inner: tie('tree') }).map((n) => attr(n.type, n.inner))), {
      maxLength: 8,
    })
    .map((attrs) => encodeAttrs(attrs)),
}));
const genlLike = fc.tuple(fc.integer({ min: 0, max: 20 }), attrTree.tree).map(([cmd, attrs]) => Buffer.concat([Buffer.from([cmd, 1, 0, 0]), attrs]));

const validService = newServiceRequest({ address: '192.0.2.10', protocol: 'tcp', port: 80, scheduler: 'wlc', persistence: { timeout: 60 } }).payload;
const validDest = Buffer.concat([
  Buffer.from([5, 1, 0, 0]),
  encodeAttrs([
    attr(2, [
      attr(1, Buffer.from('c6336407000000000000000000000000', 'hex')),
      attr(2, Buffer.from('0050', 'hex')),
      attr(3, u32(3)),
      attr(4, u32(1)),
      attr(11, u16(2)),
      attr(12, [attr(11, Buffer.alloc(0)), attr(1, Buffer.alloc(8, 1))]),
    ]),
  ]),
]);

describe('IPVS decoders never crash on bad input', () => {
  for (const [name, decode] of decoders) {
    it(`${name}: random bytes`, () => {
      fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), (a) => decodesOrRejectsCleanly(() => decode(Buffer.from(a)))), fuzzParams(2000));
    });
    it(`${name}: random attribute trees`, () => {
      fc.assert(fc.property(genlLike, (b) => decodesOrRejectsCleanly(() => decode(b))), fuzzParams(2000));
    });
  }

  it('every truncation of a valid service or destination message is rejected with a clear error', () => {
    for (const [valid, decode] of [
      [validService, decodeServiceMsg],
      [validDest, (b: Buffer) => decodeDestMsg(b, 4)],
    ] as const) {
      decode(valid);
      for (let n = 0; n < valid.length; n++) {
        assert.throws(() => decode(valid.subarray(0, n)), NetlinkDecodeError, `truncated to ${n} bytes`);
      }
    }
  });

  it('byte flips in valid messages never escape as anything but NetlinkDecodeError', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: validService.length - 1 }), fc.integer({ min: 0, max: 255 }), (pos, byte) => {
        const b = Buffer.from(validService);
        b[pos] = byte;
        return decodesOrRejectsCleanly(() => decodeServiceMsg(b));
      }),
      fuzzParams(3000),
    );
  });

  it('an attribute whose length runs past the end names the attribute and the offset', () => {
    assert.throws(() => parseAttrs(Buffer.from('08000100aabb', 'hex'), 'service'), /^NetlinkDecodeError: service: attribute 1 at offset 0 has length 8, past the end \(6 bytes\)$/);
    assert.throws(() => parseMsgs(Buffer.from('ff000000100000000000000000000000', 'hex')), /message at offset 0 has length 255/);
  });
});

// Round trips: a request's nested service/destination has the kernel's reply layout minus the counters, so
// decoding what we encode must give back what was asked.
const v4 = fc.tuple(fc.constantFrom(192, 198, 203), fc.nat(255), fc.nat(255), fc.nat(255)).map((o) => o.join('.'));
const v6 = fc.array(fc.nat(0xffff), { minLength: 6, maxLength: 6 }).map((p) => `2001:db8:${p.map((x) => x.toString(16)).join(':')}`);
const serviceSpec: fc.Arbitrary<ServiceSpec & AddressServiceKey> = fc.oneof(v4, v6).chain((address) =>
  fc.record({
    address: fc.constant(address),
    protocol: fc.constantFrom('tcp' as const, 'udp' as const, 'sctp' as const),
    port: fc.integer({ min: 0, max: 65535 }),
    scheduler: fc.constantFrom('rr', 'wrr', 'wlc', 'mh', 'sh'),
    schedulerFlags: fc.subarray(['flag-1', 'flag-2', 'flag-3'] as const),
    onePacket: fc.boolean(),
    persistence: fc.option(fc.record({ timeout: fc.integer({ min: 1, max: 86400 }) }), { nil: undefined }),
  }),
);

describe('IPVS codec round trips', () => {
  it('service spec → request → decoded service', () => {
    fc.assert(
      fc.property(serviceSpec, (spec) => {
        const s = decodeServiceAttrs(parseAttrs(newServiceRequest(spec).payload.subarray(4)).get(1)!);
        assert.equal(s.address, canonicalIp(spec.address));
        assert.equal(s.protocol, spec.protocol);
        assert.equal(s.port, spec.port);
        assert.equal(s.scheduler, spec.scheduler);
        assert.deepEqual(s.schedulerFlags, [...(spec.schedulerFlags ?? [])].sort());
        assert.equal(s.onePacket, spec.onePacket);
        assert.equal(s.persistence?.timeout, spec.persistence?.timeout);
      }),
      fuzzParams(500),
    );
  });

  it('destination spec → request → decoded destination', () => {
    const dest: fc.Arbitrary<DestinationSpec> = fc.record({
      address: v4,
      port: fc.integer({ min: 0, max: 65535 }),
      forwarding: fc.constantFrom('dr' as const, 'tun' as const, 'nat' as const),
      weight: fc.integer({ min: 0, max: 0x7fffffff }),
      upperThreshold: fc.integer({ min: 0, max: 1000 }),
      lowerThreshold: fc.constant(0),
    });
    fc.assert(
      fc.property(dest, (d) => {
        const req = newDestRequest({ address: '192.0.2.1', protocol: 'tcp', port: 80 }, d);
        const got = decodeDestAttrs(parseAttrs(req.payload.subarray(4)).get(2)!, 4);
        assert.deepEqual(
          { address: got.address, port: got.port, forwarding: got.forwarding, weight: got.weight, upperThreshold: got.upperThreshold, lowerThreshold: got.lowerThreshold },
          { ...d },
        );
      }),
      fuzzParams(500),
    );
  });

  it('random invalid ports and weights are refused as input errors, never sent', () => {
    fc.assert(
      fc.property(fc.oneof(fc.integer({ min: 65536 }), fc.integer({ max: -1 }), fc.double({ noInteger: true })), (bad) => {
        assert.throws(() => newServiceRequest({ address: '192.0.2.1', protocol: 'tcp', port: bad, scheduler: 'rr' }), IpvsInputError);
      }),
    );
  });

  it('messages survive framing: concatenated frames split back into the same messages', () => {
    fc.assert(
      fc.property(fc.array(fc.record({ type: fc.integer({ min: 16, max: 0xffff }), flags: fc.nat(0xffff), seq: fc.nat(), payload: fc.uint8Array({ maxLength: 40 }) }), { maxLength: 10 }), (msgs) => {
        const frames = msgs.map((m) => encodeMsg({ ...m, pid: 0, payload: Buffer.from(m.payload) }));
        const back = parseMsgs(Buffer.concat(frames));
        assert.equal(back.length, msgs.length);
        back.forEach((b, i) => {
          assert.equal(b.type, msgs[i]!.type);
          assert.deepEqual([...b.payload], [...msgs[i]!.payload]);
        });
      }),
    );
    assert.deepEqual(genlPayload(1, 1, []).length, 4);
  });

  it('a datagram of several messages is exactly the messages one after the other, and parses back', () => {
    const msg = fc.record({ type: fc.integer({ min: 16, max: 0xffff }), flags: fc.integer({ min: 0, max: 0xffff }), seq: fc.nat(), pid: fc.nat(), payload: fc.uint8Array({ maxLength: 70 }).map((a) => Buffer.from(a)) });
    fc.assert(fc.property(fc.array(msg, { minLength: 1, maxLength: 8 }), (msgs) => {
      const one = encodeMsgs(msgs);
      assert.deepEqual(one, Buffer.concat(msgs.map(encodeMsg)));
      assert.deepEqual(parseMsgs(one).map((m) => [m.type, m.seq, m.payload.toString('hex')]), msgs.map((m) => [m.type, m.seq, m.payload.toString('hex')]));
    }));
  });

  it('attribute padding is zero even when the buffer pool holds old bytes', () => {
    /** Every attribute's padding, recursively (nested attributes hold attributes). */
    const paddingOf = (b: Buffer, nestedTypes: Set<number>): number[] => {
      const out: number[] = [];
      for (let off = 0; off < b.length; ) {
        const len = b.readUInt16LE(off);
        const type = b.readUInt16LE(off + 2) & 0x3fff;
        for (let p = off + len; p < off + ((len + 3) & ~3); p++) out.push(b[p]!);
        if (nestedTypes.has(type) && b.readUInt16LE(off + 2) & 0x8000) out.push(...paddingOf(b.subarray(off + 4, off + len), new Set()));
        off += (len + 3) & ~3;
      }
      return out;
    };
    fc.assert(fc.property(serviceSpec, fc.string({ minLength: 1, maxLength: 15 }).filter((x) => /^[a-z]+$/.test(x)), (spec, sched) => {
      // Leave old bytes in the pool that the next small allocations come from.
      Buffer.allocUnsafe(64).fill(0xa5);
      const req = newServiceRequest({ ...spec, scheduler: sched });
      const pad = paddingOf(req.payload.subarray(4), new Set([1, 2]));
      assert.ok(pad.every((x) => x === 0), `non-zero padding: ${pad.join(',')}`);
    }), { numRuns: 500 });
  });
});

describe('rtnetlink address and link decoders never crash on bad input', () => {
  const validAddrs = [addrPayload(2, '192.0.2.10', 32), addrPayload(3, '2001:db8::10', 128, 0x300)];
  const validLink = Buffer.concat([linkByNamePayload('eth0').subarray(0, 16), encodeAttrs([attr(IFLA.IFNAME, Buffer.from('eth0\0')), attr(IFLA.OPERSTATE, Buffer.from([6]))])]);
  validLink.writeUInt32LE(0x10043, 8);

  it('valid messages decode', () => {
    assert.deepEqual(decodeAddr(validAddrs[0]!), { index: 2, family: 4, prefixLength: 32, address: '192.0.2.10', flags: 0, label: undefined });
    assert.equal(decodeAddr(validAddrs[1]!).flags, 0x300);
    assert.deepEqual(decodeLink(validLink), { index: 0, name: 'eth0', flags: 0x10043, up: true });
  });

  for (const [name, decode] of [['address', decodeAddr], ['link', decodeLink]] as const) {
    it(`${name}: random bytes and random attribute trees`, () => {
      fc.assert(fc.property(fc.uint8Array({ maxLength: 200 }), (a) => decodesOrRejectsCleanly(() => decode(Buffer.from(a)))), fuzzParams(2000));
      const header = fc.uint8Array({ minLength: name === 'address' ? 8 : 16, maxLength: name === 'address' ? 8 : 16 }).map((h) => {
        if (name === 'address') h[0] = h[0]! % 2 === 0 ? 2 : 10;
        return Buffer.from(h);
      });
      fc.assert(fc.property(header, attrTree.tree, (h, attrs) => decodesOrRejectsCleanly(() => decode(Buffer.concat([h, attrs])))), fuzzParams(2000));
    });
  }

  it('every truncation and every byte flip of valid messages is decoded or refused with NetlinkDecodeError', () => {
    for (const [valid, decode] of [...validAddrs.map((v) => [v, decodeAddr] as const), [validLink, decodeLink] as const]) {
      for (let n = 0; n < valid.length; n++) decodesOrRejectsCleanly(() => decode(valid.subarray(0, n)));
      for (let pos = 0; pos < valid.length; pos++) {
        for (const byte of [0, 1, 0x7f, 0x80, 0xff]) {
          const b = Buffer.from(valid);
          b[pos] = byte;
          decodesOrRejectsCleanly(() => decode(b));
        }
      }
    }
  });

  it('an address attribute too short for its family is refused, not read past its end', () => {
    const short = Buffer.concat([validAddrs[1]!.subarray(0, 8), encodeAttrs([attr(IFA.ADDRESS, Buffer.alloc(4, 1))])]);
    assert.throws(() => decodeAddr(short), /^NetlinkDecodeError: ifaddrmsg: no address$/);
    assert.throws(() => decodeAddr(Buffer.from([7, 32, 0, 0, 1, 0, 0, 0])), /unsupported family 7/);
  });
});
