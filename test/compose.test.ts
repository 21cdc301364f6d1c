/**
 * docker-compose.yml, the Dockerfile, the compose floodgate config and the
 * Grafana provisioning, checked statically: no Docker engine runs here. Each
 * check ties the compose file to something real — the CLI's commands, the
 * config loader, files on disk, the datasource uid — so that renaming one
 * side without the other fails here instead of in someone's `docker compose up`.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, posix } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { parseActionsConfig } from '../src/actions/config.js';
import { loadConfig } from '../src/config/config.js';

const root = join(import.meta.dirname, '..');
const read = (rel: string) => readFileSync(join(root, rel), 'utf8');

interface Healthcheck {
  test?: string | string[];
  disable?: boolean;
}
interface Service {
  image?: string;
  build?: string | { context?: string; dockerfile?: string };
  command?: string | string[];
  entrypoint?: string | string[];
  environment?: Record<string, string | number | null> | string[];
  volumes?: (string | { type?: string; source?: string; target?: string; read_only?: boolean })[];
  ports?: (string | { published?: string | number; host_ip?: string; target?: number })[];
  depends_on?: string[] | Record<string, { condition?: string }>;
  healthcheck?: Healthcheck;
  container_name?: string;
  deploy?: { replicas?: number };
  ulimits?: Record<string, unknown>;
  group_add?: (string | number)[];
}
interface Compose {
  services: Record<string, Service>;
  volumes?: Record<string, unknown>;
}

const composeText = read('docker-compose.yml');
const compose = parse(composeText) as Compose;
const services = compose.services;
const svc = (name: string): Service => {
  const s = services[name];
  if (!s) throw new Error(`docker-compose.yml has no service '${name}'`);
  return s;
};

const infra = ['kafka', 'clickhouse', 'redis', 'grafana'] as const;
const floodgateServices = ['ship', 'detect', 'api'] as const;
const configPathInContainer = '/etc/floodgate/floodgate.yaml';
const composeConfigFile = 'deploy/floodgate.compose.yaml';
const config = loadConfig(join(root, composeConfigFile));

/** `${NAME}`, `${NAME:-default}`, `${NAME:?message}` … as compose interpolates them (`$$` is a literal `$`). */
interface Interpolation {
  name: string;
  op: '' | ':-' | '-' | ':?' | '?';
  arg: string;
}
function interpolations(text: string): Interpolation[] {
  const out: Interpolation[] = [];
  const re = /\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:-|-|:\?|\?)([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)/g;
  for (const m of text.matchAll(re)) {
    if (m[0] === '$$') continue;
    out.push({ name: m[1] ?? m[4] ?? '', op: (m[2] ?? '') as Interpolation['op'], arg: m[3] ?? '' });
  }
  return out;
}

function envOf(s: Service): Record<string, string> {
  const env = s.environment ?? {};
  if (Array.isArray(env)) {
    return Object.fromEntries(
      env.map((kv) => {
        const i = kv.indexOf('=');
        return i < 0 ? [kv, ''] : [kv.slice(0, i), kv.slice(i + 1)];
      }),
    );
  }
  return Object.fromEntries(Object.entries(env).map(([k, v]) => [k, v === null ? '' : String(v)]));
}

interface Mount {
  source: string;
  target: string;
  readOnly: boolean;
}
function mountsOf(s: Service): Mount[] {
  return (s.volumes ?? []).map((v) => {
    if (typeof v !== 'string') return { source: v.source ?? '', target: v.target ?? '', readOnly: v.read_only === true };
    // `${DIR:-/var/log}:/logs:ro`: take the default before splitting on ':'.
    const parts = v.replace(/\$\{[A-Za-z0-9_]+:-([^}]*)\}/g, '$1').split(':');
    return { source: parts[0] ?? '', target: parts[1] ?? '', readOnly: parts[2]?.split(',').includes('ro') ?? false };
  });
}
const isBind = (m: Mount) => m.source.startsWith('./') || m.source.startsWith('/');

function dependsOn(s: Service): Record<string, { condition?: string }> {
  const d = s.depends_on ?? {};
  return Array.isArray(d) ? Object.fromEntries(d.map((n) => [n, {}])) : d;
}

function healthText(s: Service): string {
  const t = s.healthcheck?.test;
  return Array.isArray(t) ? t.join(' ') : (t ?? '');
}

const secretName = /PASSWORD|TOKEN|SECRET|_AUTH$|APIKEY|API_KEY/i;

