#!/usr/bin/env bash
# Real Kafka, ClickHouse and Redis on loopback for floodgate's distributed mode
# (tests, CI, people), and a private Postfix for the hold/release tests.
# Usage: scripts/services.sh up|down|status [kafka|clickhouse|redis|postfix ...]
# (no names = all).
#
# - up: installs what is missing, starts what is not running, waits until each
#   service really answers. Idempotent and quick when everything already runs.
# - down: stops only what this script started (pid files in the services dir);
#   a service that was already running on the machine is left alone.
# - status: one line per service: up/down, address, version, who started it.
#
# State lives in ${FLOODGATE_SERVICES_DIR:-<repo>/.services}.
#
# Postfix: Debian's package (installed with debconf's "No configuration", so
# the machine's own Postfix stays unconfigured and stopped), run as a private
# instance: its config, queue and log (maillog_file) in the services dir, one
# listener, SASL submission on 127.0.0.1:10587 (Dovecot's auth, a private
# instance too, with two test accounts), mail also in through sendmail -C, and
# every outside destination relayed to the closed port 127.0.0.1:9, so mail
# stays in the deferred queue for the tests to hold and release. Its commands
# reach it with MAIL_CONFIG=<services dir>/postfix (root may name any config dir).
# FLOODGATE_SERVICES_TIMEOUT (s, default 180) bounds each wait. The ports can
# be moved (FLOODGATE_KAFKA_PORT, FLOODGATE_KAFKA_CONTROLLER_PORT,
# FLOODGATE_CLICKHOUSE_HTTP_PORT, FLOODGATE_CLICKHOUSE_TCP_PORT,
# FLOODGATE_REDIS_PORT, FLOODGATE_POSTFIX_SMTP_PORT) to run a second, private set next to the shared one,
# e.g. for a test that stops a service; give that set its own services dir.
#
# ClickHouse keeps its data in memory (a directory on the /dev/shm tmpfs)
# when that tmpfs has 2 GiB free, else on disk in the services dir;
# FLOODGATE_CLICKHOUSE_STORAGE=memory|disk forces one (memory fails when there
# is no tmpfs). Why: ClickHouse 18.16 writes every insert as a new part of
# 2 files per column and merges parts into new ones, thousands of files a
# minute; on a root filesystem without a journal (this workplace's VMs) ext4
# scans recently deleted inodes on each create, and at 10,000 lines/s that
# was half of ClickHouse's CPU, spent in the kernel. The data is for tests,
# CI and trying things out: it survives `down` and `up`, not a reboot.
#
# ClickHouse's allocator (jemalloc) keeps the memory it freed instead of
# giving it back to the kernel (MALLOC_CONF narenas:2,dirty_decay_ms:-1,
# muzzy_decay_ms:-1); FLOODGATE_CLICKHOUSE_MALLOC_CONF replaces that, and set
# empty it leaves jemalloc's defaults. Why: by default each insert and merge
# took fresh pages from the kernel, 1.1-1.5 M page faults in one bench
# throughput run; in these VMs a fault costs microseconds, and 38-40% of
# ClickHouse's CPU was in the kernel. Kept, the same run faults 60-220 k
# times and ClickHouse takes 8-11 us of CPU per line instead of 16-18. The
# price: the server holds the most memory it ever used until `down` (1.3 GB
# after two throughput runs, 3 GB after a day of bench runs).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SVC_DIR=${FLOODGATE_SERVICES_DIR:-$ROOT/.services}
TIMEOUT=${FLOODGATE_SERVICES_TIMEOUT:-180}
ALL_SERVICES=(kafka clickhouse redis postfix)

KAFKA_PORT=${FLOODGATE_KAFKA_PORT:-9092}
KAFKA_CONTROLLER_PORT=${FLOODGATE_KAFKA_CONTROLLER_PORT:-9093}
KAFKA_POM=$ROOT/scripts/kafka/pom.xml
KAFKA_DIR=$SVC_DIR/kafka
KAFKA_PID=$KAFKA_DIR/kafka.pid
KAFKA_LOG=$KAFKA_DIR/kafka.log

