/**
 * A node of the request queue. The queue links nodes in place so that a cancelled, expired or batched
 * request leaves in O(1) wherever it stands.
 */
export interface QueueNode {
  /** Index of the list holding the node (0 = highest priority); -1 while not queued. */
  list: number;
  prev: QueueNode | undefined;
  next: QueueNode | undefined;
}

interface List {
  head: QueueNode | undefined;
  tail: QueueNode | undefined;
  size: number;
}

/**
 * Requests in priority then arrival order: one FIFO list per priority level. Bounds are the caller's
 * business (it knows each level's queue policy); this only keeps order and counts.
 */
export class RequestQueue<T extends QueueNode> {
  readonly #lists: List[];
  #size = 0;

  /** `lists` FIFO lists; list 0 is served first. */
  constructor(lists: number) {
    if (!Number.isSafeInteger(lists) || lists < 1) throw new RangeError(`a request queue needs at least one list, got ${lists}`);
    this.#lists = Array.from({ length: lists }, () => ({ head: undefined, tail: undefined, size: 0 }));
  }

  get size(): number {
    return this.#size;
  }

  sizeOf(list: number): number {
    return this.#list(list).size;
  }

  push(list: number, node: T): void {
    if (node.list !== -1) throw new Error('node is already queued');
    const l = this.#list(list);
    node.list = list;
    node.prev = l.tail;
    node.next = undefined;
    if (l.tail) l.tail.next = node;
    else l.head = node;
    l.tail = node;
    l.size++;
    this.#size++;
  }

  /** Puts the node at the head of its list (a request whose batch must run again keeps its place). */
  unshift(list: number, node: T): void {
    if (node.list !== -1) throw new Error('node is already queued');
    const l = this.#list(list);
    node.list = list;
    node.prev = undefined;
    node.next = l.head;
    if (l.head) l.head.prev = node;
    else l.tail = node;
    l.head = node;
    l.size++;
    this.#size++;
  }

  /** Unlinks the node; returns false when it was not queued (already taken, expired or cancelled). */
  remove(node: T): boolean {
    if (node.list === -1) return false;
    const l = this.#list(node.list);
    if (node.prev) node.prev.next = node.next;
    else l.head = node.next;
    if (node.next) node.next.prev = node.prev;
    else l.tail = node.prev;
    node.list = -1;
    node.prev = undefined;
    node.next = undefined;
    l.size--;
    this.#size--;
    return true;
  }

  first(): T | undefined {
    for (const l of this.#lists) if (l.head) return l.head as T;
    return undefined;
  }

  /** Walks the queue in service order. Removing the node just yielded is safe; removing others is not. */
  *[Symbol.iterator](): IterableIterator<T> {
    for (const l of this.#lists) {
      let node = l.head;
      while (node) {
        const next = node.next;
        yield node as T;
        node = next;
      }
    }
  }

  #list(index: number): List {
    const l = this.#lists[index];
    if (!l) throw new RangeError(`no queue list ${index} (the queue has ${this.#lists.length})`);
    return l;
  }
}
