#!/usr/bin/env node
// The CLI is compiled from TypeScript; `npm test`, `npm run build` or `npm run setup` produce dist/.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const entry = new URL('../dist/src/cli/main.js', import.meta.url);
if (!existsSync(fileURLToPath(entry))) {
  process.stderr.write('ipvs-lb: not built yet (dist/src/cli/main.js is missing); run `npm run setup` first\n');
  process.exit(3);
}
const { main } = await import(entry.href);
process.exitCode = await main(process.argv);
