/**
 * The top frames of a V8 CPU profile (`node --cpu-prof`), by self time: where a process spent
 * its CPU, without opening DevTools. Frames are merged by function, file and line.
 */
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}

interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

export interface Frame {
  frame: string;
  selfMs: number;
  /** Share of all samples, in percent. */
  pct: number;
}

export function topFrames(file: string, n = 10): { totalMs: number; frames: Frame[] } {
  const p = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  const byId = new Map(p.nodes.map((node) => [node.id, node]));
  const self = new Map<string, number>();
  p.samples.forEach((id, i) => {
    const cf = byId.get(id)?.callFrame;
    if (!cf) return;
    const where = cf.url ? `${cf.url.replace(/^file:\/\//, '').replace(/^.*\/(dist|node_modules)\//, '$1/')}:${cf.lineNumber + 1}` : '';
    const key = `${cf.functionName || '(anonymous)'}${where ? ` ${where}` : ''}`;
    self.set(key, (self.get(key) ?? 0) + (p.timeDeltas[i] ?? 0) / 1000);
  });
  const totalMs = [...self.values()].reduce((a, b) => a + b, 0);
  const frames = [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, n)
    .map(([frame, ms]) => ({ frame, selfMs: Math.round(ms), pct: Math.round((1000 * ms) / Math.max(1, totalMs)) / 10 }));
  return { totalMs: Math.round(totalMs), frames };
}
