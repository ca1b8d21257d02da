/**
 * The fuzzer of the coordinator's edge: generated requests to every method of proto/cluster.proto
 * and generated bundles pushed through ConfigService.PushBundle, against a real coordinator
 * process over real gRPC and mutual TLS, with a seeded generator (the same seed, the same
 * requests). For each one it checks:
 *
 * - it is answered with a status (a stream: a status, or messages/an open stream within a short
 *   wait) within `callTimeoutMs` — no hang;
 * - the status is never INTERNAL or UNKNOWN (the client's mistakes are INVALID_ARGUMENT or a
 *   domain code: NOT_FOUND, FAILED_PRECONDITION, PERMISSION_DENIED, ...), and its message is
 *   well-formed, free of control characters and short;
 * - a refused request changed nothing: etcd's revision is the same after it as before, and
 *   every `hashEvery` refusals the sha-256 of the whole keyspace is compared too;
 * - every `probeEvery` requests the same channel still answers GetStatus (no wedged channel)
 *   and the coordinator process is alive.
 *
 * Requests are built as protobuf wire bytes from each method's descriptor, so a field may also
 * arrive with the wrong wire type, or the whole request be junk bytes.
 *
 * Secrets: before the first request the run stores one named secret (`FUZZ_SECRET_NAME`); bundles
 * have file units marked `secret:` (true, or a wrong type) and units whose `source` is
 * `secret:NAME` (that secret, a missing one, a traversal, terminal escapes), one bundle in ten
 * is a valid one whose inline secret is that value, and strings name secrets too. No answer —
 * its message or a unary response — may carry the secret's value.
 */
import { createHash } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import type { Etcd3 } from 'etcd3';
import { loadProto } from '../../shared';
import { contractMethods, RawClient, type RawAnswer, type RawMethod } from '../edge/raw-client';

/** mulberry32: small, fast, seedable. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Rand = () => number;

/** The named secret the run stores before its first request, and its value, which no answer may carry. */
export const FUZZ_SECRET_NAME = 'fz-db';
export const FUZZ_SECRET_VALUE = 'fz-secret-value-5e1f0c2a9d';
const pick = <T>(r: Rand, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)];

const NESTED = (open: string, close: string, n: number): string => open.repeat(n) + close.repeat(n);

/**
 * Strings that have broken parsers, paths and terminals before, and some that name real things
 * (not "admin": RevokeUser of the fuzzer's own identity is a legitimate request that ends the run).
 */
function hostileString(r: Rand): string {
  const n = Math.floor(r() * 40);
  const choices: (() => string)[] = [
    () => '', () => 'n1', () => 'operator', () => 'active', () => 'last', () => 'worker', () => 'base@1', () => 'demo',
    () => 'exec', () => 'commission', () => 'decommission', () => 'upgrade', () => 'verify', () => 'repair', () => 'Pending',
    () => '../../etc/passwd', () => '/etc/shadow', () => '/dev/sda', () => '..', () => '/..', () => 'x\0y', () => '\0',
    () => 'bad\uD800name', () => '\uDC00', () => '\u001b[31mred\u001b]0;title\u0007', () => 'a\r\nb', () => '\u202Eevil',
    () => 'A'.repeat(100_000 + n), () => 'é'.repeat(5000), () => '😀'.repeat(n),
    () => '{{ vars.x }}', () => '{{ facts.__proto__.polluted }}', () => '{{#each x}}{{/each}}', () => '{{ vars.' + 'a.'.repeat(500) + 'b }}',
    () => '__proto__', () => 'constructor', () => 'prototype', () => '-1', () => '99999999999999999999', () => 'NaN',
    () => `secret:${FUZZ_SECRET_NAME}`, () => FUZZ_SECRET_NAME, () => 'registry/docker', () => 'secret:../../etc/shadow', () => 'secret:',
    () => 'role=worker', () => 'zone in (a,', () => '!x', () => 'k=v,'.repeat(1000),
    () => '{"a":1}', () => '[1,2', () => '{"__proto__":{"x":1}}', () => NESTED('[', ']', 5000 + n), () => NESTED('{"a":', '}', 3000),
    () => `${'- '.repeat(3000)}x`, () => `a: &a [${'x,'.repeat(9)}x]\nb: &b [${'*a,'.repeat(9)}*a]\nc: &c [${'*b,'.repeat(9)}*b]\nd: [${'*c,'.repeat(9)}*c]\n`,
    () => 'a: &a\n  b: *a\n', () => `[${'a,'.repeat(500)}`, () => 'groups:\n  "bad\\uD800":\n    bundle: x@1\n',
    () => `groups:\n${Array.from({ length: 3000 }, (_, i) => `  g${i}: {bundle: b@1}`).join('\n')}\n`,
    () => Buffer.from(Array.from({ length: 64 }, () => Math.floor(r() * 256))).toString('latin1'),
  ];
  return pick(r, choices)();
}