CH_HTTP_PORT=${FLOODGATE_CLICKHOUSE_HTTP_PORT:-8123}
CH_TCP_PORT=${FLOODGATE_CLICKHOUSE_TCP_PORT:-9000}
CH_DIR=$SVC_DIR/clickhouse
CH_PID=$CH_DIR/clickhouse.pid
CH_STORAGE=${FLOODGATE_CLICKHOUSE_STORAGE:-auto}
CH_MEMORY_MIN_KB=$((2 * 1024 * 1024))
CH_MALLOC_CONF=${FLOODGATE_CLICKHOUSE_MALLOC_CONF-narenas:2,dirty_decay_ms:-1,muzzy_decay_ms:-1}
CH_LOG=$CH_DIR/log/clickhouse-server.log
CH_ERRLOG=$CH_DIR/log/clickhouse-server.err.log

PF_DIR=$SVC_DIR/postfix
PF_SMTP_PORT=${FLOODGATE_POSTFIX_SMTP_PORT:-10587}

REDIS_PORT=${FLOODGATE_REDIS_PORT:-6379}
REDIS_PID=$SVC_DIR/redis.pid
REDIS_LOG=$SVC_DIR/redis.log

say() { printf 'services: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

case $CH_STORAGE in
  memory | disk | auto) ;;
  *) die "FLOODGATE_CLICKHOUSE_STORAGE must be memory, disk or auto (got '$CH_STORAGE')" ;;
esac

# A connect() on loopback: true when something listens on the port.
port_open() { timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }

# The pid in $1 when that process is alive and its command line contains $2
# (guards against a stale pid file whose number was reused by another process).
live_pid() {
  local pid
  [ -s "$1" ] || return 1
  pid=$(tr -dc '0-9' <"$1")
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$2" || return 1
  printf '%s' "$pid"
}

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
APT_UPDATED=
apt_install() {
  say "installing $* (apt-get)"
  if [ -z "$APT_UPDATED" ]; then as_root apt-get update -qq >&2; APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >&2
}
need() { # need COMMAND PACKAGE...
  local cmd=$1; shift
  command -v "$cmd" >/dev/null 2>&1 || apt_install "$@"
  command -v "$cmd" >/dev/null 2>&1 || die "$cmd still missing after installing $*"
}

# wait_ready NAME LOG CHECK PIDFILE PATTERN: poll CHECK until it succeeds; fail
# early when the process we started has died, and name the log either way.
wait_ready() {
  local name=$1 log=$2 check=$3 pidfile=$4 pattern=$5 start=$SECONDS
  until "$check" >/dev/null 2>&1; do
    if ! live_pid "$pidfile" "$pattern" >/dev/null; then
      [ -f "$log" ] && tail -n 20 "$log" >&2
      die "$name exited during start-up; see $log"
    fi
    if (( SECONDS - start >= TIMEOUT )); then
      [ -f "$log" ] && tail -n 20 "$log" >&2
      die "$name did not answer within ${TIMEOUT}s; see $log"
    fi
    sleep 0.3
  done
  say "$name up in $((SECONDS - start))s"
}

# A process that has exited but not been reaped yet (a zombie: some
# containers' pid 1 never reaps) counts as gone.
running() { [ -r "/proc/$1/stat" ] && ! grep -qE '^[0-9]+ \(.*\) Z ' "/proc/$1/stat" 2>/dev/null; }

# stop_pid NAME PIDFILE PATTERN: SIGTERM, wait for a clean exit, SIGKILL as a last resort.
stop_pid() {
  local name=$1 pidfile=$2 pattern=$3 pid i
  pid=$(live_pid "$pidfile" "$pattern") || { rm -f "$pidfile"; return 0; }
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 600; i++)); do
    running "$pid" || break
    sleep 0.1
  done
  if running "$pid"; then
    say "$name (pid $pid) ignored SIGTERM for 60s; killing it"
    kill -KILL "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do running "$pid" || break; sleep 0.1; done
  fi
  rm -f "$pidfile"
  say "$name stopped"
}

# ---------------------------------------------------------------- kafka

