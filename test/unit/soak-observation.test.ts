// The soak's readers of what the guest printed: ipvsadm's restore format, ip's one-line addresses, the sync
// daemons, and the sectioned output of the observation script. Samples are what the lab's tools print.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MARK, observationScript, SEP, parseIpAddr, parseIpvsSave, parseObservation, parseSyncDaemons } from '../../lab/soak/observation.js';

const SAVE = `-A -t 192.0.2.1:80 -s rr
-a -t 192.0.2.1:80 -r 198.51.100.12:80 -g -w 1
-a -t 192.0.2.1:80 -r 198.51.100.11:80 -g -w 0
-A -t 192.0.2.2:443 -s mh -b mh-port,mh-fallback
-a -t 192.0.2.2:443 -r 198.51.100.11:443 -i -w 1
-A -u 192.0.2.3:53 -s wlc -p 10800
-a -u 192.0.2.3:53 -r 198.51.100.13:31234 -m -w 1
-A -t 203.0.113.99:22 -s sh
`;

describe('soak observation parsers', () => {
  it('reads ipvsadm -S -n into services with sorted destinations', () => {
    const t = parseIpvsSave(SAVE);
    assert.deepEqual(t.map((s) => s.key), ['TCP/192.0.2.1:80', 'TCP/192.0.2.2:443', 'TCP/203.0.113.99:22', 'UDP/192.0.2.3:53']);
    assert.deepEqual(t[0]!.dests, [
      { address: '198.51.100.11', port: 80, forwarding: 'dr', weight: 0 },
      { address: '198.51.100.12', port: 80, forwarding: 'dr', weight: 1 },
    ]);
    assert.deepEqual([t[1]!.scheduler, t[1]!.flags, t[1]!.dests[0]!.forwarding], ['mh', ['mh-fallback', 'mh-port'], 'tun']);
    assert.deepEqual([t[3]!.persistent, t[3]!.dests[0]], [10800, { address: '198.51.100.13', port: 31234, forwarding: 'nat', weight: 1 }]);
    assert.deepEqual(t[2]!.dests, []);
    assert.deepEqual(parseIpvsSave(''), []);
    assert.throws(() => parseIpvsSave('Can\'t initialize ipvs: Protocol not available'), /unexpected line/);
    assert.throws(() => parseIpvsSave('-a -t 192.0.2.9:80 -r 198.51.100.11:80 -g -w 1'), /destination before its service/);
  });

  it('reads the addresses of ip -o -4 addr and the running sync daemons', () => {
    const addr = `2: eth0    inet 198.51.100.2/24 scope global eth0\\       valid_lft forever preferred_lft forever
2: eth0    inet 169.254.255.51/32 scope link eth0\\       valid_lft forever preferred_lft forever
2: eth0    inet 192.0.2.1/32 scope global eth0\\       valid_lft forever preferred_lft forever`;
    assert.deepEqual(parseIpAddr(addr), ['169.254.255.51', '192.0.2.1', '198.51.100.2']);
    assert.throws(() => parseIpAddr('Cannot find device "eth0"'), /no address/);
    assert.deepEqual(parseSyncDaemons('master sync daemon (mcast=eth0, syncid=1, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)\n'), { master: true, backup: false });
    assert.deepEqual(parseSyncDaemons('master sync daemon (mcast=eth0)\nbackup sync daemon (mcast=eth0)\n'), { master: true, backup: true });
    assert.deepEqual(parseSyncDaemons(''), { master: false, backup: false });
  });

  it('splits the script output into sections and keeps what one host failed to answer as an error', () => {
    const svc = { metadata: { name: 's-1', uid: 'u1' }, spec: { type: 'LoadBalancer', ports: [{ port: 80 }] } };
    const host = (h: string, api: boolean) => [
      `${MARK} IPVS ${h}`, SAVE.trim(), `${MARK} ADDR ${h}`, '2: eth0    inet 198.51.100.2/24 scope global eth0', `${MARK} SYNC ${h}`, '',
      `${MARK} DAEMON ${h}`,
      ...(api
        ? ['{"items":[]}', SEP, '{"ready":true,"checks":{"kubernetes":true},"messages":[]}', SEP, '{"items":[{"name":"a","state":"MASTER","vips":[]}]}', SEP]
        : ['curl: (7) Failed to connect to 127.0.0.1 port 9742: Connection refused', SEP, 'curl: (7) Failed to connect', SEP, 'curl: (7) Failed to connect', SEP]),
    ];
    const text = [
      `${MARK} T 1700000000000`,
      `${MARK} KUBE`, JSON.stringify({ items: [svc] }), SEP, '{"items":[]}', SEP, '{"items":[]}', SEP,
      ...host('lb1', true), ...host('lb2', false), `${MARK} T2 1700000002000`, `${MARK} END`,
    ].join('\n');
    const o = parseObservation(text);
    assert.deepEqual([o.at, o.end], [1700000000000, 1700000002000]);
    assert.ok(o.services.ok && o.services.value[0]!.metadata.name === 's-1');
    const [lb1, lb2] = o.hosts;
    assert.ok(lb1!.ipvs.ok && lb1!.ipvs.value.length === 4);
    assert.ok(lb1!.health.ok && lb1!.health.value.ready);
    assert.ok(!lb2!.allocations.ok && /allocations of lb2: .*Connection refused/.test(lb2!.allocations.error));
    assert.ok(lb2!.ipvs.ok, 'the kernel is read even when the daemon is down');
    assert.throws(() => parseObservation(text.replace(`${MARK} END`, '')), /observation incomplete/);
  });

  it('reads the API with the token from a file and quotes nothing from a Service', () => {
    const s = observationScript({ caFile: '/tmp/kube/ca.crt', tokenFile: '/tmp/lab/soak/token' });
    assert.match(s, /Authorization: Bearer \$\(cat \/tmp\/lab\/soak\/token\)/);
    assert.match(s, /ip netns exec lb1 bash -c/);
    assert.match(s, /ipvsadm -S -n/);
  });
});
