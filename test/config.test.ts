import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { configJsonSchema, loadConfig, validateConfig } from '../src/config/config.js';

describe('config', () => {
  it('has safe defaults: {} is valid, dry-run, loopback API, DNS off, every detector on', () => {
    const c = validateConfig({});
    expect(c.policy.dryRun).toBe(true);
    expect(c.api.listen).toBe('127.0.0.1:8025');
    expect(c.dns.enabled).toBe(false);
    expect(c.enabledDetectors.length).toBe(10);
  });

  it('the example config in the repo is valid', () => {
    const c = loadConfig(join(import.meta.dirname, '..', 'floodgate.example.yaml'));
    expect(c.inputs.map((i) => i.path)).toContain('/var/log/zimbra.log');
    expect(c.policy.dryRun).toBe(true);
  });

  it('reports every problem at once, each with its key and what is expected', () => {
    let msg = '';
    try {
      validateConfig({
        timezone: 'Mars/Base',
        site: { trustedNetworks: ['10.0.0.0/33'] },
        policy: { lockScore: 'high' },
        api: { listen: 'everywhere', tokens: [{ name: 'x', role: 'root', token: 'short' }] },
        detectors: { 'send-flood': { windowz: 1 }, 'no-such-detector': {} },
        frobnicate: true,
      });
    } catch (e) {
      msg = (e as Error).message;
      expect((e as { code: string }).code).toBe('FG_CONFIG_INVALID');
    }
    for (const key of ['timezone', 'site.trustedNetworks', 'policy.lockScore', 'api.listen', 'api.tokens[0].role', 'api.tokens[0].token', "'frobnicate'", "'no-such-detector'", "detectors.send-flood: unknown key(s) 'windowz'"]) {
      expect(msg).toContain(key);
    }
  });

  it('names the line of a YAML syntax error', () => {
    const dir = mkdtempSync(join(tmpdir(), 'fg-cfg-'));
    const f = join(dir, 'bad.yaml');
    writeFileSync(f, 'policy:\n  dryRun: true\n   lockScore: 5\n');
    expect(() => loadConfig(f)).toThrow(/not valid YAML \(line \d+/);
  });

  it('can disable a detector and configure another', () => {
    const c = validateConfig({ detectors: { 'plaintext-auth': { enabled: false }, 'bounce-ratio': { minRecipients: 50 } } });
    expect(c.enabledDetectors.map((d) => d.id)).not.toContain('plaintext-auth');
    expect((c.detectorConfigs['bounce-ratio'] as { minRecipients: number }).minRecipients).toBe(50);
  });

  it('generates a JSON Schema that documents every detector section', () => {
    const s = configJsonSchema() as { properties: { detectors: { properties: Record<string, { properties: Record<string, unknown> }> } } };
    expect(Object.keys(s.properties.detectors.properties)).toHaveLength(10);
    expect(s.properties.detectors.properties['send-flood']!.properties.enabled).toBeDefined();
  });
});
