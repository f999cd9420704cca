import type { Metadata } from '@grpc/grpc-js';
import type { AccessGuard, Principal, Scope } from '../../access/guard.ts';

/**
 * The scope of every method of inference.GRPCInferenceService, the REST table's twin
 * (src/frontdoor/http/access.ts): health stays open for probes; undefined = open. ModelInfer and
 * ModelStreamInfer check infer per message, against the model each names.
 */
export const METHOD_SCOPES: Readonly<Record<string, Scope | undefined>> = {
  ServerLive: undefined,
  ServerReady: undefined,
  ModelReady: undefined,
  ServerMetadata: 'metadata',
  ModelMetadata: 'metadata',
  ModelConfig: 'metadata',
  ModelStatistics: 'metadata',
  RepositoryIndex: 'metadata',
  RepositoryModelLoad: 'control',
  RepositoryModelUnload: 'control',
  TraceSetting: 'control',
  LogSettings: 'control',
  SystemSharedMemoryStatus: 'metadata',
  SystemSharedMemoryRegister: 'control',
  SystemSharedMemoryUnregister: 'control',
  CudaSharedMemoryStatus: 'metadata',
  CudaSharedMemoryRegister: 'control',
  CudaSharedMemoryUnregister: 'control',
  ModelInfer: 'infer',
  ModelStreamInfer: 'infer',
};

/** The call's authorization metadata, as one string (undefined when absent). */
function authorizationOf(metadata: Metadata): string | undefined {
  const v = metadata.get('authorization')[0];
  return v === undefined ? undefined : typeof v === 'string' ? v : v.toString('latin1');
}

/**
 * Who sent the call, checked against the method's scope (infer: against the model when given). Throws
 * UNAUTHENTICATED or PERMISSION_DENIED; undefined without a guard or for an open method.
 */
export function checkCall(guard: AccessGuard | undefined, method: string, metadata: Metadata, model?: string): Principal | undefined {
  if (!guard) return undefined;
  if (!(method in METHOD_SCOPES)) throw new Error(`gRPC method ${method} has no access rule (src/frontdoor/grpc/access.ts)`);
  const scope = METHOD_SCOPES[method];
  if (scope === undefined) return undefined;
  const principal = guard.authenticate(authorizationOf(metadata), 'metadata');
  // A ModelInfer checks its model per message; the stream's call has none yet.
  if (scope !== 'infer' || model !== undefined) guard.authorize(principal, scope, model);
  return principal;
}
