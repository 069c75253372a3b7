import { native } from './binding.js';

/** The compute backends and CPU features this build of llama.cpp sees. */
export function systemInfo(): { llamaSystemInfo: string; devices: { name: string; description: string }[]; gpuOffload: boolean } {
  return native().systemInfo();
}
