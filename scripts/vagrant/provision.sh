#!/usr/bin/env bash
# Provisions one Rocky Linux 9 VM of the Vagrant cluster (see Vagrantfile), as root:
#   1. Node.js 20 (AppStream module) and an etcd member (upstream release tarball, checksum
#      verified) of a 3-member cluster on the private network, with TLS and client-certificate
#      auth for clients and peers, trusting the cluster CA that `cluster-coordinator init` made
#      on the host (build/vagrant/pki, synced to /opt/cluster/shared/pki; the Vagrantfile runs it,
#      as scripts/dev-cluster does): the coordinators refuse a plaintext etcd;
#   2. the cluster-agent (and, with ROLE_COORDINATOR=1, cluster-coordinator) RPMs built by
#      scripts/build-rpm on the host, synced to /opt/cluster/rpm;
#   3. /etc/cluster/*.yaml rendered from the very files the RPMs ship (packaging/config, synced
#      to /opt/cluster/config) with this cluster's endpoints;
#   4. trust: every coordinator gets the cluster secret the host made (build/vagrant/cluster-secret,
#      synced to /opt/cluster/shared) as a systemd credential and the host's pki dir (CA, its
#      etcd client certificate); the first coordinator writes its join token, which node1 hands
#      to the others through etcd (as etcd's root user, whose certificate init made) and every
#      agent joins with (/etc/cluster/join-token) through the first coordinator (JOIN_ADDRESS);
#   5. the services enabled and started; on the last node, waits until etcd shows every node
#      Discovered.
# Idempotent: `vagrant provision` runs it again safely.
# Environment (set by the Vagrantfile): NODE_NAME, NODE_IP, ETCD_MEMBERS (name=ip,...),
# ROLE_COORDINATOR (0|1), JOIN_ADDRESS (a coordinator's HOST:PORT), WAIT_FOR_NODES (0 = don't
# wait, else how many nodes to wait for).
set -euo pipefail

: "${NODE_NAME:?}" "${NODE_IP:?}" "${ETCD_MEMBERS:?}" "${JOIN_ADDRESS:?}"
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
# etcd's certificates from the host's `cluster-coordinator init` (they name every member).
HOST_PKI=$SHARE/shared/pki
ETCD_PKI=/etc/etcd/pki
for f in ca.crt etcd-server.crt etcd-server.key etcd-root.crt etcd-root.key; do
  [ -s "$HOST_PKI/$f" ] || { say "no $HOST_PKI/$f: the Vagrantfile runs cluster-coordinator init on the host (needs dist/: npm run build), then vagrant rsync"; exit 1; }
