// Runs the real `keepalived -t` on a rendered file and turns its stderr into messages with line numbers.
// keepalived checks interfaces against the network namespace it runs in, so the check runs in the same
// namespace keepalived itself will (`-s NAME`).
import { execa } from 'execa';

export interface CheckMessage {
  line: number | undefined;
  message: string;
}

export interface CheckResult {
  ok: boolean;
  exitCode: number | undefined;
  /** Errors when !ok; warnings (if keepalived printed any) when ok. */
  messages: CheckMessage[];
}

// keepalived prints `(FILE: Line N) text` for most problems and `(Line N) text` for some global ones.
const located = /^\((?:(.*?): )?Line (\d+)\) (.*)$/;

export function parseCheckOutput(text: string): CheckMessage[] {
  const out: CheckMessage[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '') continue;
    const m = located.exec(line);
    if (m) out.push({ line: Number(m[2]), message: m[3]! });
    else out.push({ line: undefined, message: line });
  }
  return out;
}

export function formatCheckMessages(file: string, messages: CheckMessage[]): string[] {
  return messages.map((m) => (m.line === undefined ? `${file}: ${m.message}` : `${file}:${m.line}: ${m.message}`));
}

export interface CheckOptions {
  keepalivedPath: string;
  netns?: string | undefined;
  timeoutMs?: number;
}

export async function checkKeepalivedConfig(file: string, opts: CheckOptions): Promise<CheckResult> {
  const args = ['-t', '-f', file];
  if (opts.netns) args.push('-s', opts.netns);
  const r = await execa(opts.keepalivedPath, args, { reject: false, timeout: opts.timeoutMs ?? 15_000, stdin: 'ignore' });
  if (r.failed && r.exitCode === undefined) {
    // Not started at all (missing binary) or killed by the timeout.
    return { ok: false, exitCode: undefined, messages: [{ line: undefined, message: `cannot run ${opts.keepalivedPath} -t: ${r.shortMessage}` }] };
  }
  const messages = parseCheckOutput(`${r.stderr}\n${r.stdout}`);
  const ok = r.exitCode === 0;
  if (!ok && messages.length === 0) messages.push({ line: undefined, message: `keepalived -t exited with status ${r.exitCode}` });
  return { ok, exitCode: r.exitCode, messages };
}
