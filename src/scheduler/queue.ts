/**
 * A node of the request queue. The queue links nodes in place so that a cancelled, expired or batched
 * request leaves in O(1) wherever it stands.
 */
export interface QueueNode {
  /** Index of the list holding the node (0 = highest priority); -1 while not queued. */
  list: number;
  prev: QueueNode | undefined;
  next: QueueNode | undefined;
  /** Rows the request stands for: what fair queuing charges its flow when it is served. */
  readonly rows: number;
  /** The flow (tenant) it is queued under; '' = the anonymous one. */
  readonly flow: string;
  /**
   * Set while its rows stand charged to its flow: a request put back at the head (its batch must run
   * again, its worker failed) is refunded, so it keeps its place and is charged once in all.
   */
  charged?: boolean;
}

interface List {
  head: QueueNode | undefined;
  tail: QueueNode | undefined;
  size: number;
}

/** One tenant's requests in this queue: a FIFO list per priority level, and its fair-queuing account. */
interface Flow {
  readonly name: string;
  readonly lists: List[];
  size: number;
  rows: number;
  /** Virtual time at which the flow's service so far ends (start-time fair queuing's finish tag). */
  finish: number;
}

/** Empty flows beyond this many are forgotten (their account restarts at the queue's virtual time). */
const KEPT_FLOWS = 256;

/**
 * Requests of one model in service order. Within a flow (a tenant), order is priority, then arrival:
 * one FIFO list per priority level. Across flows it is weighted fair share over rows, by start-time
 * fair queuing: a flow's next request starts, in virtual time, where its previous one finished (or at
 * the queue's virtual time when the flow was idle), and each served row moves its flow on by
 * 1 / weight. The flow with the earliest start goes next, so over any busy period each backlogged flow
 * gets rows in proportion to its weight, whatever the others send, and an idle flow banks no credit.
 * With one flow this is exactly priority-then-arrival order. Bounds are the caller's business (it knows
 * each level's queue policy); this keeps order and counts.
 */
export class RequestQueue<T extends QueueNode> {
  readonly #levels: number;
  readonly #weightOf: (flow: string) => number;
  readonly #flows = new Map<string, Flow>();
  /** Flows holding requests, in the order they became backlogged (ties in virtual time go to the first). */
  readonly #active = new Set<Flow>();
  readonly #sizes: number[];
  #size = 0;
  #rows = 0;
  /** The start tag of the latest served request: an idle flow that returns starts here. */
  #virtual = 0;

  /** `lists` FIFO lists per flow, list 0 served first; `weightOf` a flow's share (> 0; default 1 each). */
  constructor(lists: number, weightOf: (flow: string) => number = () => 1) {
    if (!Number.isSafeInteger(lists) || lists < 1) throw new RangeError(`a request queue needs at least one list, got ${lists}`);
    this.#levels = lists;
    this.#weightOf = weightOf;
    this.#sizes = new Array<number>(lists).fill(0);
  }

  get size(): number {
    return this.#size;
  }

  /** Rows of every queued request. */
  get rows(): number {
    return this.#rows;
  }

  sizeOf(list: number): number {
    this.#check(list);
    return this.#sizes[list]!;
  }

  /** Requests of one flow in one list. */
  flowSizeOf(flow: string, list: number): number {
    this.#check(list);
    return this.#flows.get(flow)?.lists[list]!.size ?? 0;
  }

  push(list: number, node: T): void {
    this.#link(list, node, false);
  }

  /** Puts the node at the head of its flow's list (a request whose batch must run again keeps its place). */
  unshift(list: number, node: T): void {
    this.#link(list, node, true);
  }

