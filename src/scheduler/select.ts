/** What batch selection needs to know about one queued request. */
export interface Candidate {
  readonly rows: number;
  readonly shapeKey: string;
  /** performance.now() at arrival. */
  readonly arrivalMs: number;
}

/** The batching rules of one model, derived once from its config. */
export interface BatchLimits {
  /** Whether requests may share a batch (the model's maxBatchSize > 0). */
  readonly batching: boolean;
  /** Most rows in one batch (max batch size, capped by the largest allowed size when padding). */
  readonly maxRows: number;
  /** Preferred sizes <= maxRows, ascending. */
  readonly preferred: readonly number[];
  /** 0 = work-conserving: send whatever is queued as soon as a worker is free. */
  readonly maxQueueDelayMs: number;
}

/** Either send these candidates as one batch, or wait (a worker is free but the batch may still grow). */
export type Selection<T> =
  | { readonly kind: 'send'; readonly items: readonly T[]; readonly rows: number }
  | { readonly kind: 'wait'; readonly untilMs: number }
  | { readonly kind: 'empty' };

/**
 * How far past the head the selection looks for compatible requests. Bounds the work per batch when
 * the queue is long and mostly of other shapes; those get their turn when they reach the head.
 */
export const SCAN_LIMIT = 1024;

/**
 * Picks the next batch, called only while the executor has a free slot. The head (highest priority,
 * then oldest) fixes the shape class; later requests of the same class join in order until the next
 * one would exceed maxRows. Requests of other classes are skipped, not passed over for good: the head
 * always leads, so each becomes head in turn.
 *
 * Without a queue delay this is work-conserving: the batch goes now, whatever its size. With one, the
 * largest preferred size reached goes at once (Triton's rule); short of any preferred size the batch
 * waits until the oldest member has waited the delay.
 */
export function selectBatch<T extends Candidate>(queue: Iterable<T>, limits: BatchLimits, nowMs: number): Selection<T> {
  const items: T[] = [];
  let rows = 0;
  let key: string | undefined;
  let oldest = Infinity;
  let bestPreferredCount = 0;
  let bestPreferredRows = 0;
  let scanned = 0;
  for (const c of queue) {
    if (key === undefined) {
      key = c.shapeKey;
      if (!limits.batching) return { kind: 'send', items: [c], rows: c.rows };
    } else if (c.shapeKey !== key) {
      if (++scanned >= SCAN_LIMIT) break;
      continue;
    }
    if (rows + c.rows > limits.maxRows && items.length > 0) break;
    items.push(c);
    rows += c.rows;
    oldest = Math.min(oldest, c.arrivalMs);
    if (limits.preferred.includes(rows)) {
      bestPreferredCount = items.length;
      bestPreferredRows = rows;
    }
    if (rows >= limits.maxRows || ++scanned >= SCAN_LIMIT) break;
  }
  if (items.length === 0) return { kind: 'empty' };
  if (limits.maxQueueDelayMs <= 0 || rows >= limits.maxRows) return { kind: 'send', items, rows };
  if (bestPreferredCount > 0) return { kind: 'send', items: items.slice(0, bestPreferredCount), rows: bestPreferredRows };
  const untilMs = oldest + limits.maxQueueDelayMs;
  if (nowMs >= untilMs) return { kind: 'send', items, rows };
  return { kind: 'wait', untilMs };
}
