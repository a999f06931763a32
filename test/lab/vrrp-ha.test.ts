// High availability with the real daemon and the real keepalived on two LB hosts in the lab VM (real IPVS,
// direct routing to the sample cluster's three nodes, the IPVS sync daemon, GARP, HTTP and echo traffic from
// a client behind the router). Two VRRP groups, active-active: lb1 masters a, lb2 masters b. The steps run in
// order on one VM, each starting from the state the previous one left:
//   1. each host serves its group's VIP, and both hosts have every virtual service programmed;
//   2. a config change that adds a VIP (a new pool, a Service in it, a changed keepalived.conf) changes no
//      VRRP state and restarts no keepalived; a backup that turns master for a moment does not keep the
//      VIP's traffic (the master announces again when it hears a lower-priority advert);
//   3. a host dies (NIC down, keepalived SIGKILLed): its group moves to the other host, new connections
//      work, and a TCP stream established before keeps working (sync daemon + mh);
//   4. keepalived alone is killed on the master: the daemon releases the VIPs, the peer serves them, keepalived
//      is restarted and the exit is counted;
//   5. the daemon is SIGKILLed on the master: the tracker hands the groups to the peer; the next daemon adopts
//      keepalived and, without preemption, the VIPs do not come back;
//   6. with preemption configured they do come back.
// keepalived runs with its default advert_int 1 here: a test must not depend on timing, and under emulation on
// a busy host 0.1 s adverts arrive late now and then (the failover benchmark measures 0.1 s).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { activeActiveGroups, FailoverProber, failoverTrial, HaLab, until, type LabSnapshot } from '../../lab/ha/index.js';
import { parseWhoami } from '../../lab/vm/index.js';

const phases = (s: LabSnapshot) => `lb1 ${JSON.stringify(Object.fromEntries(Object.values(s.lb1.groups).map((g) => [g.name, g.state])))} lb2 ${JSON.stringify(Object.fromEntries(Object.values(s.lb2.groups).map((g) => [g.name, g.state])))}`;
const transitions = (s: LabSnapshot) => ({ lb1: Object.values(s.lb1.groups).map((g) => g.transitions), lb2: Object.values(s.lb2.groups).map((g) => g.transitions) });

