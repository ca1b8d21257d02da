/**
 * Loopback ports for test servers (etcd, coordinators, Prometheus), unique per mocha worker.
 *
 * A port the kernel picks for bind(0) comes from the ephemeral range, the same range it gives
 * every outgoing connection its source port from. Between the moment a test learns the port and
 * the moment its child process binds it, another test's bind(0) or connect() may take it; with
 * `mocha --parallel` many processes do both at once. So the port is picked below the ephemeral
 * range (never handed out by the kernel), in a band of its own for each worker
 * (MOCHA_WORKER_ID; the serial pass has a band too), at random inside the band, checked free by
 * binding it, and not handed out twice in a row by this process.
 */
import { readFileSync } from 'node:fs';
import { portFree } from '../../scripts/lib/process-support';

const LOWEST = 10_000;
const BANDS = 9;

/** The first port of the kernel's ephemeral range (ours stay below it). */
function ephemeralStart(): number {
  try {
    const first = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    if (Number.isInteger(first) && first > LOWEST + BANDS * 100) return first;
  } catch {
    // Not Linux: IANA's dynamic range starts at 49152.
  }
  return 49_152;
}

const bandSize = Math.floor((ephemeralStart() - LOWEST) / BANDS);
const worker = Number(process.env.MOCHA_WORKER_ID);
// Workers 0..7 (a replaced worker gets the next id: modulo), then the serial pass's band.
const band = Number.isInteger(worker) && worker >= 0 ? worker % (BANDS - 1) : BANDS - 1;
const bandStart = LOWEST + band * bandSize;
/** Ports this process handed out lately: a server may not have bound one yet. */
const recent: number[] = [];
const RECENT_MAX = Math.floor(bandSize / 2);

/** A TCP port on 127.0.0.1 that was free a moment ago and that no other worker picks. */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = bandStart + Math.floor(Math.random() * bandSize);
    if (recent.includes(port) || !(await portFree(port))) continue;
    recent.push(port);
    if (recent.length > RECENT_MAX) recent.shift();
    return port;
  }
  throw new Error(`no free port in ${bandStart}-${bandStart + bandSize - 1} after 200 tries`);
}
