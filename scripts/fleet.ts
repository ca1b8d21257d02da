/**
 * `scripts/fleet`: booted Linux nodes on one box (systemd as PID 1 under systemd-nspawn), the agent
 * installed in each from the project's .deb, etcd and the coordinator on the host side of the
 * bridge. The mechanics are in scripts/lib/fleet.ts; this file is the command line.
 */
import { existsSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { spawnSync } from 'node:child_process';
import { parseOptions, formatHelp } from '../shared/options';
import { Fleet, FleetError, sleep, type CtlNodeView } from './lib/fleet';
import { REPO_ROOT } from './lib/process-support';

const OPTIONS = {
  dir: { kind: 'string', env: 'FLEET_DIR', default: join(REPO_ROOT, '.fleet'), placeholder: 'DIR', description: 'fleet dir: state.json, node overlays, logs/, pki/ (admin.yaml)' },
  cache: { kind: 'string', env: 'FLEET_CACHE', default: '/var/cache/cluster-fleet', placeholder: 'DIR', description: 'where the debootstrapped base root is cached between fleets' },
  name: { kind: 'string', env: 'FLEET_NAME', default: 'fl', placeholder: 'NAME', description: 'prefix of the fleet\'s namespaces and links (1-6 letters/digits)' },
  nodes: { kind: 'int', default: 3, min: 1, placeholder: 'N', description: 'up: number of nodes (n1..nN, 198.18.0.1..N)' },
  deb: { kind: 'string', placeholder: 'FILE', description: 'up: the cluster-agent .deb to install [default: build one with scripts/build-deb]' },
  leaseTtl: { kind: 'int', default: 10, min: 2, placeholder: 'SECONDS', description: 'up: leaseTtl written to each node\'s /etc/cluster/agent.yaml' },
  waitTimeout: { kind: 'duration', default: '300s', min: 1000, placeholder: 'DURATION', description: 'up: how long to wait for every node to be Discovered' },
} as const;

const USAGE = `Usage: scripts/fleet COMMAND [options]

Commands:
  up [--nodes N] [--deb FILE]   build or reuse the base root (debootstrap, cached), start etcd and the
                                coordinator in the hub namespace (198.18.0.254), boot N nodes, install
                                cluster-agent from the .deb with apt-get, give it the join token, enable
                                and start cluster-agent.service; wait until every node is Discovered
  down                          power every node off; remove namespaces, mounts, links (also after a crash)
  status                        nodes, their pids and boot state; then clusterctl nodes
  reboot NODE                   systemctl reboot inside NODE (it boots again, with a new boot id)
  poweroff NODE                 power cut: kill NODE's container (no shutdown)
  poweron NODE                  boot NODE again on its disk (its overlay)
  partition NODE | heal NODE    cut / restore NODE's link on the bridge
  ssh NODE -- CMD...            run CMD inside NODE (all its namespaces), e.g. ssh n1 -- systemctl status cluster-agent
  ctl -- ARGS...                clusterctl against the fleet's coordinator with its admin.yaml

Nodes are n1..nN. Node.js in the nodes is the host's /usr/bin/node, bind-mounted read-only (Debian 12's
nodejs is 18; the agent needs 20). Root only. Traffic stays in loopback and the fleet's namespaces.`;

function say(line: string): void {
  process.stderr.write(`[fleet] ${line}\n`);
}

function buildAgentDeb(): string {
  say('scripts/build-deb agent (npm run build first)');
  const r = spawnSync(join(REPO_ROOT, 'scripts', 'build-deb'), ['agent'], { stdio: ['ignore', 'inherit', 'inherit'], cwd: REPO_ROOT });
  if (r.status !== 0) throw new FleetError('scripts/build-deb failed (see above)');
  const dir = join(REPO_ROOT, 'build', 'deb');
  const debs = readdirSync(dir).filter((f) => /^cluster-agent_.*_all\.deb$/.test(f)).sort();
  if (debs.length === 0) throw new FleetError(`no cluster-agent .deb in ${dir}`);
  return join(dir, debs[debs.length - 1]);
}

/** Every node (by machine id) Discovered or further, and reachable. */
export function allDiscovered(views: readonly CtlNodeView[], ids: readonly string[]): boolean {
  return ids.every((id) => views.some((v) => v.id === id && v.reachable && v.state !== 'New'));
}

export async function up(fleet: Fleet, o: { nodes: number; deb?: string; leaseTtl: number; waitTimeoutMs: number }): Promise<void> {
  const t0 = Date.now();
  const secs = (): string => `${((Date.now() - t0) / 1000).toFixed(1)} s`;
  const deb = o.deb ? resolve(o.deb) : buildAgentDeb();
  if (!existsSync(deb)) throw new FleetError(`no such .deb: ${deb}`);
  const base = fleet.ensureBase();
  say(base.built ? `base root built in ${base.seconds} s` : `base root reused from ${base.path}`);
  fleet.ensureInotifyLimit(o.nodes + fleet.nodeNames().length);
  await fleet.startControlPlane();
  say(`etcd ${fleet.etcdEndpoint} and coordinator ${fleet.coordinatorAddress} up (${secs()})`);
  const debName = fleet.copyToShare(deb);
  for (let i = 1; i <= o.nodes; i++) await fleet.addNode(i);
  const names = fleet.nodeNames();
  await Promise.all(names.map((n) => fleet.waitBooted(n, 180_000)));
  say(`${names.length} node(s) booted (${secs()})`);
  // Four at a time: dpkg in each node is CPU-bound, and the box has few cores.
  const queue = [...names];
  await Promise.all(Array.from({ length: Math.min(4, queue.length) }, async () => {
    for (let n = queue.shift(); n !== undefined; n = queue.shift()) await fleet.installAgent(n, debName, { leaseTtl: o.leaseTtl });
  }));
  say(`cluster-agent installed and started on ${names.length} node(s) (${secs()})`);
  const ids = names.map((n) => fleet.nodeId(n));
  await fleet.waitUntil(`${names.length} node(s) Discovered in clusterctl nodes`, o.waitTimeoutMs, () => {
    try {
      return allDiscovered(fleet.nodes(), ids);
    } catch {
      return false;
    }
  }, 1000);
  say(`all ${names.length} node(s) Discovered (${secs()} from fleet up)`);
}

async function main(argv: string[]): Promise<number> {
  // Options may come before or after the command: `fleet --dir D up` and `fleet up --dir D`.
  const all = parseOptions(OPTIONS, { argv, allowPositionals: true });
  const [command, ...positionals] = all.positionals;
  if (all.help || !command || command === 'help') {
    process.stdout.write(`${formatHelp(USAGE, OPTIONS)}\n`);
    return 0;
  }
  const parsed = { ...all, positionals };
  const v = parsed.values;
  const fleet = new Fleet({ dir: v.dir, cacheDir: v.cache, name: v.name });
  const nodeArg = (): string => {
    const n = parsed.positionals[0];
    if (!n) throw new FleetError(`${command} needs a NODE (n1..nN)`);
    fleet.node(n);
    return n;
  };
  switch (command) {
    case 'up':
      try {
        await up(fleet, { nodes: v.nodes, deb: v.deb, leaseTtl: v.leaseTtl, waitTimeoutMs: v.waitTimeout });
      } catch (err) {
        say(`up failed: ${(err as Error).message}`);
        say(`logs in ${fleet.logDir}; tearing down what was made`);
        const problems = await fleet.down();
        for (const p of problems) say(`down: ${p}`);
        return 1;
      }
      process.stdout.write(`${fleet.clusterctl(['nodes']).stdout}`);
      say(`try: scripts/fleet ssh n1 -- systemctl status cluster-agent   |   scripts/fleet ctl -- nodes -o wide`);
      return 0;
    case 'down': {
      const problems = await fleet.down();
      for (const p of problems) say(`down: ${p}`);
      say(problems.length === 0 ? 'fleet down: nodes off, namespaces, mounts and links removed' : 'fleet down left something behind (above); run it again');
      return problems.length === 0 ? 0 : 1;
    }
    case 'status': {
      for (const n of fleet.nodeNames()) {
        const p = fleet.pids(n);
        const state = p.init ? fleet.exec(n, ['systemctl', 'is-system-running'], { timeoutMs: 5000 }).stdout.trim() : 'off';
        process.stdout.write(`${n}\t${fleet.node(n).ip}\t${state}\tnspawn=${p.nspawn ?? '-'}\n`);
      }
      const r = fleet.clusterctl(['nodes']);
      process.stdout.write(r.stdout || r.stderr);
      return 0;
    }
    case 'reboot': fleet.reboot(nodeArg()); return 0;
    case 'poweroff': fleet.poweroff(nodeArg()); return 0;
    case 'poweron': {
      const n = nodeArg();
      fleet.poweron(n);
      await fleet.waitBooted(n);
      return 0;
    }
    case 'partition': fleet.partition(nodeArg()); return 0;
    case 'heal': fleet.heal(nodeArg()); return 0;
    case 'ssh': {
      const n = nodeArg();
      const cmd = parsed.rest.length > 0 ? parsed.rest : parsed.positionals.slice(1);
      if (cmd.length === 0) throw new FleetError('ssh NODE -- CMD...: no command given');
      const r = fleet.exec(n, cmd, { timeoutMs: 600_000 });
      process.stdout.write(r.stdout);
      process.stderr.write(r.stderr);
      return r.code;
    }
    case 'ctl': {
      const r = fleet.clusterctl(parsed.rest.length > 0 ? parsed.rest : parsed.positionals, 600_000);
      process.stdout.write(r.stdout);
      process.stderr.write(r.stderr);
      return r.code;
    }
    case '_supervise': return fleet.supervise(nodeArg());
    default:
      say(`unknown command ${JSON.stringify(command)} (see --help)`);
      return 2;
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then((code) => { process.exitCode = code; }, async (err: unknown) => {
    say(err instanceof Error ? err.message : String(err));
    await sleep(0);
    process.exitCode = err instanceof FleetError ? 1 : 2;
  });
}
