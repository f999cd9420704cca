import { performance } from 'node:perf_hooks';
import type { Metadata, sendUnaryData, ServerDuplexStream, ServerUnaryCall } from '@grpc/grpc-js';
import type { AccessGuard, Principal } from '../../access/guard.ts';
import { RequestTimeout, toSluiceError, UndecodableMessage, type SluiceError } from '../../core/errors.ts';
import type { InferRequest, InferenceService } from '../../core/inference.ts';
import type { SystemSharedMemory } from '../../shm/registry.ts';
import { inferWithSharedMemory } from '../../shm/tensors.ts';
import type { LogBudget } from '../../telemetry/log-budget.ts';
import type { Logger } from '../../telemetry/logger.ts';
import { statusOfKind, UNKNOWN_MODEL_LABEL, type Metrics } from '../../telemetry/metrics.ts';
import type { FrontDoorTrace, Tracer } from '../../telemetry/trace.ts';
import { checkCall } from './access.ts';
import { decodeInfer, encodeInferResponse } from './codec.ts';
import { undecodableReason, type ModelInferRequestMsg, type ModelInferResponseMsg, type ModelStreamInferResponseMsg } from './proto.ts';
import { grpcStatusOf, toServiceError } from './status.ts';

/** What the inference handlers need. */
export interface InferDeps {
  readonly service: InferenceService;
  readonly metrics: Metrics;
  readonly logger: Logger;
  /** Error lines per code: a client failing requests in a loop gets a few lines and a count. */
  readonly errorBudget: LogBudget;
  /** Triton's trace extension: sampled requests carry a trace; TraceSetting reads and updates it. */
  readonly tracer?: Tracer;
  /** Keys and scopes (--auth-config); absent, every method is open. */
  readonly guard?: AccessGuard;
  /** The system shared-memory extension's regions; absent when it is off (--shared-memory none). */
  readonly sharedMemory?: SystemSharedMemory;
}

/**
 * Requests one stream may have in the scheduler at once. Beyond it the stream stops reading, so HTTP/2
 * flow control pushes back on the client instead of sluice queueing without bound.
 */
export const MAX_STREAM_INFLIGHT = 64;

/** The call's deadline in epoch milliseconds; grpc-js reports Infinity when the client set none. */
function deadlineOf(deadline: Date | number): number {
  return deadline instanceof Date ? deadline.getTime() : deadline;
}

/** Microseconds left to a deadline (0 = none). */
function remainingUs(deadlineAtMs: number): number {
  if (!Number.isFinite(deadlineAtMs)) return 0;
  // At least 1 us: a deadline already behind us must still read as "expired", never as "none".
  return Math.max(1, Math.floor((deadlineAtMs - Date.now()) * 1000));
}

/**
 * A grpc-js client enforces its deadline itself and tells the server with the same RST_STREAM CANCEL
 * that an explicit cancel sends, so the server cannot tell the two apart on the wire. The server's copy
 * of the deadline is counted from when it read the headers, which lags the client's copy by the transit
 * time plus any event-loop delay before the headers were read; a busy server reads the client's
 * deadline cancel as arriving early. A cancel within this window before the deadline is the deadline.
 */
function deadlineSlackMs(budgetUs: number): number {
  return Math.max(50, budgetUs / 1000 / 10);
}

/** Metrics must never keep a reply from being sent: a failing lookup counts the request as unknown. */
function knownModel(service: InferenceService, name: string): boolean {
  try {
    return service.hasModel(name);
  } catch {
    return false;
  }
}

/** The caller of a call, authenticated once (its metadata comes once) and on first use. */
interface CallAccess {
  /** Throws UNAUTHENTICATED; undefined without a guard. */
  principal(): Principal | undefined;
}

function callAccess(deps: InferDeps, method: string, metadata: Metadata): CallAccess {
  let settled: { principal: Principal | undefined } | { error: unknown } | undefined;
  return {
    principal() {
      if (!deps.guard) return undefined;
      if (!settled) {
        try {
          settled = { principal: checkCall(deps.guard, method, metadata) };
        } catch (error) {
          settled = { error };
        }
      }
      if ('error' in settled) throw settled.error;
      return settled.principal;
    },
  };
}

/** ok without a reply: the request's answers went to its stream as they came (runOne's `emit`). */
type Outcome = { ok: true; reply?: ModelInferResponseMsg } | { ok: false; error: SluiceError };

