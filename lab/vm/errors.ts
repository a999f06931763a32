// Errors a lab caller may want to tell apart. Each carries what the guest printed, because "it timed out" is
// useless without the last lines of the console.

function tail(text: string, lines = 30): string {
  return text.split('\n').slice(-lines).join('\n');
}

export class VmError extends Error {
  /** Id of the run (see Vm.id), when one had started. */
  runId: string | undefined;
  constructor(message: string, readonly output: string) {
    super(output ? `${message}\n--- last console lines ---\n${tail(output)}` : message);
    this.name = 'VmError';
  }
}

/** The whole VM ran past its time limit and was killed. */
export class VmTimeoutError extends VmError {
  constructor(readonly timeoutMs: number, readonly backend: string, output: string) {
    super(`lab (${backend}): guest did not finish within ${timeoutMs} ms; the VM was killed`, output);
    this.name = 'VmTimeoutError';
  }
}

/** The VM ended without reporting a result (kernel panic, killed from outside, boot failure). */
export class VmDiedError extends VmError {
  constructor(what: string, readonly backend: string, output: string) {
    super(`lab (${backend}): ${what}`, output);
    this.name = 'VmDiedError';
  }
}

/** One guest command ran past its time limit; its session was killed, the VM keeps running. */
export class ExecTimeoutError extends Error {
  constructor(readonly command: string, readonly timeoutMs: number, readonly stdout: string, readonly stderr: string) {
    super(`lab exec: ${command} did not finish within ${timeoutMs} ms and was killed\nstdout: ${tail(stdout, 10)}\nstderr: ${tail(stderr, 10)}`);
    this.name = 'ExecTimeoutError';
  }
}

/** A command run with run() (not exec()) exited non-zero. */
export class ExecFailedError extends Error {
  constructor(readonly command: string, readonly code: number, readonly stdout: string, readonly stderr: string) {
    super(`lab exec: ${command} exited with ${code}\nstdout: ${tail(stdout, 20)}\nstderr: ${tail(stderr, 20)}`);
    this.name = 'ExecFailedError';
  }
}
