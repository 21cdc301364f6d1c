/**
 * `floodgate config schema` prints the JSON Schema of floodgate.yaml (for
 * editors: `# yaml-language-server: $schema=floodgate.schema.json`);
 * `floodgate config check FILE` validates a config and prints every
 * problem, or the effective settings that matter.
 */
import { configJsonSchema, loadConfig } from '../config/config.js';
import { usageError } from './args.js';

export const configHelp = `Usage: floodgate config schema
       floodgate config check FILE

schema  print the JSON Schema of floodgate.yaml
check   validate FILE: every problem is listed with its key; exit 1 if any`;

export async function configCommand(argv: string[]): Promise<number> {
  const [sub, file, ...rest] = argv;
  if (sub === undefined || sub === '--help' || sub === '-h') {
    process.stdout.write(configHelp + '\n');
    return sub === undefined ? 2 : 0;
  }
  if (rest.length > 0) throw usageError(`unexpected argument '${rest[0]}'`);
  if (sub === 'schema') {
    process.stdout.write(JSON.stringify(configJsonSchema(), null, 2) + '\n');
    return 0;
  }
  if (sub === 'check') {
    if (file === undefined) throw usageError('config check needs a FILE');
    const cfg = loadConfig(file);
    process.stdout.write(
      JSON.stringify({
        ok: true,
        file,
        dryRun: cfg.policy.dryRun,
        inputs: cfg.inputs.map((i) => i.path),
        detectors: cfg.enabledDetectors.map((d) => d.id),
        api: cfg.api.listen,
        tokens: cfg.api.tokens.map((t) => `${t.name}:${t.role}`),
        activeDns: cfg.dns.enabled,
      }) + '\n',
    );
    return 0;
  }
  throw usageError(`unknown config subcommand '${sub}' (schema, check)`);
}
