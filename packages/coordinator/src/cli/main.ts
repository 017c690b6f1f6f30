#!/usr/bin/env node
/** The `fedge` CLI: coordinator lifecycle (serve, demo) and noun groups for runs and agents. */
import { CommanderError } from 'commander';
import { FedgeError } from '@fedge/proto';

// The demo prints its own progress; the coordinator's info logs would bury it (FEDGE_LOG_LEVEL still wins).
if (process.argv[2] === 'demo') {
  // Agent processes keep informative logs in their files whatever the demo's own level.
  process.env.FEDGE_AGENT_LOG_LEVEL ??= process.env.FEDGE_LOG_LEVEL ?? 'info';
  process.env.FEDGE_LOG_LEVEL ??= 'error';
}
// Only `fedge serve` writes logs to stdout; every other command's stdout is its output (and serve's too with
// --format json). Decided before the logger is imported: it picks its file descriptor once.
const serveJson = process.argv.slice(3).some((a, i, all) => a === '--format=json' || (a === '--format' && all[i + 1] === 'json'));
if (process.argv[2] !== 'serve' || serveJson) process.env.FEDGE_LOG_FD ??= '2';
// Loaded after the log level is settled: the root logger reads it once at import.
const { createProgram } = await import('./program.js');
const program = createProgram();
program.exitOverride();

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) process.exit(err.exitCode);
  const msg = err instanceof FedgeError ? `error (${err.code}): ${err.message}` : `error: ${(err as Error).stack ?? String(err)}`;
  process.stderr.write(`${msg}\n`);
  // 3: the coordinator is unreachable; 4: the data directory cannot be written (E_STORAGE: full, read-only, I/O error).
  const exitCodes: Record<string, number> = { E_UNAVAILABLE: 3, E_STORAGE: 4 };
  process.exit(err instanceof FedgeError ? exitCodes[err.code] ?? 1 : 1);
}
