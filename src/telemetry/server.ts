import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Metrics } from './metrics.ts';

export interface MetricsServer {
  readonly port: number;
  close(): Promise<void>;
}

/** A refusal of a scrape: its HTTP status and the reason (never the credentials). */
export interface ScrapeRefusal {
  readonly status: number;
  readonly message: string;
}

/**
 * Serves GET /metrics (Prometheus text format) from the registry; nothing else. With `authorize`, a
 * scrape must pass it (the auth config's metrics scope; Prometheus sends the key as a bearer token).
 */
export async function startMetricsServer(opts: { host: string; port: number; metrics: Metrics; authorize?: (authorization: string | undefined) => ScrapeRefusal | undefined }): Promise<MetricsServer> {
  const { registry } = opts.metrics;
  const server: Server = createServer((req, res) => {
    const refused = opts.authorize?.(req.headers.authorization);
    if (refused) {
      const headers: Record<string, string> = { 'content-type': 'text/plain' };
      if (refused.status === 401) headers['www-authenticate'] = 'Bearer realm="sluice-metrics"';
      res.writeHead(refused.status, headers).end(`${refused.message}\n`);
      return;
    }
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' || path !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('only GET /metrics is served here\n');
      return;
    }
    registry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
      (e: unknown) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics collection failed: ${String(e)}\n`),
    );
  });
  server.keepAliveTimeout = 75_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}
