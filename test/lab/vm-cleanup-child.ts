// Child process for vm-cleanup.test.ts: does lab runs and reports their ids on stdout (one JSON per line),
// so the parent can check the host after this process is gone.
import { runInVm, startVm, type VmError } from '../../lab/vm/index.js';

const say = (o: object): void => {
  process.stdout.write(`${JSON.stringify(o)}\n`);
};

const mode = process.argv[2];
if (mode === 'runs') {
  const ok = await runInVm({ script: 'echo fine > "$LAB_ARTIFACTS/ok.txt"' });
  say({ case: 'ok', id: ok.id, exitCode: ok.exitCode, artifactsDir: ok.artifactsDir });
  // Artifacts copied to a directory of the caller's survive the run; the run's own directories do not.
  const kept = await runInVm({ script: 'echo kept > "$LAB_ARTIFACTS/kept.txt"', artifactsDir: process.argv[3] });
  say({ case: 'kept', id: kept.id, exitCode: kept.exitCode, artifactsDir: kept.artifactsDir });
  const failed = await runInVm({ script: 'echo about to fail; exit 3' });
  say({ case: 'failed', id: failed.id, exitCode: failed.exitCode, output: failed.output.includes('about to fail') });
  try {
    await runInVm({ script: 'echo sleeping; sleep 600', timeoutMs: 10_000 });
    say({ case: 'timeout', error: 'no timeout' });
  } catch (e) {
    say({ case: 'timeout', id: (e as VmError).runId, name: (e as Error).name, message: (e as Error).message.split('\n')[0] });
  }
  const vm = await startVm();
  await vm.spawn('bg', ['sleep', '600']);
  say({ case: 'stepwise', id: vm.id });
  await vm.stop();
  // Exit without dispose(): the artifacts of the runs above must go with this process.
} else if (mode === 'hold') {
  const vm = await startVm();
  await vm.spawn('bg', ['sleep', '600']);
  say({ case: 'hold', id: vm.id, pid: vm.pid });
  setInterval(() => undefined, 1000);
} else {
  throw new Error(`unknown mode ${mode}`);
}
