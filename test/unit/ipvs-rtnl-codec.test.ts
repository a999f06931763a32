// Golden bytes for the rtnetlink messages of the VIP binder (src/vip/rtnl.ts), which share the netlink layer
// of src/ipvs: struct ifaddrmsg / ifinfomsg from include/uapi/linux/if_addr.h and rtnetlink.h.
import assert from 'node:assert/strict';
import { endianness } from 'node:os';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { NetlinkDecodeError } from '../../src/ipvs/netlink.js';
import { addrPayload, decodeAddr, decodeLink, IFA_F, linkByNamePayload } from '../../src/vip/rtnl.js';

const hex = (s: string): Buffer => Buffer.from(s.replace(/#.*$/gm, '').replace(/\s+/g, ''), 'hex');

describe('rtnetlink codec (golden bytes)', { skip: endianness() !== 'LE' && 'golden bytes are little-endian' }, () => {
  it('RTM_NEWADDR 192.0.2.10/32 on ifindex 3: IFA_LOCAL and IFA_ADDRESS', () => {
    assert.deepEqual(
      addrPayload(3, '192.0.2.10', 32),
      hex(`
        02 20 00 00  03000000            # AF_INET, /32, flags 0, scope universe, index 3
        0800 0200 c000020a               # IFA_LOCAL
        0800 0100 c000020a               # IFA_ADDRESS
      `),
    );
  });

  it('RTM_NEWADDR 2001:db8::10/128 without DAD: IFA_ADDRESS only, NODAD in the header flags', () => {
    assert.deepEqual(
      addrPayload(7, '2001:db8::10', 128, IFA_F.NODAD),
      hex('0a 80 02 00  07000000  1400 0100 20010db8000000000000000000000010'),
    );
  });

  it('RTM_GETLINK by name', () => {
    assert.deepEqual(linkByNamePayload('eth0'), hex('00 00 0000 00000000 00000000 00000000  0900 0300 6574683000 000000'));
  });

  it('decodes an address notification (IFA_FLAGS wins over the 8-bit header flags) and a link', () => {
    const a = decodeAddr(hex('0a 80 80 00 05000000  1400 0100 20010db8000000000000000000000010  0800 0800 82000000'));
    assert.deepEqual(a, { index: 5, family: 6, prefixLength: 128, address: '2001:db8::10', flags: 0x82, label: undefined });
    const l = decodeLink(hex('00 00 0100 04000000 43100100 00000000  0700 0300 763000 00'));
    assert.deepEqual(l, { index: 4, name: 'v0', flags: 0x11043, up: true });
    assert.equal(decodeLink(hex('00 00 0100 04000000 02100000 00000000')).up, false);
  });

  it('random bytes give a value or NetlinkDecodeError, never another exception', () => {
    for (const decode of [decodeAddr, decodeLink]) {
      fc.assert(
        fc.property(fc.uint8Array({ maxLength: 80 }), (b) => {
          try {
            decode(Buffer.from(b));
          } catch (e) {
            if (!(e instanceof NetlinkDecodeError)) throw e;
          }
        }),
        { numRuns: 3000 },
      );
    }
  });
});
