/**
 * Where ONNX Runtime runs a model: its CPU provider, the CUDA provider on an NVIDIA GPU (its library is
 * a separate download), or the WebGPU provider that onnxruntime-node bundles (Dawn over Vulkan: it
 * needs a Vulkan driver and an adapter, and no download).
 */
export type Device = 'cpu' | 'cuda' | 'webgpu';

export const DEVICES: readonly Device[] = ['cpu', 'cuda', 'webgpu'];

/** The accelerator devices: they probe their provider once and fall back per --cuda-fallback. */
export function isGpu(device: Device): device is 'cuda' | 'webgpu' {
  return device !== 'cpu';
}

/** The provider's name in messages. */
export function providerLabel(device: Device): string {
  return device === 'cuda' ? 'CUDA' : device === 'webgpu' ? 'WebGPU' : 'CPU';
}
