// `ipvs-lb render-keepalived`: prints the keepalived.conf the daemon would install, and with --check runs the
// real `keepalived -t` on it (in --netns if given, since keepalived checks interfaces where it runs).
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Command } from 'commander';
import { loadConfig } from '../config/load.js';
import { checkKeepalivedConfig, formatCheckMessages } from '../vrrp/check.js';
import { keepalivedPaths, renderKeepalivedConf } from '../vrrp/render.js';
import { RenderError } from '../vrrp/safe.js';
import { chooseTracking, currentUserName } from '../vrrp/tracking.js';
import { ExitCode } from './exit-codes.js';
import type { CliContext } from './context.js';
import { outputOption, render, type OutputFormat } from './output.js';

export function registerRenderKeepalived(program: Command, ctx: CliContext): void {
  program
    .command('render-keepalived')
    .description('print the keepalived.conf rendered from the config; --check validates it with keepalived -t')
    .option('--check', 'run keepalived -t on the rendered file and report its verdict')
    .option('--netns <name>', 'network namespace keepalived runs in (for --check and the daemon tracker)')
    .addOption(outputOption())
    .action(async (opts: { check?: boolean; netns?: string; output: OutputFormat }) => {
      // table: the file itself on stdout, keepalived's verdict on stderr; json/yaml: one document with both.
      const structured = opts.output !== 'table';
      const path = ctx.configPath();
      const r = await loadConfig(path);
      if (!r.ok) {
        for (const p of r.problems) ctx.err(p);
        ctx.exit(ExitCode.failed);
        return;
      }
      const vrrp = r.config.vrrp;
      if (!vrrp.enabled) {
        ctx.err(`${path}: vrrp.enabled is false; there is no keepalived configuration to render`);
        ctx.exit(ExitCode.failed);
        return;
      }
      const paths = keepalivedPaths(vrrp.configPath);
      let text: string;
      try {
        const advert = Math.min(1, ...vrrp.groups.map((g) => g.advertIntervalSeconds));
        text = renderKeepalivedConf(vrrp, {
          fifoPath: paths.fifo,
          tracking: chooseTracking({ pidFile: paths.daemonPid, advertSeconds: advert, ...(opts.netns ? { initialNetns: false } : {}) }),
          // The daemon renders with its own user; run this as that user to see the same bytes.
          scriptUser: currentUserName(),
        });
      } catch (err) {
        if (!(err instanceof RenderError)) throw err;
        ctx.err(`${path}: ${err.message}`);
        ctx.exit(ExitCode.failed);
        return;
      }
      if (!structured) ctx.out(text.replace(/\n$/, ''));
      if (!opts.check) {
        if (structured) ctx.out(render(opts.output, { config: text }, () => ''));
        return;
      }
      const dir = await mkdtemp(join(tmpdir(), 'ipvs-lb-keepalived-'));
      try {
        const file = join(dir, 'keepalived.conf');
        await writeFile(file, text);
        const c = await checkKeepalivedConfig(file, { keepalivedPath: vrrp.keepalivedPath, netns: opts.netns });
        const lines = formatCheckMessages('keepalived.conf', c.messages);
        if (structured) ctx.out(render(opts.output, { config: text, check: { ok: c.ok, messages: lines } }, () => ''));
        else {
          for (const line of lines) ctx.err(line);
          ctx.err(c.ok ? 'keepalived -t: configuration OK' : 'keepalived -t: configuration refused');
        }
        if (!c.ok) ctx.exit(ExitCode.failed);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    });
}
