// Scenarios for the VIP binder, each run by vip-binder.test.ts as `unshare -n node THIS SCENARIO`: a fresh,
// private network namespace that disappears with the process, so no address ever touches the host's
// interfaces. The oracle is iproute2 (`ip -j addr`), not our own code. Exit 0 = pass; any throw = fail.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa, type ResultPromise } from 'execa';
import { JsonFileOwnership, MemoryOwnership, VipBinder, type VipEvent } from '../../src/vip/index.js';
import { ArpingWorker } from '../../src/vip/arping-worker.js';

const IF = 'v0';

async function ip(...args: string[]): Promise<string> {
  return (await execa('ip', args)).stdout;
}

/** Addresses on v0 as "addr/prefix", from iproute2. */
async function addrsOnIf(): Promise<string[]> {
  const j = JSON.parse(await ip('-j', 'addr', 'show', 'dev', IF)) as { addr_info: { local: string; prefixlen: number; scope: string }[] }[];
  return (j[0]?.addr_info ?? []).filter((a) => a.scope !== 'link').map((a) => `${a.local}/${a.prefixlen}`);
}

async function waitFor(what: string, cond: () => Promise<boolean> | boolean, ms = 8000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await cond()) return;
    await sleep(50);
  }
  throw new Error(`timed out waiting for: ${what}`);
}

async function vethPair(): Promise<void> {
  await ip('link', 'add', IF, 'type', 'veth', 'peer', 'name', 'v1');
  await ip('link', 'set', IF, 'up');
  await ip('link', 'set', 'v1', 'up');
}