/** Where a stream's answers go as they are ready; `final` says no more answers to that request follow. */
type Emit = (reply: ModelInferResponseMsg, final: boolean) => void;

/**
 * Decodes, runs and encodes one request, then records it in the metrics: exactly once per request,
 * whatever happens. A request cancelled because its deadline passed is reported as the timeout it is.
 */
async function runOne(deps: InferDeps, call: CallAccess, msg: ModelInferRequestMsg, arrivalMs: number, signal: AbortSignal, deadlineAtMs: number, trace: FrontDoorTrace | undefined, emit?: Emit): Promise<Outcome> {
  let outcome: Outcome;
  let worker: string | undefined;
  let batchRows: number | undefined;
  let tenant: string | undefined;
  const deadlineUs = remainingUs(deadlineAtMs);
  try {
    const principal = call.principal();
    tenant = principal?.tenant;
    if (principal) deps.guard!.authorize(principal, 'infer', msg.model_name);
    const undecodable = undecodableReason(msg);
    if (undecodable !== undefined) throw UndecodableMessage('ModelInfer', undecodable);
    // Shed before the tensors are decoded when the model's queue (or the tenant's limit) would refuse it anyway.
    const shed = deps.service.refuseOnArrival(msg.model_name, msg.model_version, arrivalMs, tenant);
    if (shed) throw shed;
    const { request: decoded, shm: plan } = decodeInfer(msg, { arrivalMs, signal, deadlineUs, sharedMemory: deps.sharedMemory !== undefined });
    const traced = (r: InferRequest): InferRequest => {
      trace?.mark('DECODE_END');
      trace?.identify(msg.id, '');
      return trace || tenant ? { ...r, ...(trace ? { trace } : {}), ...(tenant ? { tenant } : {}) } : r;
    };
    if (emit && !plan) {
      // On a stream, through inferStream: a decoupled model's answers go out one by one as they come.
      let identified = false;
      await deps.service.inferStream(traced(decoded), (r, final) => {
        if (!identified) trace?.identify('', r.version);
        identified = true;
        const encoded = encodeInferResponse(r);
        if (final) {
          trace?.mark('ENCODE_END');
          worker = r.worker;
          batchRows = r.batchRows;
        }
        emit(encoded, final);
      });
      outcome = { ok: true };
    } else {
      const { response, written } = await inferWithSharedMemory(deps.sharedMemory, plan, decoded, (withData) => deps.service.infer(traced(withData)));
      trace?.identify('', response.version);
      outcome = { ok: true, reply: encodeInferResponse(response, written) };
      trace?.mark('ENCODE_END');
      worker = response.worker;
      batchRows = response.batchRows;
    }
  } catch (e) {
    let error = toSluiceError(e);
    if (error.kind === 'CANCELLED' && deadlineUs > 0 && Date.now() >= deadlineAtMs - deadlineSlackMs(deadlineUs)) {
      error = RequestTimeout(msg.model_name, deadlineUs);
    }
    outcome = { ok: false, error };
  }
  const name = msg.model_name;
  const label = name !== '' && knownModel(deps.service, name) ? name : UNKNOWN_MODEL_LABEL;
  const seconds = (performance.now() - arrivalMs) / 1000;
  const status = outcome.ok ? 'success' : statusOfKind(outcome.error.kind, outcome.error.code);
  deps.metrics.observeRequest(label, 'grpc', status, seconds);
  if (tenant !== undefined) deps.metrics.observeTenantRequest(tenant, status, seconds);
  if (outcome.ok) {
    if (deps.logger.isLevelEnabled('debug')) deps.logger.debug({ id: msg.id, model: name, status: 'OK', ms: seconds * 1000, worker, batchRows }, 'infer');
  } else {
    const { error } = outcome;
    const fields = { model: name, id: msg.id, code: error.code, grpcStatus: grpcStatusOf(error.kind), ms: seconds * 1000 };
    if (error.kind === 'INTERNAL') deps.errorBudget.log(deps.logger, 'error', error.code, fields, error.message);
    else deps.logger.debug(fields, error.message);
  }
  return outcome;
}

