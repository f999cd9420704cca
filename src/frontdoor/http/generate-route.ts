/**
 * Triton's generate extension: POST /v2/models/{m}[/versions/{v}]/generate answers one JSON object,
 * generate_stream answers server-sent events, one per piece of text as it is generated. The request is
 * a JSON object: text_input, and the sampling parameters in 'parameters' (or at the top level, as
 * TensorRT-LLM's clients send max_tokens). An error found before the first token is an ordinary error
 * answer with its status; one after it is the stream's last event.
 */
import type { ServerResponse } from 'node:http';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { DecoupledModel, InvalidParameter, InvalidRequest, toSluiceError, type SluiceError } from '../../core/errors.ts';
import type { GenerateRequest, GenerateResponse, InferRequest, InferenceService } from '../../core/inference.ts';
import type { ModelConfig } from '../../core/model.ts';
import { generateToInfer, inferToGenerate } from './generate-mapping.ts';
import { UNKNOWN_MODEL_LABEL, type Metrics, type RequestStatus } from '../../telemetry/metrics.ts';
import { checkModelParams, optionalJsonObject, type ModelParams } from './routes.ts';
import { responseCompleted } from './infer-route.ts';
import { requestStatusOfError, requestStatusOfHttp } from './status.ts';

export const DEFAULT_MAX_TOKENS = 16;

const PARAMETERS = ['max_tokens', 'temperature', 'top_k', 'top_p', 'seed', 'stop', 'stop_words', 'ignore_eos', 'stream'] as const;
type Parameter = (typeof PARAMETERS)[number];

function stopList(name: string, v: unknown): string[] {
  if (typeof v === 'string') return v === '' ? [] : [v];
  if (Array.isArray(v) && v.every((x) => typeof x === 'string')) return v;
  throw InvalidParameter(name, 'must be a string or an array of strings');
}

/** The request body as a GenerateRequest (without arrival, signal and callbacks). */
export function decodeGenerateBody(body: unknown, model: string, version: string): Pick<GenerateRequest, 'model' | 'version' | 'text' | 'maxTokens' | 'temperature' | 'topK' | 'topP' | 'seed' | 'stop' | 'ignoreEos'> & { id: string } {
  const obj = optionalJsonObject(body);
  const params = obj['parameters'] ?? {};
  if (typeof params !== 'object' || params === null || Array.isArray(params)) throw InvalidRequest("'parameters' must be a JSON object");
  const values = new Map<Parameter, unknown>();
  for (const [key, v] of Object.entries(obj)) {
    if (key === 'text_input' || key === 'parameters' || key === 'id') continue;
    if (!(PARAMETERS as readonly string[]).includes(key)) throw InvalidRequest(`unexpected key '${key}' in the generate request: it takes text_input, id, parameters and the parameters ${PARAMETERS.join(', ')}`);
    values.set(key as Parameter, v);
  }
  for (const [key, v] of Object.entries(params as Record<string, unknown>)) {
    if (!(PARAMETERS as readonly string[]).includes(key)) throw InvalidParameter(key, `not a generate parameter (they are ${PARAMETERS.join(', ')})`);
    values.set(key as Parameter, v);
  }
  const text = obj['text_input'];
  if (typeof text !== 'string') throw InvalidRequest(`the generate request needs 'text_input' as a string${text === undefined ? '' : `, got ${typeof text}`}`);
  const id = obj['id'] ?? '';
  if (typeof id !== 'string') throw InvalidRequest("'id' must be a string");
  const int = (name: Parameter, fallback: number, min: number): number => {
    const v = values.get(name) ?? fallback;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) throw InvalidParameter(name, `must be an integer of at least ${min}, got ${JSON.stringify(v)}`);
    return v;
  };
  const temperature = values.get('temperature') ?? 0;
  if (typeof temperature !== 'number' || !Number.isFinite(temperature) || temperature < 0) throw InvalidParameter('temperature', `must be a number of at least 0, got ${JSON.stringify(temperature)}`);
  const topP = values.get('top_p') ?? 1;
  if (typeof topP !== 'number' || !Number.isFinite(topP) || topP <= 0 || topP > 1) throw InvalidParameter('top_p', `must be a number above 0 and at most 1 (1 = every token), got ${JSON.stringify(topP)}`);
  const ignoreEos = values.get('ignore_eos') ?? false;
  if (typeof ignoreEos !== 'boolean') throw InvalidParameter('ignore_eos', 'must be true or false');
  const stream = values.get('stream');
  if (stream !== undefined && typeof stream !== 'boolean') throw InvalidParameter('stream', 'must be true or false');
  const stop = [...stopList('stop', values.get('stop') ?? []), ...stopList('stop_words', values.get('stop_words') ?? [])];
  return { id, model, version, text, maxTokens: int('max_tokens', DEFAULT_MAX_TOKENS, 1), temperature, topK: int('top_k', 0, 0), topP, seed: int('seed', 0, 0), stop, ignoreEos };
}

function answer(r: GenerateResponse, id: string): Record<string, unknown> {
  return {
    ...(id !== '' && { id }), model_name: r.model, model_version: r.version, text_output: r.text, finish_reason: r.finishReason,
    prompt_tokens: r.promptTokens, cached_tokens: r.cachedTokens, completion_tokens: r.completionTokens,
  };
}

