// The notify FIFO reader on a real FIFO with real writer processes coming and going, as keepalived does
// across restarts.
import assert from 'node:assert/strict';
import { lstat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { execa } from 'execa';
import { NotifyFifo } from '../../src/vrrp/fifo.js';
import type { NotifyEvent } from '../../src/vrrp/notify.js';
import { createLogger } from '../../src/util/log.js';
import { tempDir, waitUntil } from './vrrp-lab.js';

const log = createLogger('silent');

/** One writer process that opens the FIFO, writes, and exits (closing its end), like a keepalived that stops. */
async function writeWithProcess(fifo: string, text: string): Promise<void> {
  await execa('sh', ['-c', 'printf "%s" "$1" > "$2"', 'sh', text, fifo]);
}

describe('notify FIFO reader', () => {
  let dir: { path: string; remove(): Promise<void> };
  before(async () => {
    dir = await tempDir('vrrp-fifo');
  });
  after(async () => {
    await dir?.remove();
  });

  it('creates the FIFO, parses events across writer restarts, ignores junk, and removes the FIFO on close', async () => {
    const path = join(dir.path, 'run', 'keepalived.fifo');
    const events: NotifyEvent[] = [];
    const fifo = new NotifyFifo(path, (e) => events.push(e), log);
    await fifo.open();
    try {
      assert.ok((await lstat(path)).isFIFO());
      await writeWithProcess(path, 'INSTANCE "a" BACKUP 100\nVS [192.0.2.15]:tcp:80 UP\nINSTANCE "a" MAS');
      // The first writer is gone (keepalived died mid-line is not possible, but a split write is).
      await writeWithProcess(path, 'TER 100\n');
      await waitUntil(() => events.length >= 2, 'two events');
      // A new writer after the old one closed: what a restarted keepalived does.
      await writeWithProcess(path, 'GROUP "g" FAULT\nINSTANCE "a" FAULT 0\n');
      await waitUntil(() => events.length >= 4, 'four events');
      assert.deepEqual(
        events.map((e) => `${e.kind} ${e.name} ${e.state}`),
        ['INSTANCE a BACKUP', 'INSTANCE a MASTER', 'GROUP g FAULT', 'INSTANCE a FAULT'],
      );

      // With no writer left, the reader must wait in epoll, not spin on end-of-file.
      const cpu = process.cpuUsage();
      await new Promise((r) => setTimeout(r, 500));
      const used = process.cpuUsage(cpu);
      assert.ok(used.user + used.system < 250_000, `reader used ${used.user + used.system} µs of CPU in 500 ms while idle`);
    } finally {
      await fifo.close({ remove: true });
    }
    await assert.rejects(lstat(path), { code: 'ENOENT' });
  });

  it('refuses to take over a path that is not a FIFO', async () => {
    const path = join(dir.path, 'plain-file');
    await writeFile(path, 'keep me');
    const fifo = new NotifyFifo(path, () => undefined, log);
    await assert.rejects(fifo.open(), /is not a FIFO/);
    assert.ok((await lstat(path)).isFile());
  });
});