// ---- protobuf wire encoding ------------------------------------------------------------------

function varint(v: bigint): Buffer {
  const out: number[] = [];
  let x = BigInt.asUintN(64, v);
  do {
    let b = Number(x & 0x7fn);
    x >>= 7n;
    if (x > 0n) b |= 0x80;
    out.push(b);
  } while (x > 0n);
  return Buffer.from(out);
}

const tag = (field: number, wire: number): Buffer => varint(BigInt((field << 3) | wire));
const lengthDelimited = (field: number, bytes: Buffer): Buffer => Buffer.concat([tag(field, 2), varint(BigInt(bytes.length)), bytes]);

/** UTF-8 as protobufjs writes it: a lone surrogate becomes its 3-byte (invalid) encoding. */
function utf8(s: string): Buffer {
  const out: number[] = [];
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) out.push(c);
    else if (c < 0x800) out.push(0xc0 | (c >> 6), 0x80 | (c & 63));
    else if (c >= 0xd800 && c < 0xdc00 && i + 1 < s.length && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      const cp = 0x10000 + ((c - 0xd800) << 10) + (s.charCodeAt(++i) - 0xdc00);
      out.push(0xf0 | (cp >> 18), 0x80 | ((cp >> 12) & 63), 0x80 | ((cp >> 6) & 63), 0x80 | (cp & 63));
    } else out.push(0xe0 | (c >> 12), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63));
  }
  return Buffer.from(out);
}

interface FieldDescriptor { name: string; number: number; label: string; type: string; typeName: string }
interface MessageDescriptor { name?: string; field: FieldDescriptor[]; nestedType?: MessageDescriptor[] }

const VARINT_TYPES = new Set(['TYPE_BOOL', 'TYPE_INT32', 'TYPE_UINT32', 'TYPE_INT64', 'TYPE_UINT64', 'TYPE_ENUM', 'TYPE_SINT32', 'TYPE_SINT64']);

export class RequestGenerator {
  private readonly types = new Map<string, MessageDescriptor>();

  constructor(private readonly r: Rand) {
    const { packageDefinition } = loadProto();
    for (const [name, def] of Object.entries(packageDefinition)) {
      const t = (def as { type?: MessageDescriptor }).type;
      if (t && Array.isArray(t.field)) this.types.set(name, t);
    }
  }

  private resolve(typeName: string, scope: string): MessageDescriptor | undefined {
    const clean = typeName.replace(/^\./, '');
    return this.types.get(clean) ?? this.types.get(`${scope}.${clean}`) ?? this.types.get(`cluster.v1.${clean}`)
      ?? this.types.get(`google.protobuf.${clean}`);
  }

