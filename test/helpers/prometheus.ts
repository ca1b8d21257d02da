/**
 * A real Prometheus (Debian's `prometheus` package) for tests: started on a free loopback port
 * with a generated config that scrapes the given targets every second and evaluates the given
 * rule files every second, its TSDB in a temp dir removed by `stop()`, which kills the process
 * it started by pid. Queried through its HTTP API (/api/v1/query, /api/v1/alerts, /api/v1/targets).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify as toYaml } from 'yaml';
import { freePort } from './ports';
import { ManagedProcess } from './processes';
import { waitFor } from './wait';

export const PROMETHEUS_BIN = '/usr/bin/prometheus';
export const PROMTOOL_BIN = '/usr/bin/promtool';

export interface ScrapeJob {
  name: string;
  /** HOST:PORT of each /metrics endpoint. */
  targets: string[];
  /** Scraped over https with this client certificate (etcd with client-certificate auth). */
  tls?: { caPem: string; certPem: string; keyPem: string; serverName: string };
}

export interface PromSample {
  metric: Record<string, string>;
  value: number;
}

export interface PromAlert {
  labels: Record<string, string>;
  annotations: Record<string, string>;
  state: 'pending' | 'firing' | 'inactive';
  value: string;
}

export interface PromTarget {
  labels: Record<string, string>;
  scrapeUrl: string;
  health: 'up' | 'down' | 'unknown';
  lastError: string;
}

interface ApiAnswer<T> { status: 'success' | 'error'; data: T; error?: string; errorType?: string }

/** Writes a job's client certificate into Prometheus's temp dir: its config names files. */
function tlsFiles(dir: string, job: string, tls: NonNullable<ScrapeJob['tls']>): Record<string, string> {
  const file = (suffix: string, pem: string): string => {
    const path = join(dir, `${job}-${suffix}`);
    writeFileSync(path, pem, { mode: 0o600 });
    return path;
  };
  return { ca_file: file('ca.crt', tls.caPem), cert_file: file('client.crt', tls.certPem), key_file: file('client.key', tls.keyPem), server_name: tls.serverName };
}

export class PrometheusServer {
  private constructor(readonly proc: ManagedProcess, readonly url: string, readonly dir: string) {}

  /** Starts Prometheus and waits until it answers /-/ready. */
  static async start(jobs: readonly ScrapeJob[], ruleFiles: readonly string[] = []): Promise<PrometheusServer> {
    const dir = mkdtempSync(join(tmpdir(), 'prometheus-'));
    const port = await freePort();
    const config = {
      global: { scrape_interval: '1s', scrape_timeout: '900ms', evaluation_interval: '1s' },
      rule_files: [...ruleFiles],
      scrape_configs: jobs.map((j) => ({ job_name: j.name, static_configs: [{ targets: j.targets }], ...(j.tls ? { scheme: 'https', tls_config: tlsFiles(dir, j.name, j.tls) } : {}) })),
    };
    const configFile = join(dir, 'prometheus.yml');
    writeFileSync(configFile, toYaml(config));
    const proc = new ManagedProcess('prometheus', PROMETHEUS_BIN, [
      `--config.file=${configFile}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`,
    ], { logFile: join(dir, 'prometheus.log') });
    const server = new PrometheusServer(proc, `http://127.0.0.1:${port}`, dir);
    try {
      await waitFor('prometheus to be ready', async () => {
        if (!proc.alive) throw new Error(`prometheus exited: ${proc.logs.slice(-2000)}`);
        const r = await fetch(`${server.url}/-/ready`).catch(() => undefined);
        return r?.ok === true;
      }, { timeoutMs: 60_000, intervalMs: 200 });
    } catch (err) {
      await server.stop();
      throw err;
    }
    return server;
  }

  private async api<T>(path: string): Promise<T> {
    const r = await fetch(`${this.url}${path}`);
    const body = (await r.json()) as ApiAnswer<T>;
    if (body.status !== 'success') throw new Error(`prometheus ${path}: ${body.errorType ?? ''} ${body.error ?? r.status}`);
    return body.data;
  }

  /** An instant query; throws on a PromQL error. */
  async query(expr: string): Promise<PromSample[]> {
    const data = await this.api<{ resultType: string; result: { metric: Record<string, string>; value: [number, string] }[] }>(`/api/v1/query?query=${encodeURIComponent(expr)}`);
    if (data.resultType !== 'vector') throw new Error(`query ${expr}: a ${data.resultType}, not a vector`);
    return data.result.map((s) => ({ metric: s.metric, value: Number(s.value[1]) }));
  }

  async alerts(): Promise<PromAlert[]> {
    return (await this.api<{ alerts: PromAlert[] }>('/api/v1/alerts')).alerts;
  }

  async targets(): Promise<PromTarget[]> {
    return (await this.api<{ activeTargets: PromTarget[] }>('/api/v1/targets')).activeTargets;
  }

  /** The tail of Prometheus's own log, for a failing test. */
  tail(chars = 3000): string {
    return this.proc.logs.slice(-chars);
  }

  /** Kills the process (by its pid) and removes its config and data. */
  async stop(): Promise<void> {
    await this.proc.kill('SIGKILL');
    rmSync(this.dir, { recursive: true, force: true });
  }
}
