/**
 * A partition made in the kernel (nftables): every TCP packet to or from one local port on
 * loopback is dropped. Nothing is closed and nothing answers: no FIN, no RST,
 * and no ACK, as behind a pulled cable. TcpProxy.cut() silences the programs only: the proxy's
 * own sockets still acknowledge what they receive, so the kernel's TCP liveness
 * (coordinator/tcp-liveness.ts) sees a healthy peer there, and only an application-level PING
 * finds the cut.
 *
 * Each KernelCut is its own nftables table (`inet cluster_test_<pid>_<n>`) with one input
 * chain; close() deletes it, and so does the process's exit (a test that timed out); tables
 * left by a test process that was killed are deleted by the next create(). Needs `nft` (Debian: nftables, installed by scripts/ensure-deps) and CAP_NET_ADMIN.
 */
import { execFile, execFileSync } from 'node:child_process';

const TABLE_PREFIX = 'cluster_test_';
let created = 0;
/** Tables of this process not yet deleted: deleted at exit (a test that timed out, a crash). */
const open = new Set<string>();
let exitHook = false;

function nft(args: string[], input?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile('nft', args, { timeout: 10_000 }, (err, stdout, stderr) => {
      if (!err) return resolve(stdout);
      const missing = (err as NodeJS.ErrnoException).code === 'ENOENT';
      reject(new Error(missing
        ? 'nft is not installed: the kernel partition tests need nftables (scripts/ensure-deps installs it; Debian: apt-get install nftables)'
        : `nft ${args.join(' ')}: ${stderr.trim() || err.message}${/Operation not permitted/i.test(stderr) ? ' (cutting traffic in the kernel needs CAP_NET_ADMIN: run the tests as root)' : ''}`));
    });
    // An nft that exits before reading its input must not raise an unhandled EPIPE.
    child.stdin?.on('error', () => undefined);
    child.stdin?.end(input ?? '');
  });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export class KernelCut {
  private constructor(readonly table: string) {}

  /** Makes an empty table (nothing dropped yet); removes tables of test processes that are gone. */
  static async create(): Promise<KernelCut> {
    const listed = await nft(['list', 'tables', 'inet']);
    for (const m of listed.matchAll(new RegExp(`table inet (${TABLE_PREFIX}(\\d+)_\\d+)`, 'g'))) {
      if (!alive(Number(m[2]))) await nft(['delete', 'table', 'inet', m[1]]).catch(() => undefined);
    }
    const table = `${TABLE_PREFIX}${process.pid}_${++created}`;
    await nft(['-f', '-'], `table inet ${table} {\n  chain input {\n    type filter hook input priority 0; policy accept;\n  }\n}\n`);
    open.add(table);
    if (!exitHook) {
      exitHook = true;
      process.on('exit', () => {
        for (const t of open) {
          try {
            execFileSync('nft', ['delete', 'table', 'inet', t], { stdio: 'ignore', timeout: 5000 });
          } catch {
            // already gone
          }
        }
      });
    }
    return new KernelCut(table);
  }

  /**
   * Drops every TCP packet to or from local port `port` on loopback from now on (both
   * directions: on lo, each packet passes the input hook once). Only unprivileged ports: a
   * test's own listeners.
   */
  async cut(port: number): Promise<void> {
    if (!Number.isInteger(port) || port < 1024 || port > 65535) throw new Error(`KernelCut.cut: ${port} is not a test's port (1024-65535)`);
    await nft(['-f', '-'], `add rule inet ${this.table} input iifname "lo" tcp dport ${port} drop\nadd rule inet ${this.table} input iifname "lo" tcp sport ${port} drop\n`);
  }

  /** Lets packets through again (TCP retransmits what was held back). */
  async heal(): Promise<void> {
    await nft(['flush', 'chain', 'inet', this.table, 'input']);
  }

  /** Deletes the table (heals). Safe to call twice. */
  async close(): Promise<void> {
    await nft(['delete', 'table', 'inet', this.table]).catch((err: unknown) => {
      if (!/No such file or directory|does not exist/i.test(String(err))) throw err;
    });
    open.delete(this.table);
  }
}