  /** Unlinks the node; returns false when it was not queued (already taken, expired or cancelled). */
  remove(node: T): boolean {
    if (node.list === -1) return false;
    const flow = this.#flows.get(node.flow)!;
    const l = flow.lists[node.list]!;
    if (node.prev) node.prev.next = node.next;
    else l.head = node.next;
    if (node.next) node.next.prev = node.prev;
    else l.tail = node.prev;
    this.#sizes[node.list]!--;
    node.list = -1;
    node.prev = undefined;
    node.next = undefined;
    l.size--;
    flow.size--;
    flow.rows -= node.rows;
    this.#size--;
    this.#rows -= node.rows;
    if (flow.size === 0) {
      this.#active.delete(flow);
      if (this.#flows.size > KEPT_FLOWS && flow.finish <= this.#virtual) this.#flows.delete(flow.name);
    }
    return true;
  }

  /** Unlinks a node that is being served and charges its rows to its flow's fair-share account. */
  take(node: T): boolean {
    const flow = this.#flows.get(node.flow);
    if (!this.remove(node) || !flow) return false;
    node.charged = true;
    const start = Math.max(this.#virtual, flow.finish);
    flow.finish = start + node.rows / this.#weight(flow.name);
    this.#virtual = start;
    return true;
  }

  first(): T | undefined {
    for (const node of this) return node;
    return undefined;
  }

  /**
   * Rows that would be served before a request of `rows` rows arriving now from `flow`: its own flow's
   * queue, and of every other flow as much as fair share serves meanwhile (never more than it holds).
   * With one flow, every queued row.
   */
  rowsAhead(flow: string, rows: number): number {
    const own = this.#flows.get(flow);
    const ownRows = own?.rows ?? 0;
    if (this.#active.size === 0 || (this.#active.size === 1 && own && this.#active.has(own))) return ownRows;
    const share = (ownRows + rows) / this.#weight(flow);
    let ahead = ownRows;
    for (const f of this.#active) if (f !== own) ahead += Math.min(f.rows, share * this.#weight(f.name));
    return ahead;
  }

  /**
   * The part of `bound` that fair share gives `flow` while the flows now backlogged compete for it
   * (at least 1): a queue full of one tenant's requests still admits another tenant's up to this.
   */
  shareOf(flow: string, bound: number): number {
    const own = this.#flows.get(flow);
    let total = this.#weight(flow);
    for (const f of this.#active) if (f !== own) total += this.#weight(f.name);
    return Math.max(1, Math.floor((bound * this.#weight(flow)) / total));
  }

  /** Every queued node, in no particular order (for scans that visit all: expiry, close). */
  *all(): IterableIterator<T> {
    for (const flow of this.#active) {
      for (const l of flow.lists) {
        let node = l.head;
        while (node) {
          const next = node.next;
          yield node as T;
          node = next;
        }
      }
    }
  }

  /** Walks the queue in service order. Removing the node just yielded is safe; removing others is not. */
  *[Symbol.iterator](): IterableIterator<T> {
    if (this.#active.size <= 1) {
      yield* this.all();
      return;
    }
    // A simulation of what take() would do if every node were served in turn: each flow's cursor
    // starts at its start tag and advances by rows / weight per node; the earliest start goes next.
    const cursors = [...this.#active].map((f) => ({ flow: f, node: this.#after(f, undefined), start: Math.max(this.#virtual, f.finish), weight: this.#weight(f.name) }));
    for (;;) {
      let best: (typeof cursors)[number] | undefined;
      for (const c of cursors) if (c.node && (best === undefined || c.start < best.start)) best = c;
      if (!best) return;
      const node = best.node!;
      best.node = this.#after(best.flow, node);
      best.start += node.rows / best.weight;
      yield node as T;
    }
  }

  /** The node after `node` in its flow's service order (the flow's first when undefined). */
  #after(flow: Flow, node: QueueNode | undefined): QueueNode | undefined {
    if (node?.next) return node.next;
    for (let i = node === undefined ? 0 : node.list + 1; i < this.#levels; i++) {
      const head = flow.lists[i]!.head;
      if (head) return head;
    }
    return undefined;
  }

  #link(list: number, node: T, atHead: boolean): void {
    if (node.list !== -1) throw new Error('node is already queued');
    this.#check(list);
    let flow = this.#flows.get(node.flow);
    if (!flow) {
      flow = { name: node.flow, lists: Array.from({ length: this.#levels }, () => ({ head: undefined, tail: undefined, size: 0 })), size: 0, rows: 0, finish: 0 };
      this.#flows.set(node.flow, flow);
    }
    const l = flow.lists[list]!;
    node.list = list;
    if (atHead) {
      if (node.charged === true) {
        flow.finish = Math.max(0, flow.finish - node.rows / this.#weight(flow.name));
        node.charged = false;
      }
      node.prev = undefined;
      node.next = l.head;
      if (l.head) l.head.prev = node;
      else l.tail = node;
      l.head = node;
    } else {
      node.prev = l.tail;
      node.next = undefined;
      if (l.tail) l.tail.next = node;
      else l.head = node;
      l.tail = node;
    }
    l.size++;
    flow.size++;
    flow.rows += node.rows;
    this.#sizes[list]!++;
    this.#size++;
    this.#rows += node.rows;
    this.#active.add(flow);
  }

  #weight(flow: string): number {
    const w = this.#weightOf(flow);
    return w > 0 && Number.isFinite(w) ? w : 1;
  }

  #check(list: number): void {
    if (!Number.isSafeInteger(list) || list < 0 || list >= this.#levels) throw new RangeError(`no queue list ${list} (the queue has ${this.#levels})`);
  }
}