describe('lab: two LB hosts with the real daemon and keepalived', { timeout: 1_200_000 }, () => {
  let lab: HaLab;
  let vipA = '';
  let vipB = '';
  const lb1 = () => lab.host('lb1');
  const lb2 = () => lab.host('lb2');

  /** HTTP through the VIP from the client: every answer came from a node, for the client's own address. */
  async function served(vip: string): Promise<void> {
    const answers = await lab.curlFromClient(vip, 3);
    assert.equal(answers.length, 3, `three answers through ${vip}: ${JSON.stringify(answers)}`);
    for (const a of answers) {
      const w = parseWhoami(a);
      assert.match(w.node, /^node-[123]$/);
      assert.deepEqual([w.client, w.local], ['203.0.113.10', vip]);
    }
  }

  before(async () => {
    // Preemption puts each group on its preferred host whatever the start order; then it goes off, as it is
    // by default, for the steps that check that nothing moves back.
    lab = await HaLab.start({ groups: activeActiveGroups, advertIntervalSeconds: 1, preempt: true });
    vipA = await lab.createService('web-a', 'ga');
    vipB = await lab.createService('web-b', 'gb');
    await lab.settled({ a: 'lb1', b: 'lb2' });
    await lab.setPreempt(false);
  });
  after(async () => {
    await lab?.stop();
  });

  it('active-active: lb1 serves group a, lb2 group b, and both hosts are ready for either', async () => {
    const s = await lab.settled({ a: 'lb1', b: 'lb2' });
    assert.deepEqual([await lab.holders(vipA, s), await lab.holders(vipB, s)], [['lb1'], ['lb2']]);
    await served(vipA);
    await served(vipB);
    assert.deepEqual([await lab.routerSends(vipA), await lab.routerSends(vipB)], ['lb1', 'lb2'], 'the router sends each VIP to its master');
    const withSync = await lab.snapshot({ sync: true });
    for (const h of ['lb1', 'lb2'] as const) {
      const table = (await lab.vm.run(['ipvsadm', '-Ln'], { ns: h })).stdout;
      for (const vip of [vipA, vipB]) assert.match(table, new RegExp(`TCP\\s+${vip.replace(/\./g, '\\.')}:80 mh`), `${h} programs ${vip}`);
      assert.deepEqual(withSync[h].syncDaemons.map((d) => d.split(' ')[0]).sort(), ['backup', 'master'], `${h} runs both sync daemons`);
    }
  });

  it('a config change that adds a VIP causes no VRRP state change', async () => {
    const before = await lab.settled({ a: 'lb1', b: 'lb2' });
    const conf = await lab.vm.readFile(lb1().keepalived.config);
    for (const h of lab.hosts) {
      const r = await h.reconfigure((c) => ({
        ...c,
        pools: [...(c.pools as unknown[]), { name: 'gc', addresses: ['192.0.2.30-192.0.2.39'], vrrpGroup: 'a', autoAssign: false }],
        // Also a change keepalived.conf carries, so keepalived is really reloaded.
        vrrp: { ...(c.vrrp as Record<string, unknown>), garpRepeat: 4 },
      }));
      assert.equal(r.status, 200, `reload on ${h.name}: ${JSON.stringify(r.body)}`);
    }
    const vipC = await lab.createService('web-c', 'gc');
    await until(`${vipC} on lb1 only`, async () => ((await lab.holders(vipC)).join() === 'lb1' ? true : undefined));
    await served(vipC);
    const newConf = await lab.vm.readFile(lb1().keepalived.config);
    assert.notEqual(newConf, conf);
    assert.match(newConf, /vrrp_garp_master_repeat 4/);
    const now = await lab.settled({ a: 'lb1', b: 'lb2' });
    assert.deepEqual(transitions(now), transitions(before), `no transition: ${phases(before)} → ${phases(now)}`);
    assert.deepEqual([now.lb1.keepalivedPid, now.lb2.keepalivedPid], [before.lb1.keepalivedPid, before.lb2.keepalivedPid], 'reloaded, not restarted');
  });

  it('a backup that turns master for a moment (it stopped hearing adverts) does not keep the VIP\'s traffic: the master announces again', async () => {
    // lb2 stops hearing VRRP: it becomes master of a too, binds vipA and sends GARP, so the router sends vipA
    // to lb2. When it hears lb1 again it gives a up; lb1, which heard lb2's lower-priority adverts meanwhile,
    // has announced vipA again, so the traffic comes back to the real master.
    await lab.vm.run('modprobe -a ip_tables iptable_filter && iptables-legacy -A INPUT -p 112 -j DROP', { ns: 'lb2' });
    try {
      await until('lb2 to turn master of a as well', async () => ((await lab.snapshot()).lb2.groups.a?.state === 'MASTER' ? true : undefined), { timeoutMs: 60_000 });
      await until('the router to follow lb2 for vipA', async () => ((await lab.routerSends(vipA)) === 'lb2' ? true : undefined), { timeoutMs: 30_000 });
    } finally {
      await lab.vm.run('iptables-legacy -D INPUT -p 112 -j DROP', { ns: 'lb2' });
    }
    const s = await lab.settled({ a: 'lb1', b: 'lb2' });
    assert.deepEqual(await lab.holders(vipA, s), ['lb1']);
    await until('the router back on lb1 for vipA', async () => ((await lab.routerSends(vipA)) === 'lb1' ? true : undefined), { timeoutMs: 30_000 });
    await served(vipA);
    assert.match(lb1().process!.log(), /group a: a lower-priority router advertised as master; VIPs announced again/);
  });

  it('a host dies (NIC down, keepalived SIGKILLed): its group moves to the other, new connections work and an established stream survives', async () => {
    const prober = await FailoverProber.start(lab, vipB);
    try {
      const t = await failoverTrial(lab, prober, { group: 'b', vip: vipB });
      assert.deepEqual([t.killed, t.took], ['lb2', 'lb1']);
      assert.ok(t.failoverMs > 0, 'a new connection worked after the kill');
      assert.equal(t.streamError, null);
      assert.equal(t.streamSurvived, true);
      assert.ok(t.outcome.stream!.linesEchoed === t.outcome.stream!.linesSent && t.outcome.stream!.linesSent > 1);
    } finally {
      await prober.stop();
    }
    // lb2 came back (link up, keepalived restarted by its daemon) and, without preemption, stays backup.
    const s = await lab.settled({ a: 'lb1', b: 'lb1' });
    assert.deepEqual([await lab.holders(vipA, s), await lab.holders(vipB, s)], [['lb1'], ['lb1']]);
    await served(vipA);
    await served(vipB);
  });

  it('keepalived alone killed on the master: the daemon releases its VIPs, the peer serves them, keepalived restarts', async () => {
    const exits = async () => Number(/^ipvs_lb_keepalived_unexpected_exits (\d+)$/m.exec((await lab.vm.run(['curl', '-s', 'http://127.0.0.1:9742/metrics'], { ns: 'lb1' })).stdout)?.[1]);
    const exitsBefore = await exits();
    const killed = await lb1().killKeepalived();
    const s = await until('lb2 masters both groups and lb1 runs a new keepalived', async () => {
      const snap = await lab.settled({ a: 'lb2', b: 'lb2' });
      return snap.lb1.keepalivedPid !== undefined && snap.lb1.keepalivedPid !== killed.main ? snap : undefined;
    });
    assert.deepEqual([await lab.holders(vipA, s), await lab.holders(vipB, s)], [['lb2'], ['lb2']]);
    await served(vipA);
    await served(vipB);
    assert.deepEqual([await lab.routerSends(vipA), await lab.routerSends(vipB)], ['lb2', 'lb2']);
    // Released first, then restarted: the report of the release precedes the new keepalived.
    const log = lb1().process!.log();
    const released = log.indexOf('keepalived exited (signal SIGKILL); VIPs released, restarting it');
    const restarted = log.indexOf(`"pid":${s.lb1.keepalivedPid},"adopted":false,"msg":"keepalived running"`);
    assert.ok(released >= 0 && restarted > released, 'VIPs released before keepalived was started again');
    assert.equal(await exits(), exitsBefore + 1, 'the exit is counted');
    assert.match((await lab.vm.run(['curl', '-s', 'http://127.0.0.1:9742/metrics'], { ns: 'lb1' })).stdout, /^ipvs_lb_keepalived_up 1$/m);
  });

  it('the daemon SIGKILLed on the master: the peer takes over through the tracker; the next daemon adopts keepalived and the VIPs stay put', async () => {
    const keepalived = (await lb2().keepalivedPids())!.main;
    await lb2().killDaemon();
    await until('lb1 serves both groups', async () => {
      const s = await lab.snapshot();
      return s.lb1.groups.a?.state === 'MASTER' && s.lb1.groups.b?.state === 'MASTER' && s.lb1.addresses.includes(vipA) && s.lb1.addresses.includes(vipB) ? true : undefined;
    }, { timeoutMs: 90_000 });
    await served(vipA);
    await served(vipB);
    assert.deepEqual([await lab.routerSends(vipA), await lab.routerSends(vipB)], ['lb1', 'lb1'], 'the router follows lb1');
    assert.equal((await lb2().keepalivedPids())?.main, keepalived, "keepalived outlives its daemon's SIGKILL");

    await lb2().startDaemon();
    assert.match(lb2().process!.log(), /adopted the running keepalived/);
    const settled = await lab.settled({ a: 'lb1', b: 'lb1' });
    assert.equal(settled.lb2.keepalivedPid, keepalived, 'adopted, not restarted');
    assert.deepEqual([await lab.holders(vipA, settled), await lab.holders(vipB, settled)], [['lb1'], ['lb1']], 'the VIPs the dead daemon left on lb2 are gone');
    // Several advert intervals and tracker rounds later nothing has moved back.
    await new Promise((r) => setTimeout(r, 8_000));
    const later = await lab.settled({ a: 'lb1', b: 'lb1' });
    assert.deepEqual(transitions(later).lb1, transitions(settled).lb1, `lb1 kept its groups: ${phases(later)}`);
    await served(vipA);
    await served(vipB);
  });

  it('with preemption configured, each group returns to its preferred host, also after that host\'s daemon was SIGKILLed', async () => {
    await lab.setPreempt(true);
    await lab.settled({ a: 'lb1', b: 'lb2' });
    await lb1().killDaemon();
    await until('lb2 serves group a', async () => {
      const s = await lab.snapshot();
      return s.lb2.groups.a?.state === 'MASTER' && s.lb2.addresses.includes(vipA) ? true : undefined;
    }, { timeoutMs: 90_000 });
    await lb1().startDaemon();
    const s = await lab.settled({ a: 'lb1', b: 'lb2' });
    assert.deepEqual([await lab.holders(vipA, s), await lab.holders(vipB, s)], [['lb1'], ['lb2']]);
    await served(vipA);
    await served(vipB);
    assert.deepEqual([await lab.routerSends(vipA), await lab.routerSends(vipB)], ['lb1', 'lb2']);
  });
});