  private value(f: FieldDescriptor, scope: string, depth: number): Buffer {
    const r = this.r;
    // Now and then the wrong wire type: the decoder must refuse it, not the handler crash on it.
    if (r() < 0.03) return Buffer.concat([tag(f.number, r() < 0.5 ? 0 : 5), r() < 0.5 ? varint(BigInt(Math.floor(r() * 1e6))) : Buffer.from([1, 2, 3, 4])]);
    if (f.type === 'TYPE_STRING' || f.type === 'TYPE_BYTES') return lengthDelimited(f.number, utf8(hostileString(r)));
    if (VARINT_TYPES.has(f.type)) {
      const v = pick(r, [0n, 1n, 2n, 3n, -1n, 7n, 100n, 2n ** 31n - 1n, 2n ** 32n, 2n ** 63n - 1n, BigInt(Math.floor(r() * 1e9))]);
      return Buffer.concat([tag(f.number, 0), varint(v)]);
    }
    if (f.type === 'TYPE_DOUBLE' || f.type === 'TYPE_FIXED64' || f.type === 'TYPE_SFIXED64') {
      const b = Buffer.alloc(8);
      b.writeDoubleLE(pick(r, [0, -1, 1e308, Number.NaN, Infinity]));
      return Buffer.concat([tag(f.number, 1), b]);
    }
    if (f.type === 'TYPE_FLOAT' || f.type === 'TYPE_FIXED32' || f.type === 'TYPE_SFIXED32') {
      return Buffer.concat([tag(f.number, 5), Buffer.from([0, 0, 0x80, 0x7f])]);
    }
    if (f.type === 'TYPE_MESSAGE') {
      const t = this.resolve(f.typeName, scope);
      const inner = t && depth < 4 ? this.message(t, f.typeName.replace(/^\./, ''), depth + 1) : utf8(hostileString(r));
      return lengthDelimited(f.number, inner);
    }
    return Buffer.alloc(0);
  }

  /** One message of type `t`: each field absent, present once, or repeated. */
  message(t: MessageDescriptor, scope: string, depth = 0): Buffer {
    const parts: Buffer[] = [];
    for (const f of t.field) {
      const roll = this.r();
      if (roll < 0.35) continue;
      const times = f.label === 'LABEL_REPEATED' ? pick(this.r, [1, 2, 3, 50]) : 1;
      for (let i = 0; i < times; i++) parts.push(this.value(f, scope, depth));
    }
    return Buffer.concat(parts);
  }

  /** A request for `m`: usually a message of its type; sometimes junk bytes. */
  request(m: RawMethod): Buffer {
    if (this.r() < 0.03) return Buffer.from(Array.from({ length: 1 + Math.floor(this.r() * 64) }, () => Math.floor(this.r() * 256)));
    const t = this.types.get(`cluster.v1.${m.requestType}`) ?? this.types.get(m.requestType);
    return t ? this.message(t, `cluster.v1.${m.requestType}`) : Buffer.alloc(0);
  }
}

// ---- bundles ---------------------------------------------------------------------------------

const UNIT_KINDS = ['file', 'directory', 'package', 'systemd', 'command', 'bogus', 'File', '', 'script'];

/**
 * A valid bundle with secrets, so the accepting path runs too: an inline secret whose content
 * is the run's secret value (no later answer may show it), a unit whose source is the stored
 * secret, or both, sometimes with a file mode of its own.
 */
function secretBundle(r: Rand, i: number): string {
  const units: string[] = [];
  if (r() < 0.7) units.push(`  - { id: inline, kind: file, path: /etc/fz/inline.conf, secret: true, content: "${FUZZ_SECRET_VALUE}"${r() < 0.3 ? ', mode: "0640"' : ''} }`);
  if (units.length === 0 || r() < 0.6) units.push(`  - { id: named, kind: file, path: /etc/fz/named.conf, source: "secret:${FUZZ_SECRET_NAME}" }`);
  return `name: fzs${i}\nversion: 1\nunits:\n${units.join('\n')}\n`;
}

