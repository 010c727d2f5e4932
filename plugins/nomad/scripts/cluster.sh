#!/usr/bin/env bash
# A private Nomad cluster on loopback: one server and two client agents,
# each with its own data directory, ports and node name, so placement
# across nodes and the loss of a node can be tried on one machine.
#
#   cluster.sh start [DIR]   start it in the background (idempotent), print the export line
#   cluster.sh stop  [DIR]   stop its jobs and agents and remove DIR
#   cluster.sh addr  [DIR]   print the server's address
#
# DIR defaults to plugins/nomad/.cluster. NOMAD_CLUSTER_PORT (default 4746)
# is the server's HTTP port; the server's RPC and Serf ports follow it and
# the clients take PORT+10.. and PORT+20... Only the agents this script
# started in DIR (their pids are in DIR/*.pid) are ever stopped.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CMD=${1:-start}
DIR=${2:-$HERE/../.cluster}
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
PORT=${NOMAD_CLUSTER_PORT:-4746}
CACHE=${MCPRUNTIME_BUILD_CACHE:-$HOME/.cache/mcpruntime/build}
ADDR_FILE=$(dirname "$CACHE")/nomad-cluster-addr
die() { echo "nomad-cluster: $*" >&2; exit 1; }

# alive: the agent's pid file names a live process (a zombie is not).
alive() {
  [[ -f $DIR/$1.pid ]] || return 1
  local st; st=$(sed 's/.*) //' "/proc/$(cat "$DIR/$1.pid")/stat" 2>/dev/null | cut -c1) || return 1
  [[ -n $st && $st != Z ]]
}

# The chroot the exec driver builds for each task: only what the kernel
# needs (python3, its standard library, sh and cat for the channel relay),
# so that a task starts in ~0.2 s instead of the ~10 s the default chroot
# (all of /usr hard-linked) takes. Real files and directories only.
chroot_env() {
  # Debian's python3 (not a version manager's shim on PATH).
  local py; py=$(readlink -f "${SANDBOX_PYTHON:-/usr/bin/python3}")
  [[ -x $py ]] || die "no python3 at ${SANDBOX_PYTHON:-/usr/bin/python3} for the sandboxes (apt-get install python3)"
  local ver; ver=$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
  local entries=(
    "$py=/usr/bin/python3"
    "/usr/lib/python$ver=/usr/lib/python$ver"
    "$(readlink -f /bin/sh)=/bin/sh"
    "$(readlink -f "$(command -v cat)")=/bin/cat"
    "/etc/passwd=/etc/passwd"
    "/etc/group=/etc/group"
  )
  # The dynamic libraries python3, sh and cat load, and the loader.
  local f
  for f in $( { ldd "$py"; ldd "$(readlink -f /bin/sh)"; ldd "$(readlink -f "$(command -v cat)")"; } |
              awk '/=>/ { print $3 } /^\t\// { print $1 }' | sort -u); do
    entries+=("$(readlink -f "$f")=$f")
  done
  # Extension modules' libraries (ssl, ffi, ...): everything lib-dynload links.
  for f in $(ldd "/usr/lib/python$ver/lib-dynload/"*.so 2>/dev/null | awk '/=>/ { print $3 }' | sort -u); do
    entries+=("$(readlink -f "$f")=$f")
  done
  # The sandbox paths of other backends, as links into the task's own
  # directories: /workspace (the session's copy of the workspace) and
  # /mcpruntime/lib (its library mounts).
  mkdir -p "$DIR/rootlinks/mcpruntime"
  ln -sfn /local/workspace "$DIR/rootlinks/workspace"
  ln -sfn /local/lib "$DIR/rootlinks/mcpruntime/lib"
  entries+=("$DIR/rootlinks=/")
  printf '%s\n' "${entries[@]}" | sort -u | awk -F= '{ printf "    \"%s\" = \"%s\"\n", $1, $2 }'
}

# The sandboxes' network: a CNI network with only the loopback plugin, so
# a task's network namespace holds lo and nothing else (no egress). Group
# network mode "none" would be the natural choice, but Nomad 1.11.1 fails
# such allocations ("network already configured but not found in state").
CNI_NETWORK=mcpruntime-isolated
write_cni() {
  local cni=${CNI_PATH:-/usr/lib/cni}
  [[ -x $cni/loopback ]] || die "no CNI loopback plugin in $cni (apt-get install containernetworking-plugins)"
  mkdir -p "$DIR/cni"
  cat >"$DIR/cni/$CNI_NETWORK.conflist" <<JSON
{ "cniVersion": "1.0.0", "name": "$CNI_NETWORK", "plugins": [ { "type": "loopback" } ] }
JSON
}

