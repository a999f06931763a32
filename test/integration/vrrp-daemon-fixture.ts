// A minimal "daemon" for vrrp-keepalived.test.ts: runs the VRRP controller in its own process so the test can
// SIGKILL it, and prints each effect (bind/release/sync) on stdout. Not a test file itself.
import { VrrpController } from '../../src/vrrp/controller.js';
import type { VrrpConfig } from '../../src/config/types.js';
import type { DaemonTracking } from '../../src/vrrp/render.js';
import { createLogger } from '../../src/util/log.js';

const { config, netns, tracking } = JSON.parse(process.env.VRRP_FIXTURE ?? '{}') as { config: VrrpConfig; netns: string; tracking?: DaemonTracking };
const say = (line: string): void => {
  process.stdout.write(`${line}\n`);
};
const c = new VrrpController({
  config,
  netns,
  tracking: tracking ?? { kind: 'none' },
  // With a tracker, a stand-in process holds the daemon's identity, so the test can kill "the daemon" apart.
  claimIdentity: tracking === undefined,
  log: createLogger('silent'),
  vips: { bindGroup: async (g) => say(`bind ${g}`), releaseGroup: async (g) => say(`release ${g}`), announceGroup: async (g) => say(`announce ${g}`) },
  sync: { setMode: async (m) => say(`sync master=${m.master} backup=${m.backup}`) },
});
await c.start();
// Stay alive until killed.
setInterval(() => undefined, 1 << 30);
