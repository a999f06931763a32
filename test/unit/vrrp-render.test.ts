import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type { VrrpConfig } from '../../src/config/types.js';
import { group, vrrp } from './vrrp-fixtures.js';
import { parseConfigText } from '../../src/config/load.js';
import { keepalivedPaths, markerAddress, renderKeepalivedConf, type RenderOptions } from '../../src/vrrp/render.js';
import { RenderError } from '../../src/vrrp/safe.js';

const opts: RenderOptions = { fifoPath: '/run/ipvs-lb/keepalived.fifo', tracking: { kind: 'process', processName: 'ipvs-lb' }, scriptUser: 'root' };

/** The lines of one `vrrp_instance NAME { ... }` block, without indentation. */
function block(text: string, header: string): string[] {
  const lines = text.split('\n');
  const start = lines.indexOf(`${header} {`);
  assert.ok(start >= 0, `no block "${header}" in:\n${text}`);
  const end = lines.indexOf('}', start);
  return lines.slice(start + 1, end).map((l) => l.trim());
}

describe('keepalived.conf renderer', () => {
  it('renders global_defs with VRRPv3, script security, GARP settings and the notify FIFO', () => {
    const g = block(renderKeepalivedConf(vrrp([group()], { garpRepeat: 4, garpIntervalMs: 20 }), opts), 'global_defs');
    assert.deepEqual(g, [
      'router_id lb1',
      'vrrp_version 3',
      'script_user root',
      'enable_script_security',
      'notify_fifo /run/ipvs-lb/keepalived.fifo',
      'vrrp_garp_master_repeat 4',
      'vrrp_garp_master_delay 0',
      'vrrp_garp_interval 0.02',
      'vrrp_gna_interval 0.02',
    ]);
  });

  it('renders a unicast group: BACKUP start, nopreempt, peers, tracked interfaces, the daemon tracker and only the marker address', () => {
    const text = renderKeepalivedConf(
      vrrp([group({ peers: ['198.51.100.13', '198.51.100.12'], unicastSourceIp: '198.51.100.11', trackInterfaces: ['eth1', 'eth0'] })]),
      opts,
    );
    assert.deepEqual(block(text, 'vrrp_instance a'), [
      'state BACKUP',
      'interface eth0',
      'virtual_router_id 51',
      'priority 150',
      'advert_int 0.1',
      'nopreempt',
      'unicast_src_ip 198.51.100.11',
      'unicast_peer {',
      '198.51.100.12',
      '198.51.100.13',
      '}',
      // eth0 is the instance's own interface: keepalived tracks it anyway and refuses it in the list.
      'track_interface {',
      'eth1',
      '}',
      'track_process {',
      'ipvs_lb_daemon',
      '}',
      'virtual_ipaddress {',
      '169.254.255.51/32 dev eth0 scope link',
      '}',
    ]);
    assert.deepEqual(block(text, 'vrrp_track_process ipvs_lb_daemon'), ['process ipvs-lb', 'quorum 1', 'weight 0']);
  });

  it('renders preemption with its delay and multicast when there are no peers', () => {
    const b = block(renderKeepalivedConf(vrrp([group({ preempt: true, preemptDelaySeconds: 7, advertIntervalSeconds: 1 })]), opts), 'vrrp_instance a');
    assert.ok(b.includes('preempt_delay 7'));
    assert.ok(!b.includes('nopreempt'));
    assert.ok(b.includes('advert_int 1'));
    assert.ok(!b.some((l) => l.startsWith('unicast')), 'multicast: no unicast lines');
  });

  it('never renders a Service VIP: the only address is the per-group marker, IPv6 for IPv6 peers', () => {
    const text = renderKeepalivedConf(
      vrrp([group(), group({ name: 'b', virtualRouterId: 200, peers: ['2001:db8::2'], unicastSourceIp: '2001:db8::1' })]),
      opts,
    );
    const addresses = text.split('\n').filter((l) => /^\s+[0-9a-f:.]+\/\d+ dev /.test(l)).map((l) => l.trim());
    assert.deepEqual(addresses, ['169.254.255.51/32 dev eth0 scope link', 'fe80::5e:c8/128 dev eth0']);
    assert.equal(markerAddress(group({ virtualRouterId: 7 })), '169.254.255.7/32');
  });

  it('renders the pid-file tracker as a vrrp_script with weight 0', () => {
    const text = renderKeepalivedConf(vrrp([group()]), {
      ...opts,
      tracking: { kind: 'pidfile', processName: 'ipvs-lb', pidFile: '/run/ipvs-lb/ipvs-lb.pid', pgrepPath: '/usr/bin/pgrep', intervalSeconds: 1 },
    });
    assert.deepEqual(block(text, 'vrrp_script ipvs_lb_daemon'), [
      'script "/usr/bin/pgrep -F /run/ipvs-lb/ipvs-lb.pid ipvs-lb"',
      'interval 1',
      // A slow pgrep on a loaded host is no dead daemon (see renderTracker).
      'timeout 10',
      'fall 2',
      'rise 1',
      'weight 0',
    ]);
    assert.ok(block(text, 'vrrp_instance a').includes('track_script {'));
    assert.ok(!text.includes('track_process'));
  });

  it('is deterministic: reordered groups, peers and tracked interfaces give the same bytes', () => {
    const a = group({ name: 'a', peers: ['198.51.100.12', '198.51.100.13'], trackInterfaces: ['eth1', 'eth2'] });
    const b = group({ name: 'b', virtualRouterId: 52 });
    const one = renderKeepalivedConf(vrrp([a, b]), opts);
    const two = renderKeepalivedConf(vrrp([b, { ...a, peers: [...a.peers].reverse(), trackInterfaces: [...a.trackInterfaces].reverse() }]), opts);
    assert.equal(one, two);
    assert.notEqual(one, renderKeepalivedConf(vrrp([a, { ...b, priority: 99 }]), opts));
  });

  it('renders the example config file shape from the real config parser', () => {
    const r = parseConfigText(
      'interface: eth0\npools: [{name: p, addresses: [192.0.2.0/24], vrrpGroup: a}]\nvrrp:\n  groups:\n    - {name: a, virtualRouterId: 51, priority: 150, peers: [198.51.100.12], unicastSourceIp: 198.51.100.11}\n',
      'x.yaml',
    );
    assert.ok(r.ok, r.ok ? '' : r.problems.join('\n'));
    const text = renderKeepalivedConf(r.config.vrrp, { ...opts, fifoPath: keepalivedPaths(r.config.vrrp.configPath).fifo });
    assert.match(text, /notify_fifo \/run\/ipvs-lb\/keepalived\.fifo/);
    assert.ok(!text.includes('192.0.2.'), 'pool addresses never reach keepalived.conf');
  });

  it('refuses values outside the safe alphabet and names the field and the value', () => {
    const cases: Array<[VrrpConfig, RegExp]> = [
      [vrrp([group({ interface: 'eth0"}' })]), /^vrrp\.groups\[0\]\.interface: .* \(got "eth0\\"}"\)$/],
      [vrrp([group({ name: 'a b' })]), /^vrrp\.groups\[0\]\.name: /],
      [vrrp([group()], { routerId: 'lb1 }' }), /^vrrp\.routerId: /],
      [vrrp([group({ peers: ['198.51.100.1 }'] })]), /^vrrp\.groups\[0\]\.peers\[0\]: /],
      [vrrp([group({ peers: ['fe80::1%eth0'] })]), /^vrrp\.groups\[0\]\.peers\[0\]: /],
      [vrrp([group({ trackInterfaces: ['x#y'] })]), /^vrrp\.groups\[0\]\.trackInterfaces\[0\]: /],
      [vrrp([group({ virtualRouterId: 256 })]), /^vrrp\.groups\[0\]\.virtualRouterId: /],
      [vrrp([group({ advertIntervalSeconds: 0.005 })]), /^vrrp\.groups\[0\]\.advertIntervalSeconds: /],
    ];
    for (const [config, re] of cases) {
      assert.throws(() => renderKeepalivedConf(config, opts), (err: unknown) => err instanceof RenderError && re.test(err.message), `expected ${re}`);
    }
    assert.throws(() => renderKeepalivedConf(vrrp([group()]), { ...opts, fifoPath: '/run/../etc/x' }), /vrrp\.notifyFifo/);
  });

  it('refuses every interface name that holds a character keepalived treats as syntax (property)', () => {
    const bad = fc.constantFrom('"', '{', '}', '#', '!', ' ', '\t', '\n', '/', '\\', "'", ';');
    fc.assert(
      fc.property(fc.string({ maxLength: 6 }), bad, fc.string({ maxLength: 6 }), (pre, ch, post) => {
        assert.throws(() => renderKeepalivedConf(vrrp([group({ interface: `${pre}${ch}${post}` })]), opts), RenderError);
      }),
    );
  });

  it('places the runtime files next to keepalived.conf', () => {
    assert.deepEqual(keepalivedPaths('/run/x/keepalived.conf'), {
      config: '/run/x/keepalived.conf',
      fifo: '/run/x/keepalived.fifo',
      pid: '/run/x/keepalived.pid',
      vrrpPid: '/run/x/keepalived-vrrp.pid',
      checkerPid: '/run/x/keepalived-checkers.pid',
      daemonPid: '/run/x/ipvs-lb.pid',
    });
  });
});
