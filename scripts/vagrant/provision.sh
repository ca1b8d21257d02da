#!/usr/bin/env bash
# Provisions one Rocky Linux 9 VM of the Vagrant cluster (see Vagrantfile), as root:
#   1. Node.js 20 (AppStream module) and an etcd member (upstream release tarball, checksum
#      verified) of a 3-member cluster on the private network;
#   2. the cluster-agent (and, with ROLE_COORDINATOR=1, cluster-coordinator) RPMs built by
#      scripts/build-rpm on the host, synced to /opt/cluster/rpm;
#   3. /etc/cluster/*.yaml rendered from the very files the RPMs ship (packaging/config, synced
#      to /opt/cluster/config) with this cluster's endpoints;
#   4. the services enabled and started; on the last node, waits until `clusterctl nodes` shows
#      every node Discovered.
# Idempotent: `vagrant provision` runs it again safely.
# Environment (set by the Vagrantfile): NODE_NAME, NODE_IP, ETCD_MEMBERS (name=ip,...),
# ROLE_COORDINATOR (0|1), WAIT_FOR_NODES (0 = don't wait, else how many nodes to wait for).
set -euo pipefail

: "${NODE_NAME:?}" "${NODE_IP:?}" "${ETCD_MEMBERS:?}"
ROLE_COORDINATOR=${ROLE_COORDINATOR:-0}
WAIT_FOR_NODES=${WAIT_FOR_NODES:-0}
ETCD_VERSION=${ETCD_VERSION:-v3.5.17}
SHARE=/opt/cluster

say() { printf '[provision %s] %s\n' "$NODE_NAME" "$*"; }

# --- Node.js 20 -------------------------------------------------------------------------------
if ! node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' 2>/dev/null; then
  say "installing Node.js 20 (AppStream module nodejs:20)"
  dnf -y -q module reset nodejs
  dnf -y -q module enable nodejs:20
  dnf -y -q install nodejs tar
fi

# --- etcd member ------------------------------------------------------------------------------
if [ ! -x /usr/local/bin/etcd ]; then
  say "installing etcd $ETCD_VERSION from the upstream release"
  tmp=$(mktemp -d)
  base="https://github.com/etcd-io/etcd/releases/download/$ETCD_VERSION"
  tarball="etcd-$ETCD_VERSION-linux-amd64.tar.gz"
  curl -fsSL -o "$tmp/$tarball" "$base/$tarball"
  curl -fsSL -o "$tmp/SHA256SUMS" "$base/SHA256SUMS"
  (cd "$tmp" && grep " $tarball\$" SHA256SUMS | sha256sum -c -)
  tar -xzf "$tmp/$tarball" -C "$tmp"
  install -m 0755 "$tmp/etcd-$ETCD_VERSION-linux-amd64/etcd" "$tmp/etcd-$ETCD_VERSION-linux-amd64/etcdctl" /usr/local/bin/
  rm -rf "$tmp"
fi
initial_cluster=""
for m in ${ETCD_MEMBERS//,/ }; do
  initial_cluster+="${initial_cluster:+,}${m%%=*}=http://${m#*=}:2380"
done
cat > /etc/systemd/system/etcd.service <<UNIT
[Unit]
Description=etcd member $NODE_NAME of the Vagrant cluster
Wants=network-online.target
After=network-online.target

[Service]
Type=notify
ExecStart=/usr/local/bin/etcd --name $NODE_NAME --data-dir /var/lib/etcd \\
  --listen-client-urls http://$NODE_IP:2379,http://127.0.0.1:2379 --advertise-client-urls http://$NODE_IP:2379 \\
  --listen-peer-urls http://$NODE_IP:2380 --initial-advertise-peer-urls http://$NODE_IP:2380 \\
  --initial-cluster $initial_cluster --initial-cluster-state new --initial-cluster-token vagrant-cluster
Restart=on-failure
RestartSec=2s
LimitNOFILE=65536

[Install]
WantedBy=multi-user.target
UNIT

if systemctl is-active -q firewalld; then
  say "opening etcd (2379, 2380) and coordinator (7400) ports in firewalld"
  firewall-cmd -q --permanent --add-port=2379-2380/tcp --add-port=7400/tcp
  firewall-cmd -q --reload
fi

systemctl daemon-reload
systemctl enable -q etcd
# --no-block: the first member waits for a quorum (the next VM) before it reports ready.
systemctl start --no-block etcd

# --- the RPMs ---------------------------------------------------------------------------------
newest() { find "$SHARE/rpm" -maxdepth 1 -name "$1-[0-9]*.noarch.rpm" | sort -V | tail -1; }
rpms=("$(newest cluster-agent)")
[ "$ROLE_COORDINATOR" = 1 ] && rpms+=("$(newest cluster-coordinator)")
for r in "${rpms[@]}"; do
  [ -n "$r" ] || { say "no RPM in $SHARE/rpm: run scripts/build-rpm on the host, then vagrant provision"; exit 1; }
done
say "installing ${rpms[*]##*/}"
dnf -y -q install "${rpms[@]}"

# --- configuration from the packaged defaults -------------------------------------------------
etcd_endpoints=""
for m in ${ETCD_MEMBERS//,/ }; do etcd_endpoints+="${etcd_endpoints:+,}${m#*=}:2379"; done
render="$SHARE/provision/render-config.sh"
# Vagrant boxes can share one /etc/machine-id (the default node id): name the nodes explicitly.
bash "$render" "$SHARE/config/agent.yaml" "etcd=$etcd_endpoints" "nodeId=$NODE_NAME" > /etc/cluster/agent.yaml.new
install -m 0600 /etc/cluster/agent.yaml.new /etc/cluster/agent.yaml && rm -f /etc/cluster/agent.yaml.new
if [ "$ROLE_COORDINATOR" = 1 ]; then
  bash "$render" "$SHARE/config/coordinator.yaml" "etcd=$etcd_endpoints" "listen=0.0.0.0:7400" "advertise=$NODE_IP:7400" > /etc/cluster/coordinator.yaml.new
  install -m 0644 /etc/cluster/coordinator.yaml.new /etc/cluster/coordinator.yaml && rm -f /etc/cluster/coordinator.yaml.new
  systemctl enable -q cluster-coordinator
  systemctl restart cluster-coordinator
fi
systemctl enable -q cluster-agent
systemctl restart cluster-agent

# --- wait for the whole cluster (last node only) ----------------------------------------------
if [ "$WAIT_FOR_NODES" -gt 0 ]; then
  say "waiting for $WAIT_FOR_NODES Discovered nodes (clusterctl nodes via a coordinator)"
  coordinators=$(for m in ${ETCD_MEMBERS//,/ }; do echo "${m#*=}:7400"; done)
  for _ in $(seq 90); do
    for c in $coordinators; do
      out=$(clusterctl --coordinator "$c" nodes 2>/dev/null || true)
      if [ "$(grep -c ' Discovered ' <<<"$out")" -ge "$WAIT_FOR_NODES" ]; then
        printf '%s\n' "$out"; say "cluster ready: try  vagrant ssh node1 -c 'clusterctl nodes'"; exit 0
      fi
    done
    sleep 2
  done
  say "not all nodes Discovered after 180 s; look at: journalctl -u cluster-agent -u cluster-coordinator -u etcd"
  exit 1
fi
