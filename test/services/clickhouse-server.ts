// Helpers for the ClickHouse suites: the shared server (scripts/services.sh
// starts it on 127.0.0.1:8123; FLOODGATE_TEST_CLICKHOUSE points elsewhere; a
// suite fails, never skips, when it does not answer), a throw-away database
// per file, and a private clickhouse-server on a free port for the outage
// tests, so the shared one is never stopped.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../../bench/kafka-deployment.js';
import { createClickhouseClient, type ChClient } from '../../src/clickhouse/client.js';
import { sqlIdentifier } from '../../src/clickhouse/escape.js';
import { clickhouseSchema, type ClickhouseConfig } from '../../src/config/distributed.js';

export const SHARED_CLICKHOUSE_URL = process.env.FLOODGATE_TEST_CLICKHOUSE ?? 'http://127.0.0.1:8123';

export function testDatabase(): string {
  return `fgtest_${randomBytes(6).toString('hex')}`;
}

export function chConfig(over: Partial<ClickhouseConfig> = {}): ClickhouseConfig {
  return clickhouseSchema.parse({ url: SHARED_CLICKHOUSE_URL, ...over });
}

/** A client on the shared server; throws (the suite fails) when it does not answer. */
export async function sharedClient(database: string): Promise<ChClient> {
  const client = createClickhouseClient(chConfig({ database }));
  if (!(await client.ping())) {
    throw new Error(`no ClickHouse at ${SHARED_CLICKHOUSE_URL}: run 'bash scripts/services.sh up' (or set FLOODGATE_TEST_CLICKHOUSE)`);
  }
  return client;
}

export async function dropDatabase(client: ChClient, database: string): Promise<void> {
  await client.command(`DROP DATABASE IF EXISTS ${sqlIdentifier(database)}`);
}

export { freePort };

/** A user with a password full of characters that need care, on private servers. */
export const PRIVATE_USER = 'fgauth';
export const PRIVATE_PASSWORD = `p'a"ss\\wörd $(x) <&>`;
const xmlText = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

const serverBinary = ['/usr/sbin/clickhouse-server', '/usr/bin/clickhouse-server'].find((p) => existsSync(p));

/**
 * A clickhouse-server of its own (data in a temp dir, loopback, free ports)
 * that a test may kill and start again with its data intact, like a crashed
 * and restarted host.
 */
export class PrivateClickhouse {
  readonly dir = mkdtempSync(join(tmpdir(), 'fg-ch-'));
  private proc: ChildProcess | undefined;

  constructor(
    readonly httpPort: number,
    readonly tcpPort: number,
  ) {
    mkdirSync(join(this.dir, 'data'));
    mkdirSync(join(this.dir, 'tmp'));
    writeFileSync(
      join(this.dir, 'config.xml'),
      `<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><log>${this.dir}/server.log</log><errorlog>${this.dir}/err.log</errorlog><size>10M</size><count>1</count></logger>
  <http_port>${httpPort}</http_port>
  <tcp_port>${tcpPort}</tcp_port>
  <listen_host>127.0.0.1</listen_host>
  <max_concurrent_queries>50</max_concurrent_queries>
  <uncompressed_cache_size>16777216</uncompressed_cache_size>
  <mark_cache_size>16777216</mark_cache_size>
  <path>${this.dir}/data/</path>
  <tmp_path>${this.dir}/tmp/</tmp_path>
  <user_files_path>${this.dir}/user_files/</user_files_path>
  <users_config>${this.dir}/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <timezone>UTC</timezone>
</yandex>
`,
    );
    writeFileSync(
      join(this.dir, 'users.xml'),
      `<?xml version="1.0"?>
<yandex>
  <profiles><default><max_memory_usage>1000000000</max_memory_usage></default></profiles>
  <users>
    <default><password></password><networks><ip>127.0.0.1</ip></networks><profile>default</profile><quota>default</quota></default>
    <${PRIVATE_USER}><password>${xmlText(PRIVATE_PASSWORD)}</password><networks><ip>127.0.0.1</ip></networks><profile>default</profile><quota>default</quota></${PRIVATE_USER}>
  </users>
  <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors><result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time></interval></default></quotas>
</yandex>
`,
    );
  }

  static async create(): Promise<PrivateClickhouse> {
    return new PrivateClickhouse(await freePort(), await freePort());
  }

  get url(): string {
    return `http://127.0.0.1:${this.httpPort}`;
  }

  async start(): Promise<void> {
    if (!serverBinary) throw new Error('clickhouse-server is not installed: run bash scripts/services.sh up');
    this.proc = spawn(serverBinary, [`--config-file=${join(this.dir, 'config.xml')}`], { stdio: 'ignore', detached: false });
    await this.waitFor(true);
  }

  /** SIGKILL: the server vanishes mid-request, as in a crash. */
  async kill(): Promise<void> {
    const p = this.proc;
    this.proc = undefined;
    if (p && p.exitCode === null) {
      const exited = new Promise((r) => p.once('exit', r));
      p.kill('SIGKILL');
      await exited;
    }
    await this.waitFor(false);
  }

  async dispose(): Promise<void> {
    await this.kill();
    rmSync(this.dir, { recursive: true, force: true });
  }

  private async waitFor(up: boolean): Promise<void> {
    for (let i = 0; i < 300; i++) {
      const answers = await fetch(`${this.url}/ping`, { signal: AbortSignal.timeout(1000) }).then(
        async (r) => r.ok && (await r.text()).includes('Ok'),
        () => false,
      );
      if (answers === up) return;
      await new Promise((res) => setTimeout(res, 100));
    }
    throw new Error(`private ClickHouse on ${this.httpPort} did not ${up ? 'start' : 'stop'} (log: ${this.dir}/err.log)`);
  }
}
