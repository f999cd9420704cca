import { RequestCancelled, RequestTimeout, toSluiceError } from '../core/errors.ts';
import type { InferRequest, InferResponse } from '../core/inference.ts';
import type { EnsembleStep, ModelConfig } from '../core/model.ts';
import type { Tensor } from '../core/tensor.ts';
import type { ModelStatsRecorder } from './stats.ts';
import { nsBetween } from './stats.ts';

/**
 * How a step reaches its model: GatewayService's own path (validation, the step model's queue and
 * batcher, its response cache and statistics), so a step is a real request of its model.
 */
export type StepInfer = (request: InferRequest) => Promise<InferResponse>;

/** What one ensemble request needs besides the request itself. */
export interface EnsembleRun {
  /** The ensemble's config (platform "ensemble", with ensembleScheduling). */
  readonly config: ModelConfig;
  /** The ensemble version that answers. */
  readonly version: string;
  /** Rows of the request (the validated plan's), for the ensemble's inference_count. */
  readonly rows: number;
  readonly stats: ModelStatsRecorder;
  readonly infer: StepInfer;
  /**
   * Priority levels of a step's model (its config's priority_levels, at least 1), or undefined when it
   * cannot be read (the step's own request then answers why).
   */
  readonly levelsOf: (model: string, version: string) => number | undefined;
}

/** The version a step asks of its model: '' (the model's policy decides) unless the step names one. */
export function stepVersion(step: EnsembleStep): string {
  return step.modelVersion > 0 ? String(step.modelVersion) : '';
}

/** Whether every tensor a step reads already exists. */
function runnable(step: EnsembleStep, tensors: ReadonlyMap<string, Tensor>): boolean {
  for (const t of Object.values(step.inputMap)) if (!tensors.has(t)) return false;
  return true;
}

/**
 * The step's request: its inputs renamed from ensemble tensors to the step model's names. It arrives
 * now, so the step model's queue statistics are its own; a timeout of the ensemble request passes on
 * as what is left of it. The ensemble request's priority passes on where the step model has that level;
 * where it has fewer levels, the step runs at its model's default, as Triton's ensembles do.
 */
function stepRequest(run: EnsembleRun, request: InferRequest, step: EnsembleStep, tensors: ReadonlyMap<string, Tensor>, signal: AbortSignal): InferRequest {
  const now = performance.now();
  let timeoutUs = 0;
  if (request.timeoutUs > 0) {
    timeoutUs = Math.ceil(request.timeoutUs - (now - request.arrivalMs) * 1000);
    if (timeoutUs <= 0) throw RequestTimeout(request.model, request.timeoutUs);
  }
  const version = stepVersion(step);
  const levels = request.priority > 0 ? run.levelsOf(step.modelName, version) : undefined;
  return {
    id: request.id,
    model: step.modelName,
    version,
    inputs: Object.entries(step.inputMap).map(([name, t]) => ({ ...tensors.get(t)!, name })),
    outputs: Object.keys(step.outputMap),
    priority: levels !== undefined && request.priority <= levels ? request.priority : 0,
    timeoutUs,
    arrivalMs: now,
    signal,
    protocol: request.protocol,
    ...(request.tenant !== undefined && { tenant: request.tenant }),
  };
}

/**
 * Runs the steps as a DAG: a step starts as soon as every tensor it reads exists, so independent
 * steps run at once. The first step to fail fails the request with its own error (code and kind),
 * and the steps still running are cancelled; cancelling the ensemble request cancels them too.
 */
async function runSteps(run: EnsembleRun, request: InferRequest, steps: readonly EnsembleStep[], tensors: Map<string, Tensor>): Promise<void> {
  const { infer } = run;
  if (request.signal?.aborted === true) throw RequestCancelled(request.model);
  const abort = new AbortController();
  const cancel = (): void => abort.abort();
  request.signal?.addEventListener('abort', cancel, { once: true });
  try {
    await new Promise<void>((resolve, reject) => {
      const started = new Set<number>();
      let running = 0;
      let failed = false;
      const failWith = (e: unknown): void => {
        if (failed) return;
        failed = true;
        abort.abort();
        reject(request.signal?.aborted === true ? RequestCancelled(request.model) : toSluiceError(e));
      };
      const launch = (): void => {
        steps.forEach((step, i) => {
          if (failed || started.has(i) || !runnable(step, tensors)) return;
          started.add(i);
          let req: InferRequest;
          try {
            req = stepRequest(run, request, step, tensors, abort.signal);
          } catch (e) {
            failWith(e);
            return;
          }
          running++;
          infer(req).then((response) => {
            running--;
            if (failed) return;
            for (const out of response.outputs) {
              const as = step.outputMap[out.name];
              if (as !== undefined) tensors.set(as, { ...out, name: as });
            }
            if (started.size === steps.length && running === 0) resolve();
            else launch();
          }, failWith);
        });
        // Only possible when a step answered without an output its map promised.
        if (!failed && running === 0 && started.size < steps.length) failWith(new Error(`ensemble '${request.model}': no step can run; a step did not produce the outputs it maps`));
      };
      launch();
    });
  } finally {
    request.signal?.removeEventListener('abort', cancel);
  }
}

/**
 * Answers one ensemble request. Its own statistics count it as one request and one execution of its
 * rows: no queue time (it waits only in its steps' queues, whose statistics show it) and the whole
 * run as compute, success or fail from arrival.
 */
export async function runEnsemble(run: EnsembleRun, request: InferRequest): Promise<InferResponse> {
  const { config, stats } = run;
  const tensors = new Map<string, Tensor>(request.inputs.map((t) => [t.name, t]));
  const started = performance.now();
  try {
    await runSteps(run, request, config.ensembleScheduling?.steps ?? [], tensors);
  } catch (e) {
    stats.fail(nsBetween(request.arrivalMs, performance.now()));
    throw e;
  }
  const done = performance.now();
  stats.queued(0);
  stats.executed(run.rows, run.rows, 1, { computeInputNs: 0, computeInferNs: nsBetween(started, done), computeOutputNs: 0 });
  stats.success(nsBetween(request.arrivalMs, done));
  const wanted = request.outputs.length > 0 ? request.outputs : config.outputs.map((o) => o.name);
  const outputs = wanted.map((name) => tensors.get(name)!);
  return { id: request.id, model: request.model, version: run.version, outputs };
}
