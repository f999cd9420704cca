import type { FastifyInstance } from 'fastify';
import { Unimplemented } from '../../core/errors.ts';
import type { LogControl } from '../../telemetry/log-settings.ts';
import { optionalJsonObject } from './routes.ts';

/**
 * Triton's logging extension over REST: GET /v2/logging answers the settings in force; POST updates
 * the fields its JSON object names (all or none) and answers the settings after the update.
 */
export function registerLoggingRoutes(app: FastifyInstance, control: LogControl | undefined): void {
  const need = (): LogControl => {
    if (!control) throw Unimplemented('the logging extension on a server whose logger was not made by sluice');
    return control;
  };
  app.get('/v2/logging', (_req, reply) => reply.type('application/json').send(JSON.stringify(need().settings())));
  app.post('/v2/logging', (req, reply) => {
    const c = need();
    const body = optionalJsonObject(req.body);
    return reply.type('application/json').send(JSON.stringify(c.update(body)));
  });
}
