// The pure parts of the HA lab (lab/ha): the spec check, the daemon configs it writes (run through the product's
// own config parser, so a lab config is one an operator could use), the Service it applies, the topology, and
// the parsers of what the guest reports. No VM; the fixture itself runs in vrrp-ha.test.ts and the failover
// benchmark.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { stringify } from 'yaml';
import { deletionTimes } from '../../bench/failover.bench.js';
import { activeActiveGroups, checkHaSpec, haDaemonConfig, haService, haTopology, HA_HOSTS, parseSnapshot } from '../../lab/ha/index.js';
import { firstLogAfter, linkDownTimes, neighbourTimes } from '../../lab/ha/failover.js';
import { parseProberArgs } from '../../lab/ha/prober.js';
import { checkTopology } from '../../lab/vm/index.js';
import { parseConfigText } from '../../src/config/load.js';

describe('HA lab plan', () => {
  it('writes daemon configs the product accepts: peers point at each other, priorities alternate, pools carry their group', () => {
    const spec = checkHaSpec({ groups: activeActiveGroups, advertIntervalSeconds: 0.1 });
    for (const host of HA_HOSTS) {
      const r = parseConfigText(stringify(haDaemonConfig(spec, host)), `${host.name}.yaml`);
      assert.ok(r.ok, r.ok ? '' : r.problems.join('\n'));
      const c = r.config;
      assert.equal(c.scheduler, 'mh');
      assert.deepEqual(c.vrrp.groups.map((g) => [g.name, g.priority, g.peers, g.unicastSourceIp, g.preempt, g.advertIntervalSeconds]), [
        ['a', host.index === 0 ? 150 : 100, [HA_HOSTS[1 - host.index]!.ip], host.ip, false, 0.1],
        ['b', host.index === 0 ? 100 : 150, [HA_HOSTS[1 - host.index]!.ip], host.ip, false, 0.1],
      ]);
      assert.deepEqual(c.pools.map((p) => [p.name, p.vrrpGroup]), [['ga', 'a'], ['gb', 'b']]);
      assert.deepEqual(c.vrrp.syncDaemon, { enabled: true, interface: 'eth0', syncId: 1 });
      assert.equal(c.vrrp.configPath, `/tmp/ha/${host.name}/run/keepalived.conf`);
    }
  });

  it('refuses a spec it cannot build, naming the field', () => {
    const g = activeActiveGroups[0]!;
    assert.throws(() => checkHaSpec({ groups: [] }), /groups: at least one/);
    assert.throws(() => checkHaSpec({ groups: [{ ...g, priorities: [255, 100] }] }), /groups\[0\]\.priorities: two priorities 1-254/);
    assert.throws(() => checkHaSpec({ groups: [{ ...g, pool: { name: 'x', addresses: ['192.0.2.60'] } }] }), /outside 192\.0\.2\.10-192\.0\.2\.49/);
    assert.throws(() => checkHaSpec({ groups: [g, { ...activeActiveGroups[1]!, pool: { name: 'gb', addresses: ['192.0.2.15-192.0.2.20'] } }] }), /groups\[1\]\.pool: 192\.0\.2\.15 is in two pools/);
    assert.throws(() => checkHaSpec({ groups: [{ ...g, pool: { name: 'x', addresses: ['198.51.100.7'] } }] }), /not an address in 192\.0\.2\.0\/24/);
    assert.throws(() => haService('Web', 'ga'), /service name "Web" must be a DNS label/);
    assert.throws(() => haService('web', 'ga; rm'), /pool "ga; rm" must be a DNS label/);
  });

  it('builds a topology the lab accepts: both LB hosts, the simulator host, the sample nodes accepting every pool VIP', () => {
    const t = checkTopology(haTopology(), 'uml');
    assert.deepEqual(t.lbs.map((l) => [l.name, l.ip]), [['lb1', '198.51.100.2'], ['lb2', '198.51.100.3']]);
    assert.deepEqual(t.nodes.map((n) => n.ip), ['198.51.100.11', '198.51.100.12', '198.51.100.13']);
    assert.equal(t.nodes[0]!.vips.length, 40);
    assert.deepEqual(t.nodes[0]!.echo, [7]);
    assert.equal(t.router, true);
  });
});

