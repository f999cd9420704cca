import type { handleUnaryCall, sendUnaryData, ServerUnaryCall, UntypedServiceImplementation } from '@grpc/grpc-js';
import { InvalidParameter, ModelNotFound, toSluiceError, UndecodableMessage, Unimplemented } from '../../core/errors.ts';
import type { InferenceService } from '../../core/inference.ts';
import type { LogControl } from '../../telemetry/log-settings.ts';
import type { Logger } from '../../telemetry/logger.ts';
import { parseUpdate, settingsWire } from '../../telemetry/trace-settings.ts';
import type { Tracer } from '../../telemetry/trace.ts';
import type { AccessGuard } from '../../access/guard.ts';
import { checkCall } from './access.ts';
import { checkModelRef } from './codec.ts';
import { logSettings } from './logging.ts';
import { modelInferHandler, modelStreamInferHandler, type InferDeps, type StreamRegistry } from './infer.ts';
import { modelConfigMessage, modelMetadataMessage, modelStatsMessage } from './messages.ts';
import { undecodableReason } from './proto.ts';
import { shmRegister, shmStatus, shmUnregister, type ShmNameRequest, type ShmRegisterRequest } from './shm.ts';
import { toServiceError } from './status.ts';

type Msg = Record<string, unknown>;

interface NameVersion {
  name: string;
  version: string;
}

interface RepositoryRequest {
  repository_name: string;
  model_name: string;
  parameters: Record<string, unknown>;
}

/** What every unary method shares: where failures are logged, and who checks keys. */
interface UnaryContext {
  readonly logger: Logger;
  readonly guard: AccessGuard | undefined;
}

/**
 * Wraps a method body: its value (or promise) is the reply; anything thrown becomes the gRPC status of
 * its error kind, with the catalog's message as details.
 */
function unary<Req>(ctx: UnaryContext, method: string, body: (request: Req) => Msg | Promise<Msg>): handleUnaryCall<Req, Msg> {
  const { logger, guard } = ctx;
  return (call: ServerUnaryCall<Req, Msg>, callback: sendUnaryData<Msg>): void => {
    // Through then() so that a synchronous throw takes the same path as a rejection.
    Promise.resolve(call.request).then((request) => {
      // The key first: a caller without one learns nothing, not even whether its message was valid.
      checkCall(guard, method, call.metadata);
      const undecodable = undecodableReason(request);
      if (undecodable !== undefined) throw UndecodableMessage(method, undecodable);
      return body(request);
    }).then(
      (reply) => callback(null, reply),
      (e: unknown) => {
        const error = toSluiceError(e);
        if (error.kind === 'INTERNAL') logger.error({ method, code: error.code }, error.message);
        callback(toServiceError(error));
      },
    );
  };
}

/** The extensions sluice declares in the proto for wire compatibility but does not serve. */
const UNSUPPORTED: Readonly<Record<string, string>> = {
  CudaSharedMemoryStatus: 'CudaSharedMemoryStatus (the CUDA shared-memory extension: sluice serves no CUDA memory; use system shared memory or raw_input_contents)',
  CudaSharedMemoryRegister: 'CudaSharedMemoryRegister (the CUDA shared-memory extension: sluice serves no CUDA memory; use system shared memory or raw_input_contents)',
  CudaSharedMemoryUnregister: 'CudaSharedMemoryUnregister (the CUDA shared-memory extension: sluice serves no CUDA memory; use system shared memory or raw_input_contents)',
};

interface TraceSettingRequest {
  settings: Record<string, { value: string[] }>;
  model_name: string;
}

/**
 * TraceSetting: the REST trace/setting endpoint's twin. An empty value list clears the setting (as
 * null does over REST); the reply carries every setting as a list of strings.
 */
function traceSetting(service: InferenceService, tracer: Tracer, r: TraceSettingRequest): Msg {
  const model = r.model_name;
  if (model !== '') {
    checkModelRef(model, '');
    if (!service.hasModel(model)) throw ModelNotFound(model);
  }
  const wire: Record<string, readonly string[] | null> = {};
  for (const [field, v] of Object.entries(r.settings)) wire[field] = v.value.length === 0 ? null : v.value;
  const settings = Object.keys(wire).length === 0 ? tracer.settings(model) : tracer.update(model, parseUpdate(wire));
  const out: Record<string, { value: string[] }> = {};
  for (const [field, v] of Object.entries(settingsWire(settings))) out[field] = { value: Array.isArray(v) ? v : [v] };
  return { settings: out };
}

