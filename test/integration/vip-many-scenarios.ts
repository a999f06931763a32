// Scenarios for the VIP binder's batched bind/unbind (what a VRRP takeover uses), each run by
// vip-binder-many.test.ts as `unshare -n node THIS SCENARIO` in a private network namespace that disappears
// with the process. The oracle is iproute2 (`ip -j addr`) and the ownership file on disk. Exit 0 = pass.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { JsonFileOwnership, VipBinder } from '../../src/vip/index.js';

const IF = 'v0';

async function ip(...args: string[]): Promise<string> {
  return (await execa('ip', args)).stdout;
}

async function addrsOnIf(): Promise<string[]> {
  const j = JSON.parse(await ip('-j', 'addr', 'show', 'dev', IF)) as { addr_info: { local: string; prefixlen: number; scope: string }[] }[];
  return (j[0]?.addr_info ?? []).filter((a) => a.scope !== 'link').map((a) => `${a.local}/${a.prefixlen}`).sort();
}

async function recorded(file: string): Promise<string[]> {
  return ((JSON.parse(await readFile(file, 'utf8')) as { owned: { address: string }[] }).owned.map((o) => o.address)).sort();
}

const vips = (n: number): string[] => Array.from({ length: n }, (_, i) => `192.0.2.${i + 1}`);

const scenarios: Record<string, (dir: string) => Promise<void>> = {
  async 'bind-many-then-unbind-many'(dir) {
    const file = join(dir, 'owned.json');
    // One address the daemon did not add, inside the list it is asked to bind.
    await ip('addr', 'add', '192.0.2.7/32', 'dev', IF);
    const b = await VipBinder.open({ interface: IF, store: new JsonFileOwnership(file), announce: false });
    const list = [...vips(250), '2001:db8::10', 'not-an-ip', '192.0.2.3'];
    const r = await b.bindMany(list);
    assert.equal(r.length, list.length);
    assert.equal(r[6], 'foreign', 'the foreign address is used but not recorded');
    assert.ok(r[251] instanceof Error && /must be an IPv4 or IPv6 address/.test(r[251].message));
    assert.ok(r[252] instanceof Error && /listed twice/.test(r[252].message));
    assert.equal(r.filter((x) => x === 'added').length, 250, JSON.stringify(r.filter((x) => x !== 'added')));
    const expected = [...vips(250).map((a) => `${a}/32`), '2001:db8::10/128', '198.51.100.10/24'].sort();
    assert.deepEqual(await addrsOnIf(), expected);
    assert.deepEqual(await recorded(file), [...vips(250).filter((a) => a !== '192.0.2.7'), '2001:db8::10'].sort());

    // Again: everything is already there.
    const again = await b.bindMany(vips(250));
    assert.deepEqual(new Set(again), new Set(['already-bound', 'foreign']));

    // Release all but a few, plus one we never had.
    const release = [...vips(240), '192.0.2.254', '2001:db8::10'];
    const u = await b.unbindMany(release);
    assert.equal(u[6], 'not-owned', 'the foreign address stays');
    assert.equal(u[240], 'not-owned');
    assert.equal(u.filter((x) => x === 'removed').length, 240);
    assert.deepEqual(await addrsOnIf(), ['192.0.2.7/32', ...vips(250).slice(240).map((a) => `${a}/32`), '198.51.100.10/24'].sort());
    assert.deepEqual(await recorded(file), vips(250).slice(240).sort());

    // Gone already (deleted behind our back): reported, and dropped from the record.
    await ip('addr', 'del', '192.0.2.241/32', 'dev', IF);
    const u2 = await b.unbindMany(vips(250).slice(240));
    assert.equal(u2[0], 'already-absent');
    assert.deepEqual(await recorded(file), []);
    await b.close();
  },

  async 'bind-many-records-before-adding'(dir) {
    // The record is written before the kernel sees any address: a crash in between leaves records without
    // addresses (harmless), never addresses without records.
    const file = join(dir, 'owned.json');
    let savedBeforeAdd: string[] | undefined;
    const store = new JsonFileOwnership(file);
    const save = store.save.bind(store);
    store.save = async (owned) => {
      if (savedBeforeAdd === undefined) savedBeforeAdd = (await addrsOnIf()).filter((a) => a.startsWith('192.0.2.'));
      await save(owned);
    };
    const b = await VipBinder.open({ interface: IF, store, announce: false });
    await b.bindMany(vips(20));
    assert.deepEqual(savedBeforeAdd, [], 'no VIP on the interface when the record was written');
    assert.deepEqual(await recorded(file), vips(20).sort());
    await b.close();
  },
};

const name = process.argv[2];
if (name === '--list') {
  process.stdout.write(`${Object.keys(scenarios).join('\n')}\n`);
} else {
  const run = name ? scenarios[name] : undefined;
  if (!run) throw new Error(`unknown scenario ${name}`);
  await ip('link', 'set', 'lo', 'up');
  await ip('link', 'add', IF, 'type', 'veth', 'peer', 'name', 'v1');
  await ip('link', 'set', IF, 'up');
  await ip('link', 'set', 'v1', 'up');
  await ip('addr', 'add', '198.51.100.10/24', 'dev', IF);
  const dir = await mkdtemp(join(tmpdir(), 'ipvs-lb-vipmany-'));
  try {
    await run(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
