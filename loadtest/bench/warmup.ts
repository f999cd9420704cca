import type { LoadProtocol } from '../types.ts';
import { measureSideBySide, type BenchTiming, type Target } from './measure.ts';
import type { BenchEnv } from './sections.ts';

/** Connections of the warm-up loads: enough to exercise batching, far from saturating anything. */
const WARMUP_CONNECTIONS = 16;

/**
 * Puts every server through its request path before anything is measured. V8 keeps compiling sluice's
 * path (a larger one than an echo's or the naive server's) for about 15 s of load: in 5 s windows at
 * 1,000 req/s from a fresh gateway, P99 was 128, 21, 31, 11 and 9 ms. A comparison that sets a cold
 * gateway against a warm echo measures the JIT, not the serving path; a production gateway runs warm.
 */
export async function warmUp(env: BenchEnv, t: BenchTiming, ms: number): Promise<void> {
  const w = await env.workload('mlp');
  const http = (name: string, protocol: LoadProtocol, url: string): Target => ({ name, protocol, url, check: false });
  const targets: Target[] = [
    http('sluice', 'json', env.sluice.http),
    http('sluice', 'binary', env.sluice.http),
    { name: 'sluice', protocol: 'grpc', grpcUrl: env.sluice.grpc, check: false },
    http('sluice, max batch size 1', 'json', env.unbatched.http),
    http('sluice, queue budget', 'json', env.overload.http),
    http('naive server', 'json', env.naive),
    http('naive server without inference', 'json', env.naiveWithoutInference),
    http('bare Fastify echo', 'json', env.echoHttp),
    http('bare Fastify echo', 'binary', env.echoHttp),
    { name: 'bare grpc-js echo', protocol: 'grpc', grpcUrl: env.echoGrpc, check: false },
  ];
  t.log(`warming up every server: ${ms / 1000} s of ${WARMUP_CONNECTIONS} connections each, not measured`);
  const spec = { mode: 'closed', concurrency: WARMUP_CONNECTIONS } as const;
  await measureSideBySide('mlp', w, targets.map((target) => ({ target, spec })), { repeats: 1, warmupMs: ms, durationMs: 250, log: () => undefined });
}
