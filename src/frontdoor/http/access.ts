import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { AccessGuard, Principal, Scope } from '../../access/guard.ts';

/** What a route needs: nothing (health probes), or a scope; infer's is checked against the model. */
type Rule = { readonly open: true } | { readonly open: false; readonly scope: Scope };

const OPEN: Rule = { open: true };
const need = (scope: Scope): Rule => ({ open: false, scope });

/**
 * The scope of every REST route, by method and route pattern: the one place that says who may call
 * what. Health (server and model readiness) stays open so that probes need no key. A route missing
 * here is a start-up error (see guardRoutes), so no endpoint is ever open by omission.
 */
const RULES: ReadonlyMap<string, Rule> = new Map<string, Rule>([
  ['GET /v2/health/live', OPEN],
  ['GET /v2/health/ready', OPEN],
  ['GET /v2/models/:model/ready', OPEN],
  ['GET /v2/models/:model/versions/:version/ready', OPEN],
  ['GET /v2', need('metadata')],
  ['GET /v2/models/stats', need('metadata')],
  ['GET /v2/models/:model', need('metadata')],
  ['GET /v2/models/:model/versions/:version', need('metadata')],
  ['GET /v2/models/:model/config', need('metadata')],
  ['GET /v2/models/:model/versions/:version/config', need('metadata')],
  ['GET /v2/models/:model/stats', need('metadata')],
  ['GET /v2/models/:model/versions/:version/stats', need('metadata')],
  ['POST /v2/repository/index', need('metadata')],
  ['GET /v2/trace/setting', need('metadata')],
  ['GET /v2/logging', need('metadata')],
  ['POST /v2/logging', need('control')],
  ['GET /v2/models/:model/trace/setting', need('metadata')],
  ['POST /v2/repository/models/:model/load', need('control')],
  ['POST /v2/repository/models/:model/unload', need('control')],
  ['POST /v2/trace/setting', need('control')],
  ['POST /v2/models/:model/trace/setting', need('control')],
  ['GET /v2/systemsharedmemory/status', need('metadata')],
  ['GET /v2/systemsharedmemory/region/:region/status', need('metadata')],
  ['POST /v2/systemsharedmemory/region/:region/register', need('control')],
  ['POST /v2/systemsharedmemory/unregister', need('control')],
  ['POST /v2/systemsharedmemory/region/:region/unregister', need('control')],
  ['GET /v2/cudasharedmemory/status', need('metadata')],
  ['GET /v2/cudasharedmemory/region/:region/status', need('metadata')],
  ['POST /v2/cudasharedmemory/region/:region/register', need('control')],
  ['POST /v2/cudasharedmemory/unregister', need('control')],
  ['POST /v2/cudasharedmemory/region/:region/unregister', need('control')],
  ['POST /v2/models/:model/infer', need('infer')],
  ['POST /v2/models/:model/versions/:version/infer', need('infer')],
  ['POST /v2/models/:model/generate', need('infer')],
  ['POST /v2/models/:model/versions/:version/generate', need('infer')],
  ['POST /v2/models/:model/generate_stream', need('infer')],
  ['POST /v2/models/:model/versions/:version/generate_stream', need('infer')],
]);

declare module 'fastify' {
  interface FastifyRequest {
    /** Who sent the request, once the access hook has checked its key (null without an auth config). */
    principal: Principal | null;
    /**
     * An infer request's refusal by the access hook, left for the infer route to answer once it
     * watches the request, so that refused inferences are counted like every other outcome.
     */
    accessError: Error | null;
  }
}

/**
 * Checks every request's key and scope before anything else runs (no body is read for a refused one).
 * Must be called before the routes are registered: a route without a rule fails the start.
 */
export function guardRoutes(app: FastifyInstance, guard: AccessGuard | undefined): void {
  app.decorateRequest('principal', null);
  app.decorateRequest('accessError', null);
  if (!guard) return;
  app.addHook('onRoute', (route) => {
    for (const method of [route.method].flat()) {
      if (method === 'HEAD') continue;
      if (!RULES.has(`${method} ${route.url}`)) throw new Error(`REST route ${method} ${route.url} has no access rule (src/frontdoor/http/access.ts)`);
    }
  });
  app.addHook('onRequest', (req, _reply, done) => {
    try {
      check(guard, req);
      done();
    } catch (e) {
      done(e as Error);
    }
  });
}

function check(guard: AccessGuard, req: FastifyRequest): void {
  const pattern = req.routeOptions.url;
  const method = req.method === 'HEAD' ? 'GET' : req.method;
  const rule = pattern === undefined ? undefined : RULES.get(`${method} ${pattern}`);
  if (rule?.open) return;
  try {
    // An unknown path still needs a key: without one, nobody learns which paths exist.
    const principal = guard.authenticate(req.headers.authorization, 'header');
    req.principal = principal;
    if (rule) guard.authorize(principal, rule.scope, (req.params as { model?: string }).model);
  } catch (e) {
    if (rule?.scope !== 'infer') throw e;
    req.accessError = e as Error;
  }
}
