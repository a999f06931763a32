// Golden bytes for the IPVS generic-netlink codec, derived by hand from include/uapi/linux/ip_vs.h and the
// kernel's nla_policy (net/netfilter/ipvs/ip_vs_ctl.c): attribute = u16 len (header included), u16 type,
// payload padded to 4 bytes; ports and addresses big-endian, other integers host order (x86: little-endian);
// nested attributes carry NLA_F_NESTED (0x8000). The lab test (test/lab/ipvs-client.test.ts) checks the
// NEW_SERVICE bytes against what ipvsadm itself sends, captured with strace in the micro-VM.
import assert from 'node:assert/strict';
import { endianness } from 'node:os';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  decodeDestMsg,
  decodeFamily,
  decodeInfoMsg,
  decodeServiceAttrs,
  decodeServiceMsg,
  delDestRequest,
  delServiceRequest,
  dumpDestsRequest,
  dumpServicesRequest,
  getFamilyPayload,
  newDaemonRequest,
  newDestRequest,
  newServiceRequest,
  serviceIdentityKey,
  setDestRequest,
  setServiceRequest,
} from '../../src/ipvs/codec.js';
import { kernelError } from '../../src/ipvs/client.js';
import { IpvsInputError } from '../../src/ipvs/errors.js';
import { encodeMsg, parseAttrs, parseMsgs, parseErrorPayload, NlFlags } from '../../src/ipvs/netlink.js';
import { parseModulePaths, parseProcModules } from '../../src/ipvs/schedulers.js';