const scenarios: Record<string, (dir: string) => Promise<void>> = {
  async 'bind-rebind-unbind-v4'(dir) {
    await vethPair();
    const store = new JsonFileOwnership(join(dir, 'vips.json'));
    const b = await VipBinder.open({ interface: IF, store, announce: false });
    assert.equal(await b.bind('192.0.2.10'), 'added');
    assert.deepEqual(await addrsOnIf(), ['192.0.2.10/32']);
    assert.equal(await b.bind('192.0.2.10'), 'already-bound');
    assert.deepEqual(await addrsOnIf(), ['192.0.2.10/32']);
    assert.deepEqual(JSON.parse(await readFile(store.path, 'utf8')).owned, [{ interface: IF, address: '192.0.2.10', prefixLength: 32 }]);
    assert.equal(await b.unbind('192.0.2.10'), 'removed');
    assert.deepEqual(await addrsOnIf(), []);
    assert.deepEqual(JSON.parse(await readFile(store.path, 'utf8')).owned, []);
    assert.equal(await b.unbind('192.0.2.10'), 'not-owned');
    await b.close();
  },

  async 'foreign-addresses-survive'() {
    await vethPair();
    await ip('addr', 'add', '192.0.2.20/32', 'dev', IF);
    await ip('addr', 'add', '198.51.100.5/24', 'dev', IF);
    const b = await VipBinder.open({ interface: IF, store: new MemoryOwnership(), announce: false });
    // Binding an address someone else put there uses it but does not take ownership.
    assert.equal(await b.bind('192.0.2.20'), 'foreign');
    assert.equal(b.isOwned('192.0.2.20'), false);
    assert.equal(await b.unbind('192.0.2.20'), 'not-owned');
    assert.equal(await b.unbind('198.51.100.5'), 'not-owned');
    assert.equal(await b.bind('192.0.2.21'), 'added');
    assert.equal(await b.unbind('192.0.2.21'), 'removed');
    assert.deepEqual((await addrsOnIf()).sort(), ['192.0.2.20/32', '198.51.100.5/24']);
    await b.close();
  },

  async 'host-address-with-a-wider-prefix-is-never-touched'() {
    await vethPair();
    // The host itself has 192.0.2.60/24; a VIP of the same address is a separate /32 entry for the kernel,
    // and unbinding the VIP removes exactly that entry.
    await ip('addr', 'add', '192.0.2.60/24', 'dev', IF);
    const b = await VipBinder.open({ interface: IF, store: new MemoryOwnership(), announce: false });
    assert.equal(await b.bind('192.0.2.60'), 'added');
    assert.deepEqual((await addrsOnIf()).sort(), ['192.0.2.60/24', '192.0.2.60/32']);
    assert.equal(await b.unbind('192.0.2.60'), 'removed');
    assert.deepEqual(await addrsOnIf(), ['192.0.2.60/24']);
    await b.close();
  },

  async 'ownership-survives-restart'(dir) {
    await vethPair();
    const path = join(dir, 'state', 'vips.json');
    const b1 = await VipBinder.open({ interface: IF, store: new JsonFileOwnership(path), announce: false });
    assert.equal(await b1.bind('203.0.113.7'), 'added');
    await b1.close();
    // close() leaves the address in place: a daemon restart must not drop traffic.
    assert.deepEqual(await addrsOnIf(), ['203.0.113.7/32']);
    // A binder without the record cannot remove it; one with the record can.
    const stranger = await VipBinder.open({ interface: IF, store: new MemoryOwnership(), announce: false });
    assert.equal(await stranger.unbind('203.0.113.7'), 'not-owned');
    await stranger.close();
    const b2 = await VipBinder.open({ interface: IF, store: new JsonFileOwnership(path), announce: false });
    assert.deepEqual(b2.ownedAddresses(), ['203.0.113.7']);
    assert.equal(await b2.bind('203.0.113.7'), 'already-bound');
    assert.equal(await b2.unbind('203.0.113.7'), 'removed');
    assert.deepEqual(await addrsOnIf(), []);
    await b2.close();
  },

  async 'ipv6-128-with-unsolicited-na'() {
    await vethPair();
    await sleep(100);
    const naSent = async () => Number(/Icmp6OutNeighborAdvertisements\s+(\d+)/.exec(await readFile('/proc/net/snmp6', 'utf8'))?.[1]);
    const before = await naSent();
    const b = await VipBinder.open({ interface: IF, store: new MemoryOwnership(), announce: false });
    assert.equal(await b.bind('2001:DB8::10'), 'added');
    assert.deepEqual(await addrsOnIf(), ['2001:db8::10/128']);
    assert.equal((await readFile(`/proc/sys/net/ipv6/conf/${IF}/ndisc_notify`, 'utf8')).trim(), '1');
    // The kernel's unsolicited NA goes out when DAD completes (about a second).
    await waitFor('an unsolicited neighbour advertisement', async () => (await naSent()) > before);
    assert.equal(await b.bind('2001:db8::10'), 'already-bound');
    assert.equal(await b.unbind('2001:db8:0::10'), 'removed');
    assert.deepEqual(await addrsOnIf(), []);
    await b.close();
  },

  async 'removed-out-of-band-comes-back'() {
    await vethPair();
    const events: VipEvent[] = [];
    const b = await VipBinder.open({ interface: IF, store: new MemoryOwnership(), announce: false, ipv6Dad: false, onEvent: (e) => events.push(e) });
    await b.watch();
    await b.bind('192.0.2.30');
    await b.bind('2001:db8::30');
    await ip('addr', 'add', '192.0.2.31/32', 'dev', IF); // foreign: removing it must not bring it back
    await ip('addr', 'del', '192.0.2.30/32', 'dev', IF);
    await ip('addr', 'del', '2001:db8::30/128', 'dev', IF);
    await ip('addr', 'del', '192.0.2.31/32', 'dev', IF);
    await waitFor('both VIPs back', async () => {
      const a = await addrsOnIf();
      return a.includes('192.0.2.30/32') && a.includes('2001:db8::30/128');
    });
    const restored = events.filter((e) => e.type === 'vip-restored').map((e) => (e as { address: string }).address);
    assert.deepEqual(restored.sort(), ['192.0.2.30', '2001:db8::30']);
    await sleep(300);
    assert.equal((await addrsOnIf()).includes('192.0.2.31/32'), false);
    // Our own unbind is not "someone else": the VIP stays gone.
    assert.equal(await b.unbind('192.0.2.30'), 'removed');
    await sleep(300);
    assert.equal((await addrsOnIf()).includes('192.0.2.30/32'), false);
    await b.close();
  },

  async 'link-down-up-is-reported-and-vips-restored'() {
    await vethPair();
    const events: VipEvent[] = [];
    const b = await VipBinder.open({ interface: IF, store: new MemoryOwnership(), announce: false, ipv6Dad: false, onEvent: (e) => events.push(e) });
    await b.bind('192.0.2.40');
    await b.bind('2001:db8::40');
    await b.watch();
    await ip('link', 'set', IF, 'down');
    await waitFor('link-down event', () => events.some((e) => e.type === 'link-down'));
    await ip('link', 'set', IF, 'up');
    await waitFor('link-up event', () => events.some((e) => e.type === 'link-up'));
    // Linux drops IPv6 addresses when a link goes down; the binder puts its VIPs back.
    await waitFor('VIPs present after link up', async () => {
      const a = await addrsOnIf();
      return a.includes('192.0.2.40/32') && a.includes('2001:db8::40/128');
    });
    await b.close();
  },

  async 'gratuitous-arp-reaches-the-segment'() {
    // The peer end lives in a second private namespace (a child `unshare -n sleep`), which accepts
    // gratuitous ARP: its neighbour table is the oracle that the announcement went out on the wire.
    const peer: ResultPromise = execa('unshare', ['-n', 'sleep', '30']);
    try {
      await sleep(100);
      const ns = `/proc/${peer.pid}/ns/net`;
      const inPeer = (...args: string[]) => execa('nsenter', [`--net=${ns}`, ...args]);
      await ip('link', 'add', IF, 'type', 'veth', 'peer', 'name', 'v1');
      await ip('link', 'set', 'v1', 'netns', String(peer.pid));
      await ip('link', 'set', IF, 'up');
      await inPeer('ip', 'link', 'set', 'v1', 'up');
      await inPeer('ip', 'addr', 'add', '192.0.2.2/24', 'dev', 'v1');
      await inPeer('sysctl', '-qw', 'net.ipv4.conf.v1.arp_accept=1');
      const mac = (JSON.parse(await ip('-j', 'link', 'show', IF)) as { address: string }[])[0]!.address;
      const events: VipEvent[] = [];
      const b = await VipBinder.open({ interface: IF, store: new MemoryOwnership(), announce: { count: 2, intervalMs: 200 }, onEvent: (e) => events.push(e) });
      await b.bind('192.0.2.50');
      await waitFor('announcement done', () => events.some((e) => e.type === 'announced'));
      assert.deepEqual(events.find((e) => e.type === 'announced'), { type: 'announced', address: '192.0.2.50', sent: 2, errors: [] });
      const neigh = (await inPeer('ip', 'neigh', 'show', 'dev', 'v1')).stdout;
      assert.match(neigh, new RegExp(`^192\\.0\\.2\\.50 lladdr ${mac}`, 'm'));
      await b.close();
    } finally {
      peer.kill();
      await peer.catch(() => undefined);
    }
  },

  async 'arping-worker-announces-reports-and-outlives-its-shell'() {
    // The daemon's arping runs go through one long-lived shell (src/vip/arping-worker.ts). The peer's
    // neighbour table is the oracle, as above; the shell is killed in between, as a stray kill would.
    const peer: ResultPromise = execa('unshare', ['-n', 'sleep', '30']);
    const w = new ArpingWorker(IF);
    try {
      await sleep(100);
      const ns = `/proc/${peer.pid}/ns/net`;
      const inPeer = (...args: string[]) => execa('nsenter', [`--net=${ns}`, ...args]);
      await ip('link', 'add', IF, 'type', 'veth', 'peer', 'name', 'v1');
      await ip('link', 'set', 'v1', 'netns', String(peer.pid));
      await ip('link', 'set', IF, 'up');
      await inPeer('ip', 'link', 'set', 'v1', 'up');
      await inPeer('ip', 'addr', 'add', '192.0.2.2/24', 'dev', 'v1');
      await inPeer('sysctl', '-qw', 'net.ipv4.conf.v1.arp_accept=1');
      await ip('addr', 'add', '192.0.2.60/32', 'dev', IF);
      await ip('addr', 'add', '192.0.2.61/32', 'dev', IF);
      const mac = (JSON.parse(await ip('-j', 'link', 'show', IF)) as { address: string }[])[0]!.address;
      const neigh = async () => (await inPeer('ip', 'neigh', 'show', 'dev', 'v1')).stdout;
      w.start();
      const first = w.pid;
      assert.ok(first, 'the shell runs before the first request');
      // Concurrent requests, each answered on its own: one fine, one arping refuses (not our address), one invalid.
      assert.deepEqual(await Promise.all([w.send('192.0.2.60'), w.send('192.0.2.99'), w.send('2001:db8::1')]), [
        undefined,
        'arping: bind: Cannot assign requested address (exit 2)',
        'address: must be an IPv4 address for gratuitous ARP (got "2001:db8::1")',
      ]);
      assert.match(await neigh(), new RegExp(`^192\\.0\\.2\\.60 lladdr ${mac}`, 'm'));
      process.kill(first, 'SIGKILL');
      await waitFor('the shell gone', () => w.pid === undefined);
      assert.equal(await w.send('192.0.2.61'), undefined);
      assert.notEqual(w.pid, first);
      assert.match(await neigh(), new RegExp(`^192\\.0\\.2\\.61 lladdr ${mac}`, 'm'));
      w.close();
      assert.equal(await w.send('192.0.2.61'), 'arping worker closed');
    } finally {
      w.close();
      peer.kill();
      await peer.catch(() => undefined);
    }
  },

  async 'bad-inputs-are-refused-clearly'() {
    await vethPair();
    await assert.rejects(VipBinder.open({ interface: 'nope0', store: new MemoryOwnership() }), /interface "nope0": no such network interface \(ENODEV\)/);
    await assert.rejects(VipBinder.open({ interface: '-rf', store: new MemoryOwnership() }), /^Error: interface: must be a Linux interface name \(got "-rf"\)$/);
    const b = await VipBinder.open({ interface: IF, store: new MemoryOwnership(), announce: false });
    await assert.rejects(b.bind('192.0.2.256'), /vip: must be an IPv4 or IPv6 address \(got "192\.0\.2\.256"\)/);
    await b.close();
  },
};

const name = process.argv[2] ?? '';
const run = scenarios[name];
if (process.argv[2] === '--list') {
  process.stdout.write(`${Object.keys(scenarios).join('\n')}\n`);
} else if (!run) {
  process.stderr.write(`unknown scenario ${JSON.stringify(name)}\n`);
  process.exitCode = 2;
} else {
  const dir = await mkdtemp(join(tmpdir(), 'ipvs-lb-vip-'));
  try {
    await run(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
