/**
 * Many waiters on one AbortSignal with one 'abort' listener on it. EventTarget's
 * addEventListener walks the signal's whole listener list to refuse a duplicate, and
 * removeEventListener walks to the listener: with every command of a 10,000-node fan-out
 * listening on its job's two signals (jobs/command-dispatch.ts) that was 0.15 s of the
 * leader's CPU per signal in adds and 0.06 s in removes, quadratic in the fleet (bench/README,
 * "fanout"). Here a subscriber is one Set entry.
 *
 * The semantics are the signal's own: subscribers run once, in the order they subscribed; one
 * unsubscribed while the abort is being delivered (by an earlier subscriber) is not run; one
 * that subscribes after the abort is never run (check `signal.aborted` first, as with
 * addEventListener).
 */
const subscribersOf = new WeakMap<AbortSignal, Set<() => void>>();

/** The subscribers of `signal`, with the one listener that runs them (made at its first subscriber). */
function subscribersFor(signal: AbortSignal): Set<() => void> {
  const known = subscribersOf.get(signal);
  if (known) return known;
  const set = new Set<() => void>();
  subscribersOf.set(signal, set);
  signal.addEventListener('abort', () => {
    subscribersOf.delete(signal);
    for (const f of [...set]) {
      if (!set.delete(f)) continue; // unsubscribed by an earlier subscriber meanwhile
      try {
        f();
      } catch (err) {
        // As EventTarget does: the others still run; the error is reported, outside.
        setImmediate(() => { throw err; });
      }
    }
  }, { once: true });
  return set;
}

/** Runs `fn` once when `signal` aborts; returns the unsubscribe (O(1)). */
export function onAbort(signal: AbortSignal, fn: () => void): () => void {
  if (signal.aborted) return () => undefined;
  const set = subscribersFor(signal);
  set.add(fn);
  return () => {
    set.delete(fn);
  };
}
