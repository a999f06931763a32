// `ipvs-lb release-vips` (the unit's ExecStopPost) as a subprocess in a network namespace with real
// addresses: after a daemon died it removes exactly the VIPs the daemon recorded, leaves every other address,
// refuses while a daemon runs, and removes nothing with VRRP off (fail static).
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { execa } from 'execa';
import { stringify } from 'yaml';
import { cli } from '../support/daemon.js';
import { createNetns, tempDir, waitUntil, type Netns } from './vrrp-lab.js';

describe('ipvs-lb release-vips', { timeout: 60_000 }, () => {
  let ns: Netns;
  let dir: { path: string; remove(): Promise<void> };
  const addrs = async () => (await execa('ip', ['-n', ns.name, '-o', '-4', 'addr', 'show', 'dev', ns.iface])).stdout.match(/inet \S+/g)!.map((a) => a.slice(5)).sort();

  function setup(sub: string, vrrpEnabled = true): { config: string; stateDir: string; runDir: string } {
    const stateDir = join(dir.path, sub, 'state');
    const runDir = join(dir.path, sub, 'run');
    mkdirSync(stateDir, { recursive: true });
    mkdirSync(runDir, { recursive: true });
    const config = join(dir.path, sub, 'config.yaml');
    writeFileSync(config, stringify({
      hostName: 'lb1', interface: ns.iface, stateDir,
      kubernetes: { kubeconfig: join(dir.path, 'kubeconfig') },
      pools: [{ name: 'default', addresses: ['192.0.2.0/24'] }],
      vrrp: vrrpEnabled ? { configPath: join(runDir, 'keepalived.conf'), groups: [{ name: 'a', virtualRouterId: 51, priority: 150 }] } : { enabled: false },
    }));
    // What a daemon that bound two VIPs leaves behind: its ownership record and the addresses.
    writeFileSync(join(stateDir, 'vips-owned.json'), JSON.stringify({ version: 1, owned: ['192.0.2.10', '192.0.2.11'].map((address) => ({ interface: ns.iface, address, prefixLength: 32 })) }));
    return { config, stateDir, runDir };
  }
  const release = (config: string) => execa('ip', ['netns', 'exec', ns.name, process.execPath, cli, 'release-vips', '--config', config], { reject: false });

  before(async () => {
    ns = await createNetns('relvip');
    dir = await tempDir('relvip');
  });
  after(async () => {
    await ns?.destroy();
    await dir?.remove();
  });

  /** Each case starts with the two recorded VIPs and one address the daemon never added. */
  async function reset(): Promise<void> {
    for (const a of ['192.0.2.10/32', '192.0.2.11/32', '192.0.2.99/32']) await execa('ip', ['-n', ns.name, 'addr', 'replace', a, 'dev', ns.iface]);
  }

  it('removes the recorded VIPs and nothing else, and empties the record', async () => {
    await reset();
    const s = setup('dead');
    const r = await release(s.config);
    assert.equal(r.exitCode, 0, r.stderr);
    assert.deepEqual(r.stdout.split('\n').sort(), ['192.0.2.10: removed', '192.0.2.11: removed']);
    assert.deepEqual(await addrs(), ['192.0.2.99/32', '198.51.100.10/24']);
    const again = await release(s.config);
    assert.equal(again.exitCode, 0);
    assert.match(again.stdout, /no VIPs recorded/);
  });

  it('refuses while the daemon runs (pid file naming a live ipvs-lb process) and touches nothing', async () => {
    await reset();
    const s = setup('alive');
    const daemon = execa(process.execPath, ['-e', "process.title = 'ipvs-lb'; setInterval(() => {}, 1 << 30)"]);
    daemon.catch(() => undefined);
    try {
      await waitUntil(async () => (await readFile(`/proc/${daemon.pid}/comm`, 'utf8')).trim() === 'ipvs-lb', 'stand-in renamed');
      writeFileSync(join(s.runDir, 'ipvs-lb.pid'), `${daemon.pid}\n`);
      const r = await release(s.config);
      assert.equal(r.exitCode, 1);
      assert.match(r.stderr, new RegExp(`the daemon is running \\(pid ${daemon.pid}\\)`));
      assert.deepEqual(await addrs(), ['192.0.2.10/32', '192.0.2.11/32', '192.0.2.99/32', '198.51.100.10/24']);
    } finally {
      daemon.kill('SIGKILL');
    }
    // A stale pid file (the daemon died) does not stop it.
    await waitUntil(() => daemon.exitCode !== null || daemon.signalCode !== null, 'stand-in gone');
    const r = await release(s.config);
    assert.equal(r.exitCode, 0, r.stderr);
    assert.deepEqual(await addrs(), ['192.0.2.99/32', '198.51.100.10/24']);
  });

  it('with VRRP off removes nothing: a lone LB host keeps serving across a restart', async () => {
    await reset();
    const s = setup('novrrp', false);
    const r = await release(s.config);
    assert.equal(r.exitCode, 0, r.stderr);
    assert.match(r.stdout, /VRRP is off/);
    assert.deepEqual(await addrs(), ['192.0.2.10/32', '192.0.2.11/32', '192.0.2.99/32', '198.51.100.10/24']);
  });

  it('an invalid config is reported and changes nothing', async () => {
    await reset();
    const bad = join(dir.path, 'bad.yaml');
    writeFileSync(bad, 'interface: 7\n');
    const r = await release(bad);
    assert.equal(r.exitCode, 1);
    assert.match(r.stderr, /interface/);
    assert.deepEqual(await addrs(), ['192.0.2.10/32', '192.0.2.11/32', '192.0.2.99/32', '198.51.100.10/24']);
  });
});
