import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { InvalidRequest, Unimplemented } from '../../core/errors.ts';
import type { RegionStatus, SystemSharedMemory } from '../../shm/registry.ts';
import { optionalJsonObject } from './routes.ts';

type RegionRequest = FastifyRequest<{ Params: { region?: string } }>;

function regionStatusJson(r: RegionStatus): Record<string, unknown> {
  return { name: r.name, key: r.key, offset: r.offset, byte_size: r.byteSize };
}

function sendJson(reply: FastifyReply, value: unknown): FastifyReply {
  return reply.code(200).type('application/json').send(JSON.stringify(value));
}

/** A register body field that must be a non-negative integer; offset may be left out (0). */
function count(body: Record<string, unknown>, field: string, required: boolean): number {
  const v = body[field];
  if (v === undefined && !required) return 0;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw InvalidRequest(`'${field}' must be a non-negative integer, got ${JSON.stringify(v) ?? 'nothing'}`);
  return v;
}

/** Both the all-regions and the one-region form of a route. */
function both(action: string): string[] {
  return [`/v2/systemsharedmemory/${action}`, `/v2/systemsharedmemory/region/:region/${action}`];
}

/**
 * Triton's system shared-memory extension over REST: status answers a JSON array of regions (name, key,
 * offset, byte_size), register takes {key, offset, byte_size}, unregister takes no body; both answer
 * 200 with an empty body. Registered only when the extension is on.
 */
export function registerSharedMemoryRoutes(app: FastifyInstance, memory: SystemSharedMemory | undefined): void {
  registerCudaRoutes(app);
  if (memory === undefined) return;
  for (const url of both('status')) {
    app.get(url, (req: RegionRequest, reply) => sendJson(reply, memory.status(req.params.region ?? '').map(regionStatusJson)));
  }
  app.post('/v2/systemsharedmemory/region/:region/register', async (req: RegionRequest, reply) => {
    const body = optionalJsonObject(req.body);
    const key = body['key'];
    if (typeof key !== 'string' || key === '') throw InvalidRequest(`'key' must be the non-empty key of a shared-memory object, got ${JSON.stringify(key) ?? 'nothing'}`);
    await memory.register(req.params.region ?? '', key, count(body, 'offset', false), count(body, 'byte_size', true));
    return reply.code(200).send();
  });
  for (const url of both('unregister')) {
    app.post(url, async (req: RegionRequest, reply) => {
      await memory.unregister(req.params.region ?? '');
      return reply.code(200).send();
    });
  }
}

/** CUDA shared memory needs a GPU's IPC handles, which sluice does not open: a clear 501, not a 404. */
function registerCudaRoutes(app: FastifyInstance): void {
  const refuse = (): never => {
    throw Unimplemented('the CUDA shared-memory extension (sluice serves no CUDA memory; use system shared memory, /v2/systemsharedmemory, or send tensors in the request)');
  };
  for (const url of ['/v2/cudasharedmemory/status', '/v2/cudasharedmemory/region/:region/status']) app.get(url, refuse);
  for (const url of ['/v2/cudasharedmemory/region/:region/register', '/v2/cudasharedmemory/unregister', '/v2/cudasharedmemory/region/:region/unregister']) app.post(url, refuse);
}
