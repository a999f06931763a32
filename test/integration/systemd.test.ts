import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const root = join(fileURLToPath(new URL('.', import.meta.url)), '..', '..', '..');
const unit = join(root, 'systemd', 'ipvs-lb.service');

describe('systemd unit', () => {
  it('passes systemd-analyze verify without a warning', async () => {
    const { stdout, stderr } = await run('systemd-analyze', ['verify', unit]);
    assert.equal(`${stdout}${stderr}`.trim(), '');
  });

  it('is rated 2.5 or lower by systemd-analyze security', async () => {
    const { stdout } = await run('systemd-analyze', ['security', '--offline=yes', '--no-pager', unit]).catch((e: { stdout: string }) => e);
    const m = /Overall exposure level for ipvs-lb\.service: (\d+\.\d+)/.exec(stdout);
    assert.ok(m, `no exposure level in:\n${stdout.slice(-500)}`);
    assert.ok(Number(m[1]) <= 2.5, `exposure ${m[1]} > 2.5`);
  });

  it('grants only the network capabilities, reloads with SIGHUP and releases a dead daemon\'s VIPs after it stops', () => {
    const text = readFileSync(unit, 'utf8');
    const values = (key: string) => text.split('\n').filter((l) => l.startsWith(`${key}=`)).map((l) => l.slice(key.length + 1));
    assert.deepEqual(values('CapabilityBoundingSet'), ['CAP_NET_ADMIN CAP_NET_RAW CAP_NET_BIND_SERVICE']);
    assert.deepEqual(values('AmbientCapabilities'), ['CAP_NET_ADMIN CAP_NET_RAW CAP_NET_BIND_SERVICE']);
    assert.deepEqual(values('ExecReload'), ['/bin/kill -HUP $MAINPID']);
    assert.deepEqual(values('ExecStopPost'), ['-/usr/bin/node /opt/ipvs-lb/bin/ipvs-lb.js release-vips --config /etc/ipvs-lb/config.yaml']);
    assert.deepEqual(values('RestrictAddressFamilies'), ['AF_UNIX AF_INET AF_INET6 AF_NETLINK AF_PACKET']);
    assert.deepEqual(values('User'), ['ipvs-lb']);
  });
});
