// The lab's and the tests' one poller: what a timeout says is what a failing lab run leaves to go on.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { poll } from '../../lab/poll.js';

describe('poll', () => {
  it('returns the first value that is not undefined, past checks that threw', async () => {
    let calls = 0;
    const v = await poll('three calls', () => {
      calls++;
      if (calls === 1) throw new Error('not yet');
      return calls === 3 ? 0 : undefined;
    }, { everyMs: 1 });
    assert.deepEqual([v, calls], [0, 3], 'a falsy value is a value');
  });

  it('times out naming what it waited for, the last error and the described state', async () => {
    await assert.rejects(
      poll('the VIP', async () => {
        throw new Error('connection refused');
      }, { timeoutMs: 30, everyMs: 5, describe: async () => '--- daemon log ---\nbind failed' }),
      { message: 'timed out waiting for the VIP (last error: connection refused)\n--- daemon log ---\nbind failed' },
    );
    await assert.rejects(
      poll('x', () => undefined, { timeoutMs: 10, everyMs: 5, prefix: 'ha lab: timed out waiting for', describe: () => { throw new Error('vm gone'); } }),
      { message: 'ha lab: timed out waiting for x\n(describing the state failed: Error: vm gone)' },
    );
  });
});