/** A bundle document: mostly almost-valid YAML with one or several things wrong; now and then a valid one with secrets. */
export function generateBundle(r: Rand, i: number): string {
  if (r() < 0.1) return secretBundle(r, i);
  const ids = ['a', 'b', 'a', 'c'];
  const path = (): string => pick(r, ['/etc/app.conf', '/../../etc/shadow', '/opt/../../root/.ssh/authorized_keys', '/dev/sda', 'relative/x', '/x\\0y', '/{{ vars.dir }}/x', '/etc/{{ facts.__proto__ }}', '/tmp/ok']);
  const value = (): string => pick(r, [
    '"hello"', '0644', '"0644"', '[1, 2]', '{a: 1}', 'null', '!!binary aGVsbG8=', '"{{ vars.x }}"', '"{{#each x}}"',
    `"${'x'.repeat(1000)}"`, NESTED('[', ']', 40), '&a [*a]', '"\\u001b[31m"', '"\\uD800"', '12345678901234567890',
  ]);
  const units: string[] = [];
  const n = pick(r, [0, 1, 2, 3, 5, 20]);
  for (let u = 0; u < n; u++) {
    const kind = pick(r, UNIT_KINDS);
    const fields = [`id: ${pick(r, ids)}${u % 3 === 2 ? '' : u}`, `kind: ${kind}`];
    if (r() < 0.8) fields.push(`path: "${path()}"`);
    if (r() < 0.5) fields.push(`content: ${value()}`);
    if (r() < 0.3) fields.push(`mode: ${pick(r, ['"0644"', '644', '"9999"', '0o777', '"u+rwx"'])}`);
    if (r() < 0.3) fields.push(`run: ${value()}`);
    if (r() < 0.2) fields.push(`restartWhenChanged: [${pick(r, ['a0', 'nope', 'c5'])}]`);
    if (r() < 0.2) fields.push(`${pick(r, ['bogus', '__proto__', 'constructor'])}: 1`);
    if (r() < 0.1) fields.push(`timeout: ${pick(r, ['30s', '-1', '999999h', 'soon'])}`);
    // Secrets: inline content marked secret (or a wrong type for the mark), a source naming a stored secret or not.
    if (r() < 0.25) fields.push(`secret: ${pick(r, ['true', 'true', 'false', '"yes"', '1', 'null', '[true]'])}`);
    if (r() < 0.25) {
      fields.push(`source: "${pick(r, [
        `secret:${FUZZ_SECRET_NAME}`, `secret:${FUZZ_SECRET_NAME}`, 'secret:nosuch', 'secret:', 'secret:../../etc/shadow', 'secret:registry/docker',
        `secret:${'s'.repeat(300)}`, 'secret:\\u001b[31m', 'secret:{{ vars.x }}', `secret:${FUZZ_SECRET_NAME}\\u0000`, 'plain.conf',
      ])}"`);
    }
    units.push(`  - {${fields.join(', ')}}`);
  }
  const name = pick(r, [`fz${i}`, '../x', 'a/b', '', 'x'.repeat(300), 'bad\\u001b', `fz${i}`]);
  const version = pick(r, ['1', '"1"', '-1', '1.0.0', '[1]', '"../1"']);
  const vars = r() < 0.3 ? `variables:\n${Array.from({ length: pick(r, [1, 5, 3000]) }, (_, k) => `  v${k}: ${value()}`).join('\n')}\n` : '';
  const head = r() < 0.1 ? hostileString(r) + '\n' : '';
  return `${head}name: "${name}"\nversion: ${version}\n${vars}units:\n${units.join('\n')}${units.length ? '\n' : ' []\n'}`;
}

// ---- the run ---------------------------------------------------------------------------------

