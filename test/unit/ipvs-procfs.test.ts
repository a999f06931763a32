// /proc/net/ip_vs as Linux 6.1 prints it (captured in the lab from the table below, made with ipvsadm), and
// the parser's refusals: an unknown layout must be an error, never a wrong table.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { parseProcIpvs, ProcParseError, ProcReuse } from '../../src/ipvs/procfs.js';

// ipvsadm -A -t 192.0.2.1:80 -s rr; -a ... -r 198.51.100.11:80 -g -w 3; -r 198.51.100.12:30080 -m -w 0;
// -r 198.51.100.13:80 -i -w 1; -A -u 192.0.2.1:53 -s mh -b mh-port,mh-fallback -p 300 -M 255.255.255.0;
// -A -u 192.0.2.2:443 -s sh -o; -A --sctp-service 192.0.2.3:9000 -s wlc -p 60;
// -A -t [2001:db8:ff::10]:80 -s rr -p 100 -M 64 with [2001:db8:100::11]:80 -g -w 2 and 198.51.100.13:80 -i;
// -A -f 7 -s rr with 198.51.100.11:0; -A -f 8 -6 -s rr.
const captured = [
  'IP Virtual Server version 1.2.1 (size=4096)',
  'Prot LocalAddress:Port Scheduler Flags',
  '  -> RemoteAddress:Port Forward Weight ActiveConn InActConn',
  'TCP  C0000201:0050 rr  ',
  '  -> C633640D:0050      Tunnel  1      0          0         ',
  '  -> C633640C:7580      Masq    0      0          0         ',
  '  -> C633640B:0050      Route   3      2          17        ',
  'UDP  C0000201:0035 mh  persistent 30000 FFFFFF00',
  'TCP  [2001:0db8:00ff:0000:0000:0000:0000:0010]:0050 rr persistent 10000 40000000',
  '  -> C633640D:0050      Tunnel  1      0          0         ',
  '  -> [2001:0db8:0100:0000:0000:0000:0000:0011]:0050      Route   2      0          0         ',
  'UDP  C0000202:01BB sh ops  ',
  'SCTP  C0000203:2328 wlc  persistent 6000 FFFFFFFF',
  'FWM  00000007 rr ',
  '  -> C633640B:0000      Route   1      0          0         ',
  'FWM  00000008 rr ',
  '',
].join('\n');