const hex = (s: string): Buffer => Buffer.from(s.replace(/#.*$/gm, '').replace(/\s+/g, ''), 'hex');

// Host-order fixtures are written for little-endian machines, which is every machine this project targets.
const le = endianness() === 'LE';

describe('IPVS codec: requests (golden bytes)', { skip: !le && 'golden bytes are little-endian' }, () => {
  it('NEW_SERVICE tcp 192.0.2.10:80 rr, no persistence', () => {
    const req = newServiceRequest({ address: '192.0.2.10', protocol: 'tcp', port: 80, scheduler: 'rr' });
    assert.equal(req.describe, 'add service tcp 192.0.2.10:80');
    assert.deepEqual(
      req.payload,
      hex(`
        01 01 0000                      # genlmsghdr: cmd NEW_SERVICE, version 1
        5400 0180                       # IPVS_CMD_ATTR_SERVICE | NLA_F_NESTED, 84 bytes:
          0600 0100 0200 0000           #   AF = AF_INET (u16) + pad
          0600 0200 0600 0000           #   PROTOCOL = 6 (u16) + pad
          1400 0300 c000020a 00000000 00000000 00000000  # ADDR: nf_inet_addr, 16 bytes
          0600 0400 0050 0000           #   PORT = 80, big-endian + pad
          0700 0600 727200 00           #   SCHED_NAME "rr\\0" + pad
          0c00 0700 00000000 ffffffff   #   FLAGS {flags 0, mask ~0}
          0800 0800 00000000            #   TIMEOUT 0
          0800 0900 ffffffff            #   NETMASK 255.255.255.255 (be32)
      `),
    );
  });

  it('SET_SERVICE udp [2001:db8::10]:53 mh with mh-fallback, mh-port, persistence 300 s /64', () => {
    const req = setServiceRequest({
      address: '2001:DB8::10',
      protocol: 'udp',
      port: 53,
      scheduler: 'mh',
      schedulerFlags: ['mh-fallback', 'mh-port'],
      persistence: { timeout: 300, netmask: 64 },
    });
    assert.equal(req.describe, 'edit service udp [2001:db8::10]:53');
    assert.deepEqual(
      req.payload,
      hex(`
        02 01 0000
        5400 0180
          0600 0100 0a00 0000           # AF_INET6 = 10
          0600 0200 1100 0000           # UDP = 17
          1400 0300 20010db8000000000000000000000010
          0600 0400 0035 0000           # port 53
          0700 0600 6d6800 00           # "mh"
          0c00 0700 19000000 ffffffff   # PERSISTENT|SCHED1|SCHED2 = 0x19
          0800 0800 2c010000            # timeout 300
          0800 0900 40000000            # IPv6 netmask = prefix length 64, host order
      `),
    );
  });

  it('DEL_SERVICE by firewall mark sends only AF and FWMARK', () => {
    const req = delServiceRequest({ fwmark: 7, family: 4 });
    assert.equal(req.describe, 'delete service fwmark 7 (IPv4)');
    assert.deepEqual(req.payload, hex('03 01 0000  1400 0180  0600 0100 0200 0000  0800 0500 07000000'));
  });

  it('NEW_DEST direct routing, weight 1, with the service key', () => {
    const req = newDestRequest({ address: '192.0.2.10', protocol: 'tcp', port: 80 }, { address: '198.51.100.7', port: 80, forwarding: 'dr', weight: 1 });
    assert.equal(req.describe, 'add destination 198.51.100.7:80 of service tcp 192.0.2.10:80');
    assert.deepEqual(
      req.payload,
      hex(`
        05 01 0000
        3000 0180                       # service key, 48 bytes
          0600 0100 0200 0000
          0600 0200 0600 0000
          1400 0300 c000020a 00000000 00000000 00000000
          0600 0400 0050 0000
        4800 0280                       # IPVS_CMD_ATTR_DEST, 72 bytes
          1400 0100 c6336407 00000000 00000000 00000000  # ADDR
          0600 0200 0050 0000           # PORT 80
          0600 0b00 0200 0000           # ADDR_FAMILY AF_INET
          0800 0300 03000000            # FWD_METHOD = IP_VS_CONN_F_DROUTE
          0800 0400 01000000            # WEIGHT 1
          0800 0500 00000000            # U_THRESH 0
          0800 0600 00000000            # L_THRESH 0
      `),
    );
  });

  it('SET_DEST tunnel GUE with port and checksum, thresholds', () => {
    const req = setDestRequest(
      { fwmark: 1, family: 4 },
      { address: '203.0.113.9', port: 0, forwarding: 'tun', weight: 5, upperThreshold: 100, lowerThreshold: 10, tunnel: { type: 'gue', port: 6080, checksum: 'csum' } },
    );
    const top = parseAttrs(req.payload.subarray(4));
    assert.deepEqual(
      top.get(2),
      hex(`
        1400 0100 cb007109 00000000 00000000 00000000
        0600 0200 0000 0000
        0600 0b00 0200 0000
        0800 0300 02000000              # IP_VS_CONN_F_TUNNEL
        0800 0400 05000000
        0800 0500 64000000              # upper 100
        0800 0600 0a000000              # lower 10
        0500 0d00 01 000000             # TUN_TYPE GUE (u8)
        0600 0e00 17c0 0000             # TUN_PORT 6080, big-endian
        0600 0f00 0100 0000             # TUN_FLAGS CSUM
      `),
    );
  });

  it('DEL_DEST and GET_DEST carry only keys', () => {
    const del = delDestRequest({ address: '192.0.2.10', protocol: 'tcp', port: 80 }, { address: '198.51.100.7', port: 80 });
    const dest = parseAttrs(del.payload.subarray(4)).get(2)!;
    assert.deepEqual([...parseAttrs(dest).keys()], [1, 2, 11]);
    const dump = dumpDestsRequest({ address: '192.0.2.10', protocol: 'tcp', port: 80 });
    assert.equal(dump.dump, true);
    assert.equal(dump.payload[0], 8);
    assert.deepEqual([...parseAttrs(dump.payload.subarray(4)).keys()], [1]);
    assert.deepEqual(dumpServicesRequest().payload, hex('04 01 0000'));
  });

  it('NEW_DAEMON master on eth0 syncid 7', () => {
    const req = newDaemonRequest({ role: 'master', interface: 'eth0', syncId: 7 });
    assert.deepEqual(
      req.payload,
      hex(`
        09 01 0000
        2000 0380                       # IPVS_CMD_ATTR_DAEMON, 32 bytes
          0800 0100 01000000            # STATE master
          0900 0200 6574683000 000000   # MCAST_IFN "eth0\\0"
          0800 0300 07000000            # SYNC_ID 7
      `),
    );
  });

  it('CTRL_CMD_GETFAMILY "IPVS" and the netlink header', () => {
    assert.deepEqual(getFamilyPayload('IPVS'), hex('03 01 0000  0900 0200 4950565300 000000'));
    const frame = encodeMsg({ type: 0x10, flags: NlFlags.REQUEST | NlFlags.ACK, seq: 0x01020304, pid: 0x0a0b0c0d, payload: hex('0301 0000') });
    assert.deepEqual(frame, hex('14000000 1000 0500 04030201 0d0c0b0a 03010000'));
    assert.deepEqual(parseMsgs(frame)[0], { type: 0x10, flags: 5, seq: 0x01020304, pid: 0x0a0b0c0d, payload: hex('03010000') });
  });
});

describe('IPVS codec: replies (golden bytes)', { skip: !le && 'golden bytes are little-endian' }, () => {
  // A GET_SERVICE dump message as Linux 6.1 sends it: NEW_SERVICE command, nested service with the
  // kernel-internal HASHED flag, 32-bit STATS and STATS64 whose u64 values are preceded by PAD attributes.
  const serviceReply = hex(`
    01 01 0000
    a000 0100
      0600 0100 0200 0000
      0600 0200 0600 0000
      1400 0300 c000020a 00000000 00000000 00000000
      0600 0400 0050 0000
      0800 0600 776c6300                 # "wlc\\0"
      0c00 0700 03000000 ffffffff        # PERSISTENT|HASHED
      0800 0800 58020000                 # timeout 600
      0800 0900 ffffff00                 # 255.255.255.0
      1800 0a00                          # STATS (32-bit)
        0800 0100 05000000
        0c00 0400 e803000000000000
      3400 0c00                          # STATS64
        0400 0b00                        #   PAD
        0c00 0100 0500000001000000       #   conns = 0x100000005
        0400 0b00
        0c00 0400 e803000000000000       #   inbytes 1000
        0400 0b00
        0c00 0900 4000000000000000       #   inbps 64
  `);

  it('decodes a service with 64-bit stats, persistence and netmask', () => {
    const s = decodeServiceMsg(serviceReply);
    assert.equal(s.address, '192.0.2.10');
    assert.equal(s.protocol, 'tcp');
    assert.equal(s.port, 80);
    assert.equal(s.scheduler, 'wlc');
    assert.deepEqual(s.persistence, { timeout: 600, netmask: '255.255.255.0' });
    assert.equal(s.stats.conns, 0x100000005n);
    assert.equal(s.stats.inbytes, 1000n);
    assert.equal(s.stats.inbps, 64n);
    assert.equal(s.stats.outpkts, 0n);
  });

  it('decodes a destination (IPv6, direct routing, connection counts)', () => {
    const reply = hex(`
      05 01 0000
      7400 0200
        1400 0100 20010db8000000000000000000000007
        0600 0200 01bb 0000              # port 443
        0800 0300 03000000               # DR
        0800 0400 0a000000               # weight 10
        0800 0500 00000000
        0800 0600 00000000
        0800 0700 02000000               # active 2
        0800 0800 03000000               # inactive 3
        0800 0900 00000000
        0600 0b00 0a00 0000              # AF_INET6
        1400 0c00 0400 0b00 0c00 0200 0900000000000000  # STATS64 inpkts 9
    `);
    const d = decodeDestMsg(reply, 6);
    assert.deepEqual(
      { ...d, stats: undefined },
      {
        family: 6,
        address: '2001:db8::7',
        port: 443,
        forwarding: 'dr',
        weight: 10,
        upperThreshold: 0,
        lowerThreshold: 0,
        activeConns: 2,
        inactiveConns: 3,
        persistentConns: 0,
        tunnel: undefined,
        stats: undefined,
      },
    );
    assert.equal(d.stats.inpkts, 9n);
  });

  it('decodes GET_INFO, CTRL_CMD_NEWFAMILY and error payloads', () => {
    assert.deepEqual(decodeInfoMsg(hex('0e 01 0000  0800 0100 01020100  0800 0200 00100000')), { versionCode: 0x010201, version: '1.2.1', connTableSize: 4096 });
    assert.deepEqual(decodeFamily(hex('01 02 0000  0900 0200 4950565300 000000  0600 0100 2300 0000  0800 0300 01000000')), { id: 0x23, version: 1, name: 'IPVS' });
    assert.deepEqual(parseErrorPayload(hex('efffffff 14000000 2300 0500 2a000000 00000000')), { errno: 17, origSeq: 42 });
  });

  it('a request decodes back to what was asked (the reply layout is the request layout plus counters)', () => {
    const req = newServiceRequest({ address: '198.51.100.1', protocol: 'sctp', port: 9, scheduler: 'sh', schedulerFlags: ['sh-port'], onePacket: true, persistenceEngine: 'sip' });
    const s = decodeServiceAttrs(parseAttrs(req.payload.subarray(4)).get(1)!);
    assert.equal(s.protocol, 'sctp');
    assert.deepEqual(s.schedulerFlags, ['flag-2']);
    assert.equal(s.onePacket, true);
    assert.equal(s.persistenceEngine, 'sip');
    assert.equal(s.persistence, undefined);
  });
  it('a service message\'s identity key leaves out its counters and nothing else', () => {
    const key = serviceIdentityKey(serviceReply)!;
    assert.ok(key.length > 0);
    // Counters are the last 0x4c bytes (STATS and STATS64 with their headers): a change there keeps the key.
    const counters = serviceReply.length - 0x4c;
    const other = Buffer.from(serviceReply);
    other[counters + 8] = 0x63;
    other[serviceReply.length - 5] = 0x7f;
    assert.equal(serviceIdentityKey(other), key);
    // Any byte before them (the scheduler's name, the timeout, the address) is a different service message.
    for (const at of [5, 30, 34, 50, 62]) {
      const changed = Buffer.from(serviceReply);
      changed[at] = changed[at]! ^ 0x01;
      assert.notEqual(serviceIdentityKey(changed), key, `byte ${at}`);
    }
    assert.equal(serviceIdentityKey(serviceReply.subarray(0, 3)), undefined);
    assert.equal(serviceIdentityKey(serviceReply.subarray(0, serviceReply.length - 2)), undefined);
  });

  it('messages with one identity key decode alike without counters; a message without one does not decode', () => {
    const outcome = (b: Buffer): unknown => {
      try {
        return decodeServiceMsg(b, { stats: false });
      } catch (e) {
        return `error: ${(e as Error).message}`;
      }
    };
    const mutate = (at: number, value: number, cut: number): Buffer => {
      const b = Buffer.from(serviceReply.subarray(0, serviceReply.length - cut));
      if (at < b.length) b[at] = value;
      return b;
    };
    const change = fc.tuple(fc.nat(serviceReply.length - 1), fc.nat(255), fc.oneof(fc.constant(0), fc.nat(12)));
    fc.assert(fc.property(change, change, ([a1, v1, c1], [a2, v2, c2]) => {
      const a = mutate(a1, v1, c1);
      const b = mutate(a2, v2, c2);
      const ka = serviceIdentityKey(a);
      if (ka === undefined) assert.match(String(outcome(a)), /^error: /);
      if (ka !== undefined && ka === serviceIdentityKey(b)) assert.deepEqual(outcome(a), outcome(b));
    }), { numRuns: 5000 });
  });
});

describe('IPVS codec: input errors name the field and the value', () => {
  const svc = { address: '192.0.2.10', protocol: 'tcp', port: 80 } as const;
  const cases: [string, () => unknown, RegExp][] = [
    ['port', () => newServiceRequest({ ...svc, port: 70000, scheduler: 'rr' }), /^service\.port: must be an integer 0-65535 \(got 70000\)$/],
    ['address', () => newServiceRequest({ ...svc, address: '192.0.2.300', scheduler: 'rr' }), /^service\.address: .*got "192\.0\.2\.300"/],
    ['protocol', () => newServiceRequest({ ...svc, protocol: 'icmp' as 'tcp', scheduler: 'rr' }), /^service\.protocol: must be tcp, udp or sctp \(got "icmp"\)$/],
    ['scheduler', () => newServiceRequest({ ...svc, scheduler: 'a-very-long-scheduler' }), /^service\.scheduler: .*got "a-very-long-scheduler"/],
    ['flag', () => newServiceRequest({ ...svc, scheduler: 'mh', schedulerFlags: ['mh-port', 'bogus' as 'flag-1'] }), /^service\.schedulerFlags\[1\]: .*got "bogus"/],
    ['netmask', () => newServiceRequest({ ...svc, scheduler: 'rr', persistence: { timeout: 60, netmask: '255.0.255.0' } }), /^service\.persistence\.netmask: .*got "255\.0\.255\.0"/],
    ['v6 netmask', () => newServiceRequest({ ...svc, address: '2001:db8::1', scheduler: 'rr', persistence: { timeout: 60, netmask: 129 } }), /netmask: must be an integer 1-128 \(got 129\)/],
    ['timeout', () => newServiceRequest({ ...svc, scheduler: 'rr', persistence: { timeout: 0 } }), /persistence\.timeout: must be an integer 1-/],
    ['forwarding', () => newDestRequest(svc, { address: '198.51.100.7', port: 80, forwarding: 'fullnat' as 'dr', weight: 1 }), /^destination\.forwarding: must be dr, tun or nat \(got "fullnat"\)$/],
    ['weight', () => newDestRequest(svc, { address: '198.51.100.7', port: 80, forwarding: 'dr', weight: -1 }), /^destination\.weight: .*got -1/],
    ['thresholds', () => newDestRequest(svc, { address: '198.51.100.7', port: 80, forwarding: 'dr', weight: 1, upperThreshold: 5, lowerThreshold: 6 }), /lowerThreshold: must not exceed upperThreshold 5 .*\(got 6\)$/],
    ['lower threshold without upper', () => newDestRequest(svc, { address: '198.51.100.7', port: 80, forwarding: 'dr', weight: 1, lowerThreshold: 1 }), /lowerThreshold: must not exceed upperThreshold 0 .*\(got 1\)$/],
    ['mixed family', () => newDestRequest(svc, { address: '2001:db8::7', port: 80, forwarding: 'dr', weight: 1 }), /^destination\.address: must be IPv4 like its service/],
    ['tunnel on dr', () => newDestRequest(svc, { address: '198.51.100.7', port: 80, forwarding: 'dr', weight: 1, tunnel: { type: 'ipip' } }), /destination\.tunnel: is only valid with forwarding tun/],
    ['daemon role', () => newDaemonRequest({ role: 'primary' as 'master', interface: 'eth0', syncId: 1 }), /^syncDaemon\.role: must be master or backup \(got "primary"\)$/],
    ['daemon iface', () => newDaemonRequest({ role: 'master', interface: 'eth0; rm -rf /', syncId: 1 }), /^syncDaemon\.interface: /],
  ];
  for (const [name, fn, re] of cases) {
    it(name, () => {
      assert.throws(fn, (e: unknown) => e instanceof IpvsInputError && re.test(e.message));
    });
  }
});

describe('IPVS kernel errors are explained with the object named', () => {
  it('maps the kernel errnos of ip_vs_ctl.c', () => {
    const svc = newServiceRequest({ address: '192.0.2.10', protocol: 'tcp', port: 80, scheduler: 'nope' });
    assert.equal(kernelError(svc, 17).message, 'add service tcp 192.0.2.10:80: the service already exists (EEXIST)');
    assert.equal(kernelError(svc, 2).message, 'add service tcp 192.0.2.10:80: scheduler or persistence engine not available (kernel module ip_vs_<name> missing) (ENOENT)');
    assert.equal(kernelError(delServiceRequest({ address: '192.0.2.10', protocol: 'tcp', port: 80 }), 3).code, 'ESRCH');
    const dest = delDestRequest({ address: '192.0.2.10', protocol: 'tcp', port: 80 }, { address: '198.51.100.7', port: 80 });
    const e = kernelError(dest, 2);
    assert.equal(e.code, 'ENOENT');
    assert.equal(e.errno, 2);
    assert.match(e.message, /^delete destination 198\.51\.100\.7:80 of service tcp 192\.0\.2\.10:80: no such destination \(ENOENT\)$/);
    assert.match(kernelError(dest, 1).message, /CAP_NET_ADMIN/);
  });
});

describe('scheduler discovery parses the module lists', () => {
  it('reads /proc/modules and module paths, ignoring helpers that are not schedulers', () => {
    assert.deepEqual(parseProcModules('ip_vs_rr 16384 0 - Live 0x0\nip_vs_ftp 16384 0 - Live 0x0\nip_vs 180224 4 ip_vs_rr, Live 0x0\nip_vs_mh 16384 1 - Live 0\n'), ['mh', 'rr']);
    assert.deepEqual(parseModulePaths(['kernel/net/netfilter/ipvs/ip_vs_wlc.ko', 'ip_vs_sh.ko.xz', 'ip_vs_pe_sip.ko', 'ip_vs.ko', 'nf_nat.ko']), ['sh', 'wlc']);
  });
});
