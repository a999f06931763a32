// The hand-written IPv6 formatter and parser (on the allocator's hot path) against ipaddr.js, the reference.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import ipaddr from 'ipaddr.js';
import { formatIp, parseIp } from '../../src/ipam/address.js';
import { IntervalSet } from '../../src/ipam/intervals.js';

// Groups biased towards 0 so that runs of zeros (and "::" placement) are common.
const group = fc.oneof(fc.constant(0), fc.constant(0), fc.constant(1), fc.constant(0xffff), fc.integer({ min: 0, max: 0xffff }));

describe('IPv6 text', () => {
  it('formats exactly as RFC 5952 (ipaddr.js) and parses back to the same value', () => {
    fc.assert(
      fc.property(fc.array(group, { minLength: 8, maxLength: 8 }), (parts) => {
        let value = 0n;
        for (const p of parts) value = (value << 16n) | BigInt(p);
        const text = formatIp({ family: 6, value });
        assert.equal(text, ipaddr.IPv6.parse(parts.map((p) => p.toString(16)).join(':')).toString());
        assert.equal(parseIp(text)?.value, value);
        assert.equal(parseIp(parts.map((p) => p.toString(16).toUpperCase()).join(':'))?.value, value);
      }),
      { numRuns: 2000 },
    );
  });

  it('rejects malformed text and still accepts embedded IPv4', () => {
    for (const bad of ['2001:db8::1::', ':::', '1:2:3:4:5:6:7:8:9', '1:2:3:4:5:6:7', '12345::', 'g::', 'fe80::1%eth0', '01.2.3.4', '256.1.1.1', '1.2.3']) {
      assert.equal(parseIp(bad), undefined, bad);
    }
    assert.equal(formatIp(parseIp('::ffff:192.0.2.1')!), '::ffff:c000:201');
    assert.equal(formatIp(parseIp('2001:DB8::A')!), '2001:db8::a');
  });
});

describe('IntervalSet', () => {
  it('agrees with a plain Set under random adds and deletes', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 0, max: 60 })), { maxLength: 300 }), (ops) => {
        const s = new IntervalSet();
        const ref = new Set<number>();
        for (const [add, v] of ops) {
          assert.equal(add ? s.add(BigInt(v)) : s.delete(BigInt(v)), add ? !ref.has(v) : ref.has(v));
          if (add) ref.add(v);
          else ref.delete(v);
        }
        assert.equal(s.size, BigInt(ref.size));
        for (let v = 0; v <= 62; v++) {
          assert.equal(s.has(BigInt(v)), ref.has(v));
          let free = v;
          while (ref.has(free)) free++;
          assert.equal(s.nextAbsent(BigInt(v)), BigInt(free));
        }
      }),
    );
  });
});