/** ModelInfer: one request, one reply. */
export function modelInferHandler(deps: InferDeps) {
  return (call: ServerUnaryCall<ModelInferRequestMsg, ModelInferResponseMsg>, callback: sendUnaryData<ModelInferResponseMsg>): void => {
    const arrivalMs = performance.now();
    const trace = deps.tracer?.start(call.request.model_name, 'grpc');
    const controller = new AbortController();
    // Fires on client cancel, on the deadline (grpc-js answers DEADLINE_EXCEEDED and closes the stream)
    // and on a lost connection; the scheduler drops the request if it is still queued.
    call.once('cancelled', () => controller.abort());
    void runOne(deps, callAccess(deps, 'ModelInfer', call.metadata), call.request, arrivalMs, controller.signal, deadlineOf(call.getDeadline()), trace).then((outcome) => {
      if (outcome.ok) callback(null, outcome.reply);
      else callback(toServiceError(outcome.error));
      // grpc-js serializes and writes the reply inside callback(): it is on the socket now.
      trace?.end();
    });
  };
}

/** Lets the server end idle streams when it shuts down. */
export interface StreamRegistry {
  add(drain: () => void): void;
  delete(drain: () => void): void;
}

/**
 * ModelStreamInfer: every request message is answered by one response message, in order of completion.
 * A failed request is answered with error_message (and its id, so the client can match it) and the
 * stream stays open. At most MAX_STREAM_INFLIGHT requests run at once; reading pauses beyond that, and
 * also while the client is not reading responses.
 */
export function modelStreamInferHandler(deps: InferDeps, registry: StreamRegistry) {
  return (call: ServerDuplexStream<ModelInferRequestMsg, ModelStreamInferResponseMsg>): void => {
    const controllers = new Set<AbortController>();
    const access = callAccess(deps, 'ModelStreamInfer', call.metadata);
    try {
      access.principal();
    } catch (e) {
      // No key, no stream: the call ends with UNAUTHENTICATED before a message is read.
      call.emit('error', toServiceError(toSluiceError(e)));
      return;
    }
    let inflight = 0;
    let inputEnded = false;
    let finished = false;
    let writeBlocked = false;
    let draining = false;

    const finish = (): void => {
      if (finished) return;
      finished = true;
      registry.delete(drain);
      if (!call.cancelled) call.end();
    };
    const maybeFinish = (): void => {
      if ((inputEnded || draining) && inflight === 0) finish();
    };
    const maybeResume = (): void => {
      if (!draining && !writeBlocked && inflight < MAX_STREAM_INFLIGHT && call.isPaused()) call.resume();
    };
    function drain(): void {
      draining = true;
      call.pause();
      maybeFinish();
    }
    registry.add(drain);

    call.on('data', (msg: ModelInferRequestMsg) => {
      const arrivalMs = performance.now();
      const trace = deps.tracer?.start(msg.model_name, 'grpc');
      const controller = new AbortController();
      controllers.add(controller);
      inflight++;
      if (inflight >= MAX_STREAM_INFLIGHT) call.pause();
      const write = (reply: ModelStreamInferResponseMsg): void => {
        if (!finished && !call.cancelled && !call.write(reply)) writeBlocked = true;
      };
      // Triton's flag on every answer of a stream: whether it is the request's last.
      const flagged = (r: ModelInferResponseMsg, final: boolean): ModelStreamInferResponseMsg => ({ error_message: '', infer_response: { ...r, parameters: { triton_final_response: { bool_param: final } } } });
      let finalSent = false;
      const emit: Emit = (r, final) => {
        finalSent ||= final;
        write(flagged(r, final));
      };
      const empty = (): ModelInferResponseMsg => ({ model_name: msg.model_name, model_version: msg.model_version, id: msg.id, outputs: [], raw_output_contents: [] });
      void runOne(deps, access, msg, arrivalMs, controller.signal, deadlineOf(call.getDeadline()), trace, emit).then((outcome) => {
        controllers.delete(controller);
        inflight--;
        if (!outcome.ok) write({ error_message: outcome.error.message, infer_response: empty() });
        else if (outcome.reply) emit(outcome.reply, true);
        // A decoupled model's answers carry final false; the flag-only last answer is sent when asked for.
        else if (!finalSent && msg.parameters['triton_enable_empty_final_response']?.bool_param === true) write(flagged(empty(), true));
        trace?.end();
        maybeResume();
        maybeFinish();
      });
    });
    call.on('drain', () => {
      writeBlocked = false;
      maybeResume();
    });
    call.on('end', () => {
      inputEnded = true;
      maybeFinish();
    });
    call.on('cancelled', () => {
      for (const c of controllers) c.abort();
      finished = true;
      registry.delete(drain);
    });
    call.on('error', (e: Error) => {
      deps.logger.debug({ err: e }, 'ModelStreamInfer stream error');
      for (const c of controllers) c.abort();
    });
  };
}
