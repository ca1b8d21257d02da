import { expect } from 'chai';
import { createServer as createHttpServer, type Server } from 'node:http';
import { execFile } from 'node:child_process';
import { createServer as createTcpServer, type Server as TcpServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { runProbe } from '../../agent/units/verify-probes';
import { freePort } from '../helpers';
import { tempNode, type TempNode } from './unit-test-context';

describe('verify probes (real sockets on 127.0.0.1, real processes)', () => {
  let node: TempNode;
  let http: Server;
  let tcp: TcpServer;
  before(async () => {
    http = createHttpServer((req, res) => { res.statusCode = req.url === '/ok' ? 200 : 503; res.end(); });
    tcp = createTcpServer((s) => s.end());
    await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
    await new Promise<void>((r) => tcp.listen(0, '127.0.0.1', r));
  });
  after(async () => {
    await new Promise((r) => http.close(r));
    await new Promise((r) => tcp.close(r));
  });
  beforeEach(() => { node = tempNode('probes'); });
  afterEach(() => node.cleanup());

  it('tcp: open port passes, closed port fails with the reason', async () => {
    const open = await runProbe({ id: 't', tcp: `127.0.0.1:${(tcp.address() as AddressInfo).port}` }, node.ctx());
    expect(open).to.include({ ok: true });
    const closed = await runProbe({ id: 't', tcp: `127.0.0.1:${await freePort()}` }, node.ctx());
    expect(closed.ok).to.equal(false);
    expect(closed.detail).to.match(/ECONNREFUSED/);
  });

  it('http: status compared with expectStatus (default 2xx/3xx)', async () => {
    const port = (http.address() as AddressInfo).port;
    expect((await runProbe({ id: 'h', http: `http://127.0.0.1:${port}/ok` }, node.ctx())).ok).to.equal(true);
    const bad = await runProbe({ id: 'h', http: `http://127.0.0.1:${port}/down` }, node.ctx());
    expect(bad.detail).to.equal(`http http://127.0.0.1:${port}/down: status 503 (want 2xx or 3xx)`);
    expect((await runProbe({ id: 'h', http: `http://127.0.0.1:${port}/down`, expectStatus: 503 }, node.ctx())).ok).to.equal(true);
  });

  it('command: exit code; a hung command is stopped at the probe timeout; retry waits for a late service', async () => {
    expect((await runProbe({ id: 'c', command: 'exit 4', expectExit: 4 }, node.ctx())).ok).to.equal(true);
    const started = Date.now();
    const hung = await runProbe({ id: 'c', command: 'sleep 30', timeoutMs: 300 }, node.ctx());
    expect(hung.ok).to.equal(false);
    expect(Date.now() - started).to.be.below(5000);
    // A port that opens 500 ms later: one try fails, retrying within the timeout passes.
    const port = await freePort();
    const late = createTcpServer((s) => s.end());
    const t = setTimeout(() => late.listen(port, '127.0.0.1'), 500);
    try {
      expect((await runProbe({ id: 'l', tcp: `127.0.0.1:${port}`, timeoutMs: 4000 }, node.ctx())).ok).to.equal(false);
      expect((await runProbe({ id: 'l', tcp: `127.0.0.1:${port}`, timeoutMs: 4000 }, node.ctx(), { retry: true })).ok).to.equal(true);
    } finally {
      clearTimeout(t);
      await new Promise((r) => late.close(r));
    }
  });
  // A retrying probe of a port nobody listens on ends at its timeout even while the garbage
  // collector runs all the time. Built on AbortSignal.any([..., AbortSignal.timeout()]) it never
  // ended on Node 20 (the collected timeout signal never fired: nodejs/node#57736), and a
  // health-gated upgrade hung in its soak. A child with --expose-gc collects every 5 ms.
  it('a retrying probe times out even when the garbage collector runs during it', async function () {
    this.timeout(30_000);
    const port = await freePort();
    const script = `
      const { runProbe } = require(${JSON.stringify(join(__dirname, '../../agent/units/verify-probes.js'))});
      setInterval(() => globalThis.gc(), 5).unref();
      (async () => {
        const out = [];
        for (let i = 0; i < 5; i++) {
          const r = await runProbe({ id: 't', tcp: '127.0.0.1:${port}', timeoutMs: 400 }, { signal: new AbortController().signal }, { retry: true, intervalMs: 20 });
          out.push({ ok: r.ok, durationMs: r.durationMs });
        }
        process.stdout.write(JSON.stringify(out));
        process.exit(0);
      })();`;
    const out = await new Promise<string>((resolve, reject) => {
      execFile(process.execPath, ['--expose-gc', '-e', script], { timeout: 20_000 }, (err, stdout, stderr) => {
        if (err) reject(new Error(`probe child did not finish (${err.message}): ${stderr}`));
        else resolve(stdout);
      });
    });
    const runs = JSON.parse(out) as { ok: boolean; durationMs: number }[];
    expect(runs).to.have.length(5);
    for (const r of runs) {
      expect(r.ok).to.equal(false);
      expect(r.durationMs).to.be.at.least(390);
    }
  });
});