describe('/proc/net/ip_vs parser', () => {
  it('reads every service and destination of the captured table', () => {
    const t = parseProcIpvs(captured);
    assert.deepEqual(t.map((s) => [s.protocol ?? `fwmark ${s.fwmark}`, s.address ?? '', s.port, s.scheduler, s.destinations.length]), [
      ['tcp', '192.0.2.1', 80, 'rr', 3],
      ['udp', '192.0.2.1', 53, 'mh', 0],
      ['tcp', '2001:db8:ff::10', 80, 'rr', 2],
      ['udp', '192.0.2.2', 443, 'sh', 0],
      ['sctp', '192.0.2.3', 9000, 'wlc', 0],
      ['fwmark 7', '', 0, 'rr', 1],
      ['fwmark 8', '', 0, 'rr', 0],
    ]);
    assert.deepEqual(t[0]!.destinations, [
      { family: 4, address: '198.51.100.13', port: 80, forwarding: 'tun', weight: 1, activeConns: 0, inactiveConns: 0 },
      { family: 4, address: '198.51.100.12', port: 30080, forwarding: 'nat', weight: 0, activeConns: 0, inactiveConns: 0 },
      { family: 4, address: '198.51.100.11', port: 80, forwarding: 'dr', weight: 3, activeConns: 2, inactiveConns: 17 },
    ]);
    assert.deepEqual(t[2]!.destinations.map((d) => [d.family, d.address, d.forwarding, d.weight]), [
      [4, '198.51.100.13', 'tun', 1],
      [6, '2001:db8:100::11', 'dr', 2],
    ]);
  });

  it('reads an empty table, with or without the final newline', () => {
    const head = captured.split('\n').slice(0, 3).join('\n');
    assert.deepEqual(parseProcIpvs(`${head}\n`), []);
    assert.deepEqual(parseProcIpvs(head), []);
    assert.equal(parseProcIpvs(captured.trimEnd()).length, 7);
  });

  it('refuses layouts it does not know, naming the line', () => {
    const bad: Array<[string, RegExp]> = [
      ['Something else\n', /unexpected first line/],
      [captured.replace('Tunnel', 'Teleport'), /line 5: unknown forwarding "Teleport"/],
      [captured.replace('C633640C:7580', 'C633640C-7580'), /line 6: destination "C633640C-7580" is not HEXADDR:PORT/],
      [captured.replace('C633640B:0050      Route   3', 'C633640B:0050      Route   x'), /line 7: weight "x" is not a number/],
      [captured.replace('TCP  C0000201:0050 rr  ', 'ICMP  C0000201:0050 rr'), /line 4: not a service line/],
      [captured.replace('TCP  C0000201:0050 rr  \n', ''), /line 4: a destination before any service/],
      [captured.replace('[2001:0db8:0100:0000:0000:0000:0000:0011]', '[2001:db8::11]'), /is not a full IPv6 address/],
      [captured.replace('C633640D:0050      Tunnel  1      0          0         \n  -> C633640C', 'C633640D:0050      Tunnel  1\n  -> C633640C'), /line 5: not a destination line/],
      [captured.replace('constructor', '').replace('Masq', 'constructor'), /unknown forwarding "constructor"/],
    ];
    for (const [text, re] of bad) assert.throws(() => parseProcIpvs(text), (e: unknown) => e instanceof ProcParseError && re.test((e as Error).message));
  });

  it('any mangling of the text gives a table or a ProcParseError, never another exception', () => {
    fc.assert(fc.property(fc.nat(captured.length - 1), fc.string({ maxLength: 8 }), (at, insert) => {
      const text = captured.slice(0, at) + insert + captured.slice(at + 1);
      try {
        parseProcIpvs(text);
      } catch (e) {
        assert.ok(e instanceof ProcParseError, String(e));
      }
    }), { numRuns: 2000 });
  });
  it('reads back any table printed the kernel\'s way (ip_vs_info_seq_show formats), IPv4 and IPv6 destinations mixed', () => {
    const hex = (v: number, w: number) => v.toString(16).toUpperCase().padStart(w, '0');
    const pad = (x: string | number, w: number) => String(x).padEnd(w, ' ');
    const fwd = [['Route', 'dr'], ['Masq', 'nat'], ['Tunnel', 'tun'], ['Local', 'local']] as const;
    const dest = fc.record({
      v6: fc.boolean(), a: fc.nat(0xffffffff), port: fc.nat(65535), f: fc.nat(3),
      weight: fc.nat(65535), active: fc.nat(4_000_000_000), inactive: fc.nat(4_000_000_000),
    });
    const service = fc.record({ a: fc.nat(0xffffffff), port: fc.nat(65535), dests: fc.array(dest, { maxLength: 6 }) });
    fc.assert(fc.property(fc.array(service, { maxLength: 6 }), (services) => {
      const lines = ['IP Virtual Server version 1.2.1 (size=4096)', 'Prot LocalAddress:Port Scheduler Flags', '  -> RemoteAddress:Port Forward Weight ActiveConn InActConn'];
      for (const svc of services) {
        lines.push(`TCP  ${hex(svc.a, 8)}:${hex(svc.port, 4)} rr  `);
        for (const d of svc.dests) {
          const ep = d.v6 ? `[2001:0db8:0000:0000:0000:0000:${hex(d.a >>> 16, 4)}:${hex(d.a & 0xffff, 4)}]` : hex(d.a, 8);
          lines.push(`  -> ${ep}:${hex(d.port, 4)}      ${pad(fwd[d.f]![0], 7)} ${pad(d.weight, 6)} ${pad(d.active, 10)} ${pad(d.inactive, 10)}`);
        }
      }
      const t = parseProcIpvs(`${lines.join('\n')}\n`);
      assert.equal(t.length, services.length);
      services.forEach((svc, k) => {
        assert.deepEqual(t[k]!.destinations.map((d) => [d.family, d.port, d.forwarding, d.weight, d.activeConns, d.inactiveConns]),
          svc.dests.map((d) => [d.v6 ? 6 : 4, d.port, fwd[d.f]![1], d.weight, d.active, d.inactive]));
        svc.dests.forEach((d, j) => {
          if (!d.v6) assert.equal(t[k]!.destinations[j]!.address, `${d.a >>> 24}.${(d.a >>> 16) & 255}.${(d.a >>> 8) & 255}.${d.a & 255}`);
        });
      });
    }), { numRuns: 300 });
  });

  describe('with the last parse kept (ProcReuse)', () => {
    const outcome = (fn: () => unknown): unknown => {
      try {
        return { table: fn() };
      } catch (e) {
        assert.ok(e instanceof ProcParseError, String(e));
        return { error: (e as Error).message };
      }
    };
    const primed = (): ProcReuse => {
      const r = new ProcReuse();
      parseProcIpvs(captured, r);
      return r;
    };

    it('a text read again gives the same objects, not parsed again', () => {
      const r = new ProcReuse();
      const first = parseProcIpvs(captured, r);
      assert.deepEqual([r.parsed, r.reused], [7, 0]);
      const again = parseProcIpvs(captured, r);
      assert.deepEqual([r.parsed, r.reused], [0, 7]);
      assert.deepEqual(again, parseProcIpvs(captured));
      again.forEach((s, i) => assert.equal(s, first[i]));
    });

    it('a changed connection count, a removed and an added service are read anew; the rest is kept', () => {
      const r = primed();
      const before = parseProcIpvs(captured, r);
      const changed = captured
        .replace('C633640B:0050      Route   3      2          17', 'C633640B:0050      Route   3      5          17')
        .replace('UDP  C0000202:01BB sh ops  \n', '')
        .replace('FWM  00000008 rr ', 'FWM  00000008 rr \nTCP  C0000209:0050 wrr  \n  -> C633640B:0050      Route   1      0          0         ');
      const t = parseProcIpvs(changed, r);
      assert.deepEqual(t, parseProcIpvs(changed));
      assert.deepEqual([r.parsed, r.reused], [2, 5]);
      assert.notEqual(t[0], before[0]);
      assert.equal(t[0]!.destinations[2]!.activeConns, 5);
      assert.equal(t[1], before[1]);
      assert.equal(t.length, 7);
      assert.equal(t[6]!.address, '192.0.2.9');
    });

    it('a refused text leaves the kept parse as it was, and refusals name the same line as without it', () => {
      const r = primed();
      const bad = captured.replace('FWM  00000007 rr \n  -> C633640B:0000      Route   1', 'FWM  00000007 rr \n  -> C633640B:0000      Teleport   1');
      assert.throws(() => parseProcIpvs(bad, r), /line 15: unknown forwarding "Teleport"/);
      const t = parseProcIpvs(captured, r);
      assert.deepEqual([r.parsed, r.reused], [0, 7]);
      assert.deepEqual(t, parseProcIpvs(captured));
    });

    it('any mangling of the text reads as it reads without the kept parse: the same table or the same refusal', () => {
      fc.assert(fc.property(fc.nat(captured.length - 1), fc.string({ maxLength: 8 }), fc.boolean(), (at, insert, twice) => {
        const text = captured.slice(0, at) + insert + captured.slice(at + 1);
        const r = primed();
        if (twice) outcome(() => parseProcIpvs(text, r));
        assert.deepEqual(outcome(() => parseProcIpvs(text, r)), outcome(() => parseProcIpvs(text)));
      }), { numRuns: 2000 });
    });
  });
});