kafka_jar() { compgen -G "$KAFKA_DIR/libs/kafka_2.13-*.jar" | head -n 1; }
kafka_version() { local j; j=$(kafka_jar) || return 1; j=${j##*/kafka_2.13-}; printf '%s' "${j%.jar}"; }
kafka_ours() { live_pid "$KAFKA_PID" "$KAFKA_DIR/server.properties"; }

kafka_probe() {
  if [ -f "$ROOT/node_modules/kafkajs/package.json" ] && command -v node >/dev/null; then
    node "$ROOT/scripts/kafka/probe.mjs" "127.0.0.1:$KAFKA_PORT"
  else
    # Before `npm ci` there is no kafkajs: ask with Kafka's own tool instead (slower JVM start).
    port_open "$KAFKA_PORT" && java -cp "$KAFKA_DIR/libs/*" kafka.admin.BrokerApiVersionsCommand \
      --bootstrap-server "127.0.0.1:$KAFKA_PORT" >/dev/null 2>&1
  fi
}
kafka_ready() { port_open "$KAFKA_PORT" && kafka_probe >/dev/null; }

# Cheap check for a broker we already saw ready: an ApiVersions v0 request
# (api key 18, correlation id 1, client id "fg") must come back as a response
# frame carrying correlation id 1. No JVM or Node start, so `up` stays fast.
kafka_answers() {
  local reply
  reply=$(timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$KAFKA_PORT
    printf '\\x00\\x00\\x00\\x0c\\x00\\x12\\x00\\x00\\x00\\x00\\x00\\x01\\x00\\x02fg' >&3
    head -c 8 <&3" 2>/dev/null | od -An -tx1 | tr -d ' \n') || return 1
  [ "${reply:8:8}" = 00000001 ]
}

kafka_fetch_jars() {
  local stamp want
  want=$(sha256sum "$KAFKA_POM" | cut -d' ' -f1)
  stamp=$KAFKA_DIR/libs/.pom.sha256
  [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && return 0
  need java openjdk-17-jre-headless
  need mvn maven
  say "fetching Kafka jars from Maven Central (mvn dependency:copy-dependencies)"
  rm -rf "$KAFKA_DIR/libs.new"
  mvn -q -B -f "$KAFKA_POM" dependency:copy-dependencies \
    -DoutputDirectory="$KAFKA_DIR/libs.new" -DincludeScope=runtime >&2 \
    || die "mvn could not fetch the Kafka jars (pom: $KAFKA_POM)"
  printf '%s\n' "$want" >"$KAFKA_DIR/libs.new/.pom.sha256"
  rm -rf "$KAFKA_DIR/libs" "$KAFKA_DIR/kafka.jsa"
  mv "$KAFKA_DIR/libs.new" "$KAFKA_DIR/libs"
}

kafka_write_config() {
  cat >"$KAFKA_DIR/server.properties" <<EOF
# Generated by scripts/services.sh: one node that is broker and KRaft controller.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$KAFKA_DIR/data
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=10
group.initial.rebalance.delay.ms=0
# floodgate creates its topics with the partitions and retention it wants.
auto.create.topics.enable=false
delete.topic.enable=true
num.network.threads=2
num.io.threads=4
log.retention.hours=24
log.segment.bytes=268435456
EOF
  cat >"$KAFKA_DIR/log4j.properties" <<EOF
log4j.rootLogger=INFO, file
log4j.appender.file=org.apache.log4j.RollingFileAppender
log4j.appender.file.File=$KAFKA_LOG
log4j.appender.file.MaxFileSize=20MB
log4j.appender.file.MaxBackupIndex=2
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.state.change.logger=WARN
log4j.logger.kafka.log.LogCleaner=WARN
log4j.logger.org.apache.kafka.storage.internals.log=WARN
EOF
}

kafka_up() {
  if kafka_ours >/dev/null; then
    kafka_answers || wait_ready kafka "$KAFKA_LOG" kafka_ready "$KAFKA_PID" "$KAFKA_DIR/server.properties"
    return 0
  fi
  if port_open "$KAFKA_PORT" || port_open "$KAFKA_CONTROLLER_PORT"; then
    kafka_ready || die "kafka: 127.0.0.1:$KAFKA_PORT/$KAFKA_CONTROLLER_PORT taken by a process services.sh did not start, and it does not answer as a Kafka broker"
    say "kafka: using the broker already running on 127.0.0.1:$KAFKA_PORT (not started by services.sh)"
    return 0
  fi
  mkdir -p "$KAFKA_DIR"
  need java openjdk-17-jre-headless
  kafka_fetch_jars
  kafka_write_config
  if [ ! -f "$KAFKA_DIR/data/meta.properties" ]; then
    [ -s "$KAFKA_DIR/cluster.id" ] || head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n' >"$KAFKA_DIR/cluster.id"
    say "kafka: formatting storage (cluster id $(cat "$KAFKA_DIR/cluster.id"))"
    java -cp "$KAFKA_DIR/libs/*" -Dlog4j.configuration="file:$KAFKA_DIR/log4j.properties" kafka.tools.StorageTool format \
      -t "$(cat "$KAFKA_DIR/cluster.id")" -c "$KAFKA_DIR/server.properties" >>"$KAFKA_DIR/kafka.out" 2>&1 \
      || { tail -n 20 "$KAFKA_DIR/kafka.out" >&2; die "kafka: formatting storage failed; see $KAFKA_DIR/kafka.out"; }
  fi
  say "kafka: starting broker $(kafka_version) (log $KAFKA_LOG)"
  # Class loading is most of the broker's start-up CPU: the first run records
  # a class-data archive when it exits, later runs map it (about a quarter
  # less CPU to ready, which matters for the tests that restart the broker).
  local cds=(-XX:ArchiveClassesAtExit="$KAFKA_DIR/kafka.jsa")
  [ -s "$KAFKA_DIR/kafka.jsa" ] && cds=(-XX:SharedArchiveFile="$KAFKA_DIR/kafka.jsa")
  # setsid: the broker must outlive the shell or test runner that started it;
  # 9>&- keeps our lock descriptor out of it.
  setsid java -Xms256m -Xmx768m -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true "${cds[@]}" \
    -Dlog4j.configuration="file:$KAFKA_DIR/log4j.properties" -Dkafka.logs.dir="$KAFKA_DIR" \
    -cp "$KAFKA_DIR/libs/*" kafka.Kafka "$KAFKA_DIR/server.properties" \
    </dev/null >>"$KAFKA_DIR/kafka.out" 2>&1 9>&- &
  printf '%s\n' "$!" >"$KAFKA_PID"
  wait_ready kafka "$KAFKA_LOG" kafka_ready "$KAFKA_PID" "$KAFKA_DIR/server.properties"
}

kafka_down() { stop_pid kafka "$KAFKA_PID" "$KAFKA_DIR/server.properties"; }

kafka_status() {
  local state=down version=- who=- pid
  if kafka_ready >/dev/null 2>&1; then
    state=up
    if pid=$(kafka_ours); then version=$(kafka_version); who="services.sh (pid $pid)"; else version='?'; who=external; fi
  elif pid=$(kafka_ours); then
    state=starting; who="services.sh (pid $pid)"
  fi
  status_line kafka "$state" "127.0.0.1:$KAFKA_PORT" "$version" "$who"
}

# ----------------------------------------------------------- clickhouse

ch_query() { curl -sf --max-time 5 "http://127.0.0.1:$CH_HTTP_PORT/" --data-binary "$1"; }
ch_ready() { [ "$(curl -s --max-time 2 "http://127.0.0.1:$CH_HTTP_PORT/ping")" = "Ok." ] && ch_query 'SELECT version()' >/dev/null; }
ch_ours() { live_pid "$CH_PID" "$CH_DIR/config.xml"; }

# The data dir in memory for this services dir: one per set of services.
ch_memory_dir() { printf '/dev/shm/floodgate-clickhouse-%s-%s' "$(id -u)" "$(printf '%s' "$CH_DIR" | cksum | cut -d' ' -f1)"; }

# True when /dev/shm is a tmpfs with at least $1 KiB free.
shm_has_room() {
  [ "$(stat -f -c %T /dev/shm 2>/dev/null)" = tmpfs ] || return 1
  local avail
  avail=$(df -Pk /dev/shm 2>/dev/null | awk 'NR == 2 { print $4 }')
  [ -n "$avail" ] && [ "$avail" -ge "$1" ]
}

# Where ClickHouse's data goes on this start (see the header).
ch_data_dir() {
  case $CH_STORAGE in
    disk) printf '%s/data' "$CH_DIR" ;;
    memory)
      shm_has_room 1 || die "clickhouse: FLOODGATE_CLICKHOUSE_STORAGE=memory, but /dev/shm is not a tmpfs with room"
      printf '%s' "$(ch_memory_dir)" ;;
    *) if shm_has_room "$CH_MEMORY_MIN_KB"; then printf '%s' "$(ch_memory_dir)"; else printf '%s/data' "$CH_DIR"; fi ;;
  esac
}

# The data dir of the running (or last) server, from its config.
ch_data_in_use() { sed -n 's|^ *<path>\(.*\)/</path>$|\1|p' "$CH_DIR/config.xml" 2>/dev/null; }

# ch_data_in_use as "memory" or "disk".
ch_storage_in_use() {
  case $(ch_data_in_use) in
    /dev/shm/*) printf 'memory' ;;
    '') printf '-' ;;
    *) printf 'disk' ;;
  esac
}

ch_write_config() {
  local data
  data=$(ch_data_dir)
  mkdir -p "$data" "$CH_DIR/tmp" "$CH_DIR/log" "$CH_DIR/user_files" "$CH_DIR/format_schemas"
  cat >"$CH_DIR/config.xml" <<EOF
<?xml version="1.0"?>
<!-- Generated by scripts/services.sh: a loopback-only ClickHouse with its own data dir. -->
<yandex>
  <logger>
    <level>information</level>
    <log>$CH_LOG</log>
    <errorlog>$CH_ERRLOG</errorlog>
    <size>50M</size>
    <count>3</count>
  </logger>
  <listen_host>127.0.0.1</listen_host>
  <http_port>$CH_HTTP_PORT</http_port>
  <tcp_port>$CH_TCP_PORT</tcp_port>
  <max_connections>256</max_connections>
  <keep_alive_timeout>10</keep_alive_timeout>
  <max_concurrent_queries>64</max_concurrent_queries>
  <uncompressed_cache_size>268435456</uncompressed_cache_size>
  <mark_cache_size>268435456</mark_cache_size>
  <path>$data/</path>
  <tmp_path>$CH_DIR/tmp/</tmp_path>
  <user_files_path>$CH_DIR/user_files/</user_files_path>
  <format_schema_path>$CH_DIR/format_schemas/</format_schema_path>
  <users_config>$CH_DIR/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <timezone>UTC</timezone>
  <mlock_executable>false</mlock_executable>
  <builtin_dictionaries_reload_interval>3600</builtin_dictionaries_reload_interval>
  <max_session_timeout>3600</max_session_timeout>
  <default_session_timeout>60</default_session_timeout>
  <!-- Tests drop and recreate tables freely. -->
  <max_table_size_to_drop>0</max_table_size_to_drop>
  <max_partition_size_to_drop>0</max_partition_size_to_drop>
</yandex>
EOF
  cat >"$CH_DIR/users.xml" <<EOF
<?xml version="1.0"?>
<yandex>
  <profiles>
    <default>
      <max_memory_usage>1000000000</max_memory_usage>
      <max_memory_usage_for_all_queries>2000000000</max_memory_usage_for_all_queries>
      <use_uncompressed_cache>0</use_uncompressed_cache>
      <load_balancing>random</load_balancing>
    </default>
  </profiles>
  <users>
    <default>
      <password></password>
      <networks>
        <ip>127.0.0.1</ip>
        <ip>::1</ip>
      </networks>
      <profile>default</profile>
      <quota>default</quota>
    </default>
  </users>
  <quotas>
    <default>
      <interval>
        <duration>3600</duration>
        <queries>0</queries>
        <errors>0</errors>
        <result_rows>0</result_rows>
        <read_rows>0</read_rows>
        <execution_time>0</execution_time>
      </interval>
    </default>
  </quotas>
</yandex>
EOF
}

ch_up() {
  if ch_ours >/dev/null; then
    ch_ready || wait_ready clickhouse "$CH_ERRLOG" ch_ready "$CH_PID" "$CH_DIR/config.xml"
    return 0
  fi
  if port_open "$CH_HTTP_PORT" || port_open "$CH_TCP_PORT"; then
    ch_ready || die "clickhouse: 127.0.0.1:$CH_HTTP_PORT/$CH_TCP_PORT taken by a process services.sh did not start, and it does not answer as ClickHouse"
    say "clickhouse: using the server already running on 127.0.0.1:$CH_HTTP_PORT (not started by services.sh)"
    return 0
  fi
  need clickhouse-server clickhouse-server clickhouse-client
  need curl curl
  ch_write_config
  local data
  data=$(ch_data_in_use)
  say "clickhouse: starting; data $([ "$(ch_storage_in_use)" = memory ] && echo in memory || echo on disk): $data (log $CH_LOG)"
  if [ -n "$CH_MALLOC_CONF" ]; then
    say "clickhouse: its allocator keeps the memory it frees until down (MALLOC_CONF=$CH_MALLOC_CONF; FLOODGATE_CLICKHOUSE_MALLOC_CONF= for jemalloc's defaults)"
  fi
  if [ "$data" != "$CH_DIR/data" ] && [ -d "$CH_DIR/data/metadata" ]; then
    say "clickhouse: the data on disk in $CH_DIR/data is left as it is (FLOODGATE_CLICKHOUSE_STORAGE=disk serves it again)"
  fi
  rm -f "$CH_PID"
  # --daemon forks and writes the pid file itself; cd so that nothing lands in
  # the caller's directory.
  (cd "$CH_DIR" && MALLOC_CONF=$CH_MALLOC_CONF clickhouse-server --config-file="$CH_DIR/config.xml" --pid-file="$CH_PID" --daemon \
    </dev/null >>"$CH_DIR/log/stdout.log" 2>&1 9>&-) \
    || { tail -n 20 "$CH_ERRLOG" >&2 2>/dev/null; die "clickhouse: clickhouse-server failed to start; see $CH_ERRLOG"; }
  local i
  for ((i = 0; i < 50; i++)); do [ -s "$CH_PID" ] && break; sleep 0.1; done
  wait_ready clickhouse "$CH_ERRLOG" ch_ready "$CH_PID" "$CH_DIR/config.xml"
}

ch_down() { stop_pid clickhouse "$CH_PID" "$CH_DIR/config.xml"; }

ch_status() {
  local state=down version=- who=- pid
  if ch_ready; then
    state=up
    version=$(ch_query 'SELECT version()')
    if pid=$(ch_ours); then who="services.sh (pid $pid)"; else who=external; fi
  elif pid=$(ch_ours); then
    state=starting; who="services.sh (pid $pid)"
  fi
  local address="http://127.0.0.1:$CH_HTTP_PORT tcp:$CH_TCP_PORT"
  # Where our server keeps its data (see the header); unknown for one started elsewhere.
  [ "$who" = external ] || [ "$who" = - ] || address+=" data:$(ch_storage_in_use)"
  status_line clickhouse "$state" "$address" "$version" "$who"
}

# ---------------------------------------------------------------- redis

redis_ping() { [ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ]; }
redis_ours() { live_pid "$REDIS_PID" "redis-server 127.0.0.1:$REDIS_PORT"; }

redis_up() {
  need redis-cli redis-tools
  if redis_ping; then
    redis_ours >/dev/null || say "redis: using the Redis already running on 127.0.0.1:$REDIS_PORT (not started by services.sh)"
    return 0
  fi
  need redis-server redis-server
  mkdir -p "$SVC_DIR"
  say "redis: starting on 127.0.0.1:$REDIS_PORT (log $REDIS_LOG)"
  rm -f "$REDIS_PID"
  redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no \
    --dir "$SVC_DIR" --logfile "$REDIS_LOG" --pidfile "$REDIS_PID" </dev/null >/dev/null 2>&1 9>&- \
    || die "redis: redis-server failed to start; see $REDIS_LOG"
  local i
  for ((i = 0; i < 50; i++)); do [ -s "$REDIS_PID" ] && break; sleep 0.1; done
  wait_ready redis "$REDIS_LOG" redis_ping "$REDIS_PID" "redis-server 127.0.0.1:$REDIS_PORT"
}

redis_down() { stop_pid redis "$REDIS_PID" "redis-server 127.0.0.1:$REDIS_PORT"; }

redis_status() {
  local state=down version=- who=- pid
  if command -v redis-cli >/dev/null && redis_ping; then
    state=up
    version=$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" info server | tr -d '\r' | sed -n 's/^redis_version://p')
    if pid=$(redis_ours); then who="services.sh (pid $pid)"; else who=external; fi
  fi
  status_line redis "$state" "redis://127.0.0.1:$REDIS_PORT" "$version" "$who"
}

# ---------------------------------------------------------------- postfix

pf_running() { postfix -c "$PF_DIR" status >/dev/null 2>&1; }
pf_ready() { MAIL_CONFIG=$PF_DIR postqueue -j >/dev/null 2>&1 && port_open "$PF_SMTP_PORT"; }
pf_answers() { pf_ready && [ -S "$PF_DIR/queue/private/auth" ]; }
pf_dovecot() { live_pid "$PF_DIR/dovecot/run/master.pid" "$PF_DIR/dovecot/dovecot.conf"; }

pf_write_config() {
  mkdir -p "$PF_DIR/queue" "$PF_DIR/data" "$PF_DIR/dovecot/run"
  cat >"$PF_DIR/main.cf" <<EOF
# Written by scripts/services.sh: floodgate's private test instance.
compatibility_level = 3.6
queue_directory = $PF_DIR/queue
data_directory = $PF_DIR/data
mail_owner = postfix
setgid_group = postdrop
syslog_name = postfix-floodgate
maillog_file = $PF_DIR/maillog
maillog_file_prefixes = $PF_DIR
inet_interfaces = loopback-only
inet_protocols = ipv4
myhostname = floodgate-test.localdomain
mydestination =
alias_maps =
alias_database =
relayhost = [127.0.0.1]:9
smtp_connect_timeout = 1s
queue_run_delay = 3600s
minimal_backoff_time = 3600s
maximal_backoff_time = 4000s
EOF
  # The package's services without its inet ones (no port 25), plus SASL submission on loopback.
  awk '!($2 == "inet" && $1 !~ /^#/)' /etc/postfix/master.cf >"$PF_DIR/master.cf"
  cat >>"$PF_DIR/master.cf" <<EOF
127.0.0.1:$PF_SMTP_PORT inet n - n - - smtpd
  -o syslog_name=postfix-floodgate/submission
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_sasl_type=dovecot
  -o smtpd_sasl_path=private/auth
  -o smtpd_tls_security_level=none
  -o smtpd_relay_restrictions=permit_sasl_authenticated,reject
EOF
  as_root chown postfix "$PF_DIR/data"
  # Dovecot as Postfix's SASL server only (no IMAP/POP), its socket in Postfix's queue.
  cat >"$PF_DIR/dovecot/dovecot.conf" <<EOF
base_dir = $PF_DIR/dovecot/run
instance_name = floodgate-test
log_path = $PF_DIR/dovecot/dovecot.log
protocols =
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u $PF_DIR/dovecot/users
}
userdb {
  driver = static
  args = uid=nobody gid=nogroup home=/nonexistent
}
service auth {
  unix_listener $PF_DIR/queue/private/auth {
    mode = 0660
    user = postfix
    group = postfix
  }
}
EOF
  # Test accounts only (the tests submit as them); the file is re-read when it changes.
  printf '%s\n' 'alice@example.com:{PLAIN}alice-test-password' 'bob@example.com:{PLAIN}bob-test-password' >"$PF_DIR/dovecot/users"
  chmod 640 "$PF_DIR/dovecot/users"
  as_root chgrp dovecot "$PF_DIR/dovecot/users"
}

pf_up() {
  local pkgs=()
  command -v postqueue >/dev/null 2>&1 || pkgs+=(postfix)
  command -v dovecot >/dev/null 2>&1 || pkgs+=(dovecot-core)
  if [ ${#pkgs[@]} -gt 0 ]; then
    echo "postfix postfix/main_mailer_type select No configuration" | as_root debconf-set-selections
    apt_install "${pkgs[@]}"
  fi
  command -v postqueue >/dev/null 2>&1 && command -v dovecot >/dev/null 2>&1 || die "postfix/dovecot still missing after installing ${pkgs[*]}"
  if pf_running && pf_dovecot >/dev/null && pf_ready; then return 0; fi
  pf_down
  pf_write_config
  say "postfix: starting a private instance with SASL submission on 127.0.0.1:$PF_SMTP_PORT (config, queue and log in $PF_DIR)"
  as_root postfix -c "$PF_DIR" start >&2 2>&1 9>&- || { [ -f "$PF_DIR/maillog" ] && tail -n 20 "$PF_DIR/maillog" >&2; die "postfix: start failed; see $PF_DIR/maillog"; }
  # After Postfix: its start creates the queue's private/ directory that holds Dovecot's socket.
  # Dovecot's daemons keep the stderr they were started with: not ours, or a caller reading our output
  # (`services.sh up | tail`, a test's execFile) would wait for it to close as long as Dovecot runs.
  as_root dovecot -c "$PF_DIR/dovecot/dovecot.conf" </dev/null >>"$PF_DIR/dovecot/start.log" 2>&1 9>&- \
    || { tail -n 20 "$PF_DIR/dovecot/start.log" >&2; die "dovecot: start failed; see $PF_DIR/dovecot/start.log and dovecot.log"; }
  wait_ready postfix "$PF_DIR/maillog" pf_answers "$PF_DIR/data/master.lock" postfix/sbin/master
}

pf_down() {
  command -v postfix >/dev/null 2>&1 || return 0
  if [ -f "$PF_DIR/main.cf" ] && pf_running; then
    as_root postfix -c "$PF_DIR" stop >&2 2>&1 || true
    say "postfix stopped"
  fi
  if pf_dovecot >/dev/null; then stop_pid dovecot "$PF_DIR/dovecot/run/master.pid" "$PF_DIR/dovecot/dovecot.conf"; fi
}

pf_status() {
  local state=down version=- who=-
  if command -v postfix >/dev/null 2>&1 && [ -f "$PF_DIR/main.cf" ] && pf_running && pf_dovecot >/dev/null; then
    state=up
    version=$(postconf -c "$PF_DIR" -dh mail_version 2>/dev/null || echo -)
    who="services.sh (pid $(tr -dc '0-9' <"$PF_DIR/data/master.lock" 2>/dev/null || echo '?'))"
  fi
  status_line postfix "$state" "smtp://127.0.0.1:$PF_SMTP_PORT" "$version" "$who"
}

# ----------------------------------------------------------------- main

# Columns are separated by at least two spaces, so a reader can split on that.
status_line() { printf '%-10s  %-8s  %-32s  %-9s  %s\n' "$@"; }

# A service that answers but was not started here belongs to the machine (e.g.
# its own Redis): `down` leaves it running. Named explicitly, that is an error,
# so a fault test that means to stop the service cannot silently pass.
is_external() {
  case $1 in
    kafka) ! kafka_ours >/dev/null && port_open "$KAFKA_PORT" ;;
    clickhouse) ! ch_ours >/dev/null && port_open "$CH_HTTP_PORT" ;;
    redis) ! redis_ours >/dev/null && command -v redis-cli >/dev/null && redis_ping ;;
    postfix) return 1 ;; # always a private instance of its own
  esac
}

fn_prefix() { case $1 in clickhouse) printf ch ;; postfix) printf pf ;; *) printf '%s' "$1" ;; esac; }

usage() { die "usage: scripts/services.sh up|down|status [${ALL_SERVICES[*]// /|} ...]"; }

main() {
  [ $# -ge 1 ] || usage
  local cmd=$1 explicit=1 name
  shift
  if [ $# -eq 0 ]; then set -- "${ALL_SERVICES[@]}"; explicit=0; fi
  for name in "$@"; do
    case $name in kafka | clickhouse | redis | postfix) ;; *) die "unknown service '$name' (known: ${ALL_SERVICES[*]})" ;; esac
  done
  case $cmd in
    up | down)
      mkdir -p "$SVC_DIR"
      # One `up`/`down` at a time: test runners and people may call this concurrently.
      exec 9>"$SVC_DIR/.lock"
      flock -w "$TIMEOUT" 9 || die "another services.sh held $SVC_DIR/.lock for ${TIMEOUT}s"
      ;;
  esac
  case $cmd in
    up) for name in "$@"; do "$(fn_prefix "$name")_up"; done ;;
    down)
      local refused=0
      for name in "$@"; do
        if is_external "$name"; then
          say "$name: left running (not started by services.sh)"
          [ "$explicit" = 1 ] && refused=1
          continue
        fi
        "$(fn_prefix "$name")_down"
      done
      [ "$refused" = 0 ] || die "refused to stop a service that services.sh did not start"
      ;;
    status)
      for name in "$@"; do "$(fn_prefix "$name")_status"; done ;;
    *) usage ;;
  esac
}

main "$@"
