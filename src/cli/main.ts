#!/usr/bin/env node
/**
 * floodgate command line. Each subcommand lives in its own module; this
 * file only routes and turns errors into messages and exit codes.
 */
import { readFileSync } from 'node:fs';
import { FloodgateError } from '../core/errors.js';
import { apiCommand, apiHelp } from './api-command.js';
import { configCommand, configHelp } from './config-command.js';
import { demoCommand, demoHelp } from './demo-command.js';
import { parseCommand, parseHelp } from './parse-command.js';
import { replayCommand, replayHelp } from './replay-command.js';
import { runCommand, runHelp } from './run-command.js';
import { shipCommand, shipHelp } from './ship-command.js';
import { detectCommand, detectHelp } from './detect-command.js';

const commands: Record<string, { run: (argv: string[]) => Promise<number>; help: string; summary: string }> = {
  parse: { run: parseCommand, help: parseHelp, summary: 'parse logs into events (and messages) as JSON lines' },
  replay: { run: replayCommand, help: replayHelp, summary: 'run every detector and the policy over finished log files' },
  run: { run: runCommand, help: runHelp, summary: 'follow logs live: detect, act, store, serve the API (exactly-once across restarts)' },
  ship: { run: shipCommand, help: shipHelp, summary: 'distributed: follow logs and produce their lines to Kafka' },
  detect: { run: detectCommand, help: detectHelp, summary: 'distributed: a Kafka consumer-group worker: parse, detect, store in ClickHouse, act once' },
  api: { run: apiCommand, help: apiHelp, summary: 'distributed: the HTTP API served from ClickHouse and Redis' },
  config: { run: configCommand, help: configHelp, summary: 'print the config JSON Schema, or check a config file' },
  demo: { run: demoCommand, help: demoHelp, summary: 'run on the bundled demo log and explain what it shows' },
};

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

function mainHelp(): string {
  const lines = Object.entries(commands).map(([name, c]) => `  ${name.padEnd(12)}${c.summary}`);
  return `floodgate ${version()} — spot compromised mail accounts and spam floods in Zimbra/Postfix logs

Usage: floodgate <command> [options]

Commands:
${lines.join('\n')}

Run 'floodgate <command> --help' for a command's options.`;
}

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (cmd === undefined || cmd === '--help' || cmd === '-h' || cmd === 'help') {
    process.stdout.write(mainHelp() + '\n');
    return cmd === undefined ? 2 : 0;
  }
  if (cmd === '--version' || cmd === '-V') {
    process.stdout.write(version() + '\n');
    return 0;
  }
  const c = commands[cmd];
  if (!c) throw new FloodgateError('FG_USAGE', `unknown command '${cmd}' (try 'floodgate --help')`);
  return c.run(rest);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof FloodgateError) {
      process.stderr.write(`floodgate: ${err.message} [${err.code}]\n`);
      process.exitCode = err.code === 'FG_USAGE' ? 2 : 1;
    } else if (err instanceof TypeError && (err as NodeJS.ErrnoException).code?.startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`floodgate: ${err.message} [FG_USAGE]\n`);
      process.exitCode = 2;
    } else {
      process.stderr.write(`floodgate: internal error [FG_INTERNAL]: ${(err as Error)?.stack ?? String(err)}\n`);
      process.exitCode = 1;
    }
  },
);
