/** A generate request against a version that is ready: its checks, its tokens, and its answer. */
import { ContextTooLong, GenerativeModel, InvalidParameter, NotGenerative } from '../core/errors.ts';
import type { GenerateRequest, GenerateResponse } from '../core/inference.ts';
import { encodeAscii } from '../generation/tokenizer.ts';
import type { VersionSlot } from './models.ts';

export async function runGenerate(v: VersionSlot, request: GenerateRequest): Promise<GenerateResponse> {
  const g = v.config?.generation;
  const generator = v.generator?.generator;
  if (!g || !generator) throw NotGenerative(request.model);
  if (request.text === '') throw InvalidParameter('text_input', 'the prompt is empty: generation needs at least one token to start from');
  const prompt = encodeAscii(request.text);
  if (request.maxTokens < 1) throw InvalidParameter('max_tokens', `must be at least 1, got ${request.maxTokens}`);
  if (prompt.length + request.maxTokens > g.maxContext) throw ContextTooLong(request.model, prompt.length, request.maxTokens, g.maxContext);
  const onText = request.onText;
  const result = await generator.generate({
    prompt, maxTokens: request.maxTokens, temperature: request.temperature, topK: request.topK, topP: request.topP, seed: request.seed, stop: request.stop, ignoreEos: request.ignoreEos,
    arrivalMs: request.arrivalMs, ...(request.signal && { signal: request.signal }), ...(onText && { onText: (text: string) => onText(text, v.version) }),
  });
  return {
    model: request.model, version: v.version, text: result.text, finishReason: result.finishReason,
    promptTokens: result.promptTokens, cachedTokens: result.cachedTokens, completionTokens: result.tokens.length,
  };
}

/** An infer request for a generative model: its tensors are the engine's, one step at a time. */
export function refuseInferOnGenerative(v: VersionSlot, model: string): void {
  if (v.config?.generation) throw GenerativeModel(model);
}
