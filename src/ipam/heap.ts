// Quarantine entries by expiry time. A quarantine ended early (the same Service asked for its address back)
// leaves a stale entry that the engine recognises and skips when it surfaces.
import { MinHeap } from '../util/min-heap.js';
import type { QuarantineEntry } from './types.js';

export class ExpiryHeap extends MinHeap<QuarantineEntry> {
  constructor() {
    super((e) => e.until);
  }
}