export interface FuzzOptions {
  address: string;
  credentialsFile: string;
  etcd: Etcd3;
  /** Whether the coordinator process is alive. */
  alive: () => boolean;
  seed: number;
  requests: number;
  bundles: number;
  /** Per call; a call not answered by then is a hang. @default 15000 */
  callTimeoutMs?: number;
  /** @default 250 */
  probeEvery?: number;
  /** @default 200 */
  hashEvery?: number;
  onProgress?: (done: number, total: number, counts: Record<string, number>) => void;
  /** Stops the run after the request in flight; the report covers what was sent. */
  signal?: AbortSignal;
  /** Called with each failure as it is found (a long run shows them before it ends). */
  onFailure?: (what: string) => void;
}

export interface FuzzReport {
  requests: number;
  bundles: number;
  /** Answers by status name. */
  codes: Record<string, number>;
  /** Per status other than OK and INVALID_ARGUMENT: the first few requests and messages, to read why. */
  examples: Record<string, string[]>;
  /** Requests per method. */
  perMethod: Record<string, number>;
  refusals: number;
  hashesCompared: number;
  probes: number;
  failures: string[];
  /** Bundles with a unit marked secret or a `secret:` source: sent, and answered OK. */
  secretBundles: { sent: number; accepted: number };
  /** The longest a single call took, ms (wall clock at the client). */
  slowestMs: number;
  slowest: string;
}

const BAD_CODES = new Set([grpc.status.INTERNAL, grpc.status.UNKNOWN, grpc.status.DEADLINE_EXCEEDED]);

/** JSON.stringify replacer: a bytes field (a Buffer, already turned into {type, data}) as its text, so a secret in it is found. */
function bytesAsText(_key: string, v: unknown): unknown {
  const b = v as { type?: unknown; data?: unknown } | null;
  return b && typeof b === 'object' && b.type === 'Buffer' && Array.isArray(b.data) ? Buffer.from(b.data as number[]).toString('latin1') : v;
}

async function revision(etcd: Etcd3): Promise<string> {
  // A read of one key returns the store's current revision in its header.
  const res = await etcd.kv.range({ key: Buffer.from('\0'), limit: '1' });
  return res.header.revision;
}

async function keyspaceHash(etcd: Etcd3): Promise<string> {
  const all = await etcd.getAll().prefix('').strings();
  const h = createHash('sha256');
  for (const k of Object.keys(all).sort()) h.update(k).update('\0').update(all[k]).update('\0');
  return h.digest('hex');
}

/** Which keys changed after `rev` (for a failure report). */
async function changedSince(etcd: Etcd3, rev: string): Promise<string[]> {
  const res = await etcd.kv.range({ key: Buffer.from('\0'), range_end: Buffer.from('\0'), min_mod_revision: String(BigInt(rev) + 1n), keys_only: true });
  return res.kvs.map((kv) => kv.key.toString()).slice(0, 5);
}