write_configs() {
  local nomad=$1
  write_cni
  cat >"$DIR/server.hcl" <<HCL
name       = "mcpruntime-server"
data_dir   = "$DIR/server"
bind_addr  = "127.0.0.1"
log_level  = "WARN"
disable_update_check = true
ports { http = $PORT
        rpc  = $((PORT + 1))
        serf = $((PORT + 2)) }
advertise { http = "127.0.0.1"
            rpc  = "127.0.0.1"
            serf = "127.0.0.1" }
server {
  enabled          = true
  bootstrap_expect = 1
  # A client that stops heartbeating is marked down within ~10 s.
  min_heartbeat_ttl = "3s"
  heartbeat_grace   = "5s"
  job_gc_threshold  = "1m"
  eval_gc_threshold = "1m"
  # Sessions spread over the clients (binpack would fill one first).
  default_scheduler_config {
    scheduler_algorithm = "spread"
  }
}
HCL
  local i
  for i in 1 2; do
    local p=$((PORT + 10 * i))
    cat >"$DIR/client$i.hcl" <<HCL
name       = "mcpruntime-client-$i"
data_dir   = "$DIR/client$i"
bind_addr  = "127.0.0.1"
log_level  = "WARN"
disable_update_check = true
ports { http = $p
        rpc  = $((p + 1))
        serf = $((p + 2)) }
advertise { http = "127.0.0.1"
            rpc  = "127.0.0.1"
            serf = "127.0.0.1" }
client {
  enabled        = true
  servers        = ["127.0.0.1:$((PORT + 1))"]
  no_host_uuid   = true
  node_class     = "mcpruntime"
  cgroup_parent  = "mcpruntime-nomad-client-$i"
  cpu_total_compute = 40000
  cni_path       = "${CNI_PATH:-/usr/lib/cni}"
  cni_config_dir = "$DIR/cni"
  options {
    "fingerprint.denylist" = "env_aws,env_gce,env_azure,env_digitalocean"
    "driver.allowlist"     = "exec,raw_exec"
  }
  chroot_env {
$(chroot_env)
  }
}
plugin "raw_exec" { config { enabled = false } }
HCL
  done
}

start_agent() {
  local name=$1 nomad=$2
  alive "$name" && return 0
  mkdir -p "$DIR/$name"
  nohup setsid "$nomad" agent -config "$DIR/$name.hcl" >"$DIR/$name.log" 2>&1 </dev/null &
  echo $! >"$DIR/$name.pid"
}

wait_ready() {
  local deadline=$((SECONDS + 60)) nodes
  while ((SECONDS < deadline)); do
    nodes=$(curl -fsS "http://127.0.0.1:$PORT/v1/nodes" 2>/dev/null | grep -o '"Status":"ready"' | wc -l || true)
    if [[ ${nodes:-0} -ge 2 ]]; then return 0; fi
    for a in server client1 client2; do alive "$a" || die "agent $a exited; see $DIR/$a.log: $(tail -n 5 "$DIR/$a.log")"; done
    sleep 0.3
  done
  die "two ready client nodes did not appear within 60 s (logs in $DIR)"
}

case $CMD in
start)
  nomad=${NOMAD_BINARY:-$("$HERE/build-nomad.sh")}
  [[ -x $nomad ]] || die "no nomad binary ($nomad)"
  if ! alive server; then write_configs "$nomad"; fi
  start_agent server "$nomad"
  start_agent client1 "$nomad"
  start_agent client2 "$nomad"
  wait_ready
  echo "http://127.0.0.1:$PORT" >"$DIR/addr"
  # Plugins launched without NOMAD_ADDR find the cluster here (see
  # LocalClusterAddrFile); only the default cluster records itself.
  if [[ -z ${2:-} && -n ${ADDR_FILE:-} ]]; then cp "$DIR/addr" "$ADDR_FILE"; fi
  echo "export NOMAD_ADDR=http://127.0.0.1:$PORT"
  ;;
stop)
  if alive server; then
    # Stop and purge every job first, so the clients stop their tasks.
    for j in $(curl -fsS "http://127.0.0.1:$PORT/v1/jobs" 2>/dev/null | grep -o '"ID":"[^"]*"' | cut -d'"' -f4); do
      curl -fsS -X DELETE "http://127.0.0.1:$PORT/v1/job/$j?purge=true" >/dev/null || true
    done
    deadline=$((SECONDS + 20))
    while ((SECONDS < deadline)) && pgrep -f "$DIR/client[12]/" >/dev/null; do sleep 0.3; done
  fi
  for a in client1 client2 server; do
    if alive "$a"; then kill -INT "$(cat "$DIR/$a.pid")"; fi
  done
  for a in client1 client2 server; do
    deadline=$((SECONDS + 15))
    while alive "$a" && ((SECONDS < deadline)); do sleep 0.2; done
    if alive "$a"; then kill -KILL "$(cat "$DIR/$a.pid")"; fi
  done
  # Task processes a killed client left behind: executors name this
  # cluster's data dirs on their command lines, tasks are chrooted below
  # them. Only ours match.
  for pid in $(pgrep -f "$DIR/client[12]/" || true); do kill -KILL "$pid" 2>/dev/null || true; done
  # logmon and task processes hold files below them open (their logs).
  for p in /proc/[0-9]*; do
    pid=${p#/proc/}
    [[ $pid == "$$" ]] && continue
    root=$(readlink "$p/root" 2>/dev/null) || continue
    case $root in "$DIR"/*) kill -KILL "$pid" 2>/dev/null || true; continue ;; esac
    if ls -l "$p/fd" 2>/dev/null | grep -q -- "-> $DIR/"; then kill -KILL "$pid" 2>/dev/null || true; fi
  done
  # The clients mount secrets/ and private dirs below their data dirs.
  { grep -o " $DIR/[^ ]*" /proc/mounts || true; } | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
  if [[ -z ${2:-} && -n ${ADDR_FILE:-} && -f $ADDR_FILE ]] && cmp -s "$ADDR_FILE" "$DIR/addr" 2>/dev/null; then rm -f "$ADDR_FILE"; fi
  rm -rf "$DIR"
  echo "nomad-cluster: stopped"
  ;;
addr)
  [[ -f $DIR/addr ]] || die "no cluster in $DIR"
  cat "$DIR/addr"
  ;;
*) die "usage: $0 start|stop|addr [DIR]" ;;
esac
