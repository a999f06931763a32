// kill -9 in the middle of an allocation storm, many times, against one real ledger file. After every kill
// the ledger must open cleanly, hold no address twice (except shared on purpose), and hold every allocation
// the child acknowledged, i.e. printed after its commit returned.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Ledger } from '../../src/store/ledger.js';

const child = join(fileURLToPath(new URL('.', import.meta.url)), 'ledger-crash-child.js');
const KILLS = 30;

interface Acked {
  /** uid → addresses it holds per the last acknowledged burst; absent after an acknowledged release. */
  holds: Map<string, string[]>;
  /** uids of a burst that began but whose commit was not acknowledged: either state is legal. */
  inFlight: Set<string>;
}

function runUntilKilled(path: string, seed: number, delayMs: number, acked: Acked): Promise<{ bursts: number; signal: string | null }> {
  return new Promise((resolve, reject) => {
    const p: ChildProcess = spawn(process.execPath, [child, 'storm', path, String(seed)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let buf = '';
    let stderr = '';
    let bursts = 0;
    let pending: { uids: string[]; lines: string[] } | undefined;
    p.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    p.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      let i: number;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        if (line === 'ready') setTimeout(() => p.kill('SIGKILL'), delayMs);
        else if (line.startsWith('B ')) {
          pending = { uids: line.slice(2).split(' ').filter(Boolean), lines: [] };
          for (const u of pending.uids) acked.inFlight.add(u);
        } else if (line === 'C' && pending) {
          for (const l of pending.lines) {
            const [kind, uid, list] = l.split(' ');
            if (kind === 'A') acked.holds.set(uid!, list ? list.split(',') : []);
            else acked.holds.delete(uid!);
          }
          acked.inFlight.clear();
          pending = undefined;
          bursts++;
        } else if (pending) pending.lines.push(line);
      }
    });
    p.on('error', reject);
    p.on('exit', (code, signal) => {
      if (signal !== 'SIGKILL') reject(new Error(`storm child exited on its own (code ${code}): ${stderr}`));
      else resolve({ bursts, signal });
    });
  });
}

function check(path: string, acked: Acked): number {
  const ledger = Ledger.open(path, { host: 'checker' });
  try {
    const { allocations } = ledger.load();
    const byAddress = new Map<string, typeof allocations>();
    for (const a of allocations) byAddress.set(a.address, [...(byAddress.get(a.address) ?? []), a]);
    for (const [address, list] of byAddress) {
      if (list.length < 2) continue;
      const keys = new Set(list.map((a) => a.sharingKey));
      assert.ok(keys.size === 1 && !keys.has(undefined), `${address} is on ${list.map((a) => a.uid).join(', ')} without a common sharing key`);
    }
    const byUid = new Map<string, string[]>();
    for (const a of allocations) byUid.set(a.uid, [...(byUid.get(a.uid) ?? []), a.address]);
    for (const [uid, addresses] of acked.holds) {
      if (acked.inFlight.has(uid)) continue;
      const held = byUid.get(uid) ?? [];
      for (const a of addresses) assert.ok(held.includes(a), `acknowledged allocation ${a} of ${uid} is gone (holds ${held.join(',') || 'nothing'})`);
      // A restarted allocator may complete a PreferDualStack Service with the family it could not get before.
      const fam = (a: string) => (a.includes(':') ? 6 : 4);
      for (const a of held) {
        if (!addresses.includes(a)) assert.ok(!addresses.some((x) => fam(x) === fam(a)), `${uid} moved from ${addresses.join(',')} to ${held.join(',')}`);
      }
    }
    // The burst cut by the kill either committed or not; what the ledger holds for it is now the truth the
    // next child builds on.
    for (const uid of acked.inFlight) {
      const held = byUid.get(uid);
      if (held) acked.holds.set(uid, held);
      else acked.holds.delete(uid);
    }
    acked.inFlight.clear();
    return allocations.length;
  } finally {
    ledger.close();
  }
}

describe('ledger under kill -9', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ipvs-lb-crash-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it(`opens cleanly with no duplicate and no lost acknowledged allocation after ${KILLS} SIGKILLs mid-storm`, async () => {
    const path = join(dir, 'ledger.db');
    const acked: Acked = { holds: new Map(), inFlight: new Set() };
    let totalBursts = 0;
    let rows = 0;
    for (let k = 0; k < KILLS; k++) {
      // Random moments, from right after start-up to well into the storm.
      const delay = Math.floor(Math.random() * 120);
      const r = await runUntilKilled(path, 1000 + k, delay, acked);
      totalBursts += r.bursts;
      rows = check(path, acked);
    }
    assert.ok(totalBursts > KILLS, `the storm barely ran (${totalBursts} acknowledged bursts)`);
    assert.ok(rows > 0);
  });
});