export async function runFuzz(o: FuzzOptions): Promise<FuzzReport> {
  const r = rng(o.seed);
  const gen = new RequestGenerator(r);
  const methods = contractMethods();
  const status = methods.find((m) => m.name === 'GetStatus');
  const push = methods.find((m) => m.name === 'PushBundle');
  const setSecret = methods.find((m) => m.name === 'SetSecret');
  if (!status || !push || !setSecret) throw new Error('the contract lost GetStatus, PushBundle or SetSecret');
  const client = new RawClient(o.address, o.credentialsFile);
  const stored = await client.call(setSecret, { name: FUZZ_SECRET_NAME, value: Buffer.from(FUZZ_SECRET_VALUE) }, { timeoutMs: o.callTimeoutMs ?? 15_000 });
  if (stored.code !== grpc.status.OK) {
    client.close();
    throw new Error(`storing the secret ${FUZZ_SECRET_NAME} failed: ${grpc.status[stored.code]} ${stored.details}`);
  }
  const report: FuzzReport = {
    requests: 0, bundles: 0, codes: {}, examples: {}, perMethod: {}, refusals: 0, hashesCompared: 0, probes: 0, failures: [],
    secretBundles: { sent: 0, accepted: 0 }, slowestMs: 0, slowest: '',
  };
  const total = o.requests + o.bundles;
  const timeoutMs = o.callTimeoutMs ?? 15_000;
  const fail = (what: string): void => {
    o.onFailure?.(what);
    if (report.failures.length < 50) report.failures.push(what);
  };
  let hash = await keyspaceHash(o.etcd);
  try {
    let next = 0;
    for (let i = 0; i < total && !o.signal?.aborted; i++) {
      // The bundles spread evenly among the requests.
      const isBundle = Math.floor(((i + 1) * o.bundles) / total) > Math.floor((i * o.bundles) / total);
      const method = isBundle ? push : methods[next++ % methods.length];
      const yaml = isBundle ? generateBundle(r, i) : '';
      const hasSecret = isBundle && /secret: |source: "secret:/.test(yaml);
      const body = isBundle ? push.serialize({ yaml }) : gen.request(method);
      const label = `#${i} ${method.path}`;
      const before = await revision(o.etcd);
      const t0 = Date.now();
      const answer: RawAnswer = await client.call(method, body, { timeoutMs, streamMs: 200 });
      const took = Date.now() - t0;
      if (hasSecret) {
        report.secretBundles.sent++;
        if (answer.code === grpc.status.OK) report.secretBundles.accepted++;
      }
      if (isBundle) report.bundles++;
      else report.requests++;
      report.perMethod[method.path] = (report.perMethod[method.path] ?? 0) + 1;
      const codeName = grpc.status[answer.code] ?? String(answer.code);
      report.codes[codeName] = (report.codes[codeName] ?? 0) + 1;
      if (answer.code !== grpc.status.OK && answer.code !== grpc.status.INVALID_ARGUMENT) {
        const seen = (report.examples[codeName] ??= []);
        if (seen.length < 5) seen.push(`${label}: ${answer.details.slice(0, 160)}`);
      }
      if (took > report.slowestMs) { report.slowestMs = took; report.slowest = `${label} → ${codeName}`; }

      if (BAD_CODES.has(answer.code)) fail(`${label}: ${codeName}: ${answer.details.slice(0, 200)}`);
      // eslint-disable-next-line no-control-regex
      if (/[\u0000-\u0008\u000B-\u001F\u007F]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(answer.details)) fail(`${label}: unsafe characters in the message`);
      if (answer.details.length > 1100) fail(`${label}: a ${answer.details.length}-character message`);
      if (`${answer.details}${JSON.stringify(answer.response, bytesAsText) ?? ''}`.includes(FUZZ_SECRET_VALUE)) fail(`${label}: the answer carries the secret's value`);
      if (answer.code !== grpc.status.OK) {
        report.refusals++;
        if (answer.code === grpc.status.RESOURCE_EXHAUSTED) fail(`${label}: RESOURCE_EXHAUSTED to a client with one call in flight`);
        const after = await revision(o.etcd);
        if (after !== before) fail(`${label}: refused (${codeName}) but etcd moved from revision ${before} to ${after}: ${(await changedSince(o.etcd, before)).join(', ')}`);
        if (report.refusals % (o.hashEvery ?? 200) === 0) {
          const now = await keyspaceHash(o.etcd);
          report.hashesCompared++;
          if (after === before && now !== hash) fail(`${label}: the keyspace hash changed without a new revision`);
          hash = now;
        }
      } else if ((await revision(o.etcd)) !== before) {
        hash = await keyspaceHash(o.etcd);
      }
      if ((i + 1) % (o.probeEvery ?? 250) === 0 || i === total - 1) {
        report.probes++;
        const p = await client.call(status, {}, { timeoutMs });
        if (p.code !== grpc.status.OK) fail(`after ${label}: GetStatus on the same channel answered ${grpc.status[p.code]}: ${p.details}`);
        if (!o.alive()) {
          fail(`after ${label}: the coordinator process is gone`);
          break;
        }
        o.onProgress?.(i + 1, total, report.codes);
      }
    }
  } finally {
    client.close();
  }
  return report;
}
