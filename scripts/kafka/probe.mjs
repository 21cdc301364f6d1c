// Readiness probe for scripts/services.sh. An open port only says the JVM bound
// its socket; the broker is usable once it answers a metadata request, which is
// what kafkajs (the client floodgate uses) needs. Exit 0 and one JSON line when
// it answers, exit 1 with the reason on stderr otherwise.
import { createRequire } from 'node:module';
import process from 'node:process';
import { setTimeout } from 'node:timers';
import { URL } from 'node:url';

const require = createRequire(new URL('../../package.json', import.meta.url));
const { Kafka, logLevel } = require('kafkajs');

const broker = process.argv[2] ?? '127.0.0.1:9092';
// A probe must never hang the caller's wait loop.
setTimeout(() => {
  process.stderr.write(`no answer from ${broker} within 8s\n`);
  process.exit(1);
}, 8000).unref();

const kafka = new Kafka({
  clientId: 'floodgate-services-probe',
  brokers: [broker],
  logLevel: logLevel.NOTHING,
  connectionTimeout: 1000,
  requestTimeout: 3000,
  retry: { retries: 0 },
});
const admin = kafka.admin();
try {
  await admin.connect();
  const cluster = await admin.describeCluster();
  const topics = await admin.listTopics();
  process.stdout.write(`${JSON.stringify({ clusterId: cluster.clusterId, brokers: cluster.brokers.length, topics: topics.length })}\n`);
} catch (err) {
  process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
} finally {
  await admin.disconnect().catch(() => undefined);
}