describe('docker-compose.yml services', () => {
  it('has Kafka, ClickHouse, Redis, Grafana and floodgate ship/detect/api', () => {
    for (const name of [...infra, ...floodgateServices]) expect(services[name], name).toBeDefined();
  });

  it('every service has a healthcheck that runs a probe', () => {
    for (const [name, s] of Object.entries(services)) {
      expect(s.healthcheck?.disable, name).not.toBe(true);
      const t = s.healthcheck?.test;
      expect(Array.isArray(t) ? ['CMD', 'CMD-SHELL'] : [], `${name}: healthcheck.test must be a CMD or CMD-SHELL list`).toContain(Array.isArray(t) ? t[0] : undefined);
      expect((t as string[]).length, name).toBeGreaterThan(1);
    }
  });

  it('healthchecks probe each server through its protocol, not an open port', () => {
    expect(healthText(svc('kafka'))).toMatch(/kafka-broker-api-versions\.sh --bootstrap-server kafka:19092/);
    expect(healthText(svc('clickhouse'))).toMatch(/http:\/\/127\.0\.0\.1:8123\/ping/);
    expect(healthText(svc('redis'))).toMatch(/redis-cli ping .*PONG/);
    expect(healthText(svc('grafana'))).toMatch(/http:\/\/127\.0\.0\.1:3000\/api\/health/);
    // api answers /health on api.listen; ship and detect on the address their --metrics-listen gives.
    expect(healthText(svc('api'))).toContain(`http://127.0.0.1:${config.api.listen.split(':').at(-1)}/health`);
    for (const name of ['ship', 'detect'] as const) {
      const command = svc(name).command as string[];
      const listen = command[command.indexOf('--metrics-listen') + 1] ?? '';
      expect(command, name).toContain('--metrics-listen');
      expect(listen, name).toMatch(/^0\.0\.0\.0:\d+$/);
      expect(healthText(svc(name)), name).toContain(`http://127.0.0.1:${listen.split(':')[1]}/health`);
    }
  });

  it('depends_on waits for healthy services that exist and have a healthcheck', () => {
    for (const [name, s] of Object.entries(services)) {
      for (const [dep, opts] of Object.entries(dependsOn(s))) {
        expect(services[dep], `${name} depends on unknown service ${dep}`).toBeDefined();
        expect(opts.condition, `${name} → ${dep}`).toBe('service_healthy');
        expect(services[dep]?.healthcheck?.test, `${dep} (needed by ${name}) has no healthcheck`).toBeDefined();
      }
    }
  });

  it('each floodgate service waits for exactly the servers its command uses', () => {
    const deps = (n: string) => Object.keys(dependsOn(svc(n))).sort();
    expect(deps('ship')).toEqual(['kafka']);
    expect(deps('detect')).toEqual(['clickhouse', 'kafka', 'redis']);
    expect(deps('api')).toEqual(['clickhouse', 'redis']);
    expect(deps('grafana')).toEqual(['clickhouse']);
  });

  it('pins every pulled image to a version (no latest, no bare name)', () => {
    for (const [name, s] of Object.entries(services)) {
      if (s.build !== undefined) continue; // built here from the Dockerfile
      const image = s.image ?? '';
      const tag = /:([^/:@]+)$/.exec(image)?.[1];
      expect(tag, `${name}: ${image} has no tag`).toBeDefined();
      expect(tag, `${name}: ${image}`).not.toMatch(/latest|^main$|^master$|^head$/i);
      expect(tag, `${name}: ${image} is not a version`).toMatch(/^\d+(\.\d+)*/);
    }
    expect(svc('kafka').image).toBe('apache/kafka:3.9.1');
    expect(svc('clickhouse').image).toMatch(/^clickhouse\/clickhouse-server:\d+\.\d+\.\d+\.\d+$/);
    expect(svc('redis').image).toMatch(/^redis:7(\.\d+)*$/);
    expect(svc('grafana').image).toMatch(/^grafana\/grafana:\d+\.\d+\.\d+$/);
  });

  it('ClickHouse has a data volume and a raised open-files limit', () => {
    const ch = svc('clickhouse');
    const data = mountsOf(ch).find((m) => m.target === '/var/lib/clickhouse');
    expect(data && compose.volumes && data.source in compose.volumes).toBe(true);
    expect(ch.ulimits?.nofile).toMatchObject({ soft: expect.any(Number), hard: expect.any(Number) });
    expect((ch.ulimits?.nofile as { soft: number }).soft).toBeGreaterThanOrEqual(65536);
  });

  it('Kafka runs KRaft on one node with an internal listener the compose config uses', () => {
    const env = envOf(svc('kafka'));
    expect(env.KAFKA_PROCESS_ROLES?.split(',').sort()).toEqual(['broker', 'controller']);
    expect(env.KAFKA_CONTROLLER_QUORUM_VOTERS).toBe(`${env.KAFKA_NODE_ID}@kafka:29093`);
    expect(env.KAFKA_LISTENERS).toContain('CONTROLLER://:29093');
    const advertised = env.KAFKA_ADVERTISED_LISTENERS?.split(',').map((l) => l.replace(/^[A-Z_]+:\/\//, '')) ?? [];
    expect(config.kafka.brokers.every((b) => advertised.includes(b)), `${config.kafka.brokers} vs ${advertised}`).toBe(true);
    // floodgate creates its topics with configured partitions; auto-creation would hide a typo.
    expect(env.KAFKA_AUTO_CREATE_TOPICS_ENABLE).toBe('false');
    // One broker: replicated internal topics would never become available.
    expect(env.KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR).toBe('1');
    expect(config.kafka.replicationFactor).toBe(1);
    // Kafka's cluster id is 16 bytes in URL-safe base64.
    const clusterId = interpolations(env.CLUSTER_ID ?? '')[0]?.arg ?? env.CLUSTER_ID ?? '';
    expect(Buffer.from(clusterId, 'base64url').length).toBe(16);
  });

  it('the compose floodgate config points at the compose services', () => {
    expect(config.kafka.brokers.map((b) => b.split(':')[0])).toEqual(['kafka']);
    expect(new URL(config.clickhouse.url).hostname).toBe('clickhouse');
    expect(new URL(config.redis.url).hostname).toBe('redis');
    expect(envOf(svc('clickhouse')).CLICKHOUSE_DB).toBe(config.clickhouse.database);
    expect(envOf(svc('clickhouse')).CLICKHOUSE_USER).toBe(config.clickhouse.username);
    expect(config.api.listen).toBe('0.0.0.0:8025');
  });
});

describe('floodgate services', () => {
  const bin = join(root, 'dist', 'src', 'cli', 'main.js');
  const help = spawnSync(process.execPath, [bin, '--help'], { encoding: 'utf8' });
  const cliCommands = new Set(
    help.stdout
      .split('\n')
      .map((l) => /^ {2}([a-z][a-z-]*)\s/.exec(l)?.[1])
      .filter((c): c is string => c !== undefined),
  );

  it('are built from the Dockerfile whose entrypoint is the package bin', () => {
    const pkg = JSON.parse(read('package.json')) as { bin: Record<string, string> };
    const dockerfile = read('Dockerfile');
    const entry = /^ENTRYPOINT\s+(\[.*\])\s*$/m.exec(dockerfile)?.[1];
    expect(entry).toBeDefined();
    expect(JSON.parse(entry ?? '[]')).toEqual(['node', posix.join('/app', pkg.bin.floodgate ?? '')]);
    for (const name of floodgateServices) {
      const b = svc(name).build;
      const ctx = typeof b === 'string' ? b : b?.context;
      const file = typeof b === 'string' ? 'Dockerfile' : (b?.dockerfile ?? 'Dockerfile');
      expect(ctx, name).toBe('.');
      expect(existsSync(join(root, file)), name).toBe(true);
      expect(svc(name).entrypoint, `${name} must keep the image's entrypoint`).toBeUndefined();
    }
  });

  it('run commands the CLI has, each with --config pointing at the mounted compose config', () => {
    expect(help.status, help.stderr).toBe(0);
    expect(cliCommands.size).toBeGreaterThan(3);
    for (const name of floodgateServices) {
      const command = svc(name).command;
      expect(Array.isArray(command), `${name}: command as a list (no shell)`).toBe(true);
      const [cmd, ...args] = command as string[];
      expect(cmd, name).toBe(name);
      expect([...cliCommands], `'floodgate ${cmd}' is not a command of the CLI`).toContain(cmd);
      expect(args.slice(0, 2)).toEqual(['--config', configPathInContainer]);
      const sub = spawnSync(process.execPath, [bin, cmd ?? '', '--help'], { encoding: 'utf8' });
      expect(sub.status, `floodgate ${cmd} --help: ${sub.stderr}`).toBe(0);
      for (const option of args.filter((a) => a.startsWith('--'))) expect(sub.stdout, `floodgate ${cmd} takes ${option}`).toContain(`${option} `);
      const mount = mountsOf(svc(name)).find((m) => m.target === configPathInContainer);
      expect(mount, `${name} mounts its config`).toEqual({ source: `./${composeConfigFile}`, target: configPathInContainer, readOnly: true });
    }
  });

  it('ship reads the log directory read-only and keeps its offsets in a volume', () => {
    const mounts = mountsOf(svc('ship'));
    const logs = mounts.find((m) => m.target === '/logs');
    expect(logs?.readOnly).toBe(true);
    for (const input of config.inputs) expect(input.path.startsWith('/logs/'), input.path).toBe(true);
    expect(config.inputs.length).toBeGreaterThan(0);
    const stateDir = posix.dirname(config.ship.statePath);
    const state = mounts.find((m) => m.target === stateDir);
    expect(state && compose.volumes && state.source in compose.volumes, `ship.statePath ${config.ship.statePath} is not on a named volume`).toBe(true);
    // Every other bind mount of a floodgate service is read-only.
    for (const name of floodgateServices) for (const m of mountsOf(svc(name)).filter(isBind)) expect(m.readOnly, `${name}: ${m.source}`).toBe(true);
  });

  it('detect can be scaled: no container name, no published port, replicas within the partitions', () => {
    const d = svc('detect');
    expect(d.container_name).toBeUndefined();
    expect(d.ports ?? []).toEqual([]);
    const replicas = d.deploy?.replicas ?? 1;
    expect(replicas).toBeGreaterThanOrEqual(1);
    expect(replicas).toBeLessThanOrEqual(config.kafka.partitions);
  });

  it('give each service the secrets its config names, and no others', () => {
    const needs: Record<(typeof floodgateServices)[number], string[]> = {
      ship: [],
      detect: [config.clickhouse.passwordEnv ?? '', config.redis.passwordEnv ?? ''],
      api: [config.clickhouse.passwordEnv ?? '', config.redis.passwordEnv ?? '', ...config.api.tokens.map((t) => t.tokenEnv ?? '')],
    };
    for (const name of floodgateServices) {
      const secrets = Object.keys(envOf(svc(name))).filter((k) => secretName.test(k)).sort();
      expect(secrets, name).toEqual([...needs[name]].filter(Boolean).sort());
    }
    expect(config.api.tokens.every((t) => t.token === undefined && t.tokenEnv !== undefined)).toBe(true);
    expect(config.clickhouse.passwordEnv).toBe('CLICKHOUSE_PASSWORD');
    expect(envOf(svc('clickhouse')).CLICKHOUSE_PASSWORD).toMatch(/^\$\{CLICKHOUSE_PASSWORD:\?/);
  });

  it('the compose config is valid and stays in dry-run', () => {
    expect(config.policy.dryRun).toBe(true);
    expect(parseActionsConfig(config.actions).dryRun).toBe(true);
  });

  it('the compose config is rejected when a key is misspelt (the loader really checks it)', () => {
    const misspelt = join(mkdtempSync(join(tmpdir(), 'fg-compose-')), 'floodgate.yaml');
    writeFileSync(misspelt, read(composeConfigFile).replace('brokers:', 'brokerz:'));
    const bad = spawnSync(process.execPath, [bin, 'config', 'check', misspelt], { encoding: 'utf8' });
    expect(bad.status).toBe(1);
    expect(bad.stderr).toContain("'brokerz'");
    const good = spawnSync(process.execPath, [bin, 'config', 'check', join(root, composeConfigFile)], { encoding: 'utf8' });
    expect(good.status, good.stderr).toBe(0);
  });
});

describe('secrets and exposure', () => {
  it('no secret has a value or a default in docker-compose.yml: each is a required ${VAR:?…}', () => {
    for (const [name, s] of Object.entries(services)) {
      for (const [key, value] of Object.entries(envOf(s))) {
        if (!secretName.test(key)) continue;
        const refs = interpolations(value);
        expect(refs.length, `${name}.${key} = ${value}`).toBe(1);
        expect(refs[0]?.op, `${name}.${key} must fail when unset (\${${refs[0]?.name}:?…})`).toBe(':?');
        expect(value.trim(), `${name}.${key}`).toMatch(/^\$\{[A-Za-z0-9_]+:\?[^}]*\}$/);
      }
    }
    for (const ref of interpolations(composeText)) {
      if (secretName.test(ref.name)) expect(ref.op, `\${${ref.name}} must not have a default`).toBe(':?');
    }
  });

  it('deploy/.env.example documents every variable the compose file reads, with secrets left empty', () => {
    const example = read('deploy/.env.example');
    const documented = new Map<string, string>();
    for (const line of example.split('\n')) {
      const m = /^#?\s*([A-Z][A-Z0-9_]*)=(.*)$/.exec(line);
      if (m) documented.set(m[1] ?? '', m[2] ?? '');
    }
    for (const ref of interpolations(composeText)) expect(documented.has(ref.name), `${ref.name} is not in deploy/.env.example`).toBe(true);
    for (const [k, v] of documented) if (secretName.test(k)) expect(v, `${k} must be empty in the example`).toBe('');
  });

  it('.env is ignored by git and kept out of the image', () => {
    const r = spawnSync('git', ['check-ignore', '-q', '.env'], { cwd: root });
    expect(r.status, '.env must be listed in .gitignore').toBe(0);
    const ignored = read('.dockerignore').split('\n').map((l) => l.trim());
    expect(ignored).toContain('.env');
    expect(ignored).toContain('node_modules');
  });

  it('publishes ports on the host loopback only; the API on 127.0.0.1', () => {
    for (const [name, s] of Object.entries(services)) {
      for (const p of s.ports ?? []) {
        const hostIp = typeof p === 'string' ? (p.match(/^(\d+\.\d+\.\d+\.\d+|\[[^\]]+\]):/)?.[1] ?? '') : (p.host_ip ?? '');
        expect(['127.0.0.1', '[::1]', '::1'], `${name} publishes ${JSON.stringify(p)} beyond loopback`).toContain(hostIp);
      }
    }
    const apiPort = config.api.listen.split(':').at(-1);
    expect(svc('api').ports).toEqual([`127.0.0.1:8025:${apiPort}`]);
    for (const name of ['kafka', 'clickhouse', 'redis'] as const) expect(svc(name).ports, name).toBeUndefined();
  });
});

describe('Dockerfile', () => {
  const dockerfile = read('Dockerfile');
  const stages = [...dockerfile.matchAll(/^FROM\s+(\S+)(?:\s+AS\s+(\S+))?/gim)].map((m) => ({ image: m[1] ?? '', name: m[2] ?? '' }));
  const runtime = dockerfile.slice(dockerfile.lastIndexOf('\nFROM '));

  it('builds in one stage and runs a slim, pinned Node 20 in another', () => {
    expect(stages.length).toBe(2);
    const version = /^ARG NODE_VERSION=(\S+)$/m.exec(dockerfile)?.[1];
    expect(version).toMatch(/^20\.\d+\.\d+$/);
    for (const s of stages) expect(s.image).toBe('node:${NODE_VERSION}-bookworm-slim');
    expect(dockerfile).toMatch(/npm ci\b/);
    expect(dockerfile).toMatch(/npm run build/);
  });

  it('ships production dependencies only and runs as an unprivileged user', () => {
    expect(dockerfile).toMatch(/npm prune --omit=dev/);
    expect(runtime).not.toMatch(/npm (ci|install)\b/);
    const user = /^USER\s+(\S+)/m.exec(runtime)?.[1] ?? '';
    expect(user).not.toBe('');
    expect(user.split(':')[0]).not.toMatch(/^(root|0)$/);
    expect(runtime).toMatch(/COPY --from=build \/app\/node_modules/);
  });

  it('copies only paths that exist, and none that .dockerignore drops', () => {
    const ignored = new Set(read('.dockerignore').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#')));
    for (const m of dockerfile.matchAll(/^COPY\s+(?!--from)(.+)$/gm)) {
      const parts = (m[1] ?? '').split(/\s+/).filter((p) => !p.startsWith('--'));
      for (const src of parts.slice(0, -1)) {
        expect(existsSync(join(root, src)), `COPY ${src}`).toBe(true);
        expect(ignored.has(src.split('/')[0] ?? ''), `COPY ${src} but .dockerignore drops it`).toBe(false);
      }
    }
  });
});

describe('Grafana provisioning and dashboards', () => {
  const grafana = svc('grafana');
  const mounts = mountsOf(grafana);
  const datasources = parse(read('grafana/provisioning/datasources/clickhouse.yaml')) as {
    datasources: { uid: string; type: string; jsonData: Record<string, unknown>; secureJsonData?: Record<string, string> }[];
  };
  const providers = parse(read('grafana/provisioning/dashboards/floodgate.yaml')) as { providers: { type: string; options: { path: string } }[] };
  const ds = datasources.datasources[0];
  const dashboardFiles = readdirSync(join(root, 'grafana', 'dashboards')).filter((f) => f.endsWith('.json'));

  /** Where a path inside the Grafana container comes from on the host. */
  function hostPathOf(containerPath: string): string | undefined {
    for (const m of mounts.filter(isBind)) {
      if (containerPath === m.target || containerPath.startsWith(m.target + '/')) return join(root, m.source, containerPath.slice(m.target.length));
    }
    return undefined;
  }

  it('mounts the provisioning folder read-only where Grafana reads it, from files that exist', () => {
    const prov = mounts.find((m) => m.target === '/etc/grafana/provisioning');
    expect(prov).toMatchObject({ source: './grafana/provisioning', readOnly: true });
    for (const m of Object.values(services).flatMap(mountsOf).filter((x) => x.source.startsWith('./'))) {
      expect(existsSync(join(root, m.source)), `${m.source} (mounted at ${m.target}) does not exist`).toBe(true);
    }
  });

  it('the dashboard provider reads a mounted folder that holds the dashboards', () => {
    expect(providers.providers).toHaveLength(1);
    const p = providers.providers[0];
    expect(p?.type).toBe('file');
    const host = hostPathOf(p?.options.path ?? '');
    expect(host, `${p?.options.path} is not mounted into grafana`).toBeDefined();
    expect(statSync(host ?? '').isDirectory()).toBe(true);
    expect(readdirSync(host ?? '').filter((f) => f.endsWith('.json')).sort()).toEqual([...dashboardFiles].sort());
  });

  it('the datasource is the ClickHouse plugin Grafana installs, on the compose server and database, as the read-only user', () => {
    expect(datasources.datasources).toHaveLength(1);
    expect(ds?.type).toBe('grafana-clickhouse-datasource');
    const preinstall = envOf(grafana).GF_PLUGINS_PREINSTALL_SYNC ?? envOf(grafana).GF_PLUGINS_PREINSTALL ?? envOf(grafana).GF_INSTALL_PLUGINS ?? '';
    expect(preinstall.split(',').map((p) => p.split('@')[0])).toContain(ds?.type);
    expect(ds?.jsonData).toMatchObject({ host: 'clickhouse', port: 8123, protocol: 'http', defaultDatabase: config.clickhouse.database, username: 'grafana' });
    // The password is expanded from Grafana's environment, which gets it from .env.
    const pw = ds?.secureJsonData?.password ?? '';
    const ref = /^\$\{?([A-Z_][A-Z0-9_]*)\}?$/.exec(pw)?.[1];
    expect(ref, 'datasource password must be an environment reference').toBeDefined();
    expect(envOf(grafana)[ref ?? '']).toMatch(/^\$\{[A-Z_]+:\?/);
    expect(envOf(svc('clickhouse'))[ref ?? '']).toBe(envOf(grafana)[ref ?? '']);
    const usersXml = read('deploy/clickhouse/users.d/grafana.xml');
    expect(usersXml).toContain(`<password from_env="${ref}"/>`);
    expect(usersXml).toMatch(/<readonly>[12]<\/readonly>/);
    expect(mountsOf(svc('clickhouse')).some((m) => m.source === './deploy/clickhouse/users.d/grafana.xml' && m.readOnly)).toBe(true);
  });

  it('the admin password has no default and anonymous access is off', () => {
    const env = envOf(grafana);
    expect(env.GF_SECURITY_ADMIN_PASSWORD).toMatch(/^\$\{GRAFANA_ADMIN_PASSWORD:\?/);
    expect(env.GF_AUTH_ANONYMOUS_ENABLED).toBe('false');
    expect(env.GF_USERS_ALLOW_SIGN_UP).toBe('false');
  });

  it('has the SOC overview and the account drill-down dashboards', () => {
    const titles = dashboardFiles.map((f) => (JSON.parse(read(`grafana/dashboards/${f}`)) as { title: string }).title);
    expect(titles.length).toBeGreaterThanOrEqual(2);
    const uids = dashboardFiles.map((f) => (JSON.parse(read(`grafana/dashboards/${f}`)) as { uid: string }).uid);
    expect(new Set(uids).size).toBe(uids.length);
  });

  for (const file of dashboardFiles) {
    it(`${file}: parses, unique panel ids, every query on the provisioned datasource`, () => {
      const dash = JSON.parse(read(`grafana/dashboards/${file}`)) as Dashboard;
      expect(dash.uid).toMatch(/^[A-Za-z0-9_-]{1,40}$/);
      expect(dash.title).toBeTruthy();
      const panels = allPanels(dash.panels);
      expect(panels.length).toBeGreaterThan(0);
      const ids = panels.map((p) => p.id);
      expect(ids.every((id) => Number.isInteger(id))).toBe(true);
      expect(new Set(ids).size, `duplicate panel ids in ${file}`).toBe(ids.length);
      for (const p of panels.filter((x) => x.type !== 'row' && x.type !== 'text')) {
        expect(p.datasource, `${file} panel ${p.id}`).toEqual({ type: ds?.type, uid: ds?.uid });
        expect(p.targets?.length, `${file} panel ${p.id} has no query`).toBeGreaterThan(0);
        for (const t of p.targets ?? []) {
          expect(t.datasource, `${file} panel ${p.id} ${t.refId}`).toEqual({ type: ds?.type, uid: ds?.uid });
          expect(t.editorType).toBe('sql');
          expect(t.rawSql?.trim()).toBeTruthy();
          // Tables are named with their database so the queries do not depend on the connection's default.
          for (const m of (t.rawSql ?? '').matchAll(/\b(?:FROM|JOIN)\s+([A-Za-z_][\w.]*)/gi)) {
            expect(m[1], `${file} panel ${p.id}: ${m[1]}`).toMatch(new RegExp(`^${config.clickhouse.database}\\.`));
          }
        }
      }
      const titles = panels.map((p) => p.title ?? '');
      expect(new Set(titles).size, `duplicate panel titles in ${file}`).toBe(titles.length);
      for (const p of panels.filter((x) => (x.targets ?? []).length > 0)) {
        const sql = (p.targets ?? []).map((t) => t.rawSql ?? '').join('\n');
        // A panel follows the time picker unless it says it shows the whole history (current lock state).
        if (!sql.includes('$__timeFilter(')) expect(p.description, `${file} panel '${p.title}' ignores the time range without saying so`).toMatch(/whole history/);
        // Buckets of $__interval_s over per-minute tables need at least a minute.
        if (sql.includes('$__interval_s')) expect(p.interval, `${file} panel '${p.title}'`).toBe('1m');
        // toStartOfInterval ($__timeInterval) and DateTime64 (the _ms macros) do not exist on ClickHouse 18.16.
        expect(sql, `${file} panel '${p.title}'`).not.toMatch(/\$__timeInterval|\$__\w+_ms\b|toStartOfInterval|DateTime64/);
      }
      for (const v of dash.templating?.list ?? []) {
        if (v.type === 'query') expect(v.datasource, `${file} variable ${v.name}`).toEqual({ type: ds?.type, uid: ds?.uid });
      }
    });
  }

  it('the account drill-down has an `account` variable its panels filter on', () => {
    const drill = dashboardFiles.map((f) => JSON.parse(read(`grafana/dashboards/${f}`)) as Dashboard).find((d) => d.templating?.list?.some((v) => v.name === 'account'));
    expect(drill).toBeDefined();
    const queries = allPanels(drill?.panels ?? []).flatMap((p) => p.targets ?? []).map((t) => t.rawSql ?? '');
    expect(queries.length).toBeGreaterThan(0);
    for (const q of queries) expect(q).toMatch(/\$\{account(:\w+)?\}|\$account\b/);
  });
});

interface Panel {
  id: number;
  type: string;
  title?: string;
  description?: string;
  interval?: string;
  datasource?: { type?: string; uid?: string };
  targets?: { refId: string; datasource?: { type?: string; uid?: string }; editorType?: string; rawSql?: string; queryType?: string; format?: number }[];
  panels?: Panel[];
}
interface Dashboard {
  uid: string;
  title: string;
  panels: Panel[];
  templating?: { list?: { name: string; type: string; datasource?: unknown; query?: unknown; definition?: string }[] };
}

function allPanels(panels: Panel[]): Panel[] {
  return panels.flatMap((p) => [p, ...allPanels(p.panels ?? [])]);
}
