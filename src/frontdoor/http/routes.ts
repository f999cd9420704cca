import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { InvalidModelName, InvalidParameter, InvalidRequest, InvalidVersion, MalformedBody } from '../../core/errors.ts';
import type { InferenceService } from '../../core/inference.ts';
import { MODEL_NAME_PATTERN, VERSION_PATTERN } from '../../core/model.ts';
import { modelConfigJson, modelStatsJson } from './model-json.ts';

/** Path parameters of the model routes. */
export interface ModelParams {
  model: string;
  version?: string;
}

/** A model name and version checked before either is used (they may become paths further on). */
export function checkModelParams(params: ModelParams): { model: string; version: string } {
  const { model, version = '' } = params;
  if (!MODEL_NAME_PATTERN.test(model)) throw InvalidModelName(model.slice(0, 200));
  if (version !== '' && !VERSION_PATTERN.test(version)) throw InvalidVersion(version.slice(0, 40));
  return { model, version };
}

/** Parses an optional small JSON object body (repository endpoints); empty means {}. */
export function optionalJsonObject(body: unknown): Record<string, unknown> {
  if (body === undefined || body === null) return {};
  const buf = body as Buffer;
  if (buf.byteLength === 0) return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(buf.toString('utf8'));
  } catch (e) {
    throw MalformedBody((e as Error).message);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw MalformedBody('the request must be a JSON object');
  return parsed as Record<string, unknown>;
}

function sendJson(reply: FastifyReply, value: unknown, status = 200): FastifyReply {
  return reply.code(status).type('application/json').send(JSON.stringify(value));
}

/** Both the plain and the /versions/{v} form of a model route. */
function both(path: string): string[] {
  return [`/v2/models/:model${path}`, `/v2/models/:model/versions/:version${path}`];
}

type ModelRequest = FastifyRequest<{ Params: ModelParams }>;

/** Health, metadata, configuration, statistics and repository routes (everything but infer). */
export function registerRoutes(app: FastifyInstance, service: InferenceService): void {
  app.get('/v2', (_req, reply) => sendJson(reply, service.serverMetadata()));
  // Triton answers health with an empty body: 200 when true, 400 when not.
  app.get('/v2/health/live', (_req, reply) => reply.code(service.isLive() ? 200 : 400).send());
  app.get('/v2/health/ready', (_req, reply) => reply.code(service.isReady() ? 200 : 400).send());
  app.get('/v2/models/stats', (_req, reply) => sendJson(reply, { model_stats: service.modelStats('', '').map(modelStatsJson) }));

  for (const path of both('')) {
    app.get(path, (req: ModelRequest, reply) => {
      const { model, version } = checkModelParams(req.params);
      return sendJson(reply, service.modelMetadata(model, version));
    });
  }
  for (const path of both('/ready')) {
    app.get(path, (req: ModelRequest, reply) => {
      const { model, version } = checkModelParams(req.params);
      return reply.code(service.modelReady(model, version) ? 200 : 400).send();
    });
  }
  for (const path of both('/config')) {
    app.get(path, (req: ModelRequest, reply) => {
      const { model, version } = checkModelParams(req.params);
      return sendJson(reply, modelConfigJson(service.modelConfig(model, version)));
    });
  }
  for (const path of both('/stats')) {
    app.get(path, (req: ModelRequest, reply) => {
      const { model, version } = checkModelParams(req.params);
      return sendJson(reply, { model_stats: service.modelStats(model, version).map(modelStatsJson) });
    });
  }

  app.post('/v2/repository/index', async (req, reply) => {
    const body = optionalJsonObject(req.body);
    const ready = body['ready'] ?? false;
    if (typeof ready !== 'boolean') throw InvalidRequest(`'ready' must be true or false, got ${JSON.stringify(ready)}`);
    return sendJson(reply, await service.repositoryIndex(ready));
  });
  app.post('/v2/repository/models/:model/load', async (req: ModelRequest, reply) => {
    const { model } = checkModelParams(req.params);
    const params = optionalJsonObject(req.body)['parameters'];
    if (params !== undefined && (typeof params !== 'object' || params === null || Array.isArray(params))) throw InvalidRequest("'parameters' must be a JSON object");
    // Triton's overrides: a config (JSON, protobuf's mapping) served instead of the one on disk, and
    // model files (base64 in `file:<version>/<name>`) served instead of the model folder's.
    const p = (params ?? {}) as Record<string, unknown>;
    const config = p['config'];
    if (config !== undefined && typeof config !== 'string') throw InvalidRequest("'parameters.config' must be a string holding the model config as JSON");
    const files = new Map<string, Uint8Array>();
    for (const [k, v] of Object.entries(p)) if (k.startsWith('file:')) files.set(k, base64Param(k, v));
    await service.loadModel(model, { ...(config === undefined ? {} : { config }), ...(files.size > 0 ? { files } : {}) });
    return reply.code(200).send();
  });
  app.post('/v2/repository/models/:model/unload', async (req: ModelRequest, reply) => {
    const { model } = checkModelParams(req.params);
    optionalJsonObject(req.body);
    await service.unloadModel(model);
    return reply.code(200).send();
  });
}

/** A `file:` parameter's content: standard base64 with padding, checked by a round trip (Buffer.from skips what is not base64). */
function base64Param(name: string, value: unknown): Uint8Array {
  const data = typeof value === 'string' ? Buffer.from(value, 'base64') : undefined;
  if (data === undefined || data.toString('base64') !== value) throw InvalidParameter(name, "must be the file's content as a base64 string (RFC 4648, with padding)");
  return data;
}
