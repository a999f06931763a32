// The VRRP controller with the real keepalived, run in a network namespace of its own (VRRP needs no IPVS).
// A single node becomes MASTER after the master-down interval; the recorder stands in for the VIP binder
// and the sync daemon and shows what the daemon would do, in order.
import assert from 'node:assert/strict';
import { readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { execa, type ResultPromise } from 'execa';
import { VrrpController } from '../../src/vrrp/controller.js';
import { DEFAULT_JSON_DUMP, requestStates } from '../../src/vrrp/recover.js';
import type { ReportedState } from '../../src/vrrp/state.js';
import { createLogger } from '../../src/util/log.js';
import { group, vrrp } from '../unit/vrrp-fixtures.js';
import { createNetns, isAlive, Recorder, tempDir, waitUntil, type Netns } from './vrrp-lab.js';

const log = createLogger(process.env.VRRP_TEST_LOG === '1' ? 'debug' : 'silent');
const here = fileURLToPath(new URL('.', import.meta.url));
const fast = { backoff: { initialMs: 50, maxMs: 500, factor: 2, jitter: 0.5 }, stopTimeoutMs: 3_000, adoptPollMs: 50 };

async function pidFrom(file: string): Promise<number> {
  return Number((await readFile(file, 'utf8')).trim());
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

describe('VRRP controller with a real keepalived', { timeout: 120_000 }, () => {
  let ns: Netns;
  let dir: { path: string; remove(): Promise<void> };
  let dumpExisted = true;
  const controllers: VrrpController[] = [];
  const children: ResultPromise[] = [];

  before(async () => {
    ns = await createNetns('vrrpka');
    dir = await tempDir('vrrp-ka');
    dumpExisted = await exists(DEFAULT_JSON_DUMP);
  });
  after(async () => {
    for (const c of controllers) await c.stop().catch(() => undefined);
    for (const c of children) {
      c.kill('SIGKILL');
      await c.catch(() => undefined);
    }
    await ns?.destroy();
    await dir?.remove();
    if (!dumpExisted) await rm(DEFAULT_JSON_DUMP, { force: true });
  });

  const config = (sub: string, over: Parameters<typeof vrrp>[1] = {}) =>
    vrrp([group({ interface: 'v0', advertIntervalSeconds: 0.1 })], { configPath: join(dir.path, sub, 'keepalived.conf'), ...over });

  /**
   * A stand-in daemon: a process named ipvs-lb whose pid is written to `pidFile`, which keepalived's tracker
   * watches, so killing it is "the daemon died". Wrapped: an async function returning the process itself
   * would wait for it to end.
   */
  const startStandIn = async (pidFile: string): Promise<{ process: ResultPromise }> => {
    const p = execa(process.execPath, ['-e', "process.title = 'ipvs-lb'; setInterval(() => {}, 1 << 30)"]);
    children.push(p);
    // Killing it is the point; its rejected promise is not a failure.
    p.catch(() => undefined);
    await waitUntil(async () => (await readFile(`/proc/${p.pid}/comm`, 'utf8')).trim() === 'ipvs-lb', 'stand-in renamed');
    await execa('sh', ['-c', 'echo "$1" > "$2"', 'sh', String(p.pid), pidFile]);
    return { process: p };
  };

  it('MASTER binds; keepalived SIGKILLed → VIPs released at once and keepalived restarted; a changed config reloads without a state change; stop releases and leaves nothing', async () => {
    const rec = new Recorder();
    const c = new VrrpController({ config: config('one'), vips: rec, sync: rec, log, netns: ns.name, supervisor: fast });
    controllers.push(c);
    c.on('transition', ({ event }) => {
      if (event.type === 'keepalived-started') rec.mark('keepalived started');
    });
    await c.start();
    const bound = await rec.waitFor('bind a');
    assert.deepEqual(rec.list().slice(0, bound + 1), ['keepalived started', 'release a', 'sync master=true backup=true', 'bind a'].slice(0, bound + 1));
    assert.equal(c.state.groups.a!.phase, 'MASTER');

    // SIGKILL the keepalived parent. Its VRRP child lives on for a moment; the supervisor ends it before restarting.
    const firstPid = c.keepalivedPid!;
    const vrrpChild = await pidFrom(c.paths.vrrpPid);
    assert.ok(isAlive(vrrpChild));
    const mark = rec.calls.length;
    process.kill(firstPid, 'SIGKILL');
    const released = await rec.waitFor('release a', mark);
    const restarted = await rec.waitFor('keepalived started', mark);
    assert.ok(released < restarted, `VIPs released before keepalived came back: ${JSON.stringify(rec.list().slice(mark))}`);
    assert.ok(!isAlive(vrrpChild), 'the orphaned VRRP child was ended before the restart');
    assert.notEqual(c.keepalivedPid, firstPid);
    assert.equal(c.crashes, 1);
    await rec.waitFor('bind a', restarted);
    assert.equal(c.state.groups.a!.phase, 'MASTER');

    // A config change (here the GARP repeat): validated, swapped, SIGHUP; same process, same state.
    const pidBefore = c.keepalivedPid;
    const calm = rec.calls.length;
    assert.equal(await c.applyConfig(config('one', { garpRepeat: 5 })), true);
    assert.match(await readFile(c.paths.config, 'utf8'), /vrrp_garp_master_repeat 5/);
    assert.equal(await c.applyConfig(config('one', { garpRepeat: 5 })), false, 'same bytes: no reload');
    await new Promise((r) => setTimeout(r, 1500)); // fifteen advert intervals for a state change to show up
    assert.equal(c.keepalivedPid, pidBefore, 'reloaded, not restarted');
    assert.deepEqual(rec.list().slice(calm), [], 'no VRRP state change from a reload');
    assert.equal(c.state.groups.a!.phase, 'MASTER');

    // A change keepalived refuses: reported with its line, the running file and process stay as they are.
    const running = await readFile(c.paths.config, 'utf8');
    const refused = vrrp([group({ interface: 'nosuch0' })], { configPath: c.paths.config });
    await assert.rejects(c.applyConfig(refused), (err: Error) => /keepalived\.conf:\d+: .*nosuch0/.test(err.message));
    assert.equal(await readFile(c.paths.config, 'utf8'), running);
    assert.equal(c.keepalivedPid, pidBefore);
    assert.equal(c.state.groups.a!.phase, 'MASTER');

    const vrrpChild2 = await pidFrom(c.paths.vrrpPid);
    const stopMark = rec.calls.length;
    await c.stop();
    assert.deepEqual(rec.list().slice(stopMark), ['release a', 'sync master=false backup=false']);
    assert.ok(!isAlive(pidBefore!) && !isAlive(vrrpChild2), 'keepalived and its VRRP child are gone');
    assert.equal(await exists(c.paths.fifo), false, 'FIFO removed');
    assert.equal(await exists(c.paths.daemonPid), false, 'daemon pid file removed');
  });

  it('the daemon gone → the tracker puts the group in FAULT and the VIPs are released; back → MASTER again', async () => {
    // The controller itself does not claim the identity here, so killing the stand-in is "the daemon died".
    const pidFile = join(dir.path, 'standin.pid');
    const first = (await startStandIn(pidFile)).process;
    const rec = new Recorder();
    const c = new VrrpController({
      config: config('track'),
      vips: rec,
      sync: rec,
      log,
      netns: ns.name,
      claimIdentity: false,
      tracking: { kind: 'pidfile', processName: 'ipvs-lb', pidFile, pgrepPath: '/usr/bin/pgrep', intervalSeconds: 1 },
      supervisor: fast,
    });
    controllers.push(c);
    await c.start();
    await rec.waitFor('bind a');

    const mark = rec.calls.length;
    first.kill('SIGKILL');
    await rec.waitFor('release a', mark);
    assert.equal(c.state.groups.a!.phase, 'FAULT');
    assert.equal(c.crashes, 0, 'keepalived itself kept running');

    await startStandIn(pidFile);
    await rec.waitFor('bind a', mark);
    await c.stop();
  });

  it('a daemon SIGKILLed under a MASTER keepalived: the next daemon adopts keepalived, reads its state back and does not flap', async () => {
    const sub = 'adopt';
    const cfg = config(sub);
    // The first daemon runs in its own process so it can really be SIGKILLed; it prints what it would do.
    const fixture = join(here, 'vrrp-daemon-fixture.js');
    const first = execa(process.execPath, [fixture], { env: { VRRP_FIXTURE: JSON.stringify({ config: cfg, netns: ns.name }) }, buffer: false });
    children.push(first);
    first.catch(() => undefined);
    const lines: string[] = [];
    first.stdout!.on('data', (d: Buffer) => lines.push(...d.toString().split('\n').filter(Boolean)));
    await waitUntil(() => lines.includes('bind a'), 'the first daemon binds');
    const paths = (await import('../../src/vrrp/render.js')).keepalivedPaths(cfg.configPath);
    const keepalivedPid = await pidFrom(paths.pid);
    first.kill('SIGKILL');
    await first.catch(() => undefined);
    assert.ok(isAlive(keepalivedPid), 'keepalived outlives a SIGKILLed daemon');

    const rec = new Recorder();
    const c = new VrrpController({ config: cfg, vips: rec, sync: rec, log, netns: ns.name, tracking: { kind: 'none' }, supervisor: fast });
    controllers.push(c);
    await c.start();
    assert.equal(c.keepalivedPid, keepalivedPid, 'adopted, not restarted');
    assert.equal(c.state.groups.a!.phase, 'MASTER');
    assert.deepEqual(rec.list(), ['bind a', 'sync master=true backup=true'], 'bound again (a no-op for bound VIPs), never released');
    await new Promise((r) => setTimeout(r, 1000));
    assert.deepEqual(rec.list(), ['bind a', 'sync master=true backup=true'], 'no flap afterwards');

    // The adopted keepalived dying is noticed as well (by polling: it is not our child) and handled as a crash.
    const mark = rec.calls.length;
    process.kill(keepalivedPid, 'SIGKILL');
    await rec.waitFor('release a', mark);
    await rec.waitFor('bind a', mark);
    assert.notEqual(c.keepalivedPid, keepalivedPid);
    await c.stop();
  });

  it('a dump taken before the restarted daemon was tracked again does not undo the BACKUP keepalived reported while it was read', async () => {
    // The soak's lost step: the daemon dies, the tracker puts its groups in FAULT; the next daemon adopts
    // keepalived and asks for a dump; the tracker sees the daemon again and keepalived leaves FAULT for BACKUP
    // while the dump is on its way. Applied last, the dump's FAULT would stay until the next transition, and a
    // BACKUP may have none for hours. Here the dump is held until that notification has been handled.
    const cfg = vrrp([group({ interface: 'v0', advertIntervalSeconds: 1 })], { configPath: join(dir.path, 'stale-dump', 'keepalived.conf') });
    const pidFile = join(dir.path, 'stale-dump.pid');
    const tracking = { kind: 'pidfile', processName: 'ipvs-lb', pidFile, pgrepPath: '/usr/bin/pgrep', intervalSeconds: 1 } as const;
    const firstStandIn = (await startStandIn(pidFile)).process;
    const first = execa(process.execPath, [join(here, 'vrrp-daemon-fixture.js')], { env: { VRRP_FIXTURE: JSON.stringify({ config: cfg, netns: ns.name, tracking }) }, buffer: false });
    children.push(first);
    first.catch(() => undefined);
    const lines: string[] = [];
    first.stdout!.on('data', (d: Buffer) => lines.push(...d.toString().split('\n').filter(Boolean)));
    await waitUntil(() => lines.includes('bind a'), 'the first daemon is MASTER');
    const paths = (await import('../../src/vrrp/render.js')).keepalivedPaths(cfg.configPath);
    const keepalivedPid = await pidFrom(paths.pid);
    first.kill('SIGKILL');
    firstStandIn.kill('SIGKILL');
    await first.catch(() => undefined);
    const dumped = async (): Promise<Record<string, ReportedState> | undefined> =>
      requestStates((sig) => (process.kill(keepalivedPid, sig), true), { keepalivedPath: cfg.keepalivedPath });
    await waitUntil(async () => (await dumped())?.a === 'FAULT', 'keepalived puts the group in FAULT without its daemon', 20_000);

    const rec = new Recorder();
    let dumpWas: ReportedState | undefined;
    const c = new VrrpController({
      config: cfg, vips: rec, sync: rec, log, netns: ns.name, claimIdentity: false, tracking, supervisor: fast,
      requestStates: async (signal, opts) => {
        const states = await requestStates(signal, opts);
        dumpWas = states?.a;
        const backup = new Promise<void>((resolve) => {
          const onTransition = ({ event }: { event: { type: string; state?: string } }) => {
            if (event.type === 'state' && event.state === 'BACKUP') {
              c.off('transition', onTransition);
              resolve();
            }
          };
          c.on('transition', onTransition);
        });
        await startStandIn(pidFile);
        await backup;
        return states;
      },
    });
    controllers.push(c);
    await c.start();
    assert.equal(c.keepalivedPid, keepalivedPid, 'adopted, not restarted');
    assert.equal(dumpWas, 'FAULT', 'the dump was taken while the daemon was missing');
    assert.equal(c.state.groups.a!.phase, 'BACKUP', 'the daemon follows the notification that came after the dump was taken');
    // And it goes on following keepalived: master-down passes, MASTER binds.
    await rec.waitFor('bind a');
    assert.equal(c.state.groups.a!.phase, 'MASTER');
    await c.stop();
  });
});
