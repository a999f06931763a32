// The sysctl adapter against a real kernel's /proc/sys, in a fresh network namespace per run (the settings
// are per namespace, so the machine's own are never read or changed), with sysctl(8) as the oracle.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { SysctlResult } from '../../src/sysctl/index.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const child = join(here, 'sysctl-netns-child.js');
const root = process.getuid?.() === 0;

interface ChildResult {
  checkOnly: SysctlResult;
  afterCheck: Record<string, string>;
  managed: SysctlResult;
  afterManage: Record<string, string>;
  readOnly: SysctlResult;
}

describe('host sysctls in a fresh network namespace', { skip: !root && 'needs root for unshare -n' }, () => {
  const r = root ? spawnSync('unshare', ['-n', '-m', '--propagation', 'private', process.execPath, child], { encoding: 'utf8', timeout: 60_000 }) : undefined;
  const out = r?.status === 0 ? (JSON.parse(r.stdout.trim().split('\n').pop()!) as ChildResult) : undefined;

  it('the child ran', () => assert.equal(r?.status, 0, `${r?.stderr}${r?.stdout}`));

  it('with sysctl.manage off, reports what is wrong and changes nothing', () => {
    const o = out!;
    assert.deepEqual(o.checkOnly.changed, []);
    assert.deepEqual(o.afterCheck, {
      'net.ipv4.conf.lbvip0.arp_ignore': '0', 'net.ipv4.conf.lbvip0.arp_announce': '0', 'net.ipv4.conf.lbvip0.rp_filter': '1', 'net.ipv4.conf.all.rp_filter': '1', 'net.ipv4.ip_forward': '0',
    });
    const bad = Object.fromEntries(o.checkOnly.findings.filter((f) => !f.ok).map((f) => [f.key, [f.actual ?? 'missing', f.severity]]));
    assert.deepEqual(bad, {
      'net.ipv4.ip_forward': ['0', 'error'],
      'net.ipv4.vs.expire_nodest_conn': ['missing', 'warning'],
      'net.ipv4.vs.expire_quiescent_template': ['missing', 'warning'],
      'net.ipv4.vs.conntrack': ['missing', 'warning'],
      'net.ipv4.conf.lbvip0.arp_ignore': ['0', 'warning'],
      'net.ipv4.conf.lbvip0.arp_announce': ['0', 'warning'],
      'net.ipv4.conf.lbvip0.rp_filter': ['1', 'warning'],
    });
  });

  it('with sysctl.manage on, fixes what it may on the VIP interface only, and reports the rest', () => {
    const o = out!;
    assert.deepEqual(o.managed.changed.map((c) => `${c.key}: ${c.from} -> ${c.to}`).sort(), [
      'net.ipv4.conf.lbvip0.arp_announce: 0 -> 2',
      'net.ipv4.conf.lbvip0.arp_ignore: 0 -> 1',
      'net.ipv4.conf.lbvip0.rp_filter: 1 -> 2',
      'net.ipv4.ip_forward: 0 -> 1',
    ]);
    assert.deepEqual(o.managed.failed, []);
    // sysctl(8) sees the new values; conf/all was left alone (loose on the interface wins over strict on all).
    assert.deepEqual(o.afterManage, {
      'net.ipv4.conf.lbvip0.arp_ignore': '1', 'net.ipv4.conf.lbvip0.arp_announce': '2', 'net.ipv4.conf.lbvip0.rp_filter': '2', 'net.ipv4.conf.all.rp_filter': '1', 'net.ipv4.ip_forward': '1',
    });
    assert.deepEqual(o.managed.findings.filter((f) => !f.ok).map((f) => f.key).sort(), ['net.ipv4.vs.conntrack', 'net.ipv4.vs.expire_nodest_conn', 'net.ipv4.vs.expire_quiescent_template'], 'the missing IPVS settings are reported, not written');
  });

  it('a read-only /proc/sys gives a failure that says what to do, not an exception', () => {
    const o = out!;
    assert.equal(o.readOnly.changed.length, 0);
    assert.deepEqual(o.readOnly.failed.map((f) => f.key), ['net.ipv4.ip_forward']);
    assert.match(o.readOnly.failed[0]!.error, /read-only for the daemon .*ProtectKernelTunables=yes.*\/etc\/sysctl\.d/);
  });
});
