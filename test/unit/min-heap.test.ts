// The heap behind quarantine expiry (IPAM) and probe scheduling (health): whatever the order of pushes and
// pops, every pop returns the smallest key still held.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { MinHeap } from '../../src/util/min-heap.js';
import { fuzzParams } from '../support/fuzz.js';

describe('MinHeap', () => {
  it('pops the smallest key held after any sequence of pushes and pops', () => {
    fc.assert(fc.property(fc.array(fc.oneof(fc.integer({ min: -50, max: 50 }), fc.constant(null)), { maxLength: 200 }), (ops) => {
      const heap = new MinHeap<{ k: number }>((e) => e.k);
      const model: number[] = [];
      for (const op of ops) {
        if (op === null) {
          model.sort((a, b) => a - b);
          assert.equal(heap.pop()?.k, model.shift());
        } else {
          heap.push({ k: op });
          model.push(op);
        }
        assert.equal(heap.length, model.length);
        assert.equal(heap.peek()?.k, model.length ? Math.min(...model) : undefined);
      }
    }), fuzzParams(500));
  });
});
