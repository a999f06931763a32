// High availability with the real daemon and the real keepalived on two LB hosts in the lab VM (real IPVS,
// direct routing to the sample cluster's three nodes, the IPVS sync daemon, GARP, HTTP and echo traffic from
// a client behind the router). Two VRRP groups, active-active: lb1 prefers a, lb2 prefers b. The steps run in
// order on one VM, each starting from the state the previous one left:
//   1. with preemption (so the layout is known), each host serves its group's VIP, and both hosts have every
//      virtual service programmed;
//   2. a config change that adds a VIP (a new pool, a Service in it, a changed keepalived.conf) changes no
//      VRRP state and restarts no keepalived;
//   3. a backup that turns master for a moment does not keep the VIP's traffic (the master announces again
//      when it hears a lower-priority advert);
//   then without preemption, as it is by default:
//   4. a host dies (NIC down, keepalived SIGKILLed): its group moves to the other host, new connections
//      work, and a TCP stream established before keeps working (sync daemon + mh);
//   5. keepalived alone is killed on the master: the daemon releases the VIPs, the peer serves them, keepalived
//      is restarted and the exit is counted;
//   6. the daemon is SIGKILLed on the master: the tracker hands the groups to the peer; the next daemon adopts
//      keepalived and the VIPs do not come back;
//   7. with preemption configured they do come back.
// keepalived runs with advert_int 2 here: a test must not depend on timing, and under emulation on a busy host
// (load 10-16 on two cores, measured) adverts at 0.1 and even 1 s arrive late now and then, and the backup turns
// master for a moment. The failover benchmark measures 0.1 s.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { activeActiveGroups, FailoverProber, failoverTrial, HaLab, until, type LabSnapshot } from '../../lab/ha/index.js';
import { parseWhoami, labTimeScale } from '../../lab/vm/index.js';

const phases = (s: LabSnapshot) => `lb1 ${JSON.stringify(Object.fromEntries(Object.values(s.lb1.groups).map((g) => [g.name, g.state])))} lb2 ${JSON.stringify(Object.fromEntries(Object.values(s.lb2.groups).map((g) => [g.name, g.state])))}`;
const transitions = (s: LabSnapshot) => ({ lb1: Object.values(s.lb1.groups).map((g) => g.transitions), lb2: Object.values(s.lb2.groups).map((g) => g.transitions) });

