/** Bounds of a projection's segment count (PROJECTION_SEGMENTS, PROJECTION_SEGMENTS_<NAME>). */
export const MIN_SEGMENTS = 1;
export const MAX_SEGMENTS = 256;

/** One segment of a projection: which share of its keys it applies, and its checkpoint row. */
export interface Segment {
  readonly projection: string;
  readonly index: number;
  readonly count: number;
  /** The key of its projection_checkpoints row (`name`): what leases and fences name. */
  readonly row: string;
}

/**
 * The checkpoint row of a segment: the projection's own name when it has one segment (the rows made
 * before segments existed keep working as they are), `<name>#<index>/<count>` otherwise. The count
 * is part of the key so that a runner of an older layout never finds a row of a newer one.
 */
export function segmentRow(projection: string, index: number, count: number): string {
  return count === 1 ? projection : `${projection}#${index}/${count}`;
}

export function segmentsOf(projection: string, count: number): Segment[] {
  return Array.from({ length: count }, (_, index) => ({ projection, index, count, row: segmentRow(projection, index, count) }));
}

/**
 * The segment of a key: FNV-1a (32 bits) of its UTF-8 bytes, mod the count. Stable across processes,
 * releases and platforms (unlike a runtime's string hash), so a key always lands in the same segment
 * for a given count: every event of one key is applied by one runner, in commit order.
 */
export function segmentOfKey(key: string, count: number): number {
  if (count === 1) return 0;
  let hash = 0x811c9dc5;
  for (const byte of Buffer.from(key, 'utf8')) {
    hash ^= byte;
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash % count;
}

/** `PROJECTION_SEGMENTS_<NAME>`'s NAME for a projection: upper-cased, non-alphanumerics as `_`. */
export function segmentsEnvName(projection: string): string {
  return projection.toUpperCase().replace(/[^A-Z0-9]/g, '_');
}

/** Configured segment counts: a default, and overrides by env NAME (see segmentsEnvName). */
export interface SegmentCounts {
  readonly default: number;
  readonly byName: Readonly<Record<string, number>>;
}

export function segmentCountFor(counts: SegmentCounts | undefined, projection: string): number {
  if (!counts) return 1;
  return counts.byName[segmentsEnvName(projection)] ?? counts.default;
}