describe('HA lab parsers', () => {
  it('reads a snapshot of both hosts, leaving out their own addresses', () => {
    const text = `@@host lb1
{"items":[{"name":"a","state":"MASTER","since":null,"transitions":2,"vips":["192.0.2.10"]}]}
@@addr
2: eth0    inet 198.51.100.2/24 scope global eth0\\       valid_lft forever preferred_lft forever
2: eth0    inet 169.254.255.51/32 scope link eth0\\       valid_lft forever preferred_lft forever
2: eth0    inet 192.0.2.10/32 scope global eth0\\       valid_lft forever preferred_lft forever
@@link
2: eth0@if7: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP
@@ka
955
@@sync
master sync daemon (mcast=eth0, syncid=1, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)
backup sync daemon (mcast=eth0, syncid=1, maxlen=1472, group=224.0.0.81, port=8848)
@@host lb2
{"down":true}
@@addr
2: eth0    inet 198.51.100.3/24 scope global eth0\\       valid_lft forever preferred_lft forever
@@link
2: eth0@if9: <BROADCAST,MULTICAST> mtu 1500 qdisc noqueue state DOWN
@@ka
none
@@sync
`;
    const s = parseSnapshot(text, ['198.51.100.2', '198.51.100.3']);
    assert.deepEqual(s.lb1, {
      daemon: true, groups: { a: { name: 'a', state: 'MASTER', transitions: 2, vips: ['192.0.2.10'] } }, addresses: ['169.254.255.51', '192.0.2.10'],
      linkUp: true, keepalivedPid: 955,
      syncDaemons: ['master sync daemon (mcast=eth0, syncid=1, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)', 'backup sync daemon (mcast=eth0, syncid=1, maxlen=1472, group=224.0.0.81, port=8848)'],
    });
    assert.deepEqual(s.lb2, { daemon: false, groups: {}, addresses: [], linkUp: false, keepalivedPid: undefined, syncDaemons: [] });
    assert.throws(() => parseSnapshot('@@host lb1\n{}\n@@addr\n', []), /snapshot lacks a host/);
  });

  it('finds the first matching daemon log line at or after the kill', () => {
    const log = [
      '{"level":"info","time":"2026-12-01T17:10:29.000Z","msg":"group a: BACKUP → MASTER"}',
      'not json',
      '{"level":"debug","time":"2026-12-01T17:10:31.250Z","keepalived":"Tue Dec  1 17:10:31 2026: (a) Entering MASTER STATE"}',
      '{"level":"info","time":"2026-12-01T17:10:31.400Z","msg":"group a: BACKUP → MASTER"}',
    ].join('\n');
    const t0 = Date.parse('2026-12-01T17:10:31.000Z');
    assert.equal(firstLogAfter(log, t0, (l) => l.msg === 'group a: BACKUP → MASTER'), 400);
    assert.equal(firstLogAfter(log, t0, (l) => l.keepalived?.includes('(a) Entering MASTER STATE') === true), 250);
    assert.equal(firstLogAfter(log, t0 + 1000, () => true), undefined);
  });

  it('reads address deletions from `ip -ts monitor address` for one VIP only', () => {
    const log = `[2026-12-01T17:04:37.274398] Deleted 2: eth0    inet 169.254.255.51/32 scope link eth0
       valid_lft forever preferred_lft forever
[2026-12-01T17:04:40.123006] Deleted 2: eth0    inet 192.0.2.10/32 scope global eth0
[2026-12-01T17:04:40.511742] 2: eth0    inet 192.0.2.10/32 scope global eth0
[2026-12-01T17:04:41.809970] Deleted 2: eth0    inet 192.0.2.100/32 scope global eth0
`;
    assert.deepEqual(deletionTimes(log, '192.0.2.10'), [Date.parse('2026-12-01T17:04:40.123Z') + 0.006]);
  });

  it('reads link-down events from `ip -ts monitor link`, not the ups', () => {
    const log = `[2026-12-01T19:44:00.100000] 2: eth0@if7: <BROADCAST,MULTICAST> mtu 1500 qdisc noqueue state DOWN group default
    link/ether 5a:1b:2c:3d:4e:5f brd ff:ff:ff:ff:ff:ff
[2026-12-01T19:44:09.000000] 2: eth0@if7: <BROADCAST,MULTICAST,UP> mtu 1500 qdisc noqueue state DOWN group default
[2026-12-01T19:44:09.200000] 2: eth0@if7: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP group default
[2026-12-01T19:45:00.000250] 2: eth0@if7: <BROADCAST,MULTICAST> mtu 1500 qdisc noqueue state DOWN group default
`;
    assert.deepEqual(linkDownTimes(log), [Date.parse('2026-12-01T19:44:00.100Z'), Date.parse('2026-12-01T19:45:00.000Z') + 0.25]);
  });

  it('reads when the router\'s neighbour entry for the VIP moved to the new master from ip -ts monitor neigh', () => {
    const log = `[2026-12-01T21:25:10.100000] 192.0.2.10 dev eth0 lladdr a2:b9:de:a6:18:64 REACHABLE
[2026-12-01T21:25:11.064800] 192.0.2.10 dev eth0 lladdr f2:69:96:c0:18:bb STALE
[2026-12-01T21:25:11.200000] 192.0.2.100 dev eth0 lladdr f2:69:96:c0:18:bb STALE
[2026-12-01T21:25:12.000000] 192.0.2.10 dev eth0  FAILED
`;
    assert.deepEqual(neighbourTimes(log, '192.0.2.10', 'F2:69:96:C0:18:BB'), [Date.parse('2026-12-01T21:25:11.064Z') + 0.8]);
    assert.deepEqual(neighbourTimes(log, '192.0.2.1', 'f2:69:96:c0:18:bb'), []);
  });

  it('the prober refuses bad arguments', () => {
    assert.throws(() => parseProberArgs(['--out', '/x', '--vip', '192.0.2.10']), /--ctl is required/);
    assert.throws(() => parseProberArgs(['--ctl', '/c', '--out', '/x', '--vip', '192.0.2.10', '--port', 'seven']), /--port must be a positive number/);
    assert.equal(parseProberArgs(['--ctl', '/c', '--out', '/x', '--vip', '192.0.2.10']).intervalMs, 20);
  });
});