done
install -d -m 0700 "$ETCD_PKI"
install -m 0644 "$HOST_PKI/ca.crt" "$HOST_PKI/etcd-server.crt" "$HOST_PKI/etcd-root.crt" "$ETCD_PKI/"
install -m 0600 "$HOST_PKI/etcd-server.key" "$HOST_PKI/etcd-root.key" "$ETCD_PKI/"
# etcdctl as etcd's root user (the join token hand-over and the wait below).
ectl() {
  etcdctl --endpoints https://127.0.0.1:2379 --cacert "$ETCD_PKI/ca.crt" --cert "$ETCD_PKI/etcd-root.crt" --key "$ETCD_PKI/etcd-root.key" "$@"
}
initial_cluster=""
for m in ${ETCD_MEMBERS//,/ }; do
  initial_cluster+="${initial_cluster:+,}${m%%=*}=https://${m#*=}:2380"
done
cat > /etc/systemd/system/etcd.service <<UNIT
[Unit]
Description=etcd member $NODE_NAME of the Vagrant cluster
Wants=network-online.target
After=network-online.target

[Service]
Type=notify
ExecStart=/usr/local/bin/etcd --name $NODE_NAME --data-dir /var/lib/etcd \\
  --listen-client-urls https://$NODE_IP:2379,https://127.0.0.1:2379 --advertise-client-urls https://$NODE_IP:2379 \\
  --client-cert-auth --trusted-ca-file $ETCD_PKI/ca.crt --cert-file $ETCD_PKI/etcd-server.crt --key-file $ETCD_PKI/etcd-server.key \\
  --listen-peer-urls https://$NODE_IP:2380 --initial-advertise-peer-urls https://$NODE_IP:2380 \\
  --peer-client-cert-auth --peer-trusted-ca-file $ETCD_PKI/ca.crt --peer-cert-file $ETCD_PKI/etcd-server.crt --peer-key-file $ETCD_PKI/etcd-server.key \\
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
# cluster-agent is noarch; cluster-coordinator is built for the host's architecture (its TCP liveness addon).
newest() { find "$SHARE/rpm" -maxdepth 1 -name "$1-[0-9]*.rpm" | sort -V | tail -1; }
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
# Vagrant boxes can share one /etc/machine-id (the default node id): the agent config below names
# the nodes explicitly.
PKI_DIR=/var/lib/cluster-coordinator/pki
TOKEN_KEY=/vagrant-lab/join-token
if [ "$ROLE_COORDINATOR" = 1 ]; then
  bash "$render" "$SHARE/config/coordinator.yaml" "etcd=$etcd_endpoints" "listen=0.0.0.0:7400" "advertise=$NODE_IP:7400" > /etc/cluster/coordinator.yaml.new
  install -m 0644 /etc/cluster/coordinator.yaml.new /etc/cluster/coordinator.yaml && rm -f /etc/cluster/coordinator.yaml.new
  # The same cluster secret for every replica, readable by the service only (LoadCredential).
  install -m 0600 "$SHARE/shared/cluster-secret" /etc/cluster/cluster-secret
  # The host's pki dir: the CA (its key encrypted under the cluster secret) and the coordinators'
  # etcd client certificate. The service's StateDirectory (DynamicUser=) lives under
  # /var/lib/private; systemd hands it to the service's user when it starts.
  state=/var/lib/private/cluster-coordinator
  [ -L /var/lib/cluster-coordinator ] || [ ! -d /var/lib/cluster-coordinator ] || state=/var/lib/cluster-coordinator
  install -d -m 0700 /var/lib/private "$state" "$state/pki"
  for f in ca.crt ca-key.json etcd-coordinator.crt etcd-coordinator.key; do
    [ -s "$state/pki/$f" ] || install -m 0600 "$HOST_PKI/$f" "$state/pki/$f"
  done
  mkdir -p /etc/systemd/system/cluster-coordinator.service.d
  cat > /etc/systemd/system/cluster-coordinator.service.d/cluster-secret.conf <<'UNIT'
[Service]
LoadCredential=cluster-secret:/etc/cluster/cluster-secret
Environment=CLUSTER_SECRET_FILE=%d/cluster-secret
UNIT
  systemctl daemon-reload
  systemctl enable -q cluster-coordinator
  systemctl restart cluster-coordinator
fi

# The join token: written by the coordinator that created the CA (node1, first up), passed on
# through etcd for an hour.
token=""
for _ in $(seq 90); do
  if [ -s "$PKI_DIR/join-token" ]; then
    token=$(cat "$PKI_DIR/join-token")
    lease=$(ectl lease grant 3600 | awk '{print $2}')
    ectl put --lease="$lease" "$TOKEN_KEY" "$token" >/dev/null
    break
  fi
  token=$(ectl get --print-value-only "$TOKEN_KEY" 2>/dev/null || true)
  [ -n "$token" ] && break
  sleep 2
done
if [ -z "$token" ] && [ ! -s /var/lib/cluster-agent/pki/node.crt ]; then
  say "no join token after 180 s (first coordinator: journalctl -u cluster-coordinator on node1)"; exit 1
fi
if [ -n "$token" ]; then
  (umask 077; printf '%s\n' "$token" > /etc/cluster/join-token)
fi
bash "$render" "$SHARE/config/agent.yaml" "etcd=$etcd_endpoints" "nodeId=$NODE_NAME" "joinTokenFile=/etc/cluster/join-token" "joinAddress=$JOIN_ADDRESS" > /etc/cluster/agent.yaml.new
install -m 0600 /etc/cluster/agent.yaml.new /etc/cluster/agent.yaml && rm -f /etc/cluster/agent.yaml.new
systemctl enable -q cluster-agent
systemctl restart cluster-agent

# --- wait for the whole cluster (last node only) ----------------------------------------------
if [ "$WAIT_FOR_NODES" -gt 0 ]; then
  say "waiting for $WAIT_FOR_NODES Discovered nodes (their records in etcd)"
  for _ in $(seq 90); do
    n=$(ectl get --prefix --print-value-only /cluster/v1/nodes/ 2>/dev/null | grep -c '"state":"Discovered"' || true)
    if [ "$n" -ge "$WAIT_FOR_NODES" ]; then
      say "cluster ready: try  vagrant ssh node1 -c 'sudo clusterctl --credentials $PKI_DIR/admin.yaml nodes'"; exit 0
    fi
    sleep 2
  done
  say "not all nodes Discovered after 180 s; look at: journalctl -u cluster-agent -u cluster-coordinator -u etcd"
  exit 1
fi