/** Every method of inference.GRPCInferenceService, bound to the service. */
export function serviceImplementation(deps: InferDeps & { readonly streams: StreamRegistry; readonly logControl?: LogControl }): UntypedServiceImplementation {
  const service: InferenceService = deps.service;
  const log: UnaryContext = { logger: deps.logger, guard: deps.guard };
  const impl: UntypedServiceImplementation = {
    ServerLive: unary(log, 'ServerLive', () => ({ live: service.isLive() })),
    ServerReady: unary(log, 'ServerReady', () => ({ ready: service.isReady() })),
    ModelReady: unary(log, 'ModelReady', (r: NameVersion) => {
      checkModelRef(r.name, r.version);
      return { ready: service.modelReady(r.name, r.version) };
    }),
    ServerMetadata: unary(log, 'ServerMetadata', () => {
      const m = service.serverMetadata();
      return { name: m.name, version: m.version, extensions: [...m.extensions] };
    }),
    ModelMetadata: unary(log, 'ModelMetadata', (r: NameVersion) => {
      checkModelRef(r.name, r.version);
      return modelMetadataMessage(service.modelMetadata(r.name, r.version));
    }),
    ModelConfig: unary(log, 'ModelConfig', (r: NameVersion) => {
      checkModelRef(r.name, r.version);
      return { config: modelConfigMessage(service.modelConfig(r.name, r.version)) };
    }),
    ModelStatistics: unary(log, 'ModelStatistics', (r: NameVersion) => {
      // An empty name asks for every model; a version without a name means nothing.
      if (r.name !== '') checkModelRef(r.name, r.version);
      return { model_stats: service.modelStats(r.name, r.name === '' ? '' : r.version).map(modelStatsMessage) };
    }),
    RepositoryIndex: unary(log, 'RepositoryIndex', async (r: { ready: boolean }) => {
      const entries = await service.repositoryIndex(r.ready);
      return { models: entries.map((e) => ({ name: e.name, version: e.version, state: e.state, reason: e.reason })) };
    }),
    RepositoryModelLoad: unary(log, 'RepositoryModelLoad', async (r: RepositoryRequest) => {
      checkModelRef(r.model_name, '');
      const config = r.parameters['config'] as { string_param?: string; parameter_choice?: string } | undefined;
      if (config !== undefined && config.parameter_choice !== 'string_param') throw InvalidParameter('config', 'must be a string_param holding the model config as JSON');
      // Model files to serve instead of the model folder's: `file:<version>/<name>` bytes_params.
      const files = new Map<string, Uint8Array>();
      for (const [k, v] of Object.entries(r.parameters)) {
        if (!k.startsWith('file:')) continue;
        const p = v as { bytes_param?: Buffer; parameter_choice?: string };
        if (p.parameter_choice !== 'bytes_param' || p.bytes_param === undefined) throw InvalidParameter(k, "must be a bytes_param holding the file's content");
        files.set(k, p.bytes_param);
      }
      await service.loadModel(r.model_name, { ...(config === undefined ? {} : { config: config.string_param ?? '' }), ...(files.size > 0 ? { files } : {}) });
      return {};
    }),
    RepositoryModelUnload: unary(log, 'RepositoryModelUnload', async (r: RepositoryRequest) => {
      checkModelRef(r.model_name, '');
      await service.unloadModel(r.model_name);
      return {};
    }),
    TraceSetting: unary(log, 'TraceSetting', (r: TraceSettingRequest) => {
      if (deps.tracer === undefined) throw Unimplemented('TraceSetting (the trace extension: this server runs without a tracer)');
      return traceSetting(service, deps.tracer, r);
    }),
    LogSettings: unary(log, 'LogSettings', (r: Parameters<typeof logSettings>[1]) => logSettings(deps.logControl, r)),
    SystemSharedMemoryStatus: unary(log, 'SystemSharedMemoryStatus', (r: ShmNameRequest) => shmStatus(deps.sharedMemory, r)),
    SystemSharedMemoryRegister: unary(log, 'SystemSharedMemoryRegister', (r: ShmRegisterRequest) => shmRegister(deps.sharedMemory, r)),
    SystemSharedMemoryUnregister: unary(log, 'SystemSharedMemoryUnregister', (r: ShmNameRequest) => shmUnregister(deps.sharedMemory, r)),
    ModelInfer: modelInferHandler(deps),
    ModelStreamInfer: modelStreamInferHandler(deps, deps.streams),
  };
  for (const [method, what] of Object.entries(UNSUPPORTED)) {
    impl[method] = unary(log, method, () => {
      throw Unimplemented(what);
    });
  }
  return impl;
}
