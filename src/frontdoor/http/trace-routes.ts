import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ModelNotFound } from '../../core/errors.ts';
import type { InferenceService } from '../../core/inference.ts';
import { parseUpdate, restValue, settingsWire, type WireSettings } from '../../telemetry/trace-settings.ts';
import type { Tracer } from '../../telemetry/trace.ts';
import { checkModelParams, optionalJsonObject } from './routes.ts';

function sendJson(reply: FastifyReply, value: unknown): FastifyReply {
  return reply.code(200).type('application/json').send(JSON.stringify(value));
}

/** The model a per-model route names, checked: per-model settings exist only for models the repository has. */
function modelOf(req: FastifyRequest, service: InferenceService): string {
  const params = req.params as { model?: string };
  if (params.model === undefined) return '';
  const { model } = checkModelParams({ model: params.model });
  if (!service.hasModel(model)) throw ModelNotFound(model);
  return model;
}

/** A POST body as the list form both wires share; an empty body changes nothing and returns the settings. */
function wireSettings(body: unknown): WireSettings {
  const json = optionalJsonObject(body);
  const out: Record<string, readonly string[] | null> = {};
  for (const [field, value] of Object.entries(json)) out[field] = restValue(field, value);
  return out;
}

/**
 * Triton's trace extension over REST: GET v2[/models/{m}]/trace/setting answers the settings in force
 * (values as strings, trace_level a list); POST updates the fields it names (null clears a model's
 * override) and answers the settings after the update.
 */
export function registerTraceRoutes(app: FastifyInstance, service: InferenceService, tracer: Tracer | undefined): void {
  if (tracer === undefined) return;
  for (const url of ['/v2/trace/setting', '/v2/models/:model/trace/setting']) {
    app.get(url, (req, reply) => sendJson(reply, settingsWire(tracer.settings(modelOf(req, service)))));
    app.post(url, (req, reply) => {
      const model = modelOf(req, service);
      const update = parseUpdate(wireSettings(req.body));
      return sendJson(reply, settingsWire(tracer.update(model, update)));
    });
  }
}
