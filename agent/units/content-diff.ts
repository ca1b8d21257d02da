/**
 * A content change summarised for a person without printing the content (files may hold
 * secrets): line counts before and after, lines added and removed, and short digests.
 * Added/removed are counted as a multiset difference of lines: exact for the common edits
 * (lines changed, added, deleted), cheap on big files, and it never needs an LCS table.
 */
import { createHash } from 'node:crypto';

export function sha256(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

export function lineCount(text: string): number {
  if (text === '') return 0;
  const n = text.split('\n').length;
  return text.endsWith('\n') ? n - 1 : n;
}

export interface ContentDiff {
  beforeLines: number;
  afterLines: number;
  added: number;
  removed: number;
}

function lines(text: string): string[] {
  if (text === '') return [];
  const parts = text.split('\n');
  if (text.endsWith('\n')) parts.pop();
  return parts;
}

export function diffContent(before: string, after: string): ContentDiff {
  const counts = new Map<string, number>();
  const a = lines(before);
  const b = lines(after);
  for (const l of a) counts.set(l, (counts.get(l) ?? 0) + 1);
  let added = 0;
  for (const l of b) {
    const c = counts.get(l) ?? 0;
    if (c > 0) counts.set(l, c - 1);
    else added++;
  }
  let removed = 0;
  for (const c of counts.values()) removed += c;
  return { beforeLines: a.length, afterLines: b.length, added, removed };
}

/** `3 lines sha256:1a2b3c4d` */
export function describeContent(text: string): string {
  const n = lineCount(text);
  return `${n} line${n === 1 ? '' : 's'} sha256:${sha256(text).slice(0, 12)}`;
}

/** `3 lines (secret)`: a secret's content described without a digest. */
export function describeSecret(text: string): string {
  const n = lineCount(text);
  return `${n} line${n === 1 ? '' : 's'} (secret)`;
}
