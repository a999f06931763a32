// The rendered file against the real keepalived parser (`keepalived -t`), the atomic install, and the CLI.
import assert from 'node:assert/strict';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { execa } from 'execa';
import { checkKeepalivedConfig } from '../../src/vrrp/check.js';
import { VrrpController } from '../../src/vrrp/controller.js';
import { createLogger } from '../../src/util/log.js';
import { installKeepalivedConfig, KeepalivedConfigError } from '../../src/vrrp/install.js';
import { renderKeepalivedConf, type RenderOptions } from '../../src/vrrp/render.js';
import { group, vrrp } from '../unit/vrrp-fixtures.js';
import { createNetns, tempDir, type Netns } from './vrrp-lab.js';

const root = join(fileURLToPath(new URL('.', import.meta.url)), '..', '..', '..');
const keepalived = '/usr/sbin/keepalived';

describe('keepalived -t on rendered configs', () => {
  let ns: Netns;
  let dir: { path: string; remove(): Promise<void> };
  before(async () => {
    ns = await createNetns('vrrpchk');
    dir = await tempDir('vrrp-check');
  });
  after(async () => {
    await ns?.destroy();
    await dir?.remove();
  });

  const opts = (): RenderOptions => ({ fifoPath: join(dir.path, 'keepalived.fifo'), tracking: { kind: 'process', processName: 'ipvs-lb' }, scriptUser: 'root' });

  it('keepalived accepts every shape the renderer produces', async () => {
    const shapes = [
      vrrp([group({ interface: 'v0' })]),
      // garpIntervalMs 0 is valid config; keepalived's own interval range starts above 0.
      vrrp([group({ interface: 'v0' })], { garpIntervalMs: 0, garpRepeat: 0 }),
      vrrp([
        group({ interface: 'v0', peers: ['198.51.100.12', '198.51.100.13'], unicastSourceIp: '198.51.100.10', trackInterfaces: ['v1', 'v0'] }),
        group({ name: 'b', virtualRouterId: 52, interface: 'v0', priority: 100, preempt: true, preemptDelaySeconds: 5, advertIntervalSeconds: 1 }),
      ]),
      vrrp([group({ interface: 'v0', peers: ['2001:db8::2'], unicastSourceIp: '2001:db8::1' })]),
    ];
    for (const [i, config] of shapes.entries()) {
      for (const tracking of [opts().tracking, { kind: 'pidfile', processName: 'ipvs-lb', pidFile: join(dir.path, 'd.pid'), pgrepPath: '/usr/bin/pgrep', intervalSeconds: 1 } as const]) {
        const file = join(dir.path, `shape-${i}-${tracking.kind}.conf`);
        await writeFile(file, renderKeepalivedConf(config, { ...opts(), tracking }));
        const r = await checkKeepalivedConfig(file, { keepalivedPath: keepalived, netns: ns.name });
        assert.ok(r.ok, `shape ${i} (${tracking.kind}) refused:\n${r.messages.map((m) => `${m.line}: ${m.message}`).join('\n')}`);
      }
    }
  });

  it('reports keepalived errors with the line they are on', async () => {
    const text = renderKeepalivedConf(vrrp([group({ interface: 'nosuch0' })]), opts());
    const file = join(dir.path, 'bad.conf');
    await writeFile(file, text);
    const r = await checkKeepalivedConfig(file, { keepalivedPath: keepalived, netns: ns.name });
    assert.equal(r.ok, false);
    const ifaceLine = text.split('\n').indexOf('  interface nosuch0') + 1;
    assert.ok(r.messages.some((m) => m.line === ifaceLine && /nosuch0/.test(m.message)), JSON.stringify(r.messages));
  });

  it('installs atomically: unchanged bytes are a no-op, a refused file leaves the old one and no temp file', async () => {
    const path = join(dir.path, 'run', 'keepalived.conf');
    const check = { keepalivedPath: keepalived, netns: ns.name };
    const good = renderKeepalivedConf(vrrp([group({ interface: 'v0' })]), opts());
    assert.deepEqual(await installKeepalivedConfig(path, good, check), { changed: true, warnings: [] });
    assert.equal(await readFile(path, 'utf8'), good);
    assert.equal((await installKeepalivedConfig(path, good, check)).changed, false);

    const bad = renderKeepalivedConf(vrrp([group({ interface: 'nosuch0' })]), opts());
    await assert.rejects(installKeepalivedConfig(path, bad, check), (err: unknown) => {
      assert.ok(err instanceof KeepalivedConfigError);
      assert.ok(err.problems.some((p) => p.startsWith(`${path}:`) && p.includes('nosuch0')), err.problems.join('\n'));
      return true;
    });
    assert.equal(await readFile(path, 'utf8'), good, 'the running file is untouched');
    assert.deepEqual(await readdir(join(dir.path, 'run')), ['keepalived.conf']);
  });

  it('a controller whose config keepalived refuses does not start and leaves no pid file behind', async () => {
    const configPath = join(dir.path, 'ctl', 'keepalived.conf');
    const calls: string[] = [];
    const c = new VrrpController({
      config: vrrp([group({ interface: 'nosuch0' })], { configPath }),
      vips: { bindGroup: async (g) => void calls.push(`bind ${g}`), releaseGroup: async (g) => void calls.push(`release ${g}`), announceGroup: async (g) => void calls.push(`announce ${g}`) },
      log: createLogger('silent'),
      netns: ns.name,
    });
    await assert.rejects(c.start(), /nosuch0/);
    assert.deepEqual(await readdir(join(dir.path, 'ctl')), [], 'no config, FIFO or daemon pid file');
    assert.equal(c.keepalivedPid, undefined);
    assert.deepEqual(calls, []);
  });

  it('`ipvs-lb render-keepalived` prints the file, and --check runs keepalived -t', async () => {
    const cfg = join(dir.path, 'config.yaml');
    await writeFile(
      cfg,
      [
        'interface: v0',
        'pools: [{name: p, addresses: [192.0.2.0/24]}]',
        'vrrp:',
        `  configPath: ${join(dir.path, 'cli', 'keepalived.conf')}`,
        '  groups:',
        '    - {name: a, virtualRouterId: 51, priority: 150, peers: [198.51.100.12], unicastSourceIp: 198.51.100.10}',
        '',
      ].join('\n'),
    );
    const cli = join(root, 'bin', 'ipvs-lb.js');
    const printed = await execa(process.execPath, [cli, 'render-keepalived', '--config', cfg]);
    assert.match(printed.stdout, /^vrrp_instance a \{$/m);
    assert.match(printed.stdout, /^ {2}unicast_src_ip 198\.51\.100\.10$/m);
    assert.ok(!printed.stdout.includes('192.0.2.'));

    const ok = await execa(process.execPath, [cli, 'render-keepalived', '--config', cfg, '--check', '--netns', ns.name], { reject: false });
    assert.equal(ok.exitCode, 0, ok.stderr);
    assert.match(ok.stderr, /configuration OK/);

    await writeFile(cfg, (await readFile(cfg, 'utf8')).replace('interface: v0', 'interface: nosuch0'));
    const refused = await execa(process.execPath, [cli, 'render-keepalived', '--config', cfg, '--check', '--netns', ns.name], { reject: false });
    assert.equal(refused.exitCode, 1);
    assert.match(refused.stderr, /keepalived\.conf:\d+: .*nosuch0/);
  });
});