const sse = (value: unknown): string => `data: ${JSON.stringify(value)}\n\n`;

export interface GenerateRouteOptions {
  readonly service: InferenceService;
  readonly metrics: Metrics;
}

type Req = FastifyRequest<{ Params: ModelParams }>;

async function handle(req: Req, reply: FastifyReply, opts: GenerateRouteOptions, streaming: boolean, arrivalMs: number): Promise<FastifyReply | undefined> {
  const { model, version } = checkModelParams(req.params);
  // A model that is not generative is served as Triton serves generate on any model: keys are tensors.
  const config = opts.service.modelConfig(model, version);
  if (!config.generation) return handleMapped(req, reply, opts, streaming, arrivalMs, config);
  const decoded = decodeGenerateBody(req.body, model, version);
  const res = reply.raw;
  const client = cancelOnClose(res);
  const request: GenerateRequest = { ...decoded, arrivalMs, signal: client.signal, ...(req.principal && { tenant: req.principal.tenant }) };
  if (!streaming) {
    const r = await opts.service.generate(request);
    client.ended();
    return reply.code(200).type('application/json').send(JSON.stringify(answer(r, decoded.id)));
  }
  let started = false;
  const start = (): void => {
    if (started) return;
    started = true;
    reply.hijack();
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
  };
  const head = { ...(decoded.id !== '' && { id: decoded.id }), model_name: model };
  try {
    const r = await opts.service.generate({
      ...request,
      onText: (text, served) => {
        start();
        res.write(sse({ ...head, model_version: served, text_output: text }));
      },
    });
    start();
    client.ended();
    res.end(sse({ ...answer(r, decoded.id), text_output: '' }));
    return undefined;
  } catch (e) {
    if (!started) throw e;
    client.ended();
    const err = toSluiceError(e);
    req.sluiceError = err;
    res.end(sse({ error: err.message, code: err.code }));
    return undefined;
  }
}

/** Aborts the request's work when its client goes away before its answer ended. */
function cancelOnClose(res: ServerResponse): { readonly signal: AbortSignal; ended(): void } {
  const abort = new AbortController();
  let done = false;
  res.once('close', () => {
    if (!done) abort.abort();
  });
  return { signal: abort.signal, ended: () => void (done = true) };
}

/** generate and generate_stream on a model that is not generative (generate-mapping.ts). */
async function handleMapped(req: Req, reply: FastifyReply, opts: GenerateRouteOptions, streaming: boolean, arrivalMs: number, config: ModelConfig): Promise<FastifyReply | undefined> {
  const { model, version } = checkModelParams(req.params);
  const { id, request: mapped } = generateToInfer(req.body, config, model, version);
  const res = reply.raw;
  const client = cancelOnClose(res);
  const request: InferRequest = { ...mapped, arrivalMs, signal: client.signal, ...(req.principal && { tenant: req.principal.tenant }) };
  if (!streaming) {
    if (config.decoupled) throw DecoupledModel(model);
    const r = await opts.service.infer(request);
    client.ended();
    return reply.code(200).type('application/json').send(inferToGenerate(r, id));
  }
  let started = false;
  try {
    await opts.service.inferStream(request, (r) => {
      if (!started) {
        started = true;
        reply.hijack();
        res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      }
      res.write(`data: ${inferToGenerate(r, id)}\n\n`);
    });
    if (!started) return reply.code(200).type('text/event-stream').send('');
    client.ended();
    res.end();
    return undefined;
  } catch (e) {
    if (!started) throw e;
    client.ended();
    const err = toSluiceError(e);
    req.sluiceError = err;
    res.end(sse({ error: err.message, code: err.code }));
    return undefined;
  }
}

/** Counts the request once its response ends, refusals included (the model label bounded by the repository). */
function watch(req: Req, reply: FastifyReply, opts: GenerateRouteOptions, arrivalMs: number): void {
  reply.raw.once('close', () => {
    const name = req.params.model;
    const err: SluiceError | null = req.sluiceError;
    const status: RequestStatus = !responseCompleted(reply.raw) ? 'cancelled' : err ? requestStatusOfError(err) : requestStatusOfHttp(reply.raw.statusCode);
    opts.metrics.observeRequest(opts.service.hasModel(name) ? name : UNKNOWN_MODEL_LABEL, 'http', status, (performance.now() - arrivalMs) / 1000);
  });
}

/** POST /v2/models/{m}[/versions/{v}]/generate and generate_stream. */
export function registerGenerateRoutes(app: FastifyInstance, opts: GenerateRouteOptions): void {
  const arrivals = new WeakMap<Req, number>();
  for (const [suffix, streaming] of [['generate', false], ['generate_stream', true]] as const) {
    for (const url of [`/v2/models/:model/${suffix}`, `/v2/models/:model/versions/:version/${suffix}`]) {
      app.post<{ Params: ModelParams }>(url, {
        onRequest: (req, reply, done) => {
          const arrivalMs = performance.now();
          arrivals.set(req, arrivalMs);
          watch(req, reply, opts, arrivalMs);
          // Refused by its key or scope (access.ts): answered here, where the request is counted.
          done(req.accessError ?? undefined);
        },
      }, (req, reply) => handle(req, reply, opts, streaming, arrivals.get(req) ?? performance.now()));
    }
  }
}