describe('lab: two LB hosts with the real daemon and keepalived', { timeout: (1_200_000) * labTimeScale() }, () => {
  let lab: HaLab;
  let vipA = '';
  let vipB = '';
  const lb1 = () => lab.host('lb1');

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
    // Preemption puts each group on its preferred host whatever the start order (and back there after a
    // late advert); it goes off before the steps that check that nothing moves back.
    lab = await HaLab.start({ groups: activeActiveGroups, advertIntervalSeconds: 2, preempt: true });
    vipA = await lab.createService('web-a', 'ga');
    vipB = await lab.createService('web-b', 'gb');
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
    // lb2 stops hearing VRRP: it becomes master of a too, binds vipA and sends GARP, which pulls the router's
    // entry for vipA over to lb2. When it hears lb1 again it gives a up and releases vipA; without more the
    // router would keep sending vipA to lb2 until its entry expires. lb1, which heard lb2's lower-priority
    // adverts meanwhile, announces vipA again (and once more after the last one), so the traffic comes back.
    await lab.vm.run('modprobe -a ip_tables iptable_filter && iptables-legacy -A INPUT -p 112 -j DROP', { ns: 'lb2' });
    try {
      await until('lb2 to turn master of a as well and bind vipA', async () => {
        const s = await lab.snapshot();
        return s.lb2.groups.a?.state === 'MASTER' && s.lb2.addresses.includes(vipA) ? true : undefined;
      }, { timeoutMs: 60_000 });
      // Some adverts of the split, so lb1 hears a few of lb2's.
      await new Promise((r) => setTimeout(r, 5_000));
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
    await lab.setPreempt(false);
    const before = await lab.settled();
    const victim = HaLab.masterOf(before, 'b')!;
    const survivor = victim === 'lb1' ? 'lb2' : 'lb1';
    const prober = await FailoverProber.start(lab, vipB);
    try {
      const t = await failoverTrial(lab, prober, { group: 'b', vip: vipB });
      assert.deepEqual([t.killed, t.took], [victim, survivor]);
      assert.ok(t.failoverMs > 0, 'a new connection worked after the kill');
      assert.equal(t.streamError, null);
      assert.equal(t.streamSurvived, true);
      assert.ok(t.outcome.stream!.linesEchoed === t.outcome.stream!.linesSent && t.outcome.stream!.linesSent > 1);
    } finally {
      await prober.stop();
    }
    // The dead host came back (link up, keepalived restarted by its daemon) and, without preemption, stays
    // backup: the survivor keeps b.
    const s = await lab.settled({ b: survivor });
    assert.deepEqual(await lab.holders(vipB, s), [survivor]);
    await served(vipA);
    await served(vipB);
  });

  it('keepalived alone killed on the master: the daemon releases its VIPs, the peer serves them, keepalived restarts', async () => {
    const before = await lab.settled();
    const victim = lab.host(HaLab.masterOf(before, 'a')!);
    const peer = lab.other(victim);
    const exits = async () => Number(/^ipvs_lb_keepalived_unexpected_exits (\d+)$/m.exec((await lab.vm.run(['curl', '-s', 'http://127.0.0.1:9742/metrics'], { ns: victim.name })).stdout)?.[1]);
    const exitsBefore = await exits();
    const killed = await victim.killKeepalived();
    const s = await until(`${peer.name} masters both groups and ${victim.name} runs a new keepalived`, async () => {
      const snap = await lab.settled({ a: peer.name, b: peer.name });
      return snap[victim.name].keepalivedPid !== undefined && snap[victim.name].keepalivedPid !== killed.main ? snap : undefined;
    }, { timeoutMs: 240_000 });
    assert.deepEqual([await lab.holders(vipA, s), await lab.holders(vipB, s)], [[peer.name], [peer.name]]);
    await served(vipA);
    await served(vipB);
    assert.deepEqual([await lab.routerSends(vipA), await lab.routerSends(vipB)], [peer.name, peer.name]);
    // Released first, then restarted: the report of the release precedes the new keepalived.
    const log = victim.process!.log();
    const released = log.indexOf('keepalived exited (signal SIGKILL); VIPs released, restarting it');
    const restarted = log.indexOf(`"pid":${s[victim.name].keepalivedPid},"adopted":false,"msg":"keepalived running"`);
    assert.ok(released >= 0 && restarted > released, 'VIPs released before keepalived was started again');
    assert.equal(await exits(), exitsBefore + 1, 'the exit is counted');
    assert.match((await lab.vm.run(['curl', '-s', 'http://127.0.0.1:9742/metrics'], { ns: victim.name })).stdout, /^ipvs_lb_keepalived_up 1$/m);
  });

  it('the daemon SIGKILLed on the master: the peer takes over through the tracker; the next daemon adopts keepalived and the VIPs stay put', async () => {
    const before = await lab.settled();
    const victim = lab.host(HaLab.masterOf(before, 'a')!);
    const peer = lab.other(victim);
    const keepalived = (await victim.keepalivedPids())!.main;
    await victim.killDaemon();
    await until(`${peer.name} serves both groups`, async () => {
      const s = await lab.snapshot();
      const p = s[peer.name];
      return p.groups.a?.state === 'MASTER' && p.groups.b?.state === 'MASTER' && p.addresses.includes(vipA) && p.addresses.includes(vipB) ? true : undefined;
    }, { timeoutMs: 120_000 });
    await served(vipA);
    await served(vipB);
    assert.deepEqual([await lab.routerSends(vipA), await lab.routerSends(vipB)], [peer.name, peer.name], `the router follows ${peer.name}`);
    assert.equal((await victim.keepalivedPids())?.main, keepalived, "keepalived outlives its daemon's SIGKILL");

    await victim.startDaemon();
    assert.match(victim.process!.log(), /adopted the running keepalived/);
    const settled = await lab.settled({ a: peer.name, b: peer.name });
    assert.equal(settled[victim.name].keepalivedPid, keepalived, 'adopted, not restarted');
    assert.deepEqual([await lab.holders(vipA, settled), await lab.holders(vipB, settled)], [[peer.name], [peer.name]], `the VIPs the dead daemon left on ${victim.name} are gone`);
    // Several advert intervals and tracker rounds later nothing has moved back.
    await new Promise((r) => setTimeout(r, 10_000));
    const later = await lab.settled({ a: peer.name, b: peer.name });
    assert.deepEqual(transitions(later)[peer.name], transitions(settled)[peer.name], `${peer.name} kept its groups: ${phases(later)}`);
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
